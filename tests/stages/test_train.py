"""train end to end on synthetic tasks that need what the models claim to have: learning, seeds, kill -9,
Ctrl-C and --resume."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from training_data import context_tagging, negation, train, write_jsonl

from seqtool.errors import SeqtoolError
from seqtool.model import modelio
from seqtool.stages.eval import run_eval
from seqtool.stages.train import run_train


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


def _vectors_file(path, words, extra: int, dim: int = 8, seed: int = 0):
    """A GloVe-format file: the given words and ``extra`` more that no training record holds."""
    rng = np.random.default_rng(seed)
    every = [*words, *(f"xw{i}" for i in range(extra))]
    lines = [f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=dim))}" for w in every]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("vectors", [False, True], ids=["no-vectors", "vectors"])
def test_interrupted_then_resumed_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch, vectors):
    """Ctrl-C right after epoch 2's checkpoint, then --resume to 4 epochs: the same bits as 4 epochs in one go
    (weights, optimiser moments and the random generator all come back whole). With a vectors file of many words
    training never sees, the checkpoint keeps only the table's rows training can change."""
    records = context_tagging(200, 0)
    train_file = write_jsonl(tmp_path / "d.jsonl", records)
    dev_file = write_jsonl(tmp_path / "dev.jsonl", context_tagging(40, 1))
    opts = dict(task="tagger", dev=dev_file, epochs=4, hidden=16, embed=8, progress=False, patience=0, threads=1)
    words = sorted({t for r in records for t in r["tokens"]})
    if vectors:
        opts["embeddings"] = _vectors_file(tmp_path / "vectors.txt", words[::2], extra=3000)
    run_train(train_file, output=str(tmp_path / "whole"), **opts)
    real_save, pressed, table_rows = modelio.save_checkpoint, [], []

    def save_then_interrupt(path, state):
        real_save(path, state)
        table_rows.append(len(state["weights"]["0.0.E"]))
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
    n_vocab = whole[0]["n_vocab"]
    assert n_vocab > 3000 if vectors else n_vocab < 100
    # the checkpoint's word table: the training words, <UNK> and <PAD> at most, with vectors; whole without
    assert table_rows[-1] <= len(words) + 2 if vectors else table_rows[-1] == n_vocab


@pytest.mark.skipif(__import__("numba").config.NUMBA_NUM_THREADS < 2, reason="one core: nothing to compare")
def test_the_weights_do_not_depend_on_the_thread_count(tmp_path):
    # every parallel part of a step in play (char CNN, shape, dropout, BiLSTM, CRF; a batch of 64 puts the CRF
    # above its parallel threshold): each reduction runs in a fixed order, so 1 and 2 threads give the same bits
    sample = os.path.join(os.path.dirname(__file__), "..", "..", "sample_data", "ner.jsonl")
    weights = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        run_train(sample, output=str(out), task="tagger", progress=False, threads=threads, epochs=2, hidden=24,
                  batch_size=64, dropout=0.3, word_dropout=0.05, seed=5)
        weights.append(modelio.load_model(out)[1])
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)


def test_resume_with_other_vectors_is_refused(tmp_path, monkeypatch):
    records = context_tagging(60, 0)
    train_file = write_jsonl(tmp_path / "d.jsonl", records)
    words = sorted({t for r in records for t in r["tokens"]})
    opts = dict(task="tagger", epochs=3, hidden=8, progress=False, threads=1)
    real_save, pressed = modelio.save_checkpoint, []

    def save_then_interrupt(path, state):
        real_save(path, state)
        if not pressed:
            pressed.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(modelio, "save_checkpoint", save_then_interrupt)
    with pytest.raises(SeqtoolError, match="interrupted after 1 epoch"):
        run_train(train_file, output=str(tmp_path / "m"), embeddings=_vectors_file(tmp_path / "a.txt", words, 50),
                  **opts)
    monkeypatch.setattr(modelio, "save_checkpoint", real_save)
    other = _vectors_file(tmp_path / "b.txt", words, 50, seed=1)
    with pytest.raises(SeqtoolError, match="same --embeddings file"):
        run_train(train_file, output=str(tmp_path / "m"), embeddings=other, resume=True, **opts)
