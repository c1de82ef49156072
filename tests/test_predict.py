"""seqtool/predict.py, the inference every consumer shares: chunks in order, the numpy and kernel paths agreeing,
annotations, CoNLL lines, character offsets, Siamese pairs and texts."""
import json
from pathlib import Path

import numpy as np
import pytest

from seqtool.data.tokenize import token_offsets, tokenize
from seqtool.data.tagged import conll_lines
from seqtool.predict import (LoadedModel, encode_pair, encode_text, encode_texts, pair_chunks,
                             predict_chunk, tag_chunks)
from seqtool.stages.train import run_train

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("predict-models")
    tiny = dict(epochs=1, hidden=8, embed=8, progress=False, threads=1)
    run_train(str(SAMPLE / "ner.jsonl"), output=str(d / "ner"), task="tagger", **tiny)
    run_train(str(SAMPLE / "pairs.jsonl"), output=str(d / "siamese"), task="siamese", dev=str(SAMPLE / "pairs.jsonl"),
              **tiny)
    return {"ner": str(d / "ner"), "siamese": str(d / "siamese")}


def sentences(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (SAMPLE / "ner.jsonl").read_text().splitlines()]
    return [dict(rows[i % len(rows)], id=i) for i in range(n)]


def test_token_offsets_point_into_the_text_or_are_none():
    text = " Ann's  e-mail: ann@x.org :)"
    tokens = tokenize(text)
    offsets = token_offsets(text, tokens)
    assert [text[a:b] for a, b in offsets] == tokens
    assert token_offsets(text, ["Ann", "mail"]) is None           # "'s  e-" skipped: not this text's tokens
    assert token_offsets("a b", ["b", "a"]) is None                # out of order


def test_empty_input_gives_no_chunk(models):
    loaded = LoadedModel(models["ner"])
    assert list(tag_chunks(loaded, iter([]), batch_size=4)) == []


def test_chunks_come_in_input_order_and_equal_per_chunk_prediction(models):
    loaded = LoadedModel(models["ner"])
    records = [loaded.encode(r) for r in sentences(40)]
    chunks = list(tag_chunks(loaded, iter([dict(r) for r in records]), batch_size=16, threads=2))
    assert [len(c) for c in chunks] == [16, 16, 8]
    flat = [r for c in chunks for r in c]
    assert [r["id"] for r in flat] == list(range(40))
    one_by_one = [predict_chunk(loaded, [dict(r) for r in records[s:s + 16]]) for s in (0, 16, 32)]
    assert [r["tags"] for c in one_by_one for r in c] == [r["tags"] for r in flat]
    assert all("ids" not in r and r["gold_tags"] for r in flat)  # internal keys gone, gold kept aside


def test_conll_lines_write_gold_only_when_there_is_gold():
    rec = {"tokens": ["John", "runs"], "tags": ["B-PER", "O"]}
    assert conll_lines(rec) == "John B-PER\nruns O\n\n"
    assert conll_lines(dict(rec, gold_tags=["B-PER", "B-LOC"])) == "John B-PER B-PER\nruns B-LOC O\n\n"


def test_pairs_are_thresholded_at_tau_and_texts_encode_to_unit_vectors(models):
    loaded = LoadedModel(models["siamese"])
    raw = [json.loads(line) for line in (SAMPLE / "pairs.jsonl").read_text().splitlines()][:12]
    pairs = [encode_pair(loaded, r) for r in raw]
    sims = [rec["similarity"] for chunk in pair_chunks(loaded, 0.5, pairs, batch_size=5) for rec in chunk]
    assert len(sims) == 12
    for tau in (min(sims), float(np.median(sims))):
        out = [r for c in pair_chunks(loaded, tau, [encode_pair(loaded, r) for r in raw], 5) for r in c]
        assert [r["is_duplicate"] for r in out] == [s >= tau for s in sims]
        assert [r["gold_is_duplicate"] for r in out] == [r["is_duplicate"] for r in raw]
    texts = [{"text": r["q1"]} for r in raw[:3]] + [{"text": raw[0]["q2"], "id": "x"}]
    v, ids = encode_texts(loaded, [(t, encode_text(loaded, t)) for t in texts], batch_size=2)
    assert v.dtype == np.float32 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert ids == [0, 1, 2, "x"]
    assert float(v[0] @ v[3]) == pytest.approx(sims[0], abs=1e-5)
