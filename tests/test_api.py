"""The public Python API (seqtool/api.py): the README's example runs, and every call gives the CLI's bits."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import seqtool
from seqtool.cli import cli
from seqtool.errors import DataError, UsageError
from seqtool.model import modelio

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
TINY = dict(epochs=2, hidden=16, embed=8, progress=False, threads=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("api-models")
    seqtool.train(str(SAMPLE / "ner.jsonl"), output=str(d / "ner"), task="tagger",       # finds entities
                  dev=str(SAMPLE / "ner_dev.jsonl"), **dict(TINY, epochs=8, lr=0.02, dropout=0.2))
    seqtool.train(str(SAMPLE / "tweets.jsonl"), output=str(d / "clf"), task="classifier", **TINY)
    seqtool.train(str(SAMPLE / "pairs.jsonl"), output=str(d / "siamese"), task="siamese",
                  dev=str(SAMPLE / "pairs.jsonl"), **TINY)
    return {k: str(d / k) for k in ("ner", "clf", "siamese")}


def cli_lines(*args, input: bytes | None = None) -> list[str]:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)], input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


def as_lines(records: list[dict]) -> list[str]:
    from seqtool.data.jsonl import dumps

    return [dumps(r) for r in records]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_readme_example_runs(tmp_path):
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- api-example -->")
    code = readme[start:].split("```python\n", 1)[1].split("```", 1)[0]
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    assert printed and all(line.startswith("[") for line in printed[:2])      # tags, then entities
    assert (tmp_path / "models" / "ner" / "weights.npz").is_file()


@pytest.mark.parametrize("n", [5, 300])          # one chunk in numpy, and the kernels' stream
def test_tag_gives_the_cli_bits(models, tmp_path, n):
    records = (read_jsonl(SAMPLE / "ner.jsonl") * 2)[:n]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    model = seqtool.load(models["ner"], threads=1)
    assert as_lines(model.tag(records)) == cli_lines("--threads", 1, "tag", "-m", models["ner"], src)
    assert records == (read_jsonl(SAMPLE / "ner.jsonl") * 2)[:n]              # the caller's records untouched


def test_tag_takes_texts_and_token_lists_and_gives_character_offsets(models):
    model = seqtool.load(models["ner"])
    text = "  Aldana and Dorran  Penhallow met in Lowen Cross ."
    by_text, by_tokens = model.tag([text, text.split()])
    assert by_text["tags"] == by_tokens["tags"] and by_text["entities"]
    for entity in by_text["entities"]:
        piece = text[entity["start_char"]:entity["end_char"]]
        assert piece.split() == by_text["tokens"][entity["start"]:entity["end"]]
    assert all("start_char" not in e for e in by_tokens["entities"])         # no text to point into
    cli = json.loads(cli_lines("tag", "-m", models["ner"], input=json.dumps({"text": text}).encode())[0])
    assert cli == by_text


def test_classify_gives_the_cli_bits(models, tmp_path):
    records = read_jsonl(SAMPLE / "tweets.jsonl")[:20]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = seqtool.load(models["clf"]).classify(records)
    assert as_lines(out) == cli_lines("tag", "-m", models["clf"], src)
    assert set(out[0]["probs"]) == {str(r["label"]) for r in read_jsonl(SAMPLE / "tweets.jsonl")}
    assert abs(sum(out[0]["probs"].values()) - 1) < 1e-3


def test_siamese_similarity_encode_and_is_duplicate_agree_with_dedupe(models, tmp_path):
    pairs = read_jsonl(SAMPLE / "pairs.jsonl")[:30]
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in pairs))
    deduped = [json.loads(line) for line in cli_lines("dedupe", "-m", models["siamese"], src)]
    model = seqtool.load(models["siamese"])
    sims = model.similarity([p["q1"] for p in pairs], [p["q2"] for p in pairs])
    assert sims == [d["similarity"] for d in deduped]
    assert model.similarity(pairs[0]["q1"], pairs[0]["q2"]) == deduped[0]["similarity"]
    assert model.is_duplicate(pairs[0]["q1"], pairs[0]["q2"]) == deduped[0]["is_duplicate"]
    v = model.encode([pairs[0]["q1"], pairs[0]["q2"]])
    assert v.shape[0] == 2 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(deduped[0]["similarity"], abs=1e-5)


def test_group_gives_the_cli_records(models, tmp_path):
    pairs = read_jsonl(SAMPLE / "pairs.jsonl")[:40]
    texts = [{"id": f"q{i}{side}", "text": p["q" + side]} for i, p in enumerate(pairs) for side in "12"]
    texts[3] = {"text": texts[3]["text"], "extra": 1}                      # no id: its number stands in
    src = tmp_path / "texts.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in texts))
    model = seqtool.load(models["siamese"])
    for tau in (model.threshold, 0.9):
        expected = cli_lines("dedupe", "-m", models["siamese"], "--group", "--threshold", tau, src)
        grouped = model.group(texts, threshold=tau)
        assert as_lines(grouped) == expected
        assert grouped[3]["extra"] == 1 and "group" not in texts[3]          # the caller's dicts are untouched
        members = [r for r in grouped if r["duplicate_of"] is not None]
        assert members and len({r["group"] for r in grouped}) > 1           # the test means something
        assert all(r["score"] >= tau for r in members)
    plain = model.group([t["text"] for t in texts])                         # plain texts, the model's tau
    assert [(r["group"], r["score"]) for r in plain] == [(r["group"], r["score"]) for r in model.group(texts)]
    assert all(isinstance(r["duplicate_of"], int) for r in plain if r["duplicate_of"] is not None)


def test_neighbours_give_the_cli_records(models, tmp_path):
    texts = [{"id": i, "text": p[side]} for i, p in enumerate(read_jsonl(SAMPLE / "pairs.jsonl")[:25])
             for side in ("q1", "q2")]
    src = tmp_path / "texts.jsonl"
    src.write_text("".join(json.dumps(t) + "\n" for t in texts))
    model = seqtool.load(models["siamese"])
    found = model.neighbours(texts, k=3)
    assert as_lines(found) == cli_lines("dedupe", "-m", models["siamese"], "--top-k", 3, src)
    assert all(len(r["neighbours"]) == 3 for r in found)
    sims = [n["similarity"] for n in found[0]["neighbours"]]
    assert sims == sorted(sims, reverse=True) and all(n["index"] != 0 for n in found[0]["neighbours"])
    assert model.neighbours(["alone"], k=5) == [{"text": "alone", "neighbours": []}]
    with pytest.raises(UsageError, match="k >= 1"):
        model.neighbours(["a", "b"], k=0)


def test_train_gives_the_cli_weights(tmp_path):
    opts = ["--epochs", "2", "--hidden", "16", "--embed", "8"]
    result = CliRunner().invoke(cli, ["-q", "--threads", "1", "train", "--task", "tagger", "--train",
                                      str(SAMPLE / "ner.jsonl"), "-o", str(tmp_path / "cli"), *opts])
    assert result.exit_code == 0, result.stderr
    summary = seqtool.train(str(SAMPLE / "ner.jsonl"), output=str(tmp_path / "api"), task="tagger", epochs=2,
                            hidden=16, embed=8, threads=1)
    assert summary["model"] == str(tmp_path / "api") and summary["epochs"] == 2
    a, b = modelio.load_model(tmp_path / "cli")[1], modelio.load_model(tmp_path / "api")[1]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_wrong_task_and_bad_items_are_clear_errors(models):
    with pytest.raises(UsageError, match="is a tagger model: classify"):
        seqtool.load(models["ner"]).classify(["hello"])
    with pytest.raises(UsageError, match="similarity\\(\\) is for siamese"):
        seqtool.load(models["ner"]).similarity("a", "b")
    with pytest.raises(UsageError, match="group\\(\\) is for siamese"):
        seqtool.load(models["ner"]).group(["a", "b"])
    # one text where a list belongs would be read as its characters
    with pytest.raises(UsageError, match="tag\\(\\) takes a list of items, not one str"):
        seqtool.load(models["ner"]).tag("John lives in Paris")
    with pytest.raises(UsageError, match="classify\\(\\) takes a list of items, not one str"):
        seqtool.load(models["clf"]).classify("not happy")
    with pytest.raises(UsageError, match="group\\(\\) takes a list of items, not one dict"):
        seqtool.load(models["siamese"]).group({"text": "a question"})
    with pytest.raises(UsageError, match="encode\\(\\) takes a list of items, not one str"):
        seqtool.load(models["siamese"]).encode("a question")
    with pytest.raises(DataError, match="item 1: expected a text"):
        seqtool.load(models["ner"]).tag(["fine", 42])
    with pytest.raises(DataError, match="item 0: "):
        seqtool.load(models["ner"]).tag([{"tokens": ["a", 3]}])
    blank = seqtool.load(models["ner"]).tag([{"tokens": []}, "  "])       # blank items, as tag's blank lines
    assert [(r["tags"], r["entities"]) for r in blank] == [([], []), ([], [])]
    with pytest.raises(AttributeError):
        seqtool.no_such_thing  # noqa: B018
