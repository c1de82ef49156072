"""seqtool report: every section, chart data equal to metrics.json and seqtool eval, no network, the run log.

Small models are trained once per session on the bundled sample data (a few epochs, tiny sizes). The
report's numbers are checked against the data attributes it embeds in each chart.
"""
import csv
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.model import modelio

pytest.importorskip("matplotlib", reason="the report extra is not installed (pip install -e '.[report]')")

from seqtool.report.errors import span_errors  # noqa: E402
from seqtool.stages.eval import run_eval  # noqa: E402
from seqtool.stages.report import run_report  # noqa: E402
from seqtool.stages.train import run_train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
TINY = dict(epochs=3, embed=8, hidden=8, seed=1, threads=1, progress=False)


def split(tmp: Path, name: str, n_dev: int) -> tuple[str, str]:
    lines = (SAMPLE / name).read_text().splitlines(keepends=True)
    train, dev = tmp / f"train-{name}", tmp / f"dev-{name}"
    train.write_text("".join(lines[:-n_dev]))
    dev.write_text("".join(lines[-n_dev:]))
    return str(train), str(dev)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """task -> (model dir, dev file): a tagger, a classifier and a Siamese model, trained small."""
    tmp = tmp_path_factory.mktemp("report-models")
    out = {}
    dev = str(SAMPLE / "ner_dev.jsonl")
    run_train(str(SAMPLE / "ner.jsonl"), output=str(tmp / "tagger"), task="tagger", dev=dev, lr=0.02,
              char_filters=8, char_dim=8, **TINY)
    out["tagger"] = (str(tmp / "tagger"), dev)
    train, dev = split(tmp, "tweets.jsonl", 80)
    run_train(train, output=str(tmp / "classifier"), task="classifier", dev=dev, lr=0.02, **TINY)
    out["classifier"] = (str(tmp / "classifier"), dev)
    train, dev = split(tmp, "pairs.jsonl", 80)
    run_train(train, output=str(tmp / "siamese"), task="siamese", dev=dev, **TINY)
    out["siamese"] = (str(tmp / "siamese"), dev)
    return out


class Page(HTMLParser):
    """The sections, chart data, tables and every attribute value of a report page."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.charts, self.tables, self.attrs = [], {}, [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs += [v for k, v in attrs if v and not k.startswith("xmlns")]
        if tag == "section":
            self.sections.append(a["data-section"])
        if tag == "figure" and "data-chart" in a:
            self.charts[a["data-chart"]] = json.loads(a["data-values"])
        if tag == "table" and "data-table" in a:
            self.tables.append(a["data-table"])


def report(tmp_path, model: str, *evals: str) -> tuple[str, Page]:
    out = tmp_path / "report.html"
    run_report(model, list(evals), output=str(out), threads=1)
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


def close(a, b) -> bool:
    return a == pytest.approx(b, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- the model reports

def test_tagger_report_sections_and_numbers(models, tmp_path):
    model, dev = models["tagger"]
    text, page = report(tmp_path, model, dev, dev)
    assert page.sections == ["training", "eval-1", "eval-2", "model"]
    history = modelio.load_model(model)[3]["history"]
    loss = page.charts["training-loss"]
    assert loss["epoch"] == [h["epoch"] for h in history] == [1, 2, 3]
    assert close(loss["loss"], [h["loss"] for h in history])
    assert close(page.charts["training-dev"]["f1"], [h["dev"]["f1"] for h in history])
    assert close(page.charts["training-lr"]["lr"], [h["lr"] for h in history])
    assert close(page.charts["training-grad-norm"]["max_grad_norm"], [h["max_grad_norm"] for h in history])
    assert page.charts["training-steps"]["clipped_steps"] == [h["clipped_steps"] for h in history]
    assert close(page.charts["training-speed"]["tokens_per_s"], [h["tokens_per_s"] for h in history])
    scores, _ = run_eval(dev, model=model)                      # what seqtool eval -m says
    prf = page.charts["eval1-prf"]
    assert prf["names"] == list(scores["per_type"])
    for metric in ("precision", "recall", "f1"):
        assert close(prf[metric], [scores["per_type"][t][metric] for t in prf["names"]])
    confusion = page.charts["eval1-confusion"]
    assert sum(map(sum, confusion["counts"])) == scores["tokens"]
    assert sum(confusion["counts"][i][i] for i in range(len(confusion["labels"]))) == scores["correct_tags"]
    kinds = dict(zip(page.charts["eval1-error-kinds"]["kinds"], page.charts["eval1-error-kinds"]["counts"]))
    # every gold entity is correct or one error; missed, wrong type and wrong boundary are the gold ones
    assert scores["correct"] + kinds["missed"] + kinds["wrong type"] + kinds["wrong boundary"] == scores["gold"]
    assert page.charts["eval2-prf"] == prf
    assert {"history", "eval1-per-type", "eval1-error-kinds"} <= set(page.tables)
    assert f"{scores['f1']:.4f}" in text and "tagger" in text and "B-PER" in text


def test_classifier_report_matches_eval(models, tmp_path):
    model, dev = models["classifier"]
    text, page = report(tmp_path, model, dev)
    scores, _ = run_eval(dev, model=model)
    confusion = page.charts["eval1-confusion"]
    assert confusion["labels"] == [str(x) for x in scores["labels"]]
    assert confusion["counts"] == scores["confusion"]
    prf = page.charts["eval1-prf"]
    assert close(prf["f1"], [scores["per_class"][c]["f1"] for c in prf["names"]])
    assert close(page.charts["training-dev"]["accuracy"], [h["dev"]["accuracy"] for h in
                                                           modelio.load_model(model)[3]["history"]])
    assert "eval1-per-class" in page.tables
    assert ("eval1-mistakes" in page.tables) == (scores["accuracy"] < 1)
    assert page.sections == ["training", "eval-1", "model"]


def test_siamese_report_matches_eval(models, tmp_path):
    model, dev = models["siamese"]
    _, page = report(tmp_path, model, dev)
    scores, _ = run_eval(dev, model=model)
    tau = modelio.load_model(model)[0]["threshold"]
    roc = page.charts["eval1-roc"]
    assert close(roc["auc"], scores["auc"])
    assert roc["fpr"][0] == roc["tpr"][0] == 0 and roc["fpr"][-1] == roc["tpr"][-1] == 1
    hist = page.charts["eval1-similarity"]
    assert hist["threshold"] == tau == scores["threshold"]
    assert sum(hist["duplicates"]) == scores["tp"] + scores["fn"]
    assert sum(hist["duplicates"]) + sum(hist["non_duplicates"]) == scores["n"] == 80
    sweep = page.charts["eval1-threshold"]
    at_tau = sweep["threshold"].index(tau)
    assert close(sweep["accuracy"][at_tau], scores["accuracy"]) and close(sweep["f1"][at_tau], scores["f1"])


def test_the_page_fetches_nothing(models, tmp_path):
    text, page = report(tmp_path, *models["tagger"])
    urls = re.findall(r"https?://[^\s\"'<>)]*", text)
    declarations = re.findall(r'xmlns(?::\w+)?="(https?://[^"]*)"', text)
    assert urls and sorted(urls) == sorted(declarations)         # only namespace declarations
    assert set(declarations) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "<script" not in text and "@import" not in text and "<link" not in text
    assert not [v for v in page.attrs if re.match(r"\s*(//|https?:|ftp:)", v)]   # no src/href elsewhere


def test_history_tsv_is_metrics_history(models):
    model = models["tagger"][0]
    history = modelio.load_model(model)[3]["history"]
    with open(Path(model) / "history.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["epoch"]) for r in rows] == [h["epoch"] for h in history]
    for row, h in zip(rows, history):
        assert float(row["loss"]) == h["loss"] and float(row["lr"]) == h["lr"] > 0
        assert int(row["clipped_steps"]) == h["clipped_steps"] and float(row["dev_f1"]) == h["dev"]["f1"]


def test_train_counts_clipped_steps_and_decays_the_lr(tmp_path):
    out = str(tmp_path / "m")
    run_train(str(SAMPLE / "ner_dev.jsonl"), output=out, task="tagger", clip_norm=1e-6, lr_decay=0.5, lr=0.01,
              batch_size=50, **{**TINY, "epochs": 2})
    history = modelio.load_model(out)[3]["history"]
    assert [h["clipped_steps"] for h in history] == [2, 2]           # 100 records, 2 steps, each clipped
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.01 / 1.5])
    run_train(str(SAMPLE / "ner_dev.jsonl"), output=out, task="tagger", clip_norm=0, batch_size=50, **TINY)
    assert {h["clipped_steps"] for h in modelio.load_model(out)[3]["history"]} == {0}


def test_png_writes_every_chart(models, tmp_path):
    model, dev = models["classifier"]
    run_report(model, [dev], output=str(tmp_path / "r.html"), png=str(tmp_path / "png"), threads=1)
    page = Page((tmp_path / "r.html").read_text())
    pngs = sorted(p.stem for p in (tmp_path / "png").glob("*.png"))
    assert pngs == sorted(page.charts)
    assert (tmp_path / "png" / "eval1-confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- error kinds

def test_span_errors_name_each_kind():
    gold = [("PER", 0, 2), ("LOC", 3, 4), ("ORG", 5, 7), ("MISC", 8, 9)]
    pred = [("PER", 0, 2), ("ORG", 3, 4), ("ORG", 5, 6), ("LOC", 10, 11)]
    assert span_errors(gold, pred) == [("wrong type", ("LOC", 3, 4), ("ORG", 3, 4)),
                                       ("wrong boundary", ("ORG", 5, 7), ("ORG", 5, 6)),
                                       ("missed", ("MISC", 8, 9), None), ("spurious", None, ("LOC", 10, 11))]
    assert span_errors(gold, gold) == []


# ---------------------------------------------------------------- the run log

def write_log(path: Path) -> None:
    """Four runs as seqtool run logs them: promoted, kept, failed in train, and one killed mid-run."""
    from seqtool.pipeline.state import RunLog

    log = RunLog(str(path))
    for new, current, status in [(0.70, None, "promoted"), (0.69, 0.70, "kept"), (None, None, "failed"),
                                 (0.74, 0.70, "promoted"), (None, None, "killed")]:
        log("run", status="started", pipeline="retrain.yaml", steps=["train", "promote"])
        if status == "failed":
            log("step", step="train", stage="train", status="failed", seconds=1.5, exit=1,
                error="train.jsonl:3: not valid JSON")
            log("run", status="failed", step="train", exit=1, seconds=1.6)
            continue
        log("step", step="train", stage="train", status="ok", seconds=12.0, metrics={"dev": {"f1": new}})
        if status == "killed":
            continue
        log("step", step="promote", stage="promote", status=status, seconds=0.5,
            metrics={"metric": "f1", "new": new, "current": current, "min_delta": 0.002})
        log("run", status="ok", seconds=12.6, ok=2)
    log("run", status="locked", pipeline="retrain.yaml", error="another run holds the lock (pid 7)")


def test_runs_report_marks_promoted_kept_and_failed(tmp_path):
    write_log(tmp_path / "retrain.log.jsonl")
    result = CliRunner().invoke(cli, ["report", "--runs", str(tmp_path / "retrain.log.jsonl"),
                                      "-o", str(tmp_path / "runs.html")])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'runs.html'}\n"
    page = Page((tmp_path / "runs.html").read_text())
    assert page.sections == ["overview", "runs"] and "runs" in page.tables
    metric = page.charts["runs-metric"]
    assert metric["decision"] == ["promoted", "kept", "failed", "promoted", "unfinished", "locked"]
    assert metric["candidate"] == [0.70, 0.69, None, 0.74, None, None]
    assert metric["promoted"] == [0.70, 0.70, 0.70, 0.74, 0.74, 0.74]   # a failed run leaves the promoted model
    assert page.charts["runs-durations"]["steps"] == {"train": [12.0, 12.0, 1.5, 12.0, 12.0, 0.0],
                                                      "promote": [0.5, 0.5, 0.0, 0.5, 0.0, 0.0]}
    text = (tmp_path / "runs.html").read_text()
    assert "train.jsonl:3: not valid JSON" in text and "another run holds the lock" in text


# ---------------------------------------------------------------- the command

def test_without_matplotlib_the_command_names_the_extra(models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    result = CliRunner().invoke(cli, ["report", "-m", models["tagger"][0], "-o", str(tmp_path / "r.html")])
    assert (result.exit_code, result.stderr) == (
        2, "seqtool report: the report needs matplotlib, the report extra: pip install 'seqtool[report]'\n")
    assert not (tmp_path / "r.html").exists()


def test_usage_errors(models, tmp_path):
    runner = CliRunner()
    both = runner.invoke(cli, ["report", "-m", models["tagger"][0], "--runs", "x.jsonl"])
    assert (both.exit_code, both.stderr) == (2, "seqtool report: give -m MODEL for a model's report, or --runs "
                                                "LOG for a pipeline's runs (one of them)\n")
    missing = runner.invoke(cli, ["report", "-m", models["tagger"][0], "--eval", str(tmp_path / "no.jsonl"),
                                  "-o", str(tmp_path / "r.html")])
    assert (missing.exit_code, missing.stderr) == (2, f"seqtool report: {tmp_path / 'no.jsonl'}: no such eval file\n")
    nowhere = runner.invoke(cli, ["report", "-m", models["tagger"][0], "-o", str(tmp_path / "no" / "r.html")])
    assert (nowhere.exit_code, nowhere.stderr) == (
        2, f"seqtool report: {tmp_path / 'no' / 'r.html'}: cannot write: no such directory\n")


def test_no_other_module_imports_matplotlib():
    code = ("import importlib, pkgutil, sys, seqtool\n"
            "for m in pkgutil.walk_packages(seqtool.__path__, 'seqtool.'):\n"
            "    if m.name != 'seqtool.__main__':\n"
            "        importlib.import_module(m.name)\n"
            "print('matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- the pipeline stage

def test_pipeline_report_steps_write_both_pages(tmp_path):
    dev = SAMPLE / "ner_dev.jsonl"
    (tmp_path / "p.yaml").write_text(f"""
state_dir: work
steps:
  train: {{input: {SAMPLE / 'ner.jsonl'}, dev: {dev}, output: work/model, epochs: 1, embed: 4, hidden: 4,
          char-filters: 4}}
  report: {{model: {{from: train}}, eval: [{dev}, {dev}], output: work/report.html, stdout: work/report.path}}
  runs: {{stage: report, runs: work/p.log.jsonl, output: work/runs.html}}
""")
    runner = CliRunner()
    dry = runner.invoke(cli, ["run", str(tmp_path / "p.yaml"), "--dry-run"])
    assert f"report: run (after train): seqtool report --model {tmp_path}/work/model --eval {dev} --eval {dev} " \
           f"--output {tmp_path}/work/report.html" in dry.stdout, dry.output
    for _ in range(2):
        result = runner.invoke(cli, ["-q", "run", str(tmp_path / "p.yaml")])
        assert (result.exit_code, result.stderr) == (0, ""), result.output
    page = Page((tmp_path / "work" / "report.html").read_text())
    assert page.sections == ["training", "eval-1", "eval-2", "model"]
    assert (tmp_path / "work" / "report.path").read_text() == f"{tmp_path}/work/report.html\n"
    log = [json.loads(line) for line in open(tmp_path / "work" / "p.log.jsonl")]
    assert [(e["step"], e["status"]) for e in log if e["event"] == "step" and e["status"] != "started"][3:] == [
        ("train", "skipped"), ("report", "skipped"), ("runs", "ok")]     # the log changed: the runs page is redone
    runs = Page((tmp_path / "work" / "runs.html").read_text())
    assert runs.charts["runs-durations"]["runs"] == ["1", "2"]       # the first run, and this one (unfinished)
    assert runs.charts["runs-durations"]["steps"]["report"][1] == 0.0
