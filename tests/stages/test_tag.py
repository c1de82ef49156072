"""The tag stage: --output-format inline (entities in brackets, for reading), --text (repeatable), and the
stream itself (worker threads, input order, extra keys, the records before a bad one)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from training_data import context_tagging, negation, train, write_jsonl

from seqtool.cli import cli
from seqtool.data.tagged import inline_line
from seqtool.stages.tag import run_tag

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def entity(typ, start, end, **chars):
    return {"type": typ, "start": start, "end": end, **chars}


def test_inline_brackets_the_entities_of_tokens():
    rec = {"tokens": ["John", "lives", "in", "New", "York", "."],
           "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"],
           "entities": [entity("PER", 0, 1), entity("LOC", 3, 5)]}
    assert inline_line(rec) == "[John]PER lives in [New York]LOC .\n"


def test_inline_keeps_the_original_text_when_there_is_one():
    text = "John  lives in Paris, France."
    rec = {"text": text, "tokens": ["John", "lives", "in", "Paris", ",", "France", "."],
           "tags": ["B-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"],
           "entities": [entity("PER", 0, 1, start_char=0, end_char=4), entity("LOC", 3, 4, start_char=15,
                                                                                end_char=20),
                        entity("LOC", 5, 6, start_char=22, end_char=28)]}
    assert inline_line(rec) == "[John]PER  lives in [Paris]LOC, [France]LOC.\n"


def test_inline_with_no_entity_is_the_sentence_and_an_entity_at_the_end_closes():
    assert inline_line({"tokens": ["a", "b"], "tags": ["O", "O"], "entities": []}) == "a b\n"
    assert inline_line({"tokens": ["a", "Bo"], "tags": ["O", "B-PER"],
                        "entities": [entity("PER", 1, 2)]}) == "a [Bo]PER\n"


def test_inline_is_one_line_per_record_even_for_a_text_with_a_newline():
    rec = {"text": "a\nb", "tokens": ["a", "b"], "tags": ["O", "O"], "entities": []}
    assert inline_line(rec) == "a b\n"


def test_inline_for_a_classifier_is_label_tab_text():
    assert inline_line({"text": "so  happy :)", "tokens": ["so", "happy", ":)"], "label": "positive",
                        "probs": {}}) == "positive\tso happy :)\n"


@pytest.mark.parametrize("model, data", [("ner", "ner_dev.jsonl"), ("clf", "tweets.jsonl")])
def test_tag_inline_writes_what_the_jsonl_output_holds(tiny_models, model, data):
    as_json = run("tag", "-m", tiny_models[model], SAMPLE / data)
    inline = run("tag", "-m", tiny_models[model], SAMPLE / data, "--output-format", "inline")
    assert inline.exit_code == 0, inline.stderr
    expected = "".join(inline_line(json.loads(line)) for line in as_json.stdout.splitlines())
    assert inline.stdout == expected
    assert len(inline.stdout.splitlines()) == len(as_json.stdout.splitlines())


def test_tag_text_tags_each_text_as_a_record(tiny_models):
    texts = ["Aldana met Dorran Penhallow in Lowen Cross .", "Vantor said so ."]
    result = run("tag", "-m", tiny_models["ner"], "--text", texts[0], "--text", texts[1])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    piped = run("tag", "-m", tiny_models["ner"], input="".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert records == [json.loads(line) for line in piped.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    assert result.stderr == "seqtool tag: 2 records, 12 tokens tagged\n"


def test_tag_text_with_inline_output(tiny_models):
    result = run("tag", "-m", tiny_models["clf"], "--text", "so happy :)", "--output-format", "inline")
    assert result.exit_code == 0
    label = json.loads(run("tag", "-m", tiny_models["clf"], "--text", "so happy :)").stdout)["label"]
    assert result.stdout == f"{label}\tso happy :)\n"


def test_tag_text_and_an_input_file_is_a_usage_error(tiny_models):
    result = run("tag", "-m", tiny_models["ner"], "--text", "a", SAMPLE / "ner_dev.jsonl")
    assert result.exit_code == 2
    assert result.stderr == f"seqtool tag: give INPUT ({SAMPLE / 'ner_dev.jsonl'}) or --text, not both\n"


def test_a_blank_text_gives_an_empty_record_in_its_place(tiny_models):
    result = run("tag", "-m", tiny_models["ner"], "--text", "fine", "--text", "   ", "--text", "Ann met Bo")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["fine", "   ", "Ann met Bo"]
    assert (rows[1]["tokens"], rows[1]["tags"], rows[1]["entities"]) == ([], [], [])
    assert len(rows[2]["tags"]) == 3


def test_inline_and_text_go_without_dask(tiny_models, tmp_path):
    result = run("tag", "-m", tiny_models["ner"], "--dask", "local:1", "--text", "a")
    assert result.exit_code == 2
    assert "--text goes without --dask" in result.stderr


# ---------------------------------------------------------------- streaming, threads, order, errors

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
