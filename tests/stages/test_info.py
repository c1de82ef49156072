"""seqtool info: a model directory described, for people and (--json) for scripts."""
import json
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from seqtool import __version__
from seqtool.cli import cli
from seqtool.model import modelio


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, sample_data):
    out = tmp_path_factory.mktemp("info") / "ner"
    result = run("-q", "train", sample_data / "ner.jsonl", "--dev", sample_data / "ner_dev.jsonl", "-o", out,
                 "--epochs", 2, "--hidden", 4, "--embed", 4, "--char-dim", 2, "--char-filters", 3, "--seed", 3)
    assert result.exit_code == 0, result.output
    return out


def test_info_json_describes_the_model(tagger, sample_data):
    result = run("info", "--json", tagger)
    assert result.exit_code == 0 and result.stderr == ""
    info = json.loads(result.stdout)
    config, weights, vocab, metrics = modelio.load_model(tagger)
    assert info["task"] == "tagger"
    assert info["architecture"] == "WordFeatures_15 > Dropout_0.5 > BiLSTM_4x1 > Dropout_0.5 > Dense_9 > CRF_9"
    assert info["parameters"]["total"] == sum(w.size for w in weights.values())
    assert sum(n for _, n in info["parameters"]["by_layer"]) == info["parameters"]["total"]
    assert info["tags"] == [t for t, _ in vocab["tags"]] and len(info["tags"]) == 9
    assert info["labels"] == []
    assert info["vocabulary"]["words"] == len(vocab["words"]) == config["n_vocab"]
    assert info["options"]["char_filters"] == 3 and info["options"]["seed"] == 3
    assert "margin" not in info["options"] and "pool" not in info["options"]      # not read by a tagger
    assert info["training_data"] == modelio.data_fingerprint([str(sample_data / "ner.jsonl")])
    assert (info["best_epoch"], info["epochs_run"]) == (metrics["best_epoch"], 2)
    assert info["best_dev"] == metrics["best_dev"] and "f1" in info["best_dev"]
    assert info["trained_with"]["seqtool"] == __version__
    assert (info["trained_with"]["numpy"], info["trained_with"]["numba"]) == (version("numpy"), version("numba"))


def test_info_for_people(tagger):
    result = run("info", tagger)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"model         {tagger}", "task          tagger",
                         "architecture  WordFeatures_15 > Dropout_0.5 > BiLSTM_4x1 > Dropout_0.5 > Dense_9 > CRF_9"]
    assert "tags          9: O, B-LOC, B-MISC, B-ORG, B-PER, I-LOC, I-MISC, I-ORG, I-PER" in lines
    assert any(line.startswith("best epoch    ") and "; dev f1 " in line for line in lines)
    assert lines[-1] == (f"trained with  seqtool {__version__}, numpy {version('numpy')}, numba {version('numba')}, "
                         f"python {__import__('platform').python_version()}")


def test_info_of_a_siamese_model_names_its_threshold(tmp_path, sample_data):
    out = tmp_path / "q"
    assert run("-q", "train", sample_data / "pairs.jsonl", "-o", out, "--epochs", 1, "--hidden", 4,
               "--embed", 4).exit_code == 0
    info = json.loads(run("info", "--json", out).stdout)
    assert info["threshold_from"] == "training pairs" and info["threshold"] == modelio.load_model(out)[0]["threshold"]
    assert f"threshold     {info['threshold']:.4f} (chosen on training pairs)" in run("info", out).stdout


def test_info_of_a_missing_model_is_one_line(tmp_path):
    result = run("info", tmp_path / "nothing")
    assert result.exit_code == 1
    assert result.stderr == f"seqtool info: {tmp_path / 'nothing'}: no such model directory\n"
