"""What every report figure shares: a pyplot-free figure, titles that fit, one style per
series, escaped text, the legend below the panels (drawing only).

matplotlib is imported here, in the figure modules and in :mod:`lrrt_core.plot` only; pyplot never.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lrrt_core.plot import PALETTE

__all__ = ["new_figure", "wrapped", "style_map", "mpl_text", "legend_below", "MIN_WIDTH", "GLYPH"]


def new_figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # pyplot-free: no GUI backend, thread-safe

    return Figure(figsize=figsize, layout="constrained")


#: widths (inches) below which a figure's title and legend would not fit: a one-panel figure
#: is drawn at least this wide.
MIN_WIDTH = 7.0


#: average glyph width as a fraction of the font size (DejaVu Sans; wide enough for its capitals).
GLYPH = 0.6


def wrapped(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (its own
    line breaks kept), so a title is never cut off at the figure's edge."""
    import textwrap

    chars = max(20, int(width_in * 72 / (fontsize * GLYPH)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def style_map(labels: Sequence[str], optimizers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Styles for series ``labels`` whose optimizers are ``optimizers`` (same order)."""
    opt_order = list(dict.fromkeys(optimizers))
    styles, per_opt = {}, {}
    for label, opt in zip(labels, optimizers):
        if label in styles:
            continue
        k = per_opt.get(opt, 0)
        per_opt[opt] = k + 1
        styles[label] = {
            "color": PALETTE[opt_order.index(opt) % len(PALETTE)],
            "linestyle": ("-", "--", "-.", ":")[k % 4],
            "marker": ("o", "s", "D", "^", "v", "P")[k % 6],
        }
    return styles


def mpl_text(text: Any) -> str:
    """Sweep text for matplotlib: escape ``$`` so a name is never parsed as mathtext."""
    return str(text).replace("$", r"\$")


def legend_below(fig, axs) -> None:
    """One legend for the whole figure, below the panels (outside every axes), one entry per
    series; constrained layout makes room for it."""
    handles: dict[str, Any] = {}
    for ax in np.ravel(axs):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncols=min(3, len(handles)), fontsize=8, frameon=False)
