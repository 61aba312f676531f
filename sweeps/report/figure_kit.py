"""What every report figure shares: a pyplot-free figure, titles that fit, one style per
series, escaped text, the legend below the panels (drawing only).

matplotlib is imported here, in the figure modules and in :mod:`lrrt_core.plot` only; pyplot never.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lrrt_core.plot import PALETTE

__all__ = ["new_figure", "wrapped", "style_map", "mpl_text", "text_width", "legend_below", "MIN_WIDTH", "GLYPH"]


def new_figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # pyplot-free: no GUI backend, thread-safe

    return Figure(figsize=figsize, layout="constrained")


#: widths (inches) below which a figure's title and legend would not fit: a one-panel figure
#: is drawn at least this wide.
MIN_WIDTH = 7.0


#: average glyph width as a fraction of the font size (DejaVu Sans; wide enough for its capitals).
GLYPH = 0.6


def wrapped(text: str, width_in: float, fontsize: float, min_chars: int = 20) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (its own
    line breaks kept; at least ``min_chars`` a line), so a title is never cut off at the
    figure's edge."""
    import textwrap

    chars = max(min_chars, int(width_in * 72 / (fontsize * GLYPH)))
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


def text_width(chars: int, fontsize: float) -> float:
    """Inches that ``chars`` characters take at ``fontsize`` points (:data:`GLYPH` per character)."""
    return chars * fontsize * GLYPH / 72


#: legend entries' font size (points), the width of an entry's marker and gap (inches) and
#: the height of one line of entries (inches)
LEGEND_FONT, LEGEND_HANDLE, LEGEND_LINE = 8, 0.6, 0.17


def legend_below(fig, axs, title: str = "") -> None:
    """One legend for the whole figure, below the panels (outside every axes), one entry per
    series; constrained layout makes room for it, and the figure grows by the legend's height.

    Up to 3 columns, as many as the longest entry allows in the figure's width; an entry
    longer than its column is wrapped onto more lines (an axis value can be a 60-character
    model name), so no entry reaches past the figure's edge."""
    handles: dict[str, Any] = {}
    for ax in np.ravel(axs):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if not handles:
        return
    import textwrap

    width, height = fig.get_size_inches()
    labels = list(handles)
    longest = max(len(line) for label in labels for line in label.split("\n"))
    ncols = max(1, min(3, len(labels), int(width // (text_width(longest, LEGEND_FONT) + LEGEND_HANDLE))))
    chars = max(12, int((width / ncols - LEGEND_HANDLE) * 72 / (LEGEND_FONT * GLYPH)))
    texts = ["\n".join(textwrap.fill(line, chars) for line in label.split("\n")) for label in labels]
    lines = [t.count("\n") + 1 for t in texts]
    rows = sum(max(lines[i:i + ncols]) for i in range(0, len(lines), ncols)) + (1 if title else 0)
    fig.set_size_inches(width, height + LEGEND_LINE * rows + 0.15)
    fig.legend(list(handles.values()), texts, loc="outside lower center", ncols=ncols, fontsize=LEGEND_FONT,
               frameon=False, title=title or None, title_fontsize=LEGEND_FONT)
