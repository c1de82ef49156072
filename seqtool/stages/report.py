"""The ``report`` stage: a model's training and results, or a pipeline's runs, as one HTML page.

``run_report(model=DIR, evals=[FILE, ...])``: training (metrics.json), one
results section per eval file and the model's facts. Each eval file is
predicted once (the tag stage, or dedupe for a Siamese model) into a temporary
file, which the eval stage then scores with ``--pred`` (the numbers of
``seqtool eval -m``) and the report reads for its details.
``run_report(runs=LOG)``: a pipeline's run log. The page is written atomically;
``png`` also writes every chart as DIR/NAME.png. Drawing needs the ``report``
extra (matplotlib), checked first.
"""
import os
import tempfile

from seqtool.data.jsonl import write_atomic
from seqtool.errors import UsageError
from seqtool.stages.base import Report


class PageReport(Report):
    """A Report that also names the page written (the command prints it on stdout)."""

    def __init__(self, summary: str, warnings: list, path: str):
        super().__init__(summary, warnings)
        self.path = path


def run_report(model: str | None = None, evals=(), *, runs: str | None = None, output: str | None = None,
               png: str | None = None, batch_size: int = 256, threads: int | None = None) -> "PageReport":
    """Write the report page (and with ``png`` the charts as PNG files); the Report names the page."""
    from seqtool.report import charts

    if (model is None) == (runs is None):
        raise UsageError("give -m MODEL for a model's report, or --runs LOG for a pipeline's runs (one of them)")
    if runs is not None and evals:
        raise UsageError("--eval goes with -m MODEL, not with --runs")
    matplotlib = charts.require()
    output = output or ("runs.html" if runs else "report.html")
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):     # before the work, not after it
        raise UsageError("cannot write: no such directory", output)
    made: list = []
    _collect_charts(made)
    try:
        if runs:
            text, warnings = _runs_page(runs)
        else:
            text, warnings = _model_page(model, list(evals), matplotlib.__version__, batch_size, threads), []
        write_atomic(output, text)
        if png:
            _write_pngs(made, png)
    finally:
        _collect_charts(None)
    size = len(text.encode("utf-8"))
    extra = f", {len(made)} PNG files in {png}" if png else ""
    return PageReport(f"wrote {output} ({size / 1024:.0f} KiB, {len(made)} charts{extra})", warnings, output)


def _write_pngs(made: list, folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
        for chart in made:
            chart.png(os.path.join(folder, f"{chart.name}.png"))
    except OSError as e:
        raise UsageError(f"cannot write the PNG files: {e.strerror or e}", folder) from None


def _collect_charts(into: list | None) -> None:
    """Keep every Chart made meanwhile in ``into`` (for --png); None stops collecting."""
    from seqtool.report import charts

    charts.Chart.made = into


def _model_page(model: str, evals: list, matplotlib_version: str, batch_size: int, threads) -> str:
    from seqtool.model import modelio
    from seqtool.report import html
    from seqtool.report.modelinfo import model_section
    from seqtool.report.training import training_section

    for path in evals:
        if not os.path.isfile(path):
            raise UsageError("no such eval file", path)
    config, weights, vocab, metrics = modelio.load_model(model)
    sections = [("training", "Training", training_section(metrics, config))]
    for i, path in enumerate(evals, 1):
        sections.append((f"eval-{i}", f"Results on {os.path.basename(path)}",
                         _eval_section(model, config, path, f"eval{i}", batch_size, threads)))
    sections.append(("model", "The model", model_section(model, config, vocab, weights, matplotlib_version)))
    return html.page(f"seqtool report: {os.path.basename(os.path.normpath(model))}",
                     f"{config.get('task')} model at {model}", sections)


def _eval_section(model: str, config: dict, path: str, key: str, batch_size: int, threads) -> str:
    """The results section of one eval file: predicted once, scored by the eval stage, then drawn."""
    from seqtool.report import html
    from seqtool.report.results import results_section
    from seqtool.stages.eval import run_eval

    task = config["task"]
    with tempfile.NamedTemporaryFile(suffix=".jsonl", prefix="seqtool-report-") as tagged:
        threshold = _predict(model, config, path, tagged, batch_size, threads)
        tagged.flush()
        result, _ = run_eval(tagged.name, pred=True, threshold=threshold, format="jsonl")
        body = results_section(task, result, tagged.name, key)
    return f'<p class="muted">File: <code>{html.esc(path)}</code></p>' + body


def _predict(model: str, config: dict, path: str, out, batch_size: int, threads) -> float | None:
    """Write the model's predictions for ``path`` to ``out``; the Siamese threshold τ the pairs were
    decided at (None for other tasks), which eval must score them at too."""
    if config["task"] == "siamese":
        from seqtool.stages.dedupe import run_dedupe

        if config.get("threshold") is None:
            raise UsageError("the model has no threshold (it was trained without --dev)", model)
        run_dedupe(model, path, out, batch_size=batch_size, threads=threads, progress=False)
        return float(config["threshold"])
    from seqtool.stages.tag import run_tag

    run_tag(model, path, out, batch_size=batch_size, threads=threads, progress=False)
    return None


def _runs_page(path: str) -> tuple[str, list]:
    from seqtool.report import html
    from seqtool.report.runs import read_runs, runs_sections

    runs, bad = read_runs(path)
    page = html.page(f"seqtool runs: {os.path.basename(path)}", f"{len(runs)} runs of the pipeline whose log is "
                     f"{path}", runs_sections(path, runs))
    return page, [f"{bad} lines of {path} are not JSON events: skipped"] if bad else []
