"""The page: one HTML document with its CSS inline, charts as inline SVG, nothing fetched.

Every chart is a ``<figure class="chart" data-chart=NAME data-values=JSON>``: the
numbers it draws ride along as JSON, so a test (or a reader with the browser's
inspector) can check a chart against metrics.json and ``seqtool eval``. Light and
dark follow the reader's ``prefers-color-scheme``; the SVGs' black text and lines
take the page's text colour.
"""
import html
import json
import math

CSS = """
:root { --bg: #ffffff; --fg: #1b1b1b; --muted: #5c5c5c; --line: #d6d6d6; --panel: #f5f6f8; --err: #c2410c;
        --ok: #0f766e; color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15171a; --fg: #e6e6e6; --muted: #a3a3a3; --line: #3a3d42; --panel: #1e2125; --err: #f87171;
          --ok: #5eead4; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI",
       Roboto, "DejaVu Sans", sans-serif; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.sub, .muted { color: var(--muted); }
nav { margin: 10px 0 0; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 14px; }
nav a, a { color: inherit; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px 20px; }
figure.chart { margin: 0; padding: 8px; background: var(--panel); border-radius: 8px; }
figure.chart.wide { grid-column: 1 / -1; }
figure.chart svg { width: 100%; max-width: var(--w); height: auto; display: block; margin: 0 auto; }
figure.chart svg text { fill: var(--fg); }
figure.chart svg [style*="stroke: #000000"] { stroke: var(--fg) !important; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: 600; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 14px; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; overflow-wrap: anywhere; }
.tags { display: flex; flex-wrap: wrap; gap: 4px; }
.tags code, code { background: var(--panel); padding: 0 4px; border-radius: 4px; font-size: 13px; }
.sent { margin: 6px 0 12px; padding: 6px 10px; background: var(--panel); border-radius: 6px; line-height: 2.1; }
.sent > div { display: grid; grid-template-columns: 5.5em 1fr; }
.sent > div + div { border-top: 1px dotted var(--line); }
.sent .who { color: var(--muted); font-size: 12px; }
.scroll { overflow-x: auto; }
.ent { background: color-mix(in srgb, var(--c) 28%, transparent); border-bottom: 3px solid var(--c);
       padding: 1px 3px; margin: 0 2px; border-radius: 3px; }
.ent sub { font-size: 10px; font-weight: 600; margin-left: 2px; }
.ent.err { outline: 2px dashed var(--err); outline-offset: 1px; }
.errmark { color: var(--err); font-weight: 600; font-size: 12px; margin-left: 6px; }
.legend { display: flex; flex-wrap: wrap; gap: 10px; font-size: 13px; margin: 4px 0 8px; }
.status-promoted { color: var(--ok); font-weight: 600; } .status-failed, .status-interrupted { color: var(--err); font-weight: 600; }
.note { padding: 6px 10px; border-left: 3px solid var(--line); color: var(--muted); }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value, digits: int = 4) -> str:
    """A number for a table cell: integers as they are, floats rounded; '' for missing or NaN."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return esc(value)


def figure(chart, wide: bool = False) -> str:
    """A chart with its numbers as a data attribute (JSON) and its title as the caption."""
    data = json.dumps(_finite(chart.data), separators=(",", ":"), default=_plain, allow_nan=False)
    cls = "chart wide" if wide else "chart"
    natural = round(chart.figure.get_figwidth() * 96)     # CSS px: drawn no larger than its own size
    return (f'<figure class="{cls}" style="--w:{natural}px" data-chart="{esc(chart.name)}" '
            f'data-values="{esc(data)}">{chart.svg()}'
            f'<figcaption>{esc(chart.title)}</figcaption></figure>')


def charts(*figures: str) -> str:
    return '<div class="charts">' + "".join(figures) + "</div>"


def table(headers: list, rows: list, numeric=(), name: str = "", highlight=None) -> str:
    """A table; ``numeric``: the column indexes to right-align; ``highlight(row_index)`` -> bold row."""
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        cls = ' class="best"' if highlight is not None and highlight(r) else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    attr = f' data-table="{esc(name)}"' if name else ""
    return f"<div class=\"scroll\"><table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def facts(pairs: list) -> str:
    """A definition list of (name, HTML value) pairs."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{esc(ident)}" data-section="{esc(ident)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: (id, title, body HTML) per section, a table of contents on top."""
    nav = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t, _ in sections)
    body = "".join(section(i, t, b) for i, t, b in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"color-scheme\" content=\"light dark\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p><nav>{nav}</nav></header>"
            f"<main>{body}</main></body></html>\n")


def _finite(value):
    """``value`` with NaN and infinities as None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(obj):
    if hasattr(obj, "item"):     # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
