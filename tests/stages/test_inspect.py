"""seqtool inspect (stages/inspect.py, data/datastats.py) and eval's warning about gold tags a model never saw."""
import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.data.datastats import DataStats, oov, unseen
from seqtool.data.vocab import Vocab, build_vocab, prepare

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def write(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


TRAIN = [{"tokens": ["Ann", "saw", "Bo"], "tags": ["B-PER", "O", "B-PER"]},
         {"tokens": ["Bo", "left", "New", "York"], "tags": ["B-PER", "O", "B-LOC", "I-LOC"]},
         {"tokens": ["ok"], "tags": ["O"]}]
DEV = [{"tokens": ["Ann", "visited", "Acme"], "tags": ["B-PER", "O", "B-ORG"]}]


def test_counts_lengths_tags_and_entities():
    stats = DataStats()
    for r in TRAIN:
        stats.add(prepare(r))
    d = stats.to_dict()
    assert (d["records"], d["sequences"], d["tokens"], d["distinct_words"]) == (3, 3, 8, 7)
    assert d["length"] == {"min": 1, "p50": 3, "p90": 4, "p95": 4, "p99": 4, "max": 4, "mean": 2.67}
    assert d["tags"] == {"O": 3, "B-PER": 3, "B-LOC": 1, "I-LOC": 1}
    assert d["entities"] == {"PER": 3, "LOC": 1}
    assert "labels" not in d


def test_percentiles_are_nearest_rank_over_the_histogram():
    stats = DataStats()
    for n in range(1, 101):                                   # lengths 1..100, once each
        stats.add({"tokens": ["w"] * n})
    length = stats.length_summary()
    assert (length["p50"], length["p90"], length["p99"], length["max"]) == (50, 90, 99, 100)


def test_pairs_and_labels_are_counted():
    stats = DataStats()
    stats.add(prepare({"q1": "a b", "q2": "c", "is_duplicate": 1}))
    stats.add(prepare({"text": "x y z", "label": "neg"}))
    d = stats.to_dict()
    assert (d["records"], d["sequences"], d["tokens"]) == (2, 3, 6)
    assert d["is_duplicate"] == {"1": 1} and d["labels"] == {"neg": 1}


def test_oov_against_a_vocabulary_lowercases_as_it_does():
    vocab = build_vocab([prepare(r) for r in TRAIN], lowercase=True)
    words = Counter({"ANN": 2, "visited": 1, "acme": 1})
    assert oov(words, vocab=vocab) == {"tokens": 2, "rate": 0.5, "distinct": 2, "distinct_rate": 0.6667,
                                       "examples": ["acme", "visited"]}
    assert oov(words, known={"ANN"})["tokens"] == 2
    assert oov(Counter(), known=set())["rate"] == 0.0


def test_unseen_names_what_the_known_set_lacks_in_a_stable_order():
    assert unseen(["B-ORG", "O", "B-MISC", "B-ORG"], ["O"]) == ["B-MISC", "B-ORG"]
    assert unseen([2, "x", 1], [1]) == [2, "x"]


def test_inspect_with_dev_reports_oov_and_tags_dev_has_and_train_lacks(tmp_path):
    train, dev = write(tmp_path / "train.jsonl", TRAIN), write(tmp_path / "dev.jsonl", DEV)
    result = run("inspect", train, "--dev", dev)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["data"]["records"] == 3 and out["dev"]["records"] == 1
    assert out["dev"]["oov"] == {"tokens": 2, "rate": 0.6667, "distinct": 2, "distinct_rate": 0.6667,
                                 "examples": ["Acme", "visited"]}
    assert out["dev"]["tags_not_in_data"] == ["B-ORG"]
    assert result.stderr.splitlines()[0] == (f"seqtool inspect: {dev}: 1 tag that {train} never has (a model "
                                             "trained on it cannot predict them): B-ORG")
    assert f"out of vocabulary (against {train}): 66.7% of the tokens, 2 distinct words" in result.stderr
    assert "  length in tokens: min 1, p50 3, p90 4, p95 4, p99 4, max 4, mean 2.67" in result.stderr


def test_inspect_against_a_model_uses_its_vocabulary(tiny_models):
    result = run("inspect", "-m", tiny_models["clf"], SAMPLE / "tweets.jsonl", "--dev", SAMPLE / "ner_dev.jsonl")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    vocab = Vocab.from_json(str(Path(tiny_models["clf"]) / "vocab.json"))
    tokens = [t for line in (SAMPLE / "ner_dev.jsonl").open() for t in json.loads(line)["tokens"]]
    unknown = sum(i == 1 for i in vocab.word_ids(tokens))
    assert out["dev"]["oov"]["tokens"] == unknown > 0
    assert out["data"]["oov"]["tokens"] == 0                 # it was trained on these
    assert out["reference"] == tiny_models["clf"]
    assert out["dev"]["tags_not_in_reference"] == sorted(out["dev"]["tags"])     # a classifier has no tags
    assert "not in " + tiny_models["clf"] in result.stderr


def test_inspect_vocab_and_model_together_is_a_usage_error(tiny_models):
    result = run("inspect", "-m", tiny_models["ner"], "--vocab", "v.json", SAMPLE / "ner.jsonl")
    assert result.exit_code == 2
    assert result.stderr == "seqtool inspect: give --model or --vocab (the vocabulary to measure against), not both\n"


def test_inspect_reads_conll_and_stdin():
    conll = run("inspect", SAMPLE / "ner.conll", "-q")
    piped = run("inspect", "-q", input=(SAMPLE / "ner.jsonl").read_bytes())
    assert json.loads(conll.stdout)["data"]["tokens"] > 0
    assert json.loads(piped.stdout)["data"]["records"] == 400


def test_eval_warns_once_naming_gold_tags_the_model_never_saw(tiny_models, tmp_path):
    renamed = [json.loads(line) for line in (SAMPLE / "ner_dev.jsonl").open()]
    for r in renamed:
        r["tags"] = [t.replace("-PER", "-PROD") for t in r["tags"]]
    result = run("eval", "-m", tiny_models["ner"], write(tmp_path / "dev.jsonl", renamed), "-q")
    assert result.exit_code == 0
    assert result.stderr == ("seqtool eval: 2 gold tags the model never saw in training (scored as errors, it "
                             "cannot predict them): B-PROD, I-PROD\n")
    clean = run("eval", "-m", tiny_models["ner"], SAMPLE / "ner_dev.jsonl", "-q")
    assert clean.stderr == ""


def test_eval_warns_about_an_unseen_label(tiny_models, tmp_path):
    data = write(tmp_path / "t.jsonl", [{"text": "meh", "label": "neutral"}, {"text": "yay", "label": "positive"}])
    result = run("eval", "-m", tiny_models["clf"], data, "-q")
    assert result.stderr == ("seqtool eval: 1 gold label the model never saw in training (scored as errors, it "
                             "cannot predict them): neutral\n")
