"""The training section: metrics.json's per-epoch history as charts and a table.

Loss, the dev metrics, the gradient norm before clipping (mean and max, with the
clipping bound), clipped and skipped steps, the learning rate and tokens/s, per
epoch; the best epoch (the weights kept) is a dashed line, and how training
stopped (all epochs, early stopping's patience, the time cap) is said on top.
A model trained before a field was recorded simply has no chart for it.
"""
from seqtool.report import charts, html

STOPPED = {"epochs": "ran all its epochs", "patience": "stopped early: the dev score did not improve for "
           "--patience epochs", "max_time": "stopped at --max-time", "interrupted": "was interrupted"}
# dev metrics that are not scores in [0, 1] (the Siamese threshold is a similarity)
NOT_SCORES = ("threshold",)


def training_section(metrics: dict, config: dict) -> str:
    history = metrics.get("history") or []
    if not history:
        return '<p class="note">metrics.json has no per-epoch history (no training epochs recorded).</p>'
    best = metrics.get("best_epoch")
    epochs = [rec.get("epoch") for rec in history]
    figures = [html.figure(c) for c in _charts(history, epochs, best, config)]
    return _summary(metrics, history, best, config) + html.charts(*figures) + _table(history, best)


def column(history: list, key: str) -> list:
    return [rec.get(key) for rec in history]


def dev_keys(history: list) -> list:
    keys = []
    for rec in history:
        for k, v in (rec.get("dev") or {}).items():
            if k not in keys and k not in NOT_SCORES and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.append(k)
    return keys


def _charts(history: list, epochs: list, best, config: dict) -> list:
    best_label = f"best epoch ({best})" if best and best > 0 else ""
    mark = best if best_label else None
    out = []

    def line(name, title, series, ylabel, **kw):
        if not any(v is not None for ys in series.values() for v in ys):
            return                                  # not recorded by the seqtool that trained this model
        chart = charts.Chart(name, title, {"epoch": epochs, **series})
        charts.lines(chart, epochs, series, "epoch", ylabel, mark, best_label, **kw)
        out.append(chart)

    line("training-loss", "Training loss per epoch (mean over the epoch's steps)",
         {"loss": column(history, "loss")}, "loss")
    keys = dev_keys(history)
    if keys:
        line("training-dev", "Dev scores per epoch (the best epoch's weights are kept)",
             {k: [(rec.get("dev") or {}).get(k) for rec in history] for k in keys}, "score")
    clip = config.get("clip_norm")
    line("training-grad-norm", "Gradient norm before clipping" + (f" (clipped to {clip:g})" if clip else ""),
         {"grad_norm": column(history, "grad_norm"), "max_grad_norm": column(history, "max_grad_norm")},
         "global L2 norm", styles={"max_grad_norm": {"linestyle": ":"}})
    if clip and out and out[-1].name == "training-grad-norm":
        out[-1].figure.axes[0].axhline(clip, color=charts.PALETTE[7], linewidth=1, label=f"--clip-norm {clip:g}")
        charts.legend_above(out[-1].figure.axes[0])
    if any(rec.get("clipped_steps") is not None for rec in history):
        chart = charts.Chart("training-steps", "Clipped and skipped (non-finite gradient) steps per epoch",
                             {"epoch": epochs, "clipped_steps": column(history, "clipped_steps"),
                              "skipped_steps": column(history, "skipped_steps")})
        charts.grouped_bars(chart, epochs, {"clipped": [v or 0 for v in column(history, "clipped_steps")],
                                            "skipped": [v or 0 for v in column(history, "skipped_steps")]},
                            "steps", ylim=None, xlabel="epoch")
        ax = chart.figure.axes[0]
        ax.set_ylim(0, max(1, *column(history, "clipped_steps"), *column(history, "skipped_steps")) * 1.1)
        ax.yaxis.get_major_locator().set_params(integer=True)
        out.append(chart)
    line("training-lr", "Learning rate per epoch", {"lr": column(history, "lr")}, "learning rate")
    if out[-1].name == "training-lr":
        out[-1].figure.axes[0].set_ylim(bottom=0)           # a constant or decaying rate, read from zero
    line("training-speed", "Training speed", {"tokens_per_s": column(history, "tokens_per_s")}, "tokens/s")
    return out


def _summary(metrics: dict, history: list, best, config: dict) -> str:
    stopped = metrics.get("stopped", "?")
    how = STOPPED.get(stopped, stopped)
    patience = f" (patience {config['patience']})" if stopped == "patience" and config.get("patience") else ""
    best_dev = metrics.get("best_dev") or {}
    scores = ", ".join(f"{k} {html.num(v)}" for k, v in best_dev.items() if isinstance(v, float))
    return html.facts([
        ("epochs", f"{len(history)} of {config.get('epochs', '?')}: training {html.esc(how)}{html.esc(patience)}"),
        ("best epoch", f"{best}" + (f": {html.esc(scores)}" if scores else "")),
        ("training time", f"{html.num(metrics.get('seconds'), 1)} s"),
    ])


def _table(history: list, best) -> str:
    keys = dev_keys(history)
    cols = ["epoch", "loss", "lr", "tokens_per_s", "grad_norm", "max_grad_norm", "clipped_steps", "skipped_steps",
            "seconds"]
    headers = ["epoch", "loss", "learning rate", "tokens/s", "grad norm", "max grad norm", "clipped", "skipped",
               "seconds", *(f"dev {k}" for k in keys)]
    digits = {"lr": 6, "tokens_per_s": 0, "seconds": 1}
    rows = [[html.num(rec.get(c), digits.get(c, 4)) for c in cols]
            + [html.num((rec.get("dev") or {}).get(k)) for k in keys] for rec in history]
    return "<h3>Per epoch</h3>" + html.table(headers, rows, numeric=range(len(headers)), name="history",
                                             highlight=lambda r: history[r].get("epoch") == best)
