"""Synthetic training data that needs what the models claim to have, and a small training helper, for
the stage tests (train, tag, eval)."""
import json

import numpy as np

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
