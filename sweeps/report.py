"""Figures and the HTML / Markdown report of a reduced sweep.

Compute, then render (STYLE.md #1): the small results the report shows — seed bands on a
common learning-rate grid (:func:`seed_bands`), the per-optimizer recommendation
(:func:`recommendations`) — are plain data computed from a
:class:`sweeps.reduce.Reduction`; the figure builders and the renderers (HTML page, Markdown, the notebook fragment of
:func:`render_notebook`) only draw them.

Figures (``plots/*.png``, written with :func:`lrrt_core.plot.save_figure`, atomically):

``loss_vs_lr.png``
    (a) smoothed loss vs learning rate, one panel per batch size, one line per optimizer
    (mean over seeds on a common log-lr grid), shaded min–max band across seeds, the
    suggested learning rate marked.
``loss_change.png``
    (b) the seed article's loss-change plot (keras-lr-finder ``plot_loss_change``): the
    change of the raw loss per step averaged over the last ``sma`` steps, vs lr.
``lr_scaling.png``
    (c) suggested learning rate vs batch size per optimizer, log-log, with the least-squares
    slope in the legend (Goyal et al. 2017's linear scaling rule predicts ≈1 for SGD; ≈0.5
    is reported for Adam).
``min_loss_heatmap.png``
    (d) mean minimum smoothed loss over optimizer × batch size, values annotated.
``axis_effects.png``
    (f) per-axis effects (:mod:`sweeps.effects`): mean and best minimum loss and the
    suggested rate against each axis's values, in the "Per-axis effects" section.

Focus (:func:`focus_configs`): figures (a)–(d) draw the 8 best-ranked configurations plus
the best of each optimizer and of each batch size, and say how many more there are; the
ranking table shows its top :data:`RANKING_TOP` rows with the rest in a collapsed section;
per-axis effects (:mod:`sweeps.effects`) answer which axis matters. Legends sit outside the
axes (a figure legend below the panels of (a) and (b), to the right of (c)).

All colours come from :data:`lrrt_core.plot.PALETTE` (Okabe–Ito, colour-blind safe) and the
heat map uses ``viridis``; figures use constrained layout so labels never overlap.

Every string that comes from a sweep file (names, labels, axis values, errors) is escaped
before it reaches HTML (:func:`html.escape`) or Markdown (:func:`md_escape`): a sweep
named ``<script>alert(1)</script>`` is shown as that text, never run.

matplotlib is imported here and in :mod:`lrrt_core.plot` only; no Ray, no TensorFlow.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from lrrt_core.suggest import DEFAULT_SMA, loss_change

logger = logging.getLogger(__name__)

__all__ = [
    "PLOT_NAMES",
    "Recommendation",
    "seed_bands",
    "recommendations",
    "falling_range",
    "series_label",
    "fig_loss_vs_lr",
    "fig_loss_change",
    "fig_lr_scaling",
    "fig_min_loss_heatmap",
    "make_plots",
    "render_html",
    "render_markdown",
    "render_notebook",
    "md_escape",
]

#: plot file stems, in report order, with the figure captions.
PLOT_NAMES = ("loss_vs_lr", "loss_change", "lr_scaling", "min_loss_heatmap")
GRID_POINTS = 200
#: how many best-ranked configurations the figures show (plus the best of each optimizer).
FOCUS_TOP = 8
#: ranking rows shown before the rest (the rest in a collapsed section).
RANKING_TOP = 20

_GOYAL = (
    "The linear scaling rule (Goyal et al. 2017, “Accurate, Large Minibatch SGD”) predicts a "
    "slope of about 1 for SGD (double the batch, double the learning rate); for Adam a slope "
    "near 0.5 (square-root scaling) is commonly reported."
)


# =========================================================================== compute
def series_label(row: pd.Series | dict, axes: Sequence[str]) -> str:
    """What distinguishes configurations within one batch size: the optimizer plus any
    extra axis values, e.g. ``"adam"`` or ``"adam, width=32"`` (plain, unescaped text)."""
    parts = [str(row["optimizer"])]
    for a in axes:
        v = row[a]
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{a}={v}")
    return ", ".join(parts)


def _interp_on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``y(x)`` on ``grid``; NaN outside ``x``'s range or at NaN y."""
    good = np.isfinite(x) & np.isfinite(y)
    x, y = x[good], y[good]
    out = np.full(grid.shape, np.nan)
    if x.size == 0:
        return out
    order = np.argsort(x, kind="mergesort")
    x, y = x[order], y[order]
    inside = (grid >= x[0]) & (grid <= x[-1])
    out[inside] = np.interp(grid[inside], x, y)
    return out


def _loss_change_column(curves: pd.DataFrame, sma: int) -> pd.Series:
    """keras-lr-finder loss change of the raw loss, per trial (NaN for the first ``sma`` steps).

    ``(loss[i] - loss[i - sma]) / sma`` within each trial in step order: one grouped shift,
    no per-trial loop (checked against :func:`lrrt_core.suggest.loss_change` in the tests).
    """
    loss_change(np.zeros(0), sma)  # validates sma
    ordered = curves.sort_values(["trial", "step"], kind="mergesort")
    loss = ordered["loss"].astype(np.float64)
    change = (loss - loss.groupby(ordered["trial"], sort=False).shift(sma)) / sma
    return change.reindex(curves.index)


def _trial_blocks(curves: pd.DataFrame, value: str):
    """Curves sorted by config, trial, step as numpy arrays, with the trial boundaries."""
    c = curves.sort_values(["config", "trial", "step"], kind="mergesort")
    trial = c["trial"].to_numpy()
    starts = np.flatnonzero(np.r_[True, trial[1:] != trial[:-1]])
    with np.errstate(all="ignore"):
        x = np.log10(c["lr"].to_numpy(dtype=np.float64))
    return c, x, c[value].to_numpy(dtype=np.float64), starts, np.r_[starts[1:], len(c)]


def _band_of(x: np.ndarray, y: np.ndarray, bounds: list[tuple[int, int]], n_grid: int):
    """Mean, min, max and count over the trials ``bounds`` of one configuration on a log-lr grid."""
    import warnings

    x_all = np.concatenate([x[i:j] for i, j in bounds])
    x_all = x_all[np.isfinite(x_all)]
    if x_all.size == 0:
        return None
    grid = np.linspace(x_all.min(), x_all.max(), n_grid)
    stack = np.vstack([_interp_on_grid(x[i:j], y[i:j], grid) for i, j in bounds])
    n = np.sum(np.isfinite(stack), axis=0)
    keep = n > 0
    if not keep.any():
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (10 ** grid[keep], np.nanmean(stack[:, keep], axis=0), np.nanmin(stack[:, keep], axis=0),
                np.nanmax(stack[:, keep], axis=0), n[keep], n[keep] == stack.shape[0])


def seed_bands(red, value: str = "smoothed_loss", n_grid: int = GRID_POINTS, sma: int = DEFAULT_SMA) -> pd.DataFrame:
    """Mean and min–max band across seeds of each configuration on a common log-lr grid.

    Seeds of one configuration run the same ladder but may stop at different steps
    (divergence), so each seed's curve is interpolated linearly in log10(lr) onto a grid
    of ``n_grid`` points spanning the union of their ranges; outside a seed's range it
    does not count. Grid points covered by no seed are dropped.

    Args:
        red: a :class:`sweeps.reduce.Reduction`.
        value: ``"smoothed_loss"``, ``"loss"``, or ``"loss_change"`` (the keras-lr-finder
            loss change of the raw loss over ``sma`` steps).
        n_grid: grid points per configuration.
        sma: window of the loss change.

    Returns:
        long DataFrame: ``config, optimizer, batch_size``, axis columns, ``series``
        (see :func:`series_label`), ``lr, mean, lo, hi, n`` (seeds at that point),
        ``full`` (every seed covers the point). Plot the mean only where ``full``: where
        one seed stopped early the mean of the rest would jump. Configurations come in
        order of first appearance in ``red.curves``.
    """
    cols = ["config", "optimizer", "batch_size", *red.axes, "series", "lr", "mean", "lo", "hi", "n", "full"]
    curves = red.curves
    if curves.empty:
        return pd.DataFrame(columns=cols)
    if value == "loss_change":
        curves = curves.assign(loss_change=_loss_change_column(curves, sma))
    c, x, y, starts, ends = _trial_blocks(curves, value)
    configs = c["config"].to_numpy()[starts]
    by_config: dict[Any, list[tuple[int, int]]] = {}
    for cfg, i, j in zip(configs, starts, ends):
        by_config.setdefault(cfg, []).append((i, j))
    firsts = curves.drop_duplicates("config").set_index("config")
    pieces, idents = [], []
    for cfg in firsts.index:
        band = _band_of(x, y, by_config[cfg], n_grid)
        if band is not None:
            pieces.append(band)
            idents.append(cfg)
    if not pieces:
        return pd.DataFrame(columns=cols)
    return _bands_frame(red, firsts.loc[idents], pieces)[cols]


def _bands_frame(red, firsts: pd.DataFrame, pieces: list[tuple]) -> pd.DataFrame:
    """Stack the per-configuration bands, identity columns repeated with numpy."""
    lengths = [len(p[0]) for p in pieces]
    out = pd.DataFrame({k: np.concatenate([p[i] for p in pieces])
                        for i, k in enumerate(("lr", "mean", "lo", "hi", "n", "full"))})
    out.insert(0, "config", np.repeat(firsts.index.to_numpy(dtype=object), lengths))
    ident = {"optimizer": firsts["optimizer"], "batch_size": firsts["batch_size"], **{a: firsts[a] for a in red.axes}}
    for k, col in ident.items():
        out[k] = np.repeat(col.to_numpy(dtype=object), lengths)
        if k in red.curves:
            out[k] = out[k].astype(red.curves[k].dtype)
    labels = [series_label(r, red.axes) for r in firsts.reset_index().to_dict("records")]
    out["series"] = np.repeat(np.array(labels, dtype=object), lengths)
    return out


def cached_bands(red, value: str = "smoothed_loss") -> pd.DataFrame:
    """:func:`seed_bands` computed once per reduction and reused by every figure and renderer."""
    key = ("seed_bands", value)
    if key not in red.cache:
        red.cache[key] = seed_bands(red, value=value)
    return red.cache[key]


def focus_configs(red, top: int = FOCUS_TOP) -> list[str]:
    """The configurations the figures show: the ``top`` best-ranked (with an ok seed) plus the
    best of each optimizer and of each batch size (so every batch-size panel has a line), in
    rank order."""
    r = red.ranking
    if r.empty:
        return []
    r = r[r["n_ok"] > 0].sort_values("rank")
    keep = (set(r["config"].head(top)) | set(r.drop_duplicates("optimizer")["config"])
            | set(r.drop_duplicates("batch_size")["config"]))
    return [str(c) for c in r["config"] if c in keep]


def focus_note(red, shown: int, what: str = "configurations") -> str:
    """``"top 9 of 600 configurations shown"`` ("" when all are shown)."""
    total = int((red.ranking["n_ok"] > 0).sum()) if not red.ranking.empty else 0
    return f"top {shown} of {total} {what} shown" if shown < total else ""


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What the report recommends for one optimizer (plain data, unescaped).

    Attributes:
        optimizer: optimizer label.
        config: the best-ranked configuration of this optimizer (``None`` if none has an
            ok seed).
        series: optimizer plus extra axis values of that configuration.
        batch_size: its batch size.
        rank / n_configs: its overall rank among all configurations.
        min_loss_mean / min_loss_std / n_ok: its minimum-loss statistics over seeds.
        suggested_lr / suggested_gsd: geometric mean and geometric sd factor of the
            ``rank_by`` suggestion over seeds.
        falling_lo / falling_hi: learning-rate range where the mean smoothed loss falls
            (:func:`falling_range`: from the start of the descent to the minimum). NaN when
            the curve never falls.
        slope: fitted lr-vs-batch-size slope of this optimizer (NaN if not fitted).
    """

    optimizer: str
    config: str | None
    series: str = ""
    batch_size: Any = None
    rank: int | None = None
    n_configs: int = 0
    min_loss_mean: float = math.nan
    min_loss_std: float = math.nan
    n_ok: int = 0
    suggested_lr: float = math.nan
    suggested_gsd: float = math.nan
    falling_lo: float = math.nan
    falling_hi: float = math.nan
    slope: float = math.nan


def falling_range(lrs: np.ndarray, loss: np.ndarray, frac: float = 0.05) -> tuple[float, float]:
    """LR range where ``loss`` falls: from where the descent starts to the minimum.

    The end is the learning rate at the minimum. The start is where the descent into that
    minimum begins: take the highest loss before the minimum (the plateau the test starts
    on) and the drop from it to the minimum; the start is the first point after that peak
    where ``frac`` (5 %) of the drop is done. A fraction of the drop, rather than the
    first decreasing step, keeps noise on the flat start from moving the answer by
    decades (the non-contiguous longest-decreasing-subsequence of fastai's valley starts
    on the plateau). Returns ``(nan, nan)`` when the loss never falls.

    Example:
        >>> lr = np.logspace(-5, 0, 6)
        >>> falling_range(lr, np.array([2.0, 2.0, 1.5, 1.0, 0.5, 3.0]))
        (0.001, 0.1)
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    good = np.isfinite(lrs) & np.isfinite(loss)
    lrs, loss = lrs[good], loss[good]
    if lrs.size < 2:
        return math.nan, math.nan
    i_min = int(np.argmin(loss))
    if i_min == 0:
        return math.nan, math.nan
    i_peak = int(np.argmax(loss[: i_min + 1]))
    drop = loss[i_peak] - loss[i_min]
    if not drop > 0:
        return math.nan, math.nan
    after = np.flatnonzero(loss[i_peak : i_min + 1] <= loss[i_peak] - frac * drop)
    i_start = i_peak + int(after[0])
    return float(lrs[i_start]), float(lrs[i_min])


def recommendations(red, bands: pd.DataFrame | None = None) -> list[Recommendation]:
    """One :class:`Recommendation` per optimizer, from its best-ranked configuration."""
    ranking = red.ranking
    if ranking.empty:
        return []
    if bands is None:
        bands = cached_bands(red)
    slopes = {}
    if red.scaling is not None and not red.scaling.empty:
        for _, s in red.scaling.iterrows():
            slopes.setdefault(s["optimizer"], float(s["slope"]))
    out = []
    for opt in pd.unique(ranking["optimizer"]):
        rows = ranking[(ranking["optimizer"] == opt) & (ranking["n_ok"] > 0)].sort_values("rank")
        if rows.empty:
            out.append(Recommendation(optimizer=str(opt), config=None, n_configs=len(ranking)))
            continue
        best = rows.iloc[0]
        b = bands[(bands["config"] == best["config"]) & bands["full"]] if not bands.empty else bands
        lo, hi = falling_range(b["lr"].to_numpy(), b["mean"].to_numpy()) if len(b) else (math.nan, math.nan)
        out.append(
            Recommendation(
                optimizer=str(opt),
                config=str(best["config"]),
                series=series_label(best, red.axes),
                batch_size=best["batch_size"],
                rank=int(best["rank"]),
                n_configs=len(ranking),
                min_loss_mean=float(best["min_loss_mean"]),
                min_loss_std=float(best["min_loss_std"]),
                n_ok=int(best["n_ok"]),
                suggested_lr=float(best["suggested_lr_gmean"]),
                suggested_gsd=float(best["suggested_lr_gsd"]),
                falling_lo=lo,
                falling_hi=hi,
                slope=slopes.get(opt, math.nan),
            )
        )
    return out


# =========================================================================== figures
def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # pyplot-free: no GUI backend, thread-safe

    return Figure(figsize=figsize, layout="constrained")


def _style_map(labels: Sequence[str], optimizers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Styles for series ``labels`` whose optimizers are ``optimizers`` (same order)."""
    from lrrt_core.plot import PALETTE

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


def _mpl(text: Any) -> str:
    """Sweep text for matplotlib: escape ``$`` so a name is never parsed as mathtext."""
    return str(text).replace("$", r"\$")


def _batch_sizes(frame: pd.DataFrame) -> list:
    vals = [v for v in pd.unique(frame["batch_size"]) if v is not None and not pd.isna(v)]
    try:
        return sorted(vals, key=float)
    except (TypeError, ValueError):
        return sorted(vals, key=str)


def _panel_grid(n: int) -> tuple[int, int]:
    ncols = min(3, max(1, n))
    return int(math.ceil(n / ncols)), ncols


def _fmt_lr(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2e}"


def _fmt_loss(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.4g}"


def _bands_figure(red, bands: pd.DataFrame, *, ylabel: str, title: str, kind: str):
    """Shared layout of figures (a) and (b): one panel per batch size, a line per series."""
    focus = focus_configs(red)
    if focus:
        bands = bands[bands["config"].isin(focus)]
    sizes = _batch_sizes(bands)
    if not sizes:
        return None
    nrows, ncols = _panel_grid(len(sizes))
    fig = _figure((4.6 * ncols + 0.4, 3.6 * nrows + 0.6 + 0.22 * math.ceil(bands["series"].nunique() / 3)))
    axs = fig.subplots(nrows, ncols, squeeze=False, sharey=False)
    styles = _focus_styles(red, bands)
    note = focus_note(red, len(focus))
    if note:
        title += f"\n{note} (ranking table: all)"
    ranking = red.ranking.set_index("config")
    for k, bs in enumerate(sizes):
        ax = axs[k // ncols][k % ncols]
        sub = bands[bands["batch_size"] == bs]
        y_top, y_bot = [], []
        for config, g in sub.groupby("config", sort=False):
            st = styles[g["series"].iloc[0]]
            ax.fill_between(g["lr"].to_numpy(), g["lo"].to_numpy(), g["hi"].to_numpy(), color=st["color"],
                            alpha=0.18, linewidth=0)
            g = g[g["full"]]  # the mean only where every seed has a value (no jumps)
            if g.empty:
                continue
            lr, mean = g["lr"].to_numpy(), g["mean"].to_numpy()
            label = g["series"].iloc[0]
            sugg = float(ranking.loc[config, "suggested_lr_gmean"]) if config in ranking.index else math.nan
            ax.plot(lr, mean, color=st["color"], linestyle=st["linestyle"], linewidth=1.8, label=_mpl(label))
            if np.isfinite(sugg) and lr[0] <= sugg <= lr[-1]:
                y = float(np.interp(np.log10(sugg), np.log10(lr), mean))
                ax.plot([sugg], [y], linestyle="none", marker=st["marker"], markersize=8,
                        markerfacecolor=st["color"], markeredgecolor="white", markeredgewidth=1.2, zorder=5)
            finite = mean[np.isfinite(mean)]
            if finite.size:
                if kind == "loss":
                    y_top.append(finite[0])  # the loss the test started from
                    y_bot.append(np.nanmin(g["lo"].to_numpy()))
                else:
                    y_bot.append(finite.min())
        ax.set_xscale("log")
        if kind == "loss" and y_top:
            lo_, hi_ = min(y_bot), max(y_top)
            pad = 0.08 * (hi_ - lo_ if hi_ > lo_ else abs(hi_) + 1e-12)
            ax.set_ylim(lo_ - pad, hi_ + 3 * pad)  # cut the blow-up: it would squash the curve
        elif kind == "change":
            ax.axhline(0.0, color="0.5", linewidth=0.8)
            if y_bot and min(y_bot) < 0:
                m = abs(min(y_bot))
                ax.set_ylim(-1.15 * m, 0.6 * m)  # the useful part is the negative change
        ax.set_title(_mpl(f"batch size {bs}"), fontsize=11)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for k in range(len(sizes), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    _legend_below(fig, axs)
    fig.suptitle(title, fontsize=12)
    return fig


def _focus_styles(red, bands: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Styles of the series in ``bands`` (the focused ones): colour by optimizer, line style and
    marker by the series' place among its optimizer's series (order of appearance)."""
    order = bands.drop_duplicates("series")
    return _style_map(list(order["series"]), [str(o) for o in order["optimizer"]])


def _legend_below(fig, axs) -> None:
    """One legend for the whole figure, below the panels (outside every axes), one entry per
    series; constrained layout makes room for it."""
    handles: dict[str, Any] = {}
    for ax in np.ravel(axs):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncols=min(3, len(handles)), fontsize=8, frameon=False)


def fig_loss_vs_lr(red, bands: pd.DataFrame | None = None):
    """(a) Smoothed loss vs learning rate per batch size, mean over seeds with min–max band.

    Returns a :class:`matplotlib.figure.Figure`, or ``None`` when no trial is ok.
    """
    bands = cached_bands(red) if bands is None else bands
    if bands.empty:
        return None
    return _bands_figure(
        red, bands, kind="loss", ylabel="smoothed loss",
        title=f"Smoothed loss vs learning rate (mean over seeds; band: min–max; ● suggested lr, {red.rank_by})",
    )


def fig_loss_change(red, sma: int = DEFAULT_SMA):
    """(b) The seed article's loss-change plot: (loss[i] - loss[i-sma]) / sma vs learning rate."""
    bands = cached_bands(red, "loss_change") if sma == DEFAULT_SMA else seed_bands(red, "loss_change", sma=sma)
    if bands.empty:
        return None
    return _bands_figure(
        red, bands, kind="change", ylabel=f"loss change per step (SMA {sma})",
        title=f"Rate of loss change vs learning rate (keras-lr-finder, SMA {sma}; most negative = fastest descent)",
    )


def fig_lr_scaling(red):
    """(c) Suggested learning rate vs batch size per optimizer, log-log, fitted slope in the legend."""
    r = red.ranking
    if r.empty:
        return None
    r = r[np.isfinite(pd.to_numeric(r["suggested_lr_gmean"], errors="coerce").astype(float))]
    r = r[pd.to_numeric(r["batch_size"], errors="coerce").notna()]
    if r.empty:
        return None
    labels = [series_label(row, red.axes) for row in r.to_dict("records")]
    r = r.assign(series=labels)
    shown = list(dict.fromkeys(r.set_index("config").loc[[c for c in focus_configs(red) if c in set(r["config"])],
                                                          "series"]))
    note = focus_note(red, len(shown), "series") if len(shown) < len(set(labels)) else ""
    r = r[r["series"].isin(shown)] if shown else r
    pairs = list(dict.fromkeys(zip(r["series"], r["optimizer"].astype(str))))
    styles = _style_map([p[0] for p in pairs], [p[1] for p in pairs])
    fits = {}
    for _, s in (red.scaling if red.scaling is not None else pd.DataFrame()).iterrows():
        fits[series_label(s, red.axes)] = s
    fig = _figure((9.0, 4.8))
    ax = fig.add_subplot()
    for label, g in r.groupby("series", sort=False):
        st = styles[label]
        g = g.sort_values("batch_size")
        bs = g["batch_size"].to_numpy(dtype=np.float64)
        lr = g["suggested_lr_gmean"].to_numpy(dtype=np.float64)
        gsd = g["suggested_lr_gsd"].to_numpy(dtype=np.float64)
        gsd = np.where(np.isfinite(gsd), gsd, 1.0)
        yerr = np.vstack([lr - lr / gsd, lr * gsd - lr])
        fit = fits.get(label)
        text = label
        if fit is not None:
            text = f"{label}: slope {fit['slope']:.2f}"
            xs = np.geomspace(bs.min(), bs.max(), 50)
            ax.plot(xs, 10 ** (fit["slope"] * np.log10(xs) + fit["intercept"]), color=st["color"],
                    linestyle=st["linestyle"], linewidth=1.4, alpha=0.9)
        ax.errorbar(bs, lr, yerr=yerr, color=st["color"], marker=st["marker"], linestyle="none",
                    markersize=7, capsize=3, label=_mpl(text))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted(set(float(v) for v in r["batch_size"]))
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{v:g}" for v in sizes])
    ax.minorticks_off() if len(sizes) > 1 else None
    ax.set_xlabel("batch size (log scale)")
    ax.set_ylabel(f"suggested learning rate ({red.rank_by})")
    ax.set_title("Suggested learning rate vs batch size\n(geometric mean over seeds, bars ×/÷ geometric sd)"
                 + (f"\n{len(shown)} best series of {len(set(labels))} shown" if note else ""), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title="fit: log lr = slope · log bs + c", title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def fig_min_loss_heatmap(red):
    """(d) Heat map of the mean minimum smoothed loss over (optimizer + axes) × batch size."""
    r = red.ranking
    if r.empty or not np.isfinite(r["min_loss_mean"].astype(float)).any():
        return None
    r = r.assign(series=[series_label(row, red.axes) for row in r.to_dict("records")])
    all_rows = list(dict.fromkeys(r["series"]))
    focus = set(focus_configs(red))
    rows = [x for x in dict.fromkeys(r.sort_values("rank")["series"][r["config"].isin(focus)])] or all_rows
    rows = [x for x in all_rows if x in set(rows)]
    r = r[r["series"].isin(rows)]
    cols = _batch_sizes(r)
    mat = np.full((len(rows), len(cols)), np.nan)
    best = np.zeros_like(mat, dtype=bool)
    for row in r.to_dict("records"):
        if pd.isna(row["batch_size"]):
            continue
        i, j = rows.index(row["series"]), cols.index(row["batch_size"])
        mat[i, j] = float(row["min_loss_mean"])
        best[i, j] = int(row["rank"]) == 1
    fig = _figure((1.3 * len(cols) + 3.2, 0.55 * len(rows) + 2.0))
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, aspect="auto")
    finite = mat[np.isfinite(mat)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = mat[i, j]
            if not np.isfinite(v):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="0.3")
                continue
            frac = (v - vmin) / (vmax - vmin) if vmax > vmin else 0.5
            ax.text(j, i, f"{v:.3g}" + (" ★" if best[i, j] else ""), ha="center", va="center", fontsize=10,
                    color="black" if frac > 0.6 else "white", fontweight="bold" if best[i, j] else "normal")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([_mpl(c) for c in cols])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_mpl(r) for r in rows])
    ax.set_xlabel("batch size")
    ax.set_ylabel("optimizer")
    more = f"\n{len(rows)} best rows of {len(all_rows)} shown" if len(rows) < len(all_rows) else ""
    ax.set_title(f"Mean minimum smoothed loss (lower is better; ★ rank 1){more}", fontsize=11)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("min smoothed loss")
    return fig


def fig_axis_effects(red):
    """(f) Per-axis effects: for each axis, the mean (over the other axes) and best minimum
    loss (top row) and the suggested rate (bottom row, log) against the axis values; one
    legend below the panels. ``None`` when no axis has two values."""
    effects = cached(red, "axis_effects", lambda: _axis_effects(red))
    if not effects:
        return None
    n = len(effects)
    fig = _figure((2.7 * n + 0.6, 5.6))
    axs = fig.subplots(2, n, squeeze=False)
    for k, e in enumerate(effects):
        t = e.table
        x = np.arange(len(t))
        for row, (mean, best, ylabel) in enumerate((("loss_mean", "loss_best", "min smoothed loss"),
                                                     ("lr_gmean", "lr_best", f"suggested lr ({red.rank_by})"))):
            ax = axs[row][k]
            ax.plot(x, t[mean].astype(float), color=_PALETTE()[0], marker="o", markersize=4, label="mean over the rest")
            ax.plot(x, t[best].astype(float), color=_PALETTE()[1], marker="s", markersize=4, linestyle="--",
                    label="best configuration")
            step = max(1, int(math.ceil(len(t) / 6)))
            ax.set_xticks(x[::step])
            ax.set_xticklabels([_mpl(_fmt_value(v)) for v in t["value"].iloc[::step]], fontsize=8,
                               rotation=30 if step > 1 or n > 3 else 0)
            if row == 1:
                ax.set_yscale("log")
                ax.set_xlabel(_mpl(e.axis.replace("_", " ")))
            else:
                ax.set_title(_mpl(f"{e.axis.replace('_', ' ')} (effect {_fmt_loss(e.effect)})"), fontsize=10)
            if k == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            ax.grid(True, alpha=0.3)
    _legend_below(fig, axs[:1])
    fig.suptitle("Per-axis effects: loss and suggested learning rate against each axis's values", fontsize=11)
    return fig


def _axis_effects(red):
    from sweeps.effects import axis_effects

    return axis_effects(red)


def _PALETTE():
    from lrrt_core.plot import PALETTE

    return PALETTE


# =========================================================================== verification, recipes, budget
def fig_verification(red):
    """(e) Held-out metric vs candidate rate per configuration (mean over seeds), the
    verified pick marked; ``None`` when the sweep has no verification results."""
    v = red.verification
    if v is None or v.candidates.empty:
        return None
    cands = v.candidates[np.isfinite(v.candidates["metric"])]
    if cands.empty:
        return None
    order = [c for c in focus_configs(red) if c in set(cands["config"])]  # a big grid: the focus only
    styles = _style_map(order, [str(red.ranking.set_index("config").loc[c, "optimizer"]) for c in order])
    fig = _figure((7.5, 4.2))
    ax = fig.add_subplot()
    picked = red.ranking.set_index("config")["verified_lr"]
    for config in order:
        g = cands[cands["config"] == config].sort_values("lr")
        st = styles[config]
        ax.plot(g["lr"], g["metric"], color=st["color"], linestyle=st["linestyle"], marker=st["marker"],
                label=_mpl(config))
        pick = g[np.isclose(g["lr"], picked.get(config, np.nan))]
        ax.plot(pick["lr"], pick["metric"], marker="*", markersize=14, color=st["color"], linestyle="none")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (constant, trained at)")
    ax.set_ylabel(f"held-out {_mpl(v.metric)} ({'higher' if v.higher_is_better else 'lower'} is better)")
    note = focus_note(red, len(order), "verified configurations") if cands["config"].nunique() > len(order) else ""
    ax.set_title("Verification: short trainings around each recommendation (★ verified rate)"
                 + (f"\n{note}" if note else ""))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(True, which="both", alpha=0.3)
    return fig


@dataclasses.dataclass(frozen=True)
class Section:
    """A report section as plain data: ``blocks`` are ``("p", text)``, ``("note", text)``,
    ``("table", header, rows, num_cols)`` or ``("figure", stem)``; text is unescaped (each
    renderer escapes it)."""

    title: str
    blocks: list[tuple]


def method_note(red) -> str:
    """Which method gives the suggested learning rate, in words."""
    from lrrt_core.suggest import DEFAULT_METHOD, DESCRIPTIONS

    text = f"Suggested learning rate: {red.rank_by}, {DESCRIPTIONS.get(red.rank_by, red.rank_by)}."
    if red.rank_by != DEFAULT_METHOD:
        text += f" (lrrt's default is {DEFAULT_METHOD}.)"
    return text


def keras_backend(red) -> str:
    """The Keras backend the sweep's trials ran on (its file's ``backend:``; tensorflow by default)."""
    return str(((red.manifest or {}).get("spec") or {}).get("backend") or "tensorflow")


def budget_note(red) -> str:
    """The range-test budget rule in words, with a warning when batch sizes are compared at a
    fixed step count ("" when the manifest does not say)."""
    spec = (red.manifest or {}).get("spec") or {}
    rt = spec.get("range_test") or {}
    sizes = sorted({int(b) for b in red.trials["batch_size"].dropna()}) if len(red.trials) else []
    if rt.get("samples") is not None:
        return (f"Range-test budget: {rt['samples']} training samples per test (steps = samples / batch size), "
                "so every batch size sees the same data.")
    if rt.get("epochs") is not None:
        return f"Range-test budget: {rt['epochs']} epoch(s) per test, the same data for every batch size."
    if rt.get("steps") is None:
        return ""
    text = f"Range-test budget: {rt['steps']} steps per test."
    if len(sizes) > 1:
        text += (f" Warning: batch sizes are compared at a fixed step count, so a batch of {sizes[-1]} sees "
                 f"{sizes[-1] / sizes[0]:g}x the data a batch of {sizes[0]} sees, which favours larger batches in "
                 "the ranking by minimum loss. Give range_test: {samples: N} to compare them at an equal sample budget.")
    return text


def verification_section(red) -> Section | None:
    """Both rankings side by side, their agreement in words, the metric-vs-rate figure."""
    v = red.verification
    if v is None or not v.ran:
        return None
    r = red.ranking.sort_values("rank")
    c = v.counts()
    blocks: list[tuple] = [("p", (
        f"Each configuration was trained briefly at {v.candidates['factor'].nunique() if not v.candidates.empty else 0} "
        f"candidate rates around its {red.rank_by} recommendation; the candidate with the best held-out {v.metric} "
        f"(mean over seeds) is the verified rate. Trainings: {c['ok']} ok, {c['failed']} failed, {c['missing']} missing.")),
        ("p", verification_verdict(red))]
    header = ["config", "range-test rank", "verified rank", f"recommended lr ({red.rank_by})", "verified lr",
              "verified val loss", f"verified {v.metric}"]
    rows = [[str(x.config), _fmt_int(x.rank), _fmt_int(x.verified_rank), _fmt_lr(x.suggested_lr_gmean),
             _fmt_lr(x.verified_lr), _fmt_loss(x.verified_val_loss), _fmt_loss(x.verified_metric)]
            for x in r.itertuples()]
    if v.metric == "val_loss":  # the last two columns would be the same
        header, rows = header[:-1], [row[:-1] for row in rows]
    blocks += [("table", header, rows, set(range(1, len(header)))), ("figure", "verification")]
    bad = v.rows[v.rows["status"] != "ok"]
    if len(bad):
        blocks.append(("table", ["verification trial", "status", "error"],
                       [[str(b.name), str(b.status), str(b.error)] for b in bad.itertuples()], set()))
    return Section("Verification", blocks)


def verification_verdict(red) -> str:
    """One or two sentences: do the range-test and verified rankings agree?"""
    r = red.ranking.dropna(subset=["verified_rank"])
    v = red.verification
    if r.empty:
        return "No verified configuration yet."
    top_rt = str(red.ranking.sort_values("rank")["config"].iloc[0])
    top_v = str(r.sort_values("verified_rank")["config"].iloc[0])
    rho = "n/a (fewer than 3 configurations)" if not np.isfinite(v.agreement) else f"{v.agreement:.2f}"
    if top_rt == top_v:
        text = f"Both rankings put {top_rt} first (rank correlation {rho})."
    else:
        text = (f"The rankings disagree: the range test puts {top_rt} first, short training puts {top_v} first "
                f"(rank correlation {rho}). Trust the verified ranking: it measures training, the range test "
                "only predicts it.")
    moved = r[~np.isclose(r["verified_lr"], r["suggested_lr_gmean"])]
    if len(moved):
        text += (f" For {len(moved)} of {len(r)} configurations a candidate other than the recommendation "
                 "trained better; the verified rate is the one to use.")
    return text


def recipes_section(red) -> Section:
    """The training recipe per configuration (``recipes.json``)."""
    from sweeps.verification import recipes

    rows = [[x["config"], _fmt_lr(x["lr"]), x["lr_source"], _fmt_lr(x["one_cycle"]["max_lr"]),
             _fmt_lr(x["triangular"]["base_lr"]), _fmt_lr(x["triangular"]["max_lr"])]
            for x in recipes(red.ranking, red.rank_by)]
    text = ("What to train with (recipes.json): the constant learning rate (verified when verification ran), a "
            "one-cycle schedule peaking at 3x that rate (fastai's warm-up and annealing: start at max/25, 25 % "
            "warm-up), and triangular cyclical rates between max/4 and max = 3x the rate (Smith 2015, 3.3). "
            "lrrt_core.schedules.one_cycle and .triangular build them as Keras schedules.")
    if not rows:
        return Section("Training recipes", [("p", "No recommendation yet.")])
    return Section("Training recipes", [("p", text), ("table", ["config", "constant lr", "from", "one-cycle max_lr",
                                                               "CLR base_lr", "CLR max_lr"], rows, {1, 3, 4, 5})])


def failed_section(red) -> Section:
    """Failed trials with their errors (``("details", summary, code, note, error)`` blocks)."""
    if not red.failed:
        return Section(f"Failed trials ({len(red.failed)})", [("ok", "None.")])
    blocks = [("details", f["name"], f["trial_id"],
               f" after {f['attempts']} attempt(s)" if f.get("attempts") is not None else "", f["error"])
              for f in red.failed]
    return Section(f"Failed trials ({len(red.failed)})", blocks)


def missing_section(red) -> Section:
    """Planned trials without a result (``("list", items)``: name, id, note)."""
    title = f"Missing trials ({len(red.missing)})"
    if not red.missing:
        return Section(title, [("ok", "None: every planned trial has a result.")])
    missing = red.trials[red.trials["status"] == "missing"]
    items = [(m["name"], m["trial_id"], f" ({m['error']})" if m["error"] else "") for _, m in missing.iterrows()]
    return Section(title, [("p", "Planned in the manifest but without a result (not run yet, still running, or "
                                 "interrupted):"), ("list", items)])


def effects_section(red) -> Section | None:
    """Per-axis effects (:func:`sweeps.effects.axis_effects`): which axis matters most, and a
    table per axis of the loss and the recommended rate against its values."""
    effects = cached(red, "axis_effects", lambda: _axis_effects(red))
    if not effects:
        return None
    ordered = sorted(effects, key=lambda e: -e.effect if np.isfinite(e.effect) else np.inf)
    summary = ", ".join(f"{e.axis} {_fmt_loss(e.effect)}" for e in ordered)
    blocks: list[tuple] = [("p", "How much each grid axis moves the ranking criterion: the range (max - min) over "
                                 "its values of the mean minimum loss, averaged over the other axes (for the seed: "
                                 f"over the trials of each seed). Largest first: {summary}.")]
    header_tail = ["mean min loss (over the rest)", "best min loss", "best configuration",
                   f"suggested lr ({red.rank_by}, gmean over the rest)", "suggested lr at the best"]
    for e in effects:
        count = "ok trials" if e.axis == "seed" else "configurations"
        rows = [[_fmt_value(x.value), str(int(x.n)), _fmt_loss(x.loss_mean), _fmt_loss(x.loss_best),
                 str(x.best_config), _fmt_lr(x.lr_gmean), _fmt_lr(x.lr_best)] for x in e.table.itertuples()]
        blocks.append(("p", f"{e.axis} (effect {_fmt_loss(e.effect)})"))
        blocks.append(("table", [e.axis.replace("_", " "), count, *header_tail], rows, {1, 2, 3, 5, 6}))
    return Section("Per-axis effects", [*blocks[:1], ("figure", "axis_effects"), *blocks[1:]])


def _fmt_value(v: Any) -> str:
    """An axis value as text: integral floats without ``.0``."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def cached(red, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per reduction (kept in ``red.cache``)."""
    if key not in red.cache:
        red.cache[key] = compute()
    return red.cache[key]


def extra_sections(red) -> list[Section]:
    return [s for s in (effects_section(red), verification_section(red), recipes_section(red)) if s is not None]


def _html_section(sec: Section, plot_paths: dict[str, Path]) -> list[str]:
    parts = [f"<h2>{_h(sec.title)}</h2>"]
    for block in sec.blocks:
        if block[0] == "p":
            parts.append(f"<p>{_h(block[1])}</p>")
        elif block[0] == "ok":
            parts.append(f'<p class="ok">{_h(block[1])}</p>')
        elif block[0] == "details":
            _, name, code, note, text = block
            parts.append(f"<details open><summary><strong>{_h(name)}</strong> <code>{_h(code)}</code>{_h(note)}"
                         f"</summary><pre>{_h(text)}</pre></details>")
        elif block[0] == "list":
            parts.append("<ul>" + "".join(f"<li>{_h(n)} <code>{_h(c)}</code>{_h(x)}</li>" for n, c, x in block[1])
                         + "</ul>")
        elif block[0] == "table":
            parts.append(_html_table(block[1], block[2], block[3]))
        elif block[0] == "figure" and block[1] in plot_paths:
            parts.append(_html_figure(block[1], plot_paths[block[1]]))
    return parts


def _md_section(sec: Section, plot_paths: dict[str, Path], base: Path) -> list[str]:
    lines = [f"## {md_escape(sec.title)}", ""]
    for block in sec.blocks:
        if block[0] in ("p", "ok"):
            lines += [md_escape(block[1]), ""]
        elif block[0] == "details":  # <pre> with html.escape: GitHub shows it as literal text
            _, name, code, note, text = block
            lines += [f"<details><summary><b>{_h(name)}</b> <code>{_h(code)}</code>{_h(note)}</summary>", "",
                      f"<pre>{_h(text)}</pre>", "</details>", ""]
        elif block[0] == "list":
            lines += [f"- {md_escape(n)} ({md_escape(c)}){md_escape(x)}" for n, c, x in block[1]] + [""]
        elif block[0] == "table":
            lines += [_md_table(block[1], block[2]), ""]
        elif block[0] == "figure" and block[1] in plot_paths:
            lines += _md_figure(block[1], plot_paths[block[1]], base)
    return lines


_FIGURES: dict[str, tuple[Callable[..., Any], str]] = {
    "loss_vs_lr": (fig_loss_vs_lr, "Smoothed loss vs learning rate per batch size: mean over seeds, shaded band "
                   "from the lowest to the highest seed, marker at the suggested learning rate."),
    "loss_change": (fig_loss_change, "Rate of loss change (keras-lr-finder, as in the seed article): where it is "
                    "most negative, the loss falls fastest."),
    "lr_scaling": (fig_lr_scaling, "Suggested learning rate vs batch size, log-log, with the least-squares slope. "
                   + _GOYAL),
    "min_loss_heatmap": (fig_min_loss_heatmap, "Mean minimum smoothed loss over optimizer × batch size "
                         "(grey: no successful seed)."),
    "axis_effects": (fig_axis_effects, "Per-axis effects: mean minimum loss over the other axes and at the best "
                     "configuration (top), suggested learning rate (bottom), against each axis's values."),
    "verification": (fig_verification, "Held-out metric after short training at each candidate rate "
                     "(mean over seeds); ★ the verified rate."),
}
#: figures drawn inside their own section, not in "Plots".
_SECTION_FIGURES = ("axis_effects", "verification")


def make_plots(red, plots_dir: str | os.PathLike) -> dict[str, Path]:
    """Draw every figure into ``plots_dir`` (atomically); return ``{stem: path}`` in report order.

    A figure without data (e.g. no ok trial) is skipped; one that raises is logged and
    skipped, so a plotting bug never costs the tables or the report. Stale PNGs of the
    standard names that were not redrawn are removed so the folder matches the report.
    """
    from lrrt_core.plot import save_figure

    plots_dir = Path(plots_dir)
    paths: dict[str, Path] = {}
    for stem, (builder, _) in _FIGURES.items():
        path = plots_dir / f"{stem}.png"
        try:
            fig = builder(red)
        except Exception:
            logger.exception("figure %s failed; leaving it out of the report", stem)
            fig = None
        if fig is None:
            if path.exists():
                path.unlink()
            continue
        save_figure(fig, path, dpi=110)
        paths[stem] = path
    return paths


# =========================================================================== text helpers
def md_escape(text: Any) -> str:
    """Escape text for Markdown (GitHub): HTML-special characters become entities and the
    inline-Markdown punctuation is backslash-escaped, so table cells cannot be split by
    ``|``, no link or image can form (``[`` ``]``), and ``<script>`` shows as text.
    Newlines become spaces, so escaped text never starts a line and block syntax (``#``,
    ``+``, ``1.``) cannot trigger; ``( ) + # !`` stay readable in the raw file."""
    s = "" if text is None else str(text)
    s = html.escape(s, quote=False)
    out = []
    for ch in s:
        if ch in "\\`*_{}[]|~":
            out.append("\\" + ch)
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _h(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _is_nan(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt_int(v: Any) -> str:
    return "" if _is_nan(v) else str(int(v))


def _ranking_rows(red) -> tuple[list[str], list[list[str]]]:
    """Header and plain-text cells of the ranking table (escaped by the renderer)."""
    extra = [m for m in ("steepest", "valley") if m != red.rank_by]  # the suggested column is the rank_by one
    header = ["rank", "config", "optimizer", "batch size", *red.axes, "seeds ok / failed / missing",
              "min loss (mean ± sd)", f"suggested lr ({red.rank_by}) ×/÷ gsd",
              *[f"{m} lr" for m in extra], "lr at min loss"]
    rows = []
    for _, r in red.ranking.iterrows():
        loss = _fmt_loss(r["min_loss_mean"])
        if np.isfinite(r["min_loss_std"]):
            loss += f" ± {r['min_loss_std']:.2g}"
        sugg = _fmt_lr(r["suggested_lr_gmean"])
        if np.isfinite(r["suggested_lr_gsd"]):
            sugg += f" ×/÷ {r['suggested_lr_gsd']:.2f}"
        rows.append(
            [_fmt_int(r["rank"]), str(r["config"]), str(r["optimizer"]), _fmt_int(r["batch_size"]) if not _is_nan(r["batch_size"]) else "",
             *["" if _is_nan(r[a]) else str(r[a]) for a in red.axes],
             f"{int(r['n_ok'])} / {int(r['n_failed'])} / {int(r['n_missing'])}",
             loss, sugg, *[_fmt_lr(r[f"{m}_lr_gmean"]) for m in extra],
             _fmt_lr(r["lr_at_min_loss_gmean"])]
        )
    return header, rows


def _rest_summary(shown: int, total: int) -> str:
    return f"The other {total - shown} configurations (ranks {shown + 1} to {total}; also in ranking.csv)"


def _recommendation_text(rec: Recommendation, rank_by: str) -> tuple[str, str]:
    """(optimizer label, sentence) in plain text; the renderer escapes both."""
    if rec.config is None:
        return rec.optimizer, "no successful trial, so no recommendation."
    where = f"batch size {rec.batch_size}"
    if rec.series and rec.series != rec.optimizer:
        where += f" ({rec.series})"
    seeds = f"{rec.n_ok} seed" + ("s" if rec.n_ok != 1 else "")
    loss = _fmt_loss(rec.min_loss_mean) + (f" ± {rec.min_loss_std:.2g}" if np.isfinite(rec.min_loss_std) else "")
    s = (f"best at {where}, rank {rec.rank} of {rec.n_configs} (mean minimum loss {loss} over {seeds}). "
         f"Suggested learning rate {_fmt_lr(rec.suggested_lr)} ({rank_by}, geometric mean over seeds")
    s += f", ×/÷ {rec.suggested_gsd:.2f} across seeds)." if np.isfinite(rec.suggested_gsd) else ")."
    if np.isfinite(rec.falling_lo) and np.isfinite(rec.falling_hi):
        s += (f" The loss falls from about {_fmt_lr(rec.falling_lo)} to {_fmt_lr(rec.falling_hi)} "
              f"(start of the descent of the mean smoothed curve to its minimum); a constant learning "
              f"rate should stay below the upper end.")
    if np.isfinite(rec.slope):
        s += f" Across batch sizes the suggested learning rate scales with slope {rec.slope:.2f} in log-log."
    return rec.optimizer, s


def _scaling_rows(red) -> list[list[str]]:
    rows = []
    if red.scaling is None:
        return rows
    for _, s in red.scaling.iterrows():
        r2 = "n/a" if not np.isfinite(s["r2"]) else f"{s['r2']:.3f}"
        rows.append([series_label(s, red.axes), str(int(s["n_batch_sizes"])), f"{s['slope']:.3f}",
                     f"{s['intercept']:.3f}", r2])
    return rows


def _status_banner(red) -> str:
    """Plain-text note on partial results ("" when complete)."""
    notes = []
    if red.n_missing:
        notes.append(f"{red.n_missing} of {red.n_trials} trials have no result yet (sweep still running or interrupted)")
    if red.n_failed:
        notes.append(f"{red.n_failed} trial(s) failed")
    if red.corrupt:
        notes.append(f"{len(red.corrupt)} unreadable record file(s) skipped")
    return ("Partial results: " + "; ".join(notes) + ". Rankings use the successful seeds only.") if notes else ""


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:
        return Path(path).as_posix()


# =========================================================================== HTML
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1.2rem 1.6rem;color:#1a1a1a;line-height:1.45;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.sub{color:#555;margin:.2rem 0 1rem}.summary{font-weight:600}
.banner{background:#fff4e5;border-left:4px solid #E69F00;padding:.6rem .9rem;margin:.8rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #d0d0d0;padding:.3rem .55rem;text-align:left;vertical-align:top}
td{white-space:nowrap}.tablewrap{overflow-x:auto}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#e8f3fb;font-weight:600}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5rem;font-size:.8rem;margin:.3rem 0}
details summary{cursor:pointer}.ok{color:#009E73}.bad{color:#D55E00}
footer{margin-top:2rem;color:#777;font-size:.8rem}
"""


def _html_table(header: list[str], rows: list[list[str]], num_cols: set[int] = frozenset(), best_first: bool = False,
                table_class: str = "") -> str:
    cls_attr = f' class="{table_class}"' if table_class else ""
    out = [f'<div class="tablewrap"><table{cls_attr}>', "<thead><tr>" + "".join(f"<th>{_h(c)}</th>" for c in header) + "</tr></thead>", "<tbody>"]
    for k, row in enumerate(rows):
        cls = ' class="best"' if best_first and k == 0 else ""
        cells = "".join(f'<td class="num">{_h(c)}</td>' if i in num_cols else f"<td>{_h(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


#: The report's one script (fixed text, no sweep data, no external resource): a filter box
#: above the ranking and sortable columns (click a header; again to reverse). Sorting or
#: filtering gathers the collapsed rows into the first table. Without script the page reads
#: the same, minus the box.
TABLE_SCRIPT = """(function(){
var tables=document.querySelectorAll("table.ranking");if(!tables.length)return;
var main=tables[0],body=main.tBodies[0],rest=document.querySelector("details.ranking-rest");
function gather(){if(!rest)return;for(var t=1;t<tables.length;t++){var b=tables[t].tBodies[0];
while(b.rows.length)body.appendChild(b.rows[0]);}rest.style.display="none";rest=null;}
function key(td){var v=parseFloat(td.textContent);return isNaN(v)?td.textContent.toLowerCase():v;}
function cmp(a,b){var n1=typeof a==="number",n2=typeof b==="number";
if(n1&&n2)return a-b;if(n1)return -1;if(n2)return 1;return a<b?-1:a>b?1:0;}
var box=document.createElement("input");box.type="search";box.id="ranking-filter";
box.placeholder="filter configurations (any text in a row)";box.style.cssText="width:24rem;margin:.4rem 0";
box.addEventListener("input",function(){gather();var q=box.value.toLowerCase();
for(var i=0;i<body.rows.length;i++){var r=body.rows[i];
r.style.display=r.textContent.toLowerCase().indexOf(q)<0?"none":"";}});
main.parentNode.parentNode.insertBefore(box,main.parentNode);
var ths=main.tHead.rows[0].cells;
for(var c=0;c<ths.length;c++){(function(c){var th=ths[c],dir=1;th.style.cursor="pointer";th.title="sort";
th.addEventListener("click",function(){gather();var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){return dir*cmp(key(a.cells[c]),key(b.cells[c]));});dir=-dir;
for(var i=0;i<rows.length;i++)body.appendChild(rows[i]);});})(c);}
})();"""
TABLE_SCRIPT_TAG = f"<script>{TABLE_SCRIPT}</script>"


def render_html(red, plot_paths: dict[str, Path] | Sequence[Path]) -> str:
    """The report as ONE self-contained HTML page (images inlined as base64 ``data:`` URIs,
    inline CSS, no external resources; one fixed inline script, :data:`TABLE_SCRIPT`, sorts
    and filters the ranking, and the page reads without it).

    Sections: title and sweep name, summary line (and a banner for partial results),
    ranking table (top rows, the rest in a collapsed ``<details>``), one recommendation
    paragraph per optimizer, per-axis effects, verification and recipes, the plots, the lr-scaling
    fits, failed trials with their errors, missing trials.

    Args:
        red: a :class:`sweeps.reduce.Reduction`.
        plot_paths: ``{stem: png path}`` from :func:`make_plots` (or a list of paths).

    Returns:
        the HTML text. All sweep-provided text is escaped with :func:`html.escape`.
    """
    plot_paths = _as_plot_dict(plot_paths)
    parts = _html_head(red)

    parts.append("<h2>Ranking</h2>")
    if red.ranking.empty:
        parts.append("<p>No configurations.</p>")
    else:
        header, rows = _ranking_rows(red)
        n_ax = len(red.axes)
        num = {0, 3, 5 + n_ax, 6 + n_ax, 7 + n_ax, 8 + n_ax, 9 + n_ax}
        top, rest = rows[:RANKING_TOP], rows[RANKING_TOP:]
        parts.append(_html_table(header, top, num_cols=num, best_first=bool(red.ranking["n_ok"].iloc[0] > 0),
                                 table_class="ranking"))
        if rest:
            parts.append(f'<details class="ranking-rest"><summary>{_h(_rest_summary(len(top), len(rows)))}</summary>'
                         + _html_table(header, rest, num_cols=num, table_class="ranking") + "</details>")
        parts.append(TABLE_SCRIPT_TAG)

    parts.append("<h2>Recommendations</h2>")
    recs = recommendations(red)
    if not recs:
        parts.append("<p>No successful trials yet.</p>")
    for rec in recs:
        label, text = _recommendation_text(rec, red.rank_by)
        parts.append(f"<p><strong>{_h(label)}</strong>: {_h(text)}</p>")

    for sec in extra_sections(red):
        parts += _html_section(sec, plot_paths)

    parts.append("<h2>Plots</h2>")
    if not plot_paths:
        parts.append("<p>No plots: no successful trials.</p>")
    for stem, path in plot_paths.items():
        if stem not in _SECTION_FIGURES:
            parts.append(_html_figure(stem, path))

    scaling = _scaling_rows(red)
    parts.append("<h2>Learning rate vs batch size</h2>")
    parts.append(f"<p>{_h(_GOYAL)}</p>")
    if scaling:
        parts.append(_html_table(["optimizer", "batch sizes", "slope", "intercept (log10 lr)", "R²"], scaling, {1, 2, 3, 4}))
    else:
        parts.append("<p>No fit: each optimizer needs successful trials at two or more batch sizes.</p>")

    for sec in (failed_section(red), missing_section(red)):
        parts += _html_section(sec, plot_paths)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<footer>Generated by lrrt on {_h(stamp)} from trials/*.json. Tables: trials.csv, ranking.csv, "
                 "curves.parquet.</footer></body></html>")
    return "\n".join(parts) + "\n"


def _html_head(red) -> list[str]:
    """Document head, title, summary line, and the notes on partial results, method and budget."""
    name = red.name
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lrrt report: {_h(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Learning-rate range test report</h1>",
        f'<p class="sub">Sweep <strong>{_h(name)}</strong> · directory <code>{_h(red.out_dir)}</code> · '
        f"ranked by mean minimum smoothed loss, ties by the {_h(red.rank_by)} learning rate · "
        f"Keras backend {_h(keras_backend(red))}</p>",
        f'<p class="summary">{_h(red.summary_line())}</p>',
    ]
    banner = _status_banner(red)
    if banner:
        parts.append(f'<div class="banner">{_h(banner)}</div>')
    parts.append(f"<p>{_h(method_note(red))}</p>")
    budget = budget_note(red)
    if budget:
        parts.append(f'<div class="banner">{_h(budget)}</div>' if "Warning" in budget else f"<p>{_h(budget)}</p>")
    return parts


def _html_figure(stem: str, path: Path) -> str:
    caption = _FIGURES.get(stem, (None, stem))[1]
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_h(stem.replace("_", " "))}">'
            f"<figcaption>{_h(caption)}</figcaption></figure>")


def _md_figure(stem: str, path: Path, base: Path) -> list[str]:
    caption = _FIGURES.get(stem, (None, stem))[1]
    return [f"![{md_escape(stem.replace('_', ' '))}]({_rel(Path(path), base)})", "", f"*{md_escape(caption)}*", ""]


def _as_plot_dict(plot_paths) -> dict[str, Path]:
    if plot_paths is None:
        return {}
    if isinstance(plot_paths, dict):
        return {str(k): Path(v) for k, v in plot_paths.items()}
    return {Path(p).stem: Path(p) for p in plot_paths}


# =========================================================================== Markdown
def render_notebook(red) -> str:
    """A sweep as a notebook shows it (``SweepResult._repr_html_``): an HTML fragment with the
    summary line, a partial-results note, the ranking table (its top rows; how many more) and
    the loss-vs-rate plot as an embedded PNG. No page, no CSS: the notebook styles it."""
    import io

    header, rows = _ranking_rows(red)
    parts = [f'<div class="lrrt-sweep"><p><b>{_h(red.name)}</b>: {_h(red.summary_line())} '
             f"&mdash; <code>{_h(red.out_dir)}</code></p>"]
    banner = _status_banner(red)
    if banner:
        parts.append(f"<p><i>{_h(banner)}</i></p>")
    parts.append(_html_table(header, rows[:RANKING_TOP], best_first=True))
    if rows[RANKING_TOP:]:
        parts.append(f"<p>{_h(_rest_summary(RANKING_TOP, len(rows)))}: see report.html.</p>")
    fig = fig_loss_vs_lr(red)
    if fig is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        parts.append(f'<img alt="smoothed loss vs learning rate" style="max-width:100%" '
                     f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">')
    parts.append("</div>")
    return "\n".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(md_escape(c) for c in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(out)


def render_markdown(red, plot_paths: dict[str, Path] | Sequence[Path]) -> str:
    """The report in GitHub Markdown (for a repository or a PR comment).

    Same sections as :func:`render_html`; images are referenced as relative paths
    (``plots/loss_vs_lr.png``) from the sweep directory. All sweep-provided text is
    escaped with :func:`md_escape`; error messages go inside ``<pre>`` blocks with
    :func:`html.escape`, which GitHub renders as literal text.
    """
    plot_paths = _as_plot_dict(plot_paths)
    lines = [
        "# Learning-rate range test report",
        "",
        f"Sweep **{md_escape(red.name)}**, ranked by mean minimum smoothed loss, ties by the "
        f"{md_escape(red.rank_by)} learning rate; Keras backend {md_escape(keras_backend(red))}.",
        "",
        f"**{md_escape(red.summary_line())}**",
        "",
    ]
    banner = _status_banner(red)
    if banner:
        lines += [f"> ⚠️ {md_escape(banner)}", ""]
    lines += [md_escape(method_note(red)), ""]
    budget = budget_note(red)
    if budget:
        lines += [("> ⚠️ " if "Warning" in budget else "") + md_escape(budget), ""]
    lines += ["## Ranking", ""]
    if red.ranking.empty:
        lines += ["No configurations.", ""]
    else:
        header, rows = _ranking_rows(red)
        lines += [_md_table(header, rows[:RANKING_TOP]), ""]
        if rows[RANKING_TOP:]:
            lines += [f"<details><summary>{_h(_rest_summary(RANKING_TOP, len(rows)))}</summary>", "",
                      _md_table(header, rows[RANKING_TOP:]), "", "</details>", ""]
    lines += ["## Recommendations", ""]
    recs = recommendations(red)
    if not recs:
        lines += ["No successful trials yet.", ""]
    for rec in recs:
        label, text = _recommendation_text(rec, red.rank_by)
        lines += [f"- **{md_escape(label)}**: {md_escape(text)}"]
    lines += [""]
    for sec in extra_sections(red):
        lines += _md_section(sec, plot_paths, red.out_dir)
    lines += ["## Plots", ""]
    if not plot_paths:
        lines += ["No plots: no successful trials.", ""]
    for stem, path in plot_paths.items():
        if stem not in _SECTION_FIGURES:
            lines += _md_figure(stem, path, red.out_dir)
    lines += ["## Learning rate vs batch size", "", md_escape(_GOYAL), ""]
    scaling = _scaling_rows(red)
    if scaling:
        lines += [_md_table(["optimizer", "batch sizes", "slope", "intercept (log10 lr)", "R²"], scaling), ""]
    else:
        lines += ["No fit: each optimizer needs successful trials at two or more batch sizes.", ""]
    for sec in (failed_section(red), missing_section(red)):
        lines += _md_section(sec, plot_paths, red.out_dir)
    return "\n".join(lines) + "\n"
