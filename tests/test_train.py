"""train / tag / eval end to end, on synthetic tasks that need what the models claim to have."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from seqtool.errors import SeqtoolError
from seqtool.model import modelio
from seqtool.stages.eval import run_eval
from seqtool.stages.tag import run_tag
from seqtool.stages.train import run_train

WORDS = ["a", "b", "c", "d", "e", "f", "the"]


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


def context_tagging(n, seed):
    """'d' is an entity (B-X) only right after 'the': a per-token classifier without context cannot learn it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        toks = list(rng.choice(WORDS, size=rng.integers(3, 12)))
        tags = ["B-X" if t == "d" and i > 0 and toks[i - 1] == "the" else "O" for i, t in enumerate(toks)]
        out.append({"tokens": toks, "tags": tags})
    return out


def negation(n, seed):
    """'not' flips the sentiment: no linear function of the mean embedding separates it."""
    rng = np.random.default_rng(seed)
    fill = ["i", "am", "really", "today", "so", "feel"]
    out = []
    for _ in range(n):
        word = rng.choice(["happy", "glad", "sad", "awful"])
        neg = rng.random() < 0.5
        toks = list(rng.choice(fill, size=rng.integers(0, 4))) + (["not"] if neg else []) + [word] \
            + list(rng.choice(fill, size=rng.integers(0, 3)))
        positive = (word in ("happy", "glad")) != neg
        out.append({"text": " ".join(toks), "label": "positive" if positive else "negative"})
    return out


def train(tmp_path, records, dev, name="m", **opts):
    tr = write_jsonl(tmp_path / f"{name}_train.jsonl", records)
    dv = write_jsonl(tmp_path / f"{name}_dev.jsonl", dev)
    out = str(tmp_path / name)
    summary, _ = run_train(tr, output=out, dev=dv, progress=False, threads=2, **opts)
    return out, summary, dv


def test_tagger_learns_a_rule_that_needs_context(tmp_path):
    out, summary, dev = train(tmp_path, context_tagging(600, 0), context_tagging(200, 1), task="tagger",
                              epochs=12, hidden=32, embed=16, dropout=0.0, word_dropout=0.0, lr=0.01)
    assert summary["dev"]["f1"] > 0.97, summary
    metrics, _ = run_eval(dev, model=out)
    assert metrics["f1"] > 0.97 and metrics["accuracy"] > 0.99


def test_classifier_learns_negation_that_a_bag_of_words_cannot(tmp_path):
    train_set, dev_set = negation(800, 0), negation(300, 1)
    _, rnn, _ = train(tmp_path, train_set, dev_set, "rnn", task="classifier", cell="lstm", epochs=15, hidden=32, embed=16,
                      dropout=0.0, word_dropout=0.0, lr=0.01, pool="last")
    _, bow, _ = train(tmp_path, train_set, dev_set, "bow", task="classifier", cell="none", epochs=15, embed=16,
                      dropout=0.0, word_dropout=0.0, lr=0.01)
    assert rnn["dev"]["accuracy"] > 0.97, rnn
    assert bow["dev"]["accuracy"] < 0.85, bow


def test_same_seed_gives_identical_weights(tmp_path):
    data, dev = context_tagging(200, 0), context_tagging(50, 1)
    a, _, _ = train(tmp_path, data, dev, "a", task="tagger", epochs=2, hidden=16, embed=8, seed=7)
    b, _, _ = train(tmp_path, data, dev, "b", task="tagger", epochs=2, hidden=16, embed=8, seed=7)
    wa, wb = modelio.load_model(a)[1], modelio.load_model(b)[1]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


def test_tag_then_eval_pred_equals_eval_with_model(tmp_path):
    out, _, dev = train(tmp_path, context_tagging(300, 0), context_tagging(80, 1), task="tagger", epochs=3,
                        hidden=16, embed=8)
    tagged = tmp_path / "tagged.jsonl"
    with open(tagged, "wb") as f:
        run_tag(out, dev, f)
    rows = [json.loads(line) for line in open(tagged)]
    assert len(rows) == 80 and all(len(r["tags"]) == len(r["tokens"]) == len(r["gold_tags"]) for r in rows)
    for r in rows:
        for e in r["entities"]:
            assert r["tags"][e["start"]] in ("B-X", "I-X") and 0 < e["score"] <= 1
    direct, _ = run_eval(dev, model=out)
    piped, _ = run_eval(str(tagged), pred=True)
    assert direct["f1"] == piped["f1"] and direct["accuracy"] == piped["accuracy"]


def test_eval_errors_name_the_line_of_the_file(tmp_path):
    import pytest

    from seqtool.errors import DataError

    out, _, dev = train(tmp_path, context_tagging(100, 0), context_tagging(20, 1), task="tagger", epochs=1,
                        hidden=8, embed=4)
    lines = open(dev).read().splitlines()
    no_gold = json.dumps({"tokens": ["a", "b"]})
    path = tmp_path / "gaps.jsonl"
    path.write_text("\n".join(lines[:3] + ["", ""] + lines[3:6] + [no_gold] + lines[6:]) + "\n")   # line 9
    with pytest.raises(DataError) as e:
        run_eval(str(path), model=out, batch_size=4)
    assert str(e.value) == f'{path}:9: record has no gold "tags" to score against'
    tagged = tmp_path / "tagged.jsonl"
    with open(tagged, "wb") as f:
        run_tag(out, dev, f)
    rows = open(tagged).read().splitlines()
    rows[4] = json.dumps({k: v for k, v in json.loads(rows[4]).items() if k != "gold_tags"})
    tagged.write_text("\n\n".join(rows) + "\n")                        # record 5 is on line 9
    with pytest.raises(DataError) as e:
        run_eval(str(tagged), pred=True)
    assert str(e.value) == f'{tagged}:9: record has no gold "tags" to score against'


def test_tag_on_worker_threads_writes_what_one_thread_writes(tmp_path):
    """Chunks computed side by side by two workers (each through the token cache) come out in input order,
    byte for byte as with one thread, and tag as the model itself does (numpy path, whole input at once)."""
    from seqtool.data.dataset import Ragged
    from seqtool.data.dataset import TaskData
    from seqtool.kernels.numpy_path import numpy_inference
    from seqtool.model.inference import predict_tags
    from seqtool.predict import LoadedModel

    out, _, dev = train(tmp_path, context_tagging(300, 0), context_tagging(40, 1), task="tagger", epochs=2,
                        hidden=16, embed=8)                      # the default tagger: CRF, char CNN, shapes
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, **r} for i, r in enumerate(context_tagging(300, 3))])
    outputs = {}
    for threads in (1, 2):
        dst = tmp_path / f"out{threads}.jsonl"
        with open(dst, "wb") as f:
            run_tag(out, src, f, batch_size=16, threads=threads)
        outputs[threads] = dst.read_bytes()
    assert outputs[1] == outputs[2]
    rows = [json.loads(line) for line in outputs[2].decode().splitlines()]
    assert [r["id"] for r in rows] == list(range(300))
    loaded = LoadedModel(out)
    records = [loaded.encode(json.loads(line)) for line in open(src)]
    data = TaskData("tagger", Ragged([r["ids"] for r in records]).finish(),
                    chars=loaded.char_column([r["tokens"] for r in records]))
    with numpy_inference():
        direct = list(predict_tags(loaded.model, data, len(data)))
    names = loaded.vocab.tags.names
    assert [r["tags"] for r in rows] == [[names[t] for t in pred] for pred, _ in direct]


def test_tag_keeps_extra_keys_and_order(tmp_path):
    out, _, _ = train(tmp_path, negation(200, 0), negation(50, 1), task="classifier", epochs=1, hidden=8,
                      embed=8)
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in
                                               enumerate(["i am happy", "not glad", "so sad today"] * 5)])
    dst = tmp_path / "out.jsonl"
    with open(dst, "wb") as f:
        run_tag(out, src, f, batch_size=4)
    rows = [json.loads(line) for line in open(dst)]
    assert [r["id"] for r in rows] == list(range(15))
    assert all(r["label"] in ("positive", "negative") and abs(sum(r["probs"].values()) - 1) < 1e-3 for r in rows)


def test_tag_writes_every_record_before_a_bad_one_then_names_its_line(tmp_path):
    import pytest

    from seqtool.errors import DataError

    out, _, _ = train(tmp_path, negation(200, 0), negation(50, 1), task="classifier", epochs=1, hidden=8,
                      embed=8)
    src = tmp_path / "in.jsonl"
    good = [json.dumps({"id": i, "text": "i am happy"}) for i in range(9)]
    src.write_text("\n".join(good[:7] + ["{not json"] + good[7:]) + "\n")
    dst = tmp_path / "out.jsonl"
    with open(dst, "wb") as f, pytest.raises(DataError) as e:
        run_tag(out, str(src), f, batch_size=2)        # chunks of 2: the bad line is in the fourth
    assert str(e.value).startswith(f"{src}:8: ")
    assert [json.loads(line)["id"] for line in open(dst)] == list(range(6))   # the three whole chunks before it


KILL_SCRIPT = """
import sys
from seqtool.stages.train import run_train
run_train(sys.argv[1], output=sys.argv[2], task="tagger", epochs=10000, hidden=16, embed=8, progress=False,
          patience=0)
"""


def test_kill_9_during_train_leaves_the_previous_model_loadable(tmp_path):
    out, _, _ = train(tmp_path, context_tagging(100, 0), context_tagging(20, 1), task="tagger", epochs=1,
                      hidden=16, embed=8)
    before = modelio.load_model(out)[1]
    src = write_jsonl(tmp_path / "big.jsonl", context_tagging(300, 2))
    for delay in (0.5, 2.0, 4.0):
        p = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, src, out])
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        config, weights, _, _ = modelio.load_model(out)
        assert config["task"] == "tagger" and weights.keys() == before.keys()
        for name, array in before.items():               # the previous model, bit for bit
            assert np.array_equal(weights[name], array), name
        if os.path.isdir(out + ".ckpt"):                 # a checkpoint there is whole: it loads
            assert modelio.load_checkpoint(out + ".ckpt")["epoch"] >= 1


def test_interrupt_saves_a_checkpoint_and_resume_continues(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", context_tagging(300, 0))
    out = str(tmp_path / "m")
    p = subprocess.Popen([sys.executable, "-m", "seqtool", "train", "--task", "tagger", "--train", src, "-o", out,
                          "--epochs", "10000", "--hidden", "16", "--embed", "8", "--patience", "0"],
                         stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 120
    while not os.path.isdir(out + ".ckpt") and time.time() < deadline:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"--resume" in err
    state = modelio.load_checkpoint(out + ".ckpt")
    done = state["epoch"]
    summary, _ = run_train(src, output=out, task="tagger", epochs=done + 1, hidden=16, embed=8, resume=True,
                           progress=False, patience=0)
    assert summary["epochs"] == done + 1 and os.path.isdir(out) and not os.path.exists(out + ".ckpt")
    history = json.loads((tmp_path / "m" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, done + 2))      # the whole run's history


def test_interrupted_then_resumed_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    """Ctrl-C right after epoch 2's checkpoint, then --resume to 4 epochs: the same bits as 4 epochs in one go
    (weights, optimiser moments and the random generator all come back whole)."""
    train_file = write_jsonl(tmp_path / "d.jsonl", context_tagging(200, 0))
    dev_file = write_jsonl(tmp_path / "dev.jsonl", context_tagging(40, 1))
    opts = dict(task="tagger", dev=dev_file, epochs=4, hidden=16, embed=8, progress=False, patience=0, threads=1)
    run_train(train_file, output=str(tmp_path / "whole"), **opts)
    real_save, pressed = modelio.save_checkpoint, []

    def save_then_interrupt(path, state):
        real_save(path, state)
        if state["epoch"] == 2 and not pressed:          # Ctrl-C once, right after epoch 2's checkpoint
            pressed.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(modelio, "save_checkpoint", save_then_interrupt)
    with pytest.raises(SeqtoolError, match="interrupted after 2 epochs"):
        run_train(train_file, output=str(tmp_path / "resumed"), **opts)
    monkeypatch.setattr(modelio, "save_checkpoint", real_save)
    summary, _ = run_train(train_file, output=str(tmp_path / "resumed"), resume=True, **opts)
    assert summary["epochs"] == 4
    whole, resumed = modelio.load_model(tmp_path / "whole"), modelio.load_model(tmp_path / "resumed")
    assert whole[1].keys() == resumed[1].keys()
    for name in whole[1]:
        assert np.array_equal(whole[1][name], resumed[1][name]), name
    assert [h["loss"] for h in whole[3]["history"]] == [h["loss"] for h in resumed[3]["history"]]
