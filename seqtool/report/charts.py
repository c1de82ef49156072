"""Charts drawn by matplotlib (the optional ``report`` extra), returned as inline SVG.

Only this module imports matplotlib, and only when a report is made: without the
extra, ``require()`` raises the usage error that names it. Figures are made
with ``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend);
savefig picks the SVG or PNG writer by format. Colours are the Okabe-Ito
palette (distinct under the common colour-vision deficiencies), heatmaps use
cividis (perceptually uniform, readable in grey too). Text stays text
(svg.fonttype none) and the page's CSS recolours black text and lines in dark
mode, so the SVG carries no colours of its own for them.
"""
import io
import itertools
import re

from seqtool.errors import UsageError

# Okabe & Ito, "Color Universal Design" (2008), without its black (which dark mode would hide).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
EXTRA_HINT = "pip install 'seqtool[report]'"
_STYLE = {"svg.fonttype": "none", "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
          "figure.facecolor": "none", "axes.facecolor": "none", "savefig.facecolor": "none",
          "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
          "axes.grid": True, "grid.color": "#b0b0b0", "grid.alpha": 0.35, "grid.linewidth": 0.6}
_SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
_serial = itertools.count()


def require():
    """The matplotlib module, or a UsageError that names the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"the report needs matplotlib, the report extra: {EXTRA_HINT}") from None
    # The report's style for the whole process (legends and labels read rcParams when they are made,
    # not only when drawn); nothing else in seqtool draws.
    matplotlib.rcParams.update(_STYLE)
    return matplotlib


class Chart:
    """One figure: its name (the PNG's file name), a title, the figure, and the numbers it shows (``data``)."""

    made: list | None = None      # while a report is made: every Chart, for --png (stages/report.py)

    def __init__(self, name: str, title: str, data: dict, size=(6.0, 3.4), margins=(0.9, 0.55, 0.2, 0.45),
                 wspace: float = 0.2):
        """``margins``: (left, bottom, right, top) in inches around the axes. Fixed margins, not
        matplotlib's constrained layout: that measures every label again and again (half the time
        of a report)."""
        from cycler import cycler
        from matplotlib.figure import Figure

        self.name, self.title, self.data = name, title, data
        self.style = {**_STYLE, "axes.prop_cycle": cycler(color=PALETTE)}
        (w, h), (left, bottom, right, top) = size, margins
        with require().rc_context(self.style):
            self.figure = Figure(figsize=size)
            self.figure.subplots_adjust(left=left / w, bottom=bottom / h, right=1 - right / w, top=1 - top / h,
                                        wspace=wspace)
        if Chart.made is not None:
            Chart.made.append(self)

    def axes(self, *args, **kwargs):
        with require().rc_context(self.style):
            return self.figure.subplots(*args, **kwargs)

    def svg(self) -> str:
        """The figure as an <svg> element for inlining: no XML prologue or metadata, ids unique in the page."""
        buf = io.StringIO()
        # a salt per figure: matplotlib's ids are hashes, equal across figures with equal contents
        with require().rc_context({**self.style, "svg.hashsalt": f"{self.name}-{next(_serial)}"}):
            self.figure.savefig(buf, format="svg", metadata=_SVG_METADATA)
        return _inline_svg(buf.getvalue())

    def png(self, path: str) -> None:
        with require().rc_context(self.style):
            self.figure.savefig(path, format="png", dpi=150, facecolor="white")


def _inline_svg(text: str) -> str:
    """Drop the prologue and DOCTYPE, and the ids nothing refers to (matplotlib's group names repeat in
    every figure: figure_1, axes_1, ...); the width/height become the page's to choose."""
    text = text[text.index("<svg"):]
    used = set(re.findall(r"#([\w.-]+)\)?\"", text))
    text = re.sub(r' id="([^"]*)"', lambda m: m.group(0) if m.group(1) in used else "", text)
    return re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', text, count=1)


# ---------------------------------------------------------------- the kinds of chart

def lines(chart: Chart, x, series: dict, xlabel: str, ylabel: str, mark_x=None, mark_label: str = "",
          styles: dict | None = None, ax=None) -> None:
    """One line per series over ``x``; ``mark_x`` draws a dashed vertical line (the best epoch)."""
    ax = ax if ax is not None else chart.axes()
    for i, (label, ys) in enumerate(series.items()):
        style = dict(marker="o", markersize=3.5, linewidth=1.6, color=PALETTE[i % len(PALETTE)])
        style.update((styles or {}).get(label, {}))
        ax.plot(x, [float("nan") if y is None else y for y in ys], label=label, **style)
    if mark_x is not None:
        ax.axvline(mark_x, color=PALETTE[5], linestyle="--", linewidth=1.2, label=mark_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(x) and all(float(v).is_integer() for v in x):
        ax.xaxis.get_major_locator().set_params(integer=True)
    compact_ticks(ax)
    if len(series) > 1 or mark_label:
        legend_above(ax)
    return ax


def legend_above(ax) -> None:
    """The legend in one row above the axes, where it hides no data."""
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(fontsize=9, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=min(len(handles), 5),
              borderaxespad=0.2, handlelength=1.8, columnspacing=1.2)


def compact_ticks(ax) -> None:
    """y tick labels short enough for the margin: 12k, 1.5M, 0.0019."""
    from matplotlib.ticker import FuncFormatter

    def short(v, _pos):
        for div, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{v / div:g}{suffix}"
        return f"{v:.3g}"

    ax.yaxis.set_major_formatter(FuncFormatter(short))


def grouped_bars(chart: Chart, groups: list, series: dict, ylabel: str, ylim=(0, 1), xlabel: str = "") -> None:
    """Bars of each series side by side for every group (per-type P/R/F1)."""
    ax = chart.axes()
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=label, color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(range(len(groups)), [str(g) for g in groups], rotation=30 if len(groups) > 8 else 0,
                  ha="right" if len(groups) > 8 else "center")
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="x", visible=False)
    legend_above(ax)


def heatmap(chart: Chart, matrix, labels: list, title: str, fmt, ax, log: bool = False) -> None:
    """A labels x labels matrix (rows gold, columns predicted), each cell's number written in it.
    ``log``: colours on a log scale (counts, where one class, O, would make every other cell dark)."""
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize

    m = np.asarray(matrix, dtype=float)
    top = m.max() if m.size and m.max() > 0 else 1.0
    norm = LogNorm(vmin=1, vmax=max(top, 10)) if log else Normalize(vmin=0, vmax=top)
    ax.imshow(np.where(m > 0, m, np.nan) if log else m, cmap="cividis", norm=norm, aspect="auto",
              interpolation="nearest")
    names = [str(x) for x in labels]
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    ax.grid(False)
    small = len(names) > 10
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, fmt(v), ha="center", va="center", fontsize=7 if small else 8.5,
                    color="#111111" if norm(v) > 0.55 else "#ffffff")


def histograms(chart: Chart, series: dict, bins, threshold: float, xlabel: str) -> None:
    """Overlaid histograms of the series (similarities) with the threshold drawn."""
    ax = chart.axes()
    for i, (label, values) in enumerate(series.items()):
        ax.hist(values, bins=bins, alpha=0.6, label=label, color=PALETTE[i % len(PALETTE)])
    ax.axvline(threshold, color=PALETTE[5], linestyle="--", linewidth=1.4, label=f"threshold τ = {threshold:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    ax.legend(fontsize=9)
