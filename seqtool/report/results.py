"""One results section per ``--eval`` file.

The scores are those of ``seqtool eval`` (stages/report.py scores the model's
predictions with the eval stage itself); this module draws them and reads the
predictions once more, as a stream, for what eval does not report: the token
confusion and error kinds of a tagger, a classifier's most confident mistakes,
the similarities behind a Siamese model's ROC curve and histograms.
"""
import heapq

import numpy as np

from seqtool.data.jsonl import parse_record
from seqtool.data.metrics import pair_metrics
from seqtool.report import charts, html
from seqtool.report.errors import KINDS, TaggerDetails, error_kinds_chart, sentences_html, type_colours

CONFIDENT_MISTAKES = 10
SWEEP_POINTS = 101


def tagged_records(path: str):
    with open(path, "rb") as f:
        for line in f:
            yield parse_record(line)


def results_section(task: str, result: dict, tagged: str, key: str) -> str:
    """``result``: the eval stage's JSON for this file; ``tagged``: the model's predicted records of it;
    ``key``: a name unique in the page (chart names are prefixed with it)."""
    if task == "tagger":
        return _tagger(result, tagged, key)
    if task == "classifier":
        return _classifier(result, tagged, key)
    return _siamese(result, tagged, key)


# ---------------------------------------------------------------- shared parts

def _prf_table(per: dict, overall: dict | None, name: str, first: str) -> str:
    rows = [[html.esc(k), html.num(v["precision"]), html.num(v["recall"]), html.num(v["f1"]), html.num(v["gold"]),
             html.num(v["pred"]), html.num(v["correct"])] for k, v in per.items()]
    if overall is not None:
        rows.append(["<b>all</b>", *(html.num(overall[k]) for k in ("precision", "recall", "f1", "gold", "pred",
                                                                     "correct"))])
    return html.table([first, "precision", "recall", "F1", "gold", "predicted", "correct"], rows,
                      numeric=range(1, 7), name=name)


def _prf_chart(per: dict, key: str, what: str) -> "charts.Chart":
    names = list(per)
    series = {m: [per[n][m] for n in names] for m in ("precision", "recall", "f1")}
    chart = charts.Chart(f"{key}-prf", f"Precision, recall and F1 per {what}", {"names": names, **series},
                         margins=(0.75, 0.9 if len(names) > 8 else 0.55, 0.2, 0.5))
    charts.grouped_bars(chart, names, series, "score")
    return chart


def _confusion_chart(labels: list, counts, key: str, what: str) -> "charts.Chart":
    """Counts and row-normalised shares side by side (rows: gold)."""
    m = np.asarray(counts, dtype=np.int64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    n = len(labels)
    side = min(max(2.2 + 0.3 * n, 3.2), 7.5)
    width, gap = 2 * side + 0.6, 1.3      # inches; the gap holds the right matrix's tick labels
    axis = (width - 1.2 - gap) / 2
    chart = charts.Chart(f"{key}-confusion", f"{what} confusion matrix: counts, and each gold row's shares",
                         {"labels": [str(x) for x in labels], "counts": m.tolist()}, size=(width, side),
                         margins=(1.0, 1.0 if n > 4 else 0.6, 0.2, 0.35), wspace=gap / axis)
    left, right = chart.axes(1, 2)
    charts.heatmap(chart, m, labels, "counts (colour: log scale)", lambda v: f"{int(v)}", left, log=True)
    charts.heatmap(chart, share, labels, "share of the gold row", lambda v: f"{v:.2f}".lstrip("0") or "0", right)
    return chart


# ---------------------------------------------------------------- taggers

def _tagger(result: dict, tagged: str, key: str) -> str:
    details = TaggerDetails()
    for rec in tagged_records(tagged):
        details.add(rec["tokens"], rec["gold_tags"], rec["tags"])
    tokens = details.tokens.result()
    per = result.get("per_type", {})
    summary = html.facts([
        ("sentences", html.num(result.get("records"))),
        ("tokens", f"{html.num(result.get('tokens'))}; token accuracy {html.num(result.get('accuracy'))}"),
        ("entities", f"{html.num(result.get('gold'))} gold, {html.num(result.get('pred'))} predicted, "
                     f"{html.num(result.get('correct'))} correct"),
        ("entity F1", f"<b>{html.num(result.get('f1'))}</b> (precision {html.num(result.get('precision'))}, "
                      f"recall {html.num(result.get('recall'))}; conlleval, as seqtool eval scores it)"),
    ])
    figures = [html.figure(_prf_chart(per, key, "entity type")) if per else "",
               html.figure(error_kinds_chart(details.kinds, key))]
    kinds_table = html.table(["error kind", "entities"], [[k, html.num(details.kinds[k])] for k in KINDS],
                             numeric=(1,), name=f"{key}-error-kinds")
    return (summary + "<h3>Per entity type</h3>" + _prf_table(per, result, f"{key}-per-type", "type")
            + html.charts(*figures) + kinds_table
            + "<h3>Token confusion</h3>"
            + html.charts(html.figure(_confusion_chart(tokens["labels"], tokens["confusion"], key, "Tag"), wide=True))
            + "<h3>Sample sentences</h3><p class=\"muted\">Sentences with the most errors first, then some without."
            + "</p>" + sentences_html(details.samples(), type_colours(per)))


# ---------------------------------------------------------------- classifiers

def _classifier(result: dict, tagged: str, key: str) -> str:
    mistakes: list = []
    for n, rec in enumerate(tagged_records(tagged)):
        if str(rec["label"]) != str(rec["gold_label"]):
            item = (float(rec["probs"][str(rec["label"])]), -n, rec)
            (heapq.heappush if len(mistakes) < CONFIDENT_MISTAKES else heapq.heappushpop)(mistakes, item)
    mistakes = [rec for _, _, rec in sorted(mistakes, key=lambda t: (-t[0], -t[1]))]
    summary = html.facts([("records", html.num(result.get("n"))),
                          ("accuracy", f"<b>{html.num(result.get('accuracy'))}</b>"),
                          ("macro F1", html.num(result.get("macro_f1")))])
    rows = [[html.esc(_text(r)), html.esc(r["gold_label"]), html.esc(r["label"]),
             html.num(float(r["probs"][str(r["label"])]))] for r in mistakes]
    mistakes_html = (html.table(["text", "gold", "predicted", "confidence"], rows, numeric=(3,),
                                name=f"{key}-mistakes") if rows else '<p class="note">No mistakes.</p>')
    return (summary + "<h3>Per class</h3>" + _prf_table(result["per_class"], None, f"{key}-per-class", "class")
            + html.charts(html.figure(_prf_chart(result["per_class"], key, "class")),
                          html.figure(_confusion_chart(result["labels"], result["confusion"], key, "Class"),
                                      wide=True))
            + "<h3>The most confident mistakes</h3>" + mistakes_html)


def _text(rec: dict) -> str:
    return rec.get("text") or " ".join(rec.get("tokens") or [])


# ---------------------------------------------------------------- Siamese pairs

def _siamese(result: dict, tagged: str, key: str) -> str:
    sims, gold = [], []
    for rec in tagged_records(tagged):
        sims.append(rec["similarity"])
        gold.append(int(rec["gold_is_duplicate"]))
    s, y = np.asarray(sims, dtype=np.float64), np.asarray(gold)
    tau = result["threshold"]
    summary = html.facts([
        ("pairs", f"{html.num(result.get('n'))} ({html.num(int(y.sum()))} duplicates)"),
        ("at the threshold τ", f"{html.num(tau)}: accuracy <b>{html.num(result.get('accuracy'))}</b>, "
                               f"precision {html.num(result.get('precision'))}, recall {html.num(result.get('recall'))}"
                               f", F1 {html.num(result.get('f1'))}"),
        ("ROC AUC", html.num(result.get("auc")))])
    return summary + html.charts(html.figure(_roc(s, y, result, key)), html.figure(_histogram(s, y, tau, key)),
                                 html.figure(_sweep(s, y, tau, key), wide=True))


def _cuts(s: np.ndarray, tau: float) -> np.ndarray:
    """Thresholds to draw curves at: quantiles of the similarities, their ends, and τ."""
    qs = np.quantile(s, np.linspace(0, 1, SWEEP_POINTS)) if len(s) else np.zeros(0)
    return np.unique(np.concatenate([qs, [tau, np.nextafter(s.max(), np.inf) if len(s) else tau]]))


def _roc(s, y, result: dict, key: str) -> "charts.Chart":
    points = [pair_metrics(s, y, t) for t in _cuts(s, result["threshold"])[::-1]]
    fpr = [p["fp"] / (p["fp"] + p["tn"]) if p["fp"] + p["tn"] else 0.0 for p in points]
    tpr = [p["recall"] for p in points]
    auc = result.get("auc")
    chart = charts.Chart(f"{key}-roc", "ROC curve", {"fpr": fpr, "tpr": tpr, "auc": auc}, size=(4.6, 3.8))
    ax = chart.axes()
    label = f"AUC {auc:.4f}" if auc is not None else "AUC n/a"
    charts.lines(chart, fpr, {label: tpr}, "false positive rate", "true positive rate (recall)", ax=ax,
                 styles={label: {"marker": None}})
    ax.plot([0, 1], [0, 1], color=charts.PALETTE[7], linestyle=":", linewidth=1, label="chance")
    ax.legend(fontsize=9, loc="lower right")
    return chart


def _histogram(s, y, tau: float, key: str) -> "charts.Chart":
    edges = np.linspace(min(s.min(initial=tau), tau), max(s.max(initial=tau), tau), 31)
    dup, non = s[y == 1], s[y == 0]
    data = {"bins": edges.tolist(), "duplicates": np.histogram(dup, edges)[0].tolist(),
            "non_duplicates": np.histogram(non, edges)[0].tolist(), "threshold": tau}
    chart = charts.Chart(f"{key}-similarity", "Similarity of duplicate and non-duplicate pairs", data,
                         size=(5.6, 3.8))
    charts.histograms(chart, {"duplicates": dup, "non-duplicates": non}, edges, tau, "cosine similarity")
    return chart


def _sweep(s, y, tau: float, key: str) -> "charts.Chart":
    cuts = _cuts(s, tau)
    points = [pair_metrics(s, y, t) for t in cuts]
    series = {"accuracy": [p["accuracy"] for p in points], "f1": [p["f1"] for p in points]}
    chart = charts.Chart(f"{key}-threshold", "Accuracy and F1 against the threshold (pairs at or above it are "
                         "duplicates)", {"threshold": cuts.tolist(), **series, "tau": tau}, size=(9, 3.2))
    ax = charts.lines(chart, cuts, series, "threshold", "score", styles={k: {"marker": None} for k in series})
    ax.axvline(tau, color=charts.PALETTE[5], linestyle="--", linewidth=1.2, label=f"τ = {tau:.3f}")
    ax.legend(fontsize=9)
    return chart
