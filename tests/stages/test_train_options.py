"""seqtool train from a new user's side (issue 13): the input, the task, --config, -o, pad's batches,
options a task does not read, the Siamese threshold without --dev, --help's defaults, --max-time."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.model import modelio

REPO = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "1", "--hidden", "4", "--embed", "4"]
TINY_TAGGER = [*TINY, "--char-dim", "2", "--char-filters", "2", "--shape-dim", "2"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def config_of(path) -> dict:
    return modelio.load_model(path)[0]


# ---------------------------------------------------------------- 11: positional input, inferred task

@pytest.mark.parametrize("data, task, why", [
    ("ner.jsonl", "tagger", 'it has "tags"'),
    ("tweets.jsonl", "classifier", 'it has a "label"'),
    ("pairs.jsonl", "siamese", 'it is a pair with "is_duplicate"'),
])
def test_train_takes_a_positional_input_and_infers_the_task(tmp_path, sample_data, data, task, why):
    out = tmp_path / "m"
    tiny = TINY_TAGGER if task == "tagger" else TINY
    result = run("train", sample_data / data, "-o", out, *tiny)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task"] == task
    assert result.stderr.splitlines()[0] == (f"seqtool train: --task {task} (the first record of "
                                             f"{sample_data / data}: {why}; give --task to choose)")
    assert config_of(out)["task"] == task


def test_a_first_record_that_tells_no_task_is_a_usage_error(tmp_path):
    data = tmp_path / "plain.jsonl"
    data.write_text('{"text": "no label here"}\n')
    result = run("train", data, "-o", tmp_path / "m")
    assert (result.exit_code, result.stderr) == (
        2, f"seqtool train: {data}: cannot tell the task from the first record (it has 'text'): give --task "
           "tagger, classifier or siamese\n")


def test_input_and_train_together_are_refused(tmp_path, sample_data):
    result = run("train", sample_data / "ner.jsonl", "--train", sample_data / "ner.jsonl", "-o", tmp_path / "m")
    assert (result.exit_code, result.stderr) == (
        2, "seqtool train: give the training records once: as INPUT or as --train, not both\n")


def test_train_reads_stdin_in_a_real_process_and_infers_the_task(tmp_path, sample_data):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(sample_data / "tweets.jsonl", "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "seqtool", "train", "-o", str(tmp_path / "m"), *TINY],
                              stdin=stdin, capture_output=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().startswith("seqtool train: --task classifier (the first record of <stdin>")
    assert config_of(tmp_path / "m")["task"] == "classifier"


def test_the_python_api_infers_the_task_too(tmp_path, sample_data):
    import seqtool

    summary = seqtool.train(str(sample_data / "tweets.jsonl"), output=str(tmp_path / "m"), epochs=1, embed=4)
    assert summary["task"] == "classifier"


# ---------------------------------------------------------------- 2: --config

def test_config_file_paths_are_honoured_relative_to_the_file(tmp_path, sample_data):
    conf = tmp_path / "conf"
    conf.mkdir()
    (tmp_path / "sentences.data").write_bytes((sample_data / "ner.conll").read_bytes())  # jsonl by its name
    (conf / "train.yaml").write_text(
        "train: ../sentences.data\n"
        "format: conll\n"
        "dev: ../sentences.data\n"
        "output: models/ner\n"            # relative: against the file's directory
        "epochs: 1\nhidden: 4\nembed: 4\nchar-dim: 2\nchar_filters: 2\n")
    result = run("-q", "train", "--config", conf / "train.yaml")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == str(conf / "models" / "ner") and "f1" in summary["dev"]   # dev: was read
    assert config_of(conf / "models" / "ner")["char_dim"] == 2


def test_config_file_vocab_is_used(tmp_path, sample_data):
    vocab = tmp_path / "v.json"
    ids = run("-q", "vocab", "-o", vocab, sample_data / "ner.jsonl").stdout
    (tmp_path / "ids.jsonl").write_text(ids)
    (tmp_path / "c.yaml").write_text("vocab: v.json\ninput: ids.jsonl\noutput: m\n")
    result = run("-q", "train", "--config", tmp_path / "c.yaml", *TINY_TAGGER)
    assert result.exit_code == 0, result.output
    assert modelio.load_model(tmp_path / "m")[2]["words"] == json.loads(vocab.read_text())["words"]


def test_a_config_dev_that_does_not_exist_stops_the_run(tmp_path, sample_data):
    (tmp_path / "c.yaml").write_text(f"dev: missing.jsonl\ntrain: {sample_data / 'ner.jsonl'}\n")
    result = run("train", "--config", tmp_path / "c.yaml", "-o", tmp_path / "m", *TINY_TAGGER)
    assert result.exit_code == 2
    assert result.stderr.endswith(f"seqtool train: {tmp_path / 'missing.jsonl'}: No such file or directory\n")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("text, message", [
    ("epochs: 1\nepoch: 2\n", "2: unknown option 'epoch' for seqtool train (did you mean 'epochs'?)"),
    ("hidden: 4\n\nlr: fast\n", "3: lr: expected a number > 0, got 'fast'"),
    ("config: other.yaml\n", "1: unknown option 'config' for seqtool train"),
    ("", "1: a config file holds option: value pairs"),
    ("epochs: 1\nepochs: 2\n", "2: 'epochs' is given twice (first on line 1)"),
    ("x: !!python/object:os.system ls\n", "1: not valid YAML: could not determine a constructor for the tag "
                                          "'tag:yaml.org,2002:python/object:os.system'"),
])
def test_a_config_key_train_does_not_take_is_refused_with_its_line(tmp_path, sample_data, text, message):
    (tmp_path / "c.yaml").write_text(text)
    result = run("train", sample_data / "ner.jsonl", "--config", tmp_path / "c.yaml", "-o", tmp_path / "m")
    assert (result.exit_code, result.stderr) == (2, f"seqtool train: {tmp_path / 'c.yaml'}:{message}\n")


def test_the_command_line_wins_over_the_config_file(tmp_path, sample_data):
    (tmp_path / "c.yaml").write_text(f"train: {tmp_path / 'missing.jsonl'}\noutput: elsewhere\nhidden: 6\n"
                                     "crf: false\n")
    result = run("-q", "train", sample_data / "ner.jsonl", "--config", tmp_path / "c.yaml", "-o", tmp_path / "m",
                 "--hidden", 4, "--embed", 4, "--epochs", 1, "--char-dim", 2, "--char-filters", 2)
    assert result.exit_code == 0, result.output
    cfg = config_of(tmp_path / "m")
    assert (cfg["hidden"], cfg["crf"]) == (4, False) and not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------- 3: -o checked first

def test_an_output_under_a_file_is_a_usage_error_before_training(tmp_path, sample_data):
    (tmp_path / "README.md").write_text("mine\n")
    out = tmp_path / "README.md" / "model"
    result = run("train", sample_data / "ner.jsonl", "-o", out)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"seqtool train: {out}: cannot create a model directory here: "
                             f"{tmp_path / 'README.md'} is a file, not a directory\n")


def test_an_output_directory_with_other_files_is_refused_before_training(tmp_path, sample_data):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    result = run("train", sample_data / "ner.jsonl", "-o", mine)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"seqtool train: {mine}: holds 'notes.txt', which is not part of a seqtool model; "
                             "refusing to replace it (choose another path, or remove it)\n")
    assert "epoch" not in result.stderr and (mine / "notes.txt").read_text() == "keep me\n"


def test_a_checkpoint_path_that_is_a_file_is_refused_before_training(tmp_path, sample_data):
    (tmp_path / "m.ckpt").write_text("not a checkpoint\n")
    result = run("train", sample_data / "ner.jsonl", "-o", tmp_path / "m")
    assert (result.exit_code, result.stderr) == (
        2, f"seqtool train: {tmp_path / 'm.ckpt'}: exists and is not a checkpoint directory; refusing to replace it\n")


def test_no_output_is_a_usage_error(sample_data):
    result = run("train", sample_data / "ner.jsonl")
    assert (result.exit_code, result.stderr) == (2, "seqtool train: give -o DIR: the model directory to write\n")


# ---------------------------------------------------------------- 12: pad's batches

def test_train_takes_the_batches_pad_made(tmp_path, sample_data):
    from seqtool.stages.train import read_training_data, resolve_options

    vocab = tmp_path / "v.json"
    ids = run("-q", "vocab", "-o", vocab, sample_data / "ner.jsonl").stdout
    padded = run("-q", "pad", "--batch-size", 16, "--bucket", 4, input=ids.encode()).stdout
    (tmp_path / "padded.jsonl").write_text(padded)
    result = run("-q", "train", tmp_path / "padded.jsonl", "--vocab", vocab, "-o", tmp_path / "m", *TINY_TAGGER)
    assert result.exit_code == 0, result.output
    assert config_of(tmp_path / "m")["batch_size"] == 16           # not train's own 32
    cfg = resolve_options("tagger", {})
    data, _, _ = read_training_data(str(tmp_path / "padded.jsonl"), "p", None, str(vocab), cfg, False)
    batches = [json.loads(line)["batch"] for line in padded.splitlines()]
    steps = data.batch_order(32, np.random.default_rng(0))
    assert len(steps) == max(batches) + 1 == 25
    assert sorted(tuple(s.tolist()) for s in steps) == sorted(
        tuple(i for i, b in enumerate(batches) if b == n) for n in range(25))


def test_batch_size_with_padded_input_is_refused(tmp_path, sample_data):
    vocab = tmp_path / "v.json"
    ids = run("-q", "vocab", "-o", vocab, sample_data / "ner.jsonl").stdout
    padded = run("-q", "pad", "--batch-size", 16, input=ids.encode()).stdout
    result = run("train", "--vocab", vocab, "-o", tmp_path / "m", "--task", "tagger", "--batch-size", 8,
                 input=padded.encode())
    assert (result.exit_code, result.stderr) == (
        2, "seqtool train: --batch-size: the input comes in the batches seqtool pad made, and training takes "
           "them as they are: set the batch size on pad (or give train the unpadded records)\n")


# ---------------------------------------------------------------- 13: one rule for options a task never reads

@pytest.mark.parametrize("args, message", [
    (["--margin", "0.3"], "--margin does not apply to --task classifier: it is for siamese"),
    (["--char-dim", "8"], "--char-dim does not apply to --task classifier: it is for tagger"),
    (["--crf"], "--crf does not apply to --task classifier: it is for tagger"),
    (["--no-hard-negatives"], "--hard-negatives does not apply to --task classifier: it is for siamese"),
])
def test_an_option_the_task_does_not_read_is_refused_naming_the_task(tmp_path, sample_data, args, message):
    result = run("-q", "train", sample_data / "tweets.jsonl", "-o", tmp_path / "m", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"seqtool train: {message}\n")
    assert not (tmp_path / "m").exists()


def test_pool_is_refused_for_a_tagger_and_vocabulary_options_with_vocab(tmp_path, sample_data):
    result = run("-q", "train", sample_data / "ner.jsonl", "-o", tmp_path / "m", "--pool", "max")
    assert result.stderr == "seqtool train: --pool does not apply to --task tagger: it is for classifier and siamese\n"
    vocab = tmp_path / "v.json"
    run("-q", "vocab", "-o", vocab, sample_data / "ner.jsonl")
    result = run("train", sample_data / "ner.jsonl", "--vocab", vocab, "-o", tmp_path / "m", "--min-count", 2)
    assert (result.exit_code, result.stderr) == (
        2, "seqtool train: --min-count builds the vocabulary; with --vocab FILE the file's own settings apply\n")


# ---------------------------------------------------------------- 14: Siamese without --dev

def test_a_siamese_model_without_dev_gets_a_threshold_from_the_training_pairs_and_a_warning(tmp_path, sample_data):
    import seqtool

    result = run("-q", "train", sample_data / "pairs.jsonl", "-o", tmp_path / "m", *TINY)
    assert result.exit_code == 0, result.output
    cfg = config_of(tmp_path / "m")
    assert cfg["threshold_from"] == "training pairs" and -1 <= cfg["threshold"] <= 1
    assert json.loads(result.stdout)["threshold"] == cfg["threshold"]
    assert re.fullmatch(r"seqtool train: no --dev: the threshold tau -?\d\.\d{4} was chosen on the training pairs "
                        r"\(accuracy \d\.\d{4} there, optimistic\); give --dev FILE for a fair one\n", result.stderr)
    model = seqtool.load(str(tmp_path / "m"))
    assert isinstance(model.is_duplicate("How do I learn to swim?", "How can I learn to swim?"), bool)


# ---------------------------------------------------------------- 17: --help shows the defaults that run

def _help_defaults(help_text: str) -> dict:
    """{task: shown value} from the bracket at the end of an option's help."""
    from seqtool.model.defaults import TASKS

    bracket = re.search(r"\[([^\[\]]*)\]$", help_text).group(1)
    if not re.match(r"(tagger|classifier|siamese)[ /]", bracket):
        return {task: bracket for task in TASKS}
    out = {}
    for part in bracket.split(", "):
        tasks, value = part.split(" ", 1)
        out.update({task: value for task in tasks.split("/")})
    return out


def _as_help_shows(value, name: str) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "all" if name == "vectors_limit" else "none"      # no limit: every word of the vectors file
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_every_train_option_help_shows_the_default_training_uses():
    from seqtool.model.defaults import ONLY_FOR_TASKS, OPTION_NAMES, TASKS
    from seqtool.stages.train import resolve_options

    params = {p.name: p for p in cli.commands["train"].params}
    assert OPTION_NAMES <= set(params)                  # every option of the tables is on the command line
    for name in sorted(OPTION_NAMES):
        shown = _help_defaults(params[name].help)
        readers = [t for t in TASKS if t in ONLY_FOR_TASKS.get(name, TASKS)]
        assert sorted(shown) == sorted(readers), name
        for task in readers:
            assert shown[task] == _as_help_shows(resolve_options(task, {})[name], name), (name, task)


def test_help_shows_the_per_task_defaults():
    result = run("train", "--help")
    text = " ".join(result.stdout.split())
    assert "Word embedding size. [tagger 100, classifier 64, siamese 128]" in text
    assert "Triplet-loss margin alpha. [siamese 0.25]" in text
    assert "Learning rate. [0.002]" in text


def test_max_time_stops_mid_epoch_as_help_and_the_pipeline_say(tmp_path, sample_data):
    from seqtool.data.dataset import collect
    from seqtool.data.readers import Source
    from seqtool.data.vocab import Counts, prepare
    from seqtool.model.fit import Job, fit
    from seqtool.model.tasks import build_model
    from seqtool.stages.train import resolve_options

    cfg = resolve_options("tagger", dict(hidden=4, embed=4, char=False, shape_dim=0, crf=False, epochs=3,
                                         batch_size=8, max_time=1e-9))
    counts = Counts()
    for r in Source(str(sample_data / "ner.jsonl")).map(prepare):
        counts.add(r)
    vocab = counts.vocab()
    data = collect(Source(str(sample_data / "ner.jsonl")).map(vocab.encode), "tagger")
    steps = []
    job = Job("tagger", build_model(cfg, len(vocab.words), len(vocab.tags), 0), data, cfg,
              progress=lambda rec, step: step and steps.append(step))
    result = fit(job)
    assert (result.stopped, len(result.history), len(steps)) == ("max_time", 1, 1)   # 1 of 50 steps
    assert "mid-epoch" in cli.commands["train"].params[[p.name for p in cli.commands["train"].params].index(
        "max_time")].help
    yaml_line = next(line for line in (REPO / "pipelines" / "ner-conll.yaml").read_text().splitlines()
                     if line.strip().startswith("max_time:"))
    assert "mid-epoch" in yaml_line and "end of the epoch" not in yaml_line


def test_a_pipeline_train_step_is_held_to_the_same_rule_before_it_runs(tmp_path, sample_data):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"steps:\n  train:\n    input: {sample_data / 'tweets.jsonl'}\n    output: m\n"
                        "    task: classifier\n    embed: 4\n    margin: 0.3\n")
    result = run("run", pipeline, "--dry-run")
    assert (result.exit_code, result.stderr) == (
        2, f"seqtool run: {pipeline}:7: step train: --margin does not apply to --task classifier: it is for siamese\n")


def test_a_pipeline_train_step_without_task_infers_it(tmp_path, sample_data):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"steps:\n  train:\n    input: {sample_data / 'tweets.jsonl'}\n    output: m\n"
                        "    embed: 4\n    epochs: 1\n")
    result = run("-q", "run", pipeline)
    assert result.exit_code == 0, result.output
    assert config_of(tmp_path / "m")["task"] == "classifier"


def test_a_tagger_with_vectors_gets_its_own_defaults_and_help_says_so():
    from seqtool.stages.train import resolve_options

    plain, vectors = resolve_options("tagger", {}), resolve_options("tagger", {"embeddings": "v.txt"})
    assert (plain["hidden"], plain["epochs"]) == (128, 20) and (vectors["hidden"], vectors["epochs"]) == (200, 30)
    assert resolve_options("tagger", {"embeddings": "v.txt", "hidden": 64})["hidden"] == 64      # given wins
    assert resolve_options("classifier", {"embeddings": "v.txt"})["hidden"] == 64                # tagger only
    text = " ".join(run("train", "--help").stdout.split())
    assert "Hidden units per direction. (with --embeddings: tagger 200) [tagger/siamese 128, classifier 64]" \
        in text
