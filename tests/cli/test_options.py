"""Issue 13.8 and 13.9: -q, -v and --threads work after the subcommand too (seqtool/cli/options.py), and -v shows
what a run did on stderr (seqtool/verbose.py) while a run without it stays quiet."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def commands(models: dict, tmp: Path) -> dict:
    """Each command once, on small real data."""
    ids = tmp / "ids.jsonl"
    if not ids.exists():
        ids.write_bytes(run("vocab", "--vocab", Path(models["ner"]) / "vocab.json", SAMPLE / "ner_dev.jsonl",
                            "-q").stdout_bytes)
    pipeline = tmp / "p.yaml"
    pipeline.write_text(f"steps:\n  pad: {{input: {ids}, output: {tmp / 'padded.jsonl'}}}\n")
    return {
        "vocab": ["vocab", "-o", tmp / "v.json", SAMPLE / "ner_dev.jsonl"],
        "pad": ["pad", ids],
        "train": ["train", "--train", SAMPLE / "tweets.jsonl", "--task", "classifier", "-o", tmp / "m",
                  "--epochs", "1", "--embed", "4"],
        "tag": ["tag", "-m", models["ner"], SAMPLE / "ner_dev.jsonl"],
        "eval": ["eval", "-m", models["ner"], SAMPLE / "ner_dev.jsonl"],
        "dedupe": ["dedupe", "-m", models["siamese"], SAMPLE / "pairs.jsonl"],
        "inspect": ["inspect", SAMPLE / "ner.jsonl"],
        "run": ["run", pipeline, "--force"],
    }


def test_every_command_takes_the_group_options():
    """A command added later gets them too (common_options), or this fails."""
    for name, command in cli.commands.items():
        opts = {o for p in command.params for o in p.opts}
        assert {"-q", "--quiet", "-v", "--verbose", "--threads"} <= opts, name


@pytest.mark.parametrize("name", ["vocab", "pad", "train", "tag", "eval", "dedupe", "inspect", "run"])
def test_quiet_after_the_command_is_quiet_before_it(tiny_models, tmp_path, name):
    args = commands(tiny_models, tmp_path)[name]
    loud = run(*args)
    assert loud.exit_code == 0, loud.stderr
    assert loud.stderr != ""
    after = run(*args, "-q")
    before = run("-q", *args)
    assert after.exit_code == before.exit_code == 0, after.stderr
    assert after.stderr == before.stderr == ""
    if name not in ("train", "run"):                     # (train's JSON holds its own timings)
        assert after.stdout == before.stdout == loud.stdout


@pytest.mark.parametrize("name", ["vocab", "pad", "train", "tag", "eval", "dedupe", "inspect", "run"])
def test_threads_and_verbose_after_the_command(tiny_models, tmp_path, name):
    args = commands(tiny_models, tmp_path)[name]
    result = run(*args, "--threads", "1", "-v")
    assert result.exit_code == 0, result.stderr
    assert f"seqtool {name}: threads: --threads 1;" in result.stderr
    assert f"seqtool {name}: total: " in result.stderr
    bad = run(*args, "--threads", "0")
    assert bad.exit_code == 2
    assert "Invalid value for '--threads'" in bad.stderr


def test_the_value_after_the_command_wins_and_counts_add_up(tiny_models):
    args = ["tag", "-m", tiny_models["ner"], SAMPLE / "ner_dev.jsonl"]
    result = run("--threads", "2", "-v", *args, "--threads", "1", "-v")
    assert "seqtool tag: threads: --threads 1;" in result.stderr
    result = run("--threads", "2", *args, "-v")
    assert "seqtool tag: threads: --threads 2;" in result.stderr


def test_without_verbose_nothing_more_is_said(tiny_models):
    result = run("tag", "-m", tiny_models["ner"], SAMPLE / "ner_dev.jsonl")
    assert result.stderr == "seqtool tag: 100 records, 1152 tokens tagged\n"


def test_verbose_tells_the_options_the_model_the_path_and_the_time(tiny_models):
    result = run("tag", "-m", tiny_models["ner"], SAMPLE / "ner_dev.jsonl", "-v", "--batch-size", "64")
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"seqtool tag: options: model={tiny_models['ner']!r}")
    assert "batch_size=64" in lines[0]
    assert any(line.startswith(f"seqtool tag: model {tiny_models['ner']}: a tagger, ") for line in lines)
    assert "seqtool tag: first chunk of 64 records: " in result.stderr       # the kernels' path, timed
    kernels = next(line for line in lines if line.startswith("seqtool tag: kernels: "))
    assert "loaded from the cache" in kernels and "compiled by this run" in kernels
    assert lines[-1].startswith("seqtool tag: total: ")


def test_verbose_says_when_the_kernels_were_not_needed(tiny_models):
    result = run("-v", "tag", "-m", tiny_models["clf"], "--text", "so happy :)")
    assert "predicted in numpy, numba not needed" in result.stderr
    assert "seqtool tag: predict (numpy): " in result.stderr


def test_verbose_is_off_again_after_a_verbose_command(tiny_models):
    run("-v", "tag", "-m", tiny_models["clf"], "--text", "so happy :)")
    assert run("tag", "-m", tiny_models["clf"], "--text", "so happy :)").stderr == \
        "seqtool tag: 1 record, 3 tokens tagged\n"


def test_group_options_are_not_pipeline_step_keys(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"ids": [2]}\n')
    p = tmp_path / "p.yaml"
    p.write_text("steps:\n  pad: {input: in.jsonl, output: out.jsonl, threads: 2}\n")
    result = run("run", p)
    assert result.exit_code == 2
    assert "unknown option 'threads' for seqtool pad" in result.stderr


def test_a_summary_json_still_goes_to_stdout_with_verbose(tiny_models, tmp_path):
    result = run("eval", "-m", tiny_models["ner"], SAMPLE / "ner_dev.jsonl", "-v")
    assert json.loads(result.stdout)["records"] == 100
