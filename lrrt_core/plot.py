"""Matplotlib figures of range-test curves.

Every function draws on an ``Axes`` it is given (or on a new one) and returns it; nothing
here calls ``show()``, selects a backend or touches pyplot's global state. A new figure is a
plain :class:`matplotlib.figure.Figure` (not registered with pyplot, so loops that make
hundreds of plots leak nothing); in a notebook, pass your own ``ax`` or display
``ax.figure``. Suggestions are computed by :mod:`lrrt_core.suggest`; this module only draws them.

Example:
    >>> import numpy as np
    >>> from lrrt_core.curve import Curve
    >>> from lrrt_core.plot import plot_curve
    >>> lrs = np.logspace(-5, 0, 100)
    >>> ax = plot_curve(Curve(lrs, 2 - np.tanh(np.log10(lrs) + 2.5)), suggestion="steepest")
    >>> ax.get_xscale()
    'log'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lrrt_core.curve import Curve, centered, cut_nonfinite, ema
from lrrt_core.suggest import CENTERED_DECADES, Suggestion, get_method, loss_change, trim_window

__all__ = ["PALETTE", "plot_curve", "plot_loss_change", "plot_curves", "save_figure", "new_axes"]

#: Okabe & Ito (2008) colour-blind-safe palette, ordered for lines on white (yellow last).
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def new_axes(figsize: tuple[float, float] = (7.0, 4.5)) -> Axes:
    """One ``Axes`` on a new, pyplot-free :class:`~matplotlib.figure.Figure`."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _xscale(curve: Curve, xscale: str | None) -> str:
    if xscale is not None:
        return xscale
    return "linear" if curve.params.get("ladder") == "linear" else "log"


def _xlabel(scale: str) -> str:
    return "learning rate (log scale)" if scale == "log" else "learning rate"


def _resolve(curve: Curve, suggestion: Suggestion | str | None) -> Suggestion | None:
    if suggestion is None or isinstance(suggestion, Suggestion):
        return suggestion
    if isinstance(suggestion, str):
        return get_method(suggestion)(curve)
    raise TypeError(f"suggestion must be None, a Suggestion or a method name, got {type(suggestion).__name__}")


def _marker_y(lrs: np.ndarray, values: np.ndarray, s: Suggestion) -> float:
    """Loss to draw a suggestion at: the curve's value, interpolated in log lr when off-ladder."""
    if s.index is not None and 0 <= s.index < lrs.size and np.isclose(lrs[s.index], s.lr):
        return float(values[s.index])
    return float(np.interp(np.log10(s.lr), np.log10(lrs), values))


def fmt_lr(lr: float) -> str:
    return f"{lr:.2e}"


def _mark(ax: Axes, lrs: np.ndarray, values: np.ndarray, s: Suggestion, color: str, marker: str = "o") -> None:
    y = _marker_y(lrs, values, s)
    ax.plot(
        [s.lr], [y], linestyle="none", marker=marker, markersize=9, markerfacecolor=color,
        markeredgecolor="white", markeredgewidth=1.2, zorder=5, label=f"{s.method}: lr = {fmt_lr(s.lr)}",
    )
    ax.annotate(
        f"{fmt_lr(s.lr)}", xy=(s.lr, y), xytext=(8, 10), textcoords="offset points",
        fontsize=9, color=color, zorder=6,
        bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8),
    )


def _tidy_y(ax: Axes, values: np.ndarray) -> None:
    """No offset notation on y, and a visible band around a flat (constant) curve."""
    ax.ticklabel_format(axis="y", useOffset=False)
    finite = values[np.isfinite(values)]
    if finite.size and np.ptp(finite) <= 1e-9 * max(1.0, float(np.max(np.abs(finite)))):
        centre = float(finite[0])
        pad = 0.05 * abs(centre) if centre != 0.0 else 1.0
        ax.set_ylim(centre - pad, centre + pad)


def _focus_y(ax: Axes, smooth: np.ndarray, shown: np.ndarray) -> None:
    """Keep the informative part in view: the descent and the start of the blow-up.

    A diverging test's raw losses can reach 10-100x the starting loss and flatten the
    descent into a line at the bottom. The y range runs from just below the lowest
    smoothed loss to the starting level plus 75 % of the drop; what rises above is clipped.
    """
    smooth = smooth[np.isfinite(smooth)]
    shown = shown[np.isfinite(shown)]
    if smooth.size < 2 or shown.size == 0:
        return
    low_i = int(np.argmin(smooth))
    lo, hi = float(smooth[low_i]), float(np.max(smooth[: low_i + 1]))
    span = hi - lo if hi - lo > 1e-12 else max(abs(hi), 1.0) * 0.1
    top = hi + 0.75 * span
    if float(np.max(shown)) > top:
        bottom = min(float(np.min(shown)), lo - 0.1 * span)
        ax.set_ylim(bottom - 0.05 * (top - bottom), top)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=8, color="0.35", va="bottom", ha="left")


def _start(curve: Curve, ax: Axes | None, xscale: str | None, ylabel: str, title: str):
    """Axes with the x scale and labels of one curve's plot, and the NaN-cut curve."""
    ax = new_axes() if ax is None else ax
    scale = _xscale(curve, xscale)
    lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
    ax.set_xscale(scale)
    ax.set_xlabel(_xlabel(scale))
    ax.set_ylabel(ylabel)
    if not ax.get_title():
        ax.set_title(title)
    if raw.size == 0:
        _note(ax, "no finite losses to plot")
    return ax, lrs, raw


def plot_curve(
    curve: Curve,
    ax: Axes | None = None,
    *,
    suggestion: Suggestion | str | None = None,
    show_raw: bool = True,
    skip_start: int = 0,
    skip_end: int = 0,
    label: str | None = None,
    beta: float | None = None,
    xscale: str | None = None,
    color: str = PALETTE[0],
) -> Axes:
    """Loss against learning rate: raw losses faint, the bias-corrected EMA solid.

    Args:
        curve: the range-test curve (cut at its first non-finite loss).
        ax: axes to draw on; a new figure when ``None``.
        suggestion: a :class:`~lrrt_core.suggest.Suggestion`, a method name (computed with
            that method's defaults), or ``None``. A "no suggestion" is written as a note.
        show_raw: also draw the raw per-step losses.
        skip_start: points hidden at the start (shrunk on short curves, as in suggest).
        skip_end: points hidden at the end.
        label: legend label of the smoothed line (default "smoothed loss (EMA)").
        beta: EMA smoothing; ``None`` uses the curve's recorded one.
        xscale: ``"log"`` or ``"linear"``; ``None``: linear for a linear ladder, else log.
        color: colour of the lines.

    Returns:
        The ``Axes`` drawn on.
    """
    ax, lrs, raw = _start(curve, ax, xscale, "loss", "Learning-rate range test")
    if raw.size == 0:
        return ax
    smooth = ema(raw, curve.beta if beta is None else beta)
    win = trim_window(raw.size, skip_start, skip_end)
    if show_raw:
        ax.plot(lrs[win], raw[win], color=color, alpha=0.35, linewidth=0.9, label="raw loss")
    ax.plot(lrs[win], smooth[win], color=color, linewidth=2.0, label=label or "smoothed loss (EMA)")
    if curve.diverged_lr is not None:
        ax.axvline(curve.diverged_lr, color="0.5", linestyle=":", linewidth=1.0,
                   label=f"stopped ({curve.stop_reason}) at {fmt_lr(curve.diverged_lr)}")
    s = _resolve(curve, suggestion)
    marked = smooth
    if s is not None and s.ok and s.method in ("centered_min_div3", "centered_min_opt"):  # show the curve it reads, and its minimum
        marked = centered(lrs, raw, CENTERED_DECADES)
        ax.plot(lrs[win], marked[win], color=color, linewidth=1.2, linestyle="--",
                label=f"centred average ({CENTERED_DECADES:g} decade)")
        ax.axvline(lrs[s.index], color=color, linestyle="--", linewidth=0.8, alpha=0.6,
                   label=f"its minimum, lr {fmt_lr(lrs[s.index])} (= 3 x suggestion)")
    if s is not None:
        if s.ok:
            _mark(ax, lrs, marked, s, PALETTE[1] if color == PALETTE[0] else color)
        else:
            _note(ax, f"{s.method}: no suggestion ({s.reason})")
    _tidy_y(ax, np.concatenate([smooth[win], raw[win]]) if show_raw else smooth[win])
    _focus_y(ax, smooth[win], np.concatenate([smooth[win], raw[win]]) if show_raw else smooth[win])
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=9, frameon=False)
    return ax


def plot_loss_change(
    curve: Curve,
    ax: Axes | None = None,
    *,
    sma: int = 20,
    skip_start: int = 10,
    skip_end: int = 5,
    y_lim: tuple[float, float] | None = None,
    label: str | None = None,
    xscale: str | None = None,
    color: str = PALETTE[0],
) -> Axes:
    """The seed article's loss-change plot (keras-lr-finder's ``plot_loss_change``).

    Draws the per-step loss change averaged over ``sma`` steps,
    ``(loss[i] - loss[i - sma]) / sma`` of the raw losses (:func:`lrrt_core.suggest.loss_change`),
    against the learning rate. Its most negative point is keras-lr-finder's ``get_best_lr``
    (:func:`lrrt_core.suggest.sma_rule`), marked here.

    Args:
        curve: the range-test curve.
        ax: axes to draw on; a new figure when ``None``.
        sma: steps of the backward difference.
        skip_start, skip_end: points hidden at each end (never all of them).
        y_lim: y limits, e.g. keras-lr-finder's ``(-0.01, 0.01)``; ``None`` autoscale.
        label: legend label of the line.
        xscale: as :func:`plot_curve`.
        color: colour of the line.

    Returns:
        The ``Axes`` drawn on.
    """
    ax, lrs, raw = _start(curve, ax, xscale, f"loss change per step ({sma}-step average)", "Rate of loss change")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    if raw.size == 0:
        return ax
    change = loss_change(raw, sma)
    win = trim_window(raw.size, skip_start, skip_end)
    ax.plot(lrs[win], change[win], color=color, linewidth=1.8, label=label or f"loss change (sma={sma})")
    # on the curve, not the cut arrays: a test stopped on NaN/inf has keras-lr-finder's record
    # (the non-finite step among the skipped ones), so the mark is LRFinder.get_best_lr's lr
    s = get_method("sma_rule")(curve, sma=sma, skip_start=skip_start, skip_end=skip_end)
    if s.ok:
        _mark(ax, lrs, np.nan_to_num(change), s, PALETTE[1] if color == PALETTE[0] else color)
    else:
        _note(ax, f"sma_rule: no suggestion ({s.reason})")
    ax.ticklabel_format(axis="y", useOffset=False)
    if y_lim is not None:
        ax.set_ylim(y_lim)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=9, frameon=False)
    return ax


def plot_curves(
    curves: Sequence[Curve] | Mapping[str, Curve],
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    *,
    suggestion: str | None = "steepest",
    smoothed: bool = True,
    skip_start: int = 0,
    skip_end: int = 0,
    xscale: str | None = None,
    title: str | None = None,
) -> Axes:
    """Several curves on one axes (e.g. SGD vs Adam), one Okabe-Ito colour each, with a legend.

    Args:
        curves: a sequence of curves, or ``{label: curve}``.
        labels: legend labels (default: the mapping's keys, else "curve 0", "curve 1", ...).
        ax: axes to draw on; a new figure when ``None``.
        suggestion: method name whose pick is marked on each curve (same colour), or ``None``.
        smoothed: draw the EMA-smoothed loss (else the raw loss).
        skip_start, skip_end: points hidden at each end.
        xscale: ``"log"`` / ``"linear"``; ``None``: from the first curve's ladder.
        title: axes title.

    Returns:
        The ``Axes`` drawn on.
    """
    if isinstance(curves, Mapping):
        labels = list(curves.keys()) if labels is None else list(labels)
        curves = list(curves.values())
    else:
        curves = list(curves)
        labels = [f"curve {i}" for i in range(len(curves))] if labels is None else list(labels)
    if len(labels) != len(curves):
        raise ValueError(f"got {len(labels)} labels for {len(curves)} curves")
    ax = new_axes() if ax is None else ax
    scale = _xscale(curves[0], xscale) if curves else (xscale or "log")
    ax.set_xscale(scale)
    ax.set_xlabel(_xlabel(scale))
    ax.set_ylabel("loss (smoothed)" if smoothed else "loss")
    ax.set_title(title or "Learning-rate range tests")
    n_colors = len(PALETTE)
    for i, (curve, name) in enumerate(zip(curves, labels)):
        color = PALETTE[i % n_colors]
        style = _LINESTYLES[(i // n_colors) % len(_LINESTYLES)]
        lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
        if raw.size == 0:
            ax.plot([], [], color=color, linestyle=style, label=f"{name} (no finite losses)")
            continue
        values = ema(raw, curve.beta) if smoothed else raw
        win = trim_window(raw.size, skip_start, skip_end)
        text = name
        s = get_method(suggestion)(curve) if suggestion else None
        if s is not None:
            text = f"{name} ({s.method} {fmt_lr(s.lr)})" if s.ok else f"{name} (no {s.method})"
        ax.plot(lrs[win], values[win], color=color, linestyle=style, linewidth=1.8, label=text)
        if s is not None and s.ok:
            y = _marker_y(lrs, ema(raw, curve.beta), s) if smoothed else _marker_y(lrs, raw, s)
            ax.plot([s.lr], [y], linestyle="none", marker=_MARKERS[i % len(_MARKERS)], markersize=8,
                    markerfacecolor=color, markeredgecolor="white", markeredgewidth=1.0, zorder=5)
    ax.grid(True, which="major", alpha=0.3)
    if curves:
        ax.legend(loc="best", fontsize=9, frameon=False)
    return ax


def save_figure(fig: Figure | Axes, path: str | os.PathLike[str], *, dpi: int = 120, **savefig_kwargs: Any) -> Path:
    """Write a figure as PNG atomically: a temporary file in the same folder, then ``os.replace``.

    A crash never leaves a half-written PNG at ``path``. Parent folders are created.
    ``fig`` may also be an ``Axes`` (its figure is saved).

    Returns:
        The path written.
    """
    import io

    from lrrt_core.atomic import atomic_write_bytes

    if isinstance(fig, Axes):
        fig = fig.figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    return atomic_write_bytes(path, buf.getvalue())

