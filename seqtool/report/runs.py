"""A pipeline's history across runs, from its run log (``STATE_DIR/NAME.log.jsonl``, pipeline/state.py).

A run starts at a ``run``/``started`` event and ends at its ``run`` event with
status ok, failed or interrupted; a run that has no end was killed (or is the one
running now). Per run: when, the outcome, each step's status and seconds, the
promote step's decision with the candidate's metric and the promoted model's
metric after the run, and the failure's step and message. A ``locked`` event (a
run that found another one holding the lock) is a run of its own that did nothing.
"""
import json
from dataclasses import dataclass, field

from seqtool.errors import DataError, UsageError
from seqtool.report import charts, html

# what a step's status says about the promoted model, for the decision column
DECISIONS = ("promoted", "kept")
STATUS_MARKERS = {"promoted": ("^", "promoted"), "kept": ("o", "kept"), "failed": ("X", "failed")}


@dataclass
class Run:
    started: str
    pid: int | None
    status: str = "unfinished"            # ok, failed, interrupted, locked, unfinished (killed or running)
    seconds: float | None = None
    steps: dict = field(default_factory=dict)      # name -> the step's last event
    decision: str | None = None           # promoted / kept (the promote step's status)
    metric: str | None = None
    candidate: float | None = None        # the new model's metric
    promoted: float | None = None         # the promoted model's metric after the run
    failure: str = ""


def read_runs(path: str) -> tuple[list[Run], int]:
    """(the runs in the log, the number of lines that were not JSON events: skipped)."""
    runs: list[Run] = []
    bad = 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise UsageError(f"cannot read the run log: {e.strerror}", path) from None
    with f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                bad += bool(line.strip())
                continue
            if isinstance(event, dict):
                _apply(runs, event)
            else:
                bad += 1
    if not runs:
        raise DataError("no runs in this log (expected the run log of seqtool run: NAME.log.jsonl)", path)
    return runs, bad


def _apply(runs: list, event: dict) -> None:
    kind, status = event.get("event"), event.get("status")
    if kind == "run" and status in ("started", "locked"):
        runs.append(Run(str(event.get("time", "")), event.get("pid"),
                        status="locked" if status == "locked" else "unfinished"))
        if status == "locked":
            runs[-1].failure = str(event.get("error", ""))
        return
    if not runs or runs[-1].status != "unfinished":
        return                                   # an event of a run whose start is not in the log
    run = runs[-1]
    if kind == "run":
        run.status, run.seconds = str(status), event.get("seconds")
        if status != "ok" and not run.failure:
            run.failure = f"step {event.get('step')}: {event.get('error', status)}"
    elif kind == "step" and status != "started":
        run.steps[event.get("step")] = event
        if status in ("failed", "interrupted"):
            run.failure = f"step {event.get('step')}: {event.get('error', status)}"
        metrics = event.get("metrics") or {}
        if status in DECISIONS and "new" in metrics:
            run.decision, run.metric, run.candidate = status, metrics.get("metric"), metrics.get("new")
            run.promoted = metrics["new"] if status == "promoted" else metrics.get("current")


def runs_sections(path: str, runs: list[Run]) -> list[tuple[str, str, str]]:
    labels = [f"{i}" for i in range(1, len(runs) + 1)]
    metric = next((r.metric for r in reversed(runs) if r.metric), None)
    figures = [html.figure(_metric_chart(runs, labels, metric), wide=True)] if metric else []
    figures.append(html.figure(_durations_chart(runs, labels), wide=True))
    counts = {s: sum(r.status == s for r in runs) for s in ("ok", "failed", "interrupted", "locked", "unfinished")}
    decided = {d: sum(r.decision == d for r in runs) for d in DECISIONS}
    summary = html.facts([
        ("log", f"<code>{html.esc(path)}</code>"),
        ("runs", f"{len(runs)}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)),
        ("decisions", ", ".join(f"{n} {d}" for d, n in decided.items()) if metric else "no promote step in the log"),
        ("last run", f"{html.esc(runs[-1].started[:19].replace('T', ' '))}: {html.esc(runs[-1].status)}"),
    ])
    note = "" if metric else '<p class="note">No run has a promote step: there is no metric to follow.</p>'
    return [("overview", "Runs", summary + note + html.charts(*figures)),
            ("runs", "Every run", _table(runs, labels, metric))]


def _metric_chart(runs: list, labels: list, metric: str) -> "charts.Chart":
    x = list(range(1, len(runs) + 1))
    series = {"candidate": [r.candidate for r in runs], "promoted model": _carried(r.promoted for r in runs)}
    data = {"runs": labels, "started": [r.started for r in runs], "candidate": series["candidate"],
            "promoted": series["promoted model"], "decision": [r.decision or r.status for r in runs],
            "metric": metric}
    chart = charts.Chart("runs-metric", f"{metric} of each run's candidate and of the promoted model after it",
                         data, size=(9, 3.4), margins=(0.75, 0.55, 0.2, 0.6))
    ax = charts.lines(chart, x, series, "run", metric, styles={"candidate": {"marker": None, "linestyle": ":"},
                                                               "promoted model": {"marker": None}})
    low = min([v for v in series["candidate"] + series["promoted model"] if v is not None], default=0)
    for status, (marker, label) in STATUS_MARKERS.items():
        if status == "failed":       # no metric: drawn on the chart's floor
            pts = [(i, low) for i, r in zip(x, runs) if r.status in ("failed", "interrupted")]
        else:
            pts = [(i, r.candidate) for i, r in zip(x, runs) if r.decision == status and r.candidate is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, s=46, zorder=3, label=label,
                       color=charts.PALETTE[{"promoted": 2, "kept": 1, "failed": 5}[status]])
    ax.set_xlim(0.5, len(runs) + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    charts.legend_above(ax)
    return chart


def _carried(values) -> list:
    """The promoted model's metric after each run: a run that decided nothing (failed, killed, locked)
    leaves the model, and so the metric, of the run before it."""
    out, last = [], None
    for v in values:
        last = v if v is not None else last
        out.append(last)
    return out


def _durations_chart(runs: list, labels: list) -> "charts.Chart":
    names = []
    for r in runs:
        names += [n for n in r.steps if n not in names]
    seconds = {n: [float((r.steps.get(n) or {}).get("seconds") or 0.0) for r in runs] for n in names}
    chart = charts.Chart("runs-durations", "Seconds per step in each run (skipped steps take ~0 s)",
                         {"runs": labels, "steps": seconds}, size=(9, 3.2),
                         margins=(0.75, 0.55, 0.2, 0.6))
    ax = chart.axes()
    bottom = [0.0] * len(runs)
    for i, (name, values) in enumerate(seconds.items()):
        ax.bar(range(1, len(runs) + 1), values, bottom=bottom, label=name, color=charts.PALETTE[i % len(charts.PALETTE)])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("run")
    ax.set_ylabel("seconds")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", visible=False)
    if names:
        ax.legend(fontsize=9, ncols=min(len(names), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return chart


def _table(runs: list, labels: list, metric: str | None) -> str:
    rows = []
    for label, r in zip(labels, runs):
        steps = ", ".join(f"{html.esc(n)} {html.esc(e.get('status'))}"
                          + (f" {float(e['seconds']):.1f}s" if e.get("seconds") is not None else "")
                          for n, e in r.steps.items())
        decision = r.decision or ""
        rows.append([label, html.esc(r.started[:19].replace("T", " ")), f'<span class="status-{html.esc(r.status)}">{html.esc(r.status)}</span>',
                     f'<span class="status-{html.esc(decision)}">{html.esc(decision)}</span>',
                     html.num(r.candidate), html.num(r.promoted), html.num(r.seconds, 1), steps, html.esc(r.failure)])
    m = metric or "metric"
    return html.table(["run", "started", "status", "decision", f"candidate {m}", f"promoted {m}", "seconds",
                       "steps", "failure"], rows, numeric=(0, 4, 5, 6), name="runs")
