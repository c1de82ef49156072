"""A tagger's mistakes: the kind of each entity error, and sample sentences that show them.

Entities are conlleval's chunks (data/metrics.spans). Each gold entity that no
predicted entity matches exactly (type, start and end) is one error:
**wrong type** when a predicted entity has its exact extent, **wrong boundary**
when a predicted entity overlaps it otherwise, **missed** when none touches it.
A predicted entity that touches no gold entity is **spurious**. (So an error
count is not precision's or recall's: a wrong type costs both of those once.)
"""
import heapq
from collections import Counter

from seqtool.data.metrics import ClassifierScorer, spans
from seqtool.report import charts, html

KINDS = ("missed", "spurious", "wrong type", "wrong boundary")
SAMPLES_WITH_ERRORS = 8
SAMPLES_CORRECT = 2


def span_errors(gold: list, pred: list) -> list[tuple[str, tuple | None, tuple | None]]:
    """(kind, gold span or None, predicted span or None) for every error of one sentence."""
    exact = set(gold) & set(pred)
    out = []
    for g in gold:
        if g in exact:
            continue
        same_extent = [p for p in pred if p[1:] == g[1:]]
        overlapping = [p for p in pred if p[1] < g[2] and g[1] < p[2]]
        if same_extent:
            out.append(("wrong type", g, same_extent[0]))
        elif overlapping:
            out.append(("wrong boundary", g, overlapping[0]))
        else:
            out.append(("missed", g, None))
    for p in pred:
        if p not in exact and not any(p[1] < g[2] and g[1] < p[2] for g in gold):
            out.append(("spurious", None, p))
    return out


class TaggerDetails:
    """Streamed over a tagged file: token confusion, error kinds, and the sentences to show."""

    def __init__(self):
        self.tokens = ClassifierScorer()      # tag-level confusion, as the classifier report counts it
        self.kinds = Counter({k: 0 for k in KINDS})
        self._worst: list = []                # heap of (errors, -index, sentence): the most errors win
        self._correct: list = []
        self._n = 0

    def add(self, tokens: list, gold_tags: list, pred_tags: list) -> None:
        self.tokens.add(gold_tags, pred_tags)
        gold, pred = spans(gold_tags), spans(pred_tags)
        errors = span_errors(gold, pred)
        self.kinds.update(kind for kind, _, _ in errors)
        item = (len(errors), -self._n, (tokens, gold, pred, errors))
        self._n += 1
        if errors:
            (heapq.heappush if len(self._worst) < SAMPLES_WITH_ERRORS else heapq.heappushpop)(self._worst, item)
        elif gold and len(self._correct) < SAMPLES_CORRECT:
            self._correct.append(item[2])

    def samples(self) -> list:
        """Sentences with errors (most first, then in input order), then a few without."""
        return [s for _, _, s in sorted(self._worst, key=lambda t: (-t[0], -t[1]))] + self._correct


def type_colours(types) -> dict:
    return {t: charts.PALETTE[i % len(charts.PALETTE)] for i, t in enumerate(sorted(types))}


def error_kinds_chart(kinds: Counter, key: str) -> "charts.Chart":
    chart = charts.Chart(f"{key}-error-kinds", "Entity errors by kind", {"kinds": list(KINDS),
                                                                  "counts": [kinds[k] for k in KINDS]},
                         size=(5.2, 2.6), margins=(1.25, 0.5, 0.35, 0.2))
    ax = chart.axes()
    ax.barh(range(len(KINDS)), [kinds[k] for k in KINDS], color=charts.PALETTE[:len(KINDS)])
    ax.set_yticks(range(len(KINDS)), KINDS)
    ax.invert_yaxis()
    ax.set_xlabel("entities")
    ax.grid(axis="y", visible=False)
    for i, k in enumerate(KINDS):
        ax.text(kinds[k], i, f" {kinds[k]}", va="center", fontsize=9)
    return chart


def sentences_html(samples: list, colours: dict) -> str:
    """Each sample as two lines, gold and predicted, entities highlighted in their type's colour and the
    entities that are part of an error outlined."""
    legend = '<div class="legend">' + "".join(
        f'<span class="ent" style="--c:{c}">{html.esc(t)}</span>' for t, c in colours.items()) + \
        '<span class="ent err" style="--c:transparent">dashed: part of an error</span></div>'
    out = [legend]
    for tokens, gold, pred, errors in samples:
        wrong_gold = {g for _, g, _ in errors if g}
        wrong_pred = {p for _, _, p in errors if p}
        kinds = Counter(kind for kind, _, _ in errors)
        note = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no errors"
        out.append(f'<div class="sent" data-errors="{len(errors)}">'
                   f'<div><span class="who">gold</span><span>{_marked(tokens, gold, wrong_gold, colours)}</span></div>'
                   f'<div><span class="who">predicted</span><span>{_marked(tokens, pred, wrong_pred, colours)}'
                   f'<span class="errmark">{html.esc(note)}</span></span></div></div>')
    return "".join(out)


def _marked(tokens: list, entities: list, wrong: set, colours: dict) -> str:
    starts = {s: (t, s, e) for t, s, e in entities}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            typ, s, e = starts[i]
            cls = "ent err" if (typ, s, e) in wrong else "ent"
            text = html.esc(" ".join(tokens[s:e]))
            out.append(f'<span class="{cls}" style="--c:{colours.get(typ, charts.PALETTE[7])}">{text}'
                       f"<sub>{html.esc(typ)}</sub></span>")
            i = e
        else:
            out.append(html.esc(tokens[i]))
            i += 1
    return " ".join(out)
