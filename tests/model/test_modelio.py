import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from seqtool import __version__
from seqtool.model import atomicdir, modelio
from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.model.modelio import (FORMAT_VERSION, data_fingerprint, load_checkpoint, load_model, save_checkpoint,
                             save_model)

WEIGHTS = {"emb": np.arange(12, dtype=np.float32).reshape(3, 4), "lstm/W": np.ones((2, 2)),
           "steps": np.array([3], dtype=np.int64), "mask": np.array([True, False])}


def save(path, i=0, **kw):
    save_model(path, {"task": "tagger", "i": i}, {k: v + i for k, v in WEIGHTS.items() if k != "mask"},
               {"tokens": ["<pad>", "a"]}, {"f1": np.float32(0.5), "i": i}, **kw)


def siblings(tmp_path, name="m"):
    return sorted(e for e in os.listdir(tmp_path) if e.startswith(f".{name}."))


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_round_trip(tmp_path):
    save_model(tmp_path / "m", {"task": "tagger", "seed": 1}, WEIGHTS, {"tokens": ["<pad>", "é"]},
               {"f1": np.float32(0.5), "auc": None})
    config, weights, vocab, metrics = load_model(tmp_path / "m")
    assert config == {"task": "tagger", "seed": 1, "format_version": FORMAT_VERSION, "seqtool_version": __version__}
    assert weights.keys() == WEIGHTS.keys()
    for k, v in WEIGHTS.items():
        assert weights[k].dtype == v.dtype and np.array_equal(weights[k], v)
    assert vocab == {"tokens": ["<pad>", "é"]}
    assert metrics == {"f1": 0.5, "auc": None}
    assert sorted(os.listdir(tmp_path / "m")) == sorted([*modelio.MODEL_FILES, "history.tsv"])
    assert (tmp_path / "m" / "history.tsv").read_text() == "epoch\tloss\tlr\ttokens_per_s\tgrad_norm\t" \
        "max_grad_norm\tclipped_steps\tskipped_steps\tseconds\n"     # no history: the header only
    assert siblings(tmp_path) == []


def test_npz_is_what_numpy_reads(tmp_path):
    # Names that np.savez(f, **weights) could not take are fine.
    save_model(tmp_path / "m", {}, {"file": np.zeros(2), "allow_pickle": np.ones(1)}, {}, {})
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["allow_pickle", "file"]


@pytest.mark.parametrize("value, dtype", [(np.array([{"a": 1}], dtype=object), "object"),
                                          (np.array(["x"]), "<U1")])
def test_non_numeric_weights_rejected_at_save(tmp_path, value, dtype):
    with pytest.raises(SeqtoolError) as e:
        save_model(tmp_path / "m", {}, {"w": np.zeros(1), "bad": value}, {}, {})
    assert str(e.value) == (f"weight 'bad' has dtype {dtype}: only bool, integer and float arrays can be stored "
                            "(they are loaded with allow_pickle=False)")
    assert os.listdir(tmp_path) == []           # nothing written, no temp dir left


def test_unserialisable_config_rejected_at_save(tmp_path):
    with pytest.raises(SeqtoolError, match="^cannot save the config as JSON: set is not JSON serialisable$"):
        save_model(tmp_path / "m", {"x": {1}}, {}, {}, {})
    assert os.listdir(tmp_path) == []


def test_object_array_in_file_rejected_at_load(tmp_path):
    save(tmp_path / "m")
    np.savez(tmp_path / "m" / "weights.npz", w=np.array([None], dtype=object))  # pickles it
    with pytest.raises(SeqtoolError) as e:
        load_model(tmp_path / "m")
    assert str(e.value).startswith(f"{tmp_path / 'm' / 'weights.npz'}: cannot read the arrays: Object arrays "
                                   "cannot be loaded when allow_pickle=False")


def test_string_array_in_file_rejected_at_load(tmp_path):
    save(tmp_path / "m")
    np.savez(tmp_path / "m" / "weights.npz", w=np.array(["a"]))
    with pytest.raises(SeqtoolError, match="weights.npz: array 'w' has dtype <U1: only bool, integer and float"):
        load_model(tmp_path / "m")


def set_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def test_newer_format_version_says_upgrade(tmp_path):
    save(tmp_path / "m")
    set_config(tmp_path / "m", format_version=FORMAT_VERSION + 1, seqtool_version="9.0.0")
    with pytest.raises(SeqtoolError) as e:
        load_model(tmp_path / "m")
    assert str(e.value) == (
        f"{tmp_path / 'm' / 'config.json'}: model format_version is 2 (written by seqtool 9.0.0), but this seqtool "
        f"({__version__}) reads format_version 1: upgrade seqtool to one that reads version 2, "
        "or retrain the model with this one")


@pytest.mark.parametrize("version", [0, "1", True])
def test_other_format_version_says_retrain(tmp_path, version):
    save(tmp_path / "m")
    set_config(tmp_path / "m", format_version=version)
    with pytest.raises(SeqtoolError) as e:
        load_model(tmp_path / "m")
    assert str(e.value).endswith(f"model format_version is {version!r} (written by seqtool {__version__}), but this "
                                 f"seqtool ({__version__}) reads format_version 1: retrain the model with this seqtool")


def test_load_errors_name_the_path(tmp_path):
    m = tmp_path / "m"
    with pytest.raises(SeqtoolError, match=f"^{m}: no such model directory$"):
        load_model(m)
    (tmp_path / "f").write_text("x")
    with pytest.raises(SeqtoolError, match=f"^{tmp_path / 'f'}: not a model directory$"):
        load_model(tmp_path / "f")
    save(m)
    (m / "vocab.json").unlink()
    with pytest.raises(SeqtoolError, match=f"^{m / 'vocab.json'}: missing: the model is incomplete$"):
        load_model(m)
    save(m)
    (m / "metrics.json").write_text("{")
    with pytest.raises(SeqtoolError, match=rf"^{m / 'metrics.json'}: not valid JSON \(Expecting"):
        load_model(m)
    save(m)
    (m / "config.json").write_text("{}")
    with pytest.raises(SeqtoolError, match=f"^{m / 'config.json'}: no format_version: not a seqtool model$"):
        load_model(m)
    save(m)
    (m / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SeqtoolError, match=f"^{m / 'weights.npz'}: cannot read the arrays: "):
        load_model(m)


def test_replace_and_keep_previous(tmp_path):
    m = tmp_path / "m"
    save(m, 1)
    save(m, 2, keep_previous=True)
    save(m, 3, keep_previous=True)
    assert load_model(m)[0]["i"] == 3
    assert load_model(tmp_path / "m.prev")[0]["i"] == 2
    save(m, 4)                                    # without keep_previous, .prev is left as it was
    assert (load_model(m)[0]["i"], load_model(tmp_path / "m.prev")[0]["i"]) == (4, 2)
    assert sorted(os.listdir(tmp_path)) == ["m", "m.prev"]


def test_save_creates_parents_and_follows_a_link(tmp_path):
    save(tmp_path / "a" / "b" / "m", 1)
    os.symlink(tmp_path / "a" / "b" / "m", tmp_path / "link")
    save(tmp_path / "link", 2)
    assert os.path.islink(tmp_path / "link") and load_model(tmp_path / "a" / "b" / "m")[0]["i"] == 2


def test_refuses_to_replace_other_things(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    with pytest.raises(UsageError) as e:
        save(tmp_path / "data")
    assert str(e.value) == (f"{tmp_path / 'data'}: holds 'train.jsonl', which is not part of a seqtool model; "
                            "refusing to replace it (choose another path, or remove it)")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a model directory; refusing to replace it$"):
        save(tmp_path / "file")
    save_checkpoint(tmp_path / "ckpt", {"epoch": 1})
    with pytest.raises(UsageError, match="which is not part of a seqtool model"):
        save(tmp_path / "ckpt")
    assert (tmp_path / "data" / "train.jsonl").exists() and load_checkpoint(tmp_path / "ckpt") == {"epoch": 1}


def test_stale_temp_dirs_are_cleaned(tmp_path):
    save(tmp_path / "m", 1)
    dead, live = dead_pid(), os.getppid()
    for tag, pid in [("tmp", dead), ("old", dead), ("prev.tmp", dead), ("tmp", live)]:
        (tmp_path / f".m.{tag}-{pid}-0badc0de").mkdir()
        (tmp_path / f".m.{tag}-{pid}-0badc0de" / "weights.npz").write_bytes(b"half")
    (tmp_path / ".other.tmp-1-00").mkdir()        # another model's: not ours to touch
    save(tmp_path / "m", 2)
    assert siblings(tmp_path) == [f".m.tmp-{live}-0badc0de"]
    assert (tmp_path / ".other.tmp-1-00").exists() and load_model(tmp_path / "m")[0]["i"] == 2


@pytest.fixture
def no_exchange(monkeypatch):
    """The two-rename fallback used where renameat2(RENAME_EXCHANGE) is missing."""
    monkeypatch.setattr(atomicdir, "_exchange", lambda a, b: False)


def test_fallback_replaces_and_keeps_previous(tmp_path, no_exchange):
    save(tmp_path / "m", 1)
    save(tmp_path / "m", 2, keep_previous=True)
    save(tmp_path / "m", 3, keep_previous=True)
    assert (load_model(tmp_path / "m")[0]["i"], load_model(tmp_path / "m.prev")[0]["i"]) == (3, 2)
    assert sorted(os.listdir(tmp_path)) == ["m", "m.prev"]


def test_fallback_window_is_recovered(tmp_path, no_exchange):
    # A fallback save killed between its two renames: the old model sits aside, PATH is absent.
    save(tmp_path / "m", 1)
    aside = tmp_path / f".m.old-{dead_pid()}-12345678"
    os.rename(tmp_path / "m", aside)
    (tmp_path / f".m.tmp-{dead_pid()}-12345678").mkdir()
    with pytest.raises(SeqtoolError) as e:
        load_model(tmp_path / "m")
    assert str(e.value) == (f"{tmp_path / 'm'}: no such model directory (an interrupted save left the previous one "
                            f"at {aside}: rename it back, or save again)")
    save(tmp_path / "m", 2, keep_previous=True)   # puts the old one back first, so it becomes .prev
    assert (load_model(tmp_path / "m")[0]["i"], load_model(tmp_path / "m.prev")[0]["i"]) == (2, 1)
    assert siblings(tmp_path) == []


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from seqtool.model import atomicdir, modelio
    path, base, exchange = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    if not exchange:
        atomicdir._exchange = lambda a, b: False
    print("ready", flush=True)
    for i in range(base, base + 10_000):
        w = {f"w{k}": np.full((500, 1000), i, dtype=np.float64) for k in range(3)}  # 12 MB
        modelio.save_model(path, {"i": i}, w, {"i": i}, {"i": i}, keep_previous=True)
""")


def check_complete(path):
    config, weights, vocab, metrics = load_model(path)
    i = config["i"]
    assert vocab == metrics == {"i": i}
    assert sorted(weights) == ["w0", "w1", "w2"]
    assert all(w.shape == (500, 1000) and (w == i).all() for w in weights.values())
    return i


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_kill_9_never_leaves_a_broken_model(tmp_path, exchange):
    path = tmp_path / "m"
    save_model(path, {"i": -1}, {f"w{k}": np.full((500, 1000), -1.0) for k in range(3)}, {"i": -1}, {"i": -1})
    rng = random.Random(1234)
    seen = set()
    for round_ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(1000 * round_), "1" if exchange else "0"],
                                stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(modelio.__file__)))
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if exchange or path.exists():
            seen.add(check_complete(path))
        else:  # the fallback's window: the previous model is whole beside it
            (aside,) = [tmp_path / e for e in siblings(tmp_path) if e.startswith(".m.old-")]
            seen.add(check_complete(aside))
        if (tmp_path / "m.prev").exists():
            check_complete(tmp_path / "m.prev")
    assert len(seen) > 1                           # the saves did make progress between kills
    save_model(path, {"i": 0}, {}, {}, {})         # the next save tidies whatever the kills left
    assert siblings(tmp_path) == [] and load_model(path)[0]["i"] == 0


def test_loads_during_saves_never_mix_versions(tmp_path):
    path = tmp_path / "m"
    save_model(path, {"i": -1}, {f"w{k}": np.full((500, 1000), -1.0) for k in range(3)}, {"i": -1}, {"i": -1})
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path), "0", "1"], stdout=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(modelio.__file__)))
    try:
        assert proc.stdout.readline() == b"ready\n"
        seen = set()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            seen.add(check_complete(path))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert len(seen) > 2


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    state = {"epoch": 3, "best_score": 0.8125, "rng": rng.bit_generator.state,
             "optimizer": {"step": 120, "m": {"emb": np.ones((2, 3), np.float32)}, "v": [np.zeros(2), None]},
             "history": (0.5, 0.75)}
    save_checkpoint(tmp_path / "ckpt", state)
    back = load_checkpoint(tmp_path / "ckpt")
    assert back["rng"] == state["rng"]            # 128-bit PCG64 state: exact as JSON ints
    restored = np.random.default_rng()
    restored.bit_generator.state = back["rng"]
    assert restored.random() == rng.random()
    assert back["optimizer"]["m"]["emb"].dtype == np.float32
    assert np.array_equal(back["optimizer"]["v"][0], np.zeros(2)) and back["optimizer"]["v"][1] is None
    assert (back["epoch"], back["best_score"], back["history"]) == (3, 0.8125, [0.5, 0.75])
    save_checkpoint(tmp_path / "ckpt", {"epoch": 4})  # replaced atomically like a model
    assert load_checkpoint(tmp_path / "ckpt") == {"epoch": 4}


@pytest.mark.parametrize("state, key", [({1: 2}, "1"), ({"a": {"$array": "a0"}}, "'$array'")])
def test_checkpoint_keys_must_round_trip(tmp_path, state, key):
    with pytest.raises(SeqtoolError) as e:
        save_checkpoint(tmp_path / "ckpt", state)
    assert str(e.value) == f"checkpoint state keys must be strings other than '$array', not {key}"


def test_checkpoint_version_checked(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"epoch": 1})
    doc = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    doc["format_version"] = 7
    (tmp_path / "ckpt" / "state.json").write_text(json.dumps(doc))
    with pytest.raises(SeqtoolError, match="state.json: checkpoint format_version is 7 .*: upgrade seqtool"):
        load_checkpoint(tmp_path / "ckpt")


def test_data_fingerprint(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b'{"x": 1}\r\n{"x": 2}\n')
    b.write_bytes("{\"y\": \"é\"}".encode())
    both = data_fingerprint([a, b])
    assert both == "sha256:" + __import__("hashlib").sha256(a.read_bytes() + b.read_bytes()).hexdigest()
    with open(a, "rb") as fa, open(b, encoding="utf-8", newline="") as fb:
        assert data_fingerprint(lines=list(fa) + list(fb)) == both   # lines keep their newlines
    assert data_fingerprint(str(a)) == data_fingerprint([a]) != both
    assert data_fingerprint([]) == data_fingerprint(lines=[]) == \
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    with pytest.raises(DataError, match=f"^{tmp_path / 'nope'}: cannot read: No such file or directory$"):
        data_fingerprint(tmp_path / "nope")
