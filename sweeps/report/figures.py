"""The report's figures, drawn from a :class:`~sweeps.report.info.ReportInfo` (drawing only).

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
``verification.png``
    (e) held-out metric vs candidate rate, in the "Verification" section
    (:mod:`sweeps.report.figure_verification`).

Focus (``ReportInfo.focus``): figures (a)–(d) draw the 8 best-ranked configurations plus
the best of each optimizer and of each batch size, and say how many more there are. Legends
sit outside the axes. All colours come from :data:`lrrt_core.plot.PALETTE` (Okabe–Ito,
colour-blind safe) and the heat map uses ``viridis``; figures use constrained layout so
labels never overlap; sweep text is escaped for mathtext (``$``).

matplotlib is imported here, in :mod:`sweeps.report.figure_kit` (what the figures share) and in
:mod:`lrrt_core.plot` only; pyplot never.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lrrt_core.plot import PALETTE
from lrrt_core.suggest import DEFAULT_SMA
from sweeps.report.bands import seed_bands, series_label
from sweeps.report.cells import fmt_loss, fmt_value
from sweeps.report.figure_kit import MIN_WIDTH, legend_below, mpl_text, new_figure, style_map, text_width, wrapped
from sweeps.report.figure_verification import fig_verification
from sweeps.report.info import ReportInfo, focus_note

logger = logging.getLogger(__name__)

__all__ = ["FIGURES", "fig_loss_vs_lr", "fig_loss_change", "fig_lr_scaling", "fig_min_loss_heatmap",
           "fig_axis_effects", "fig_verification", "make_plots"]


def _batch_sizes(frame: pd.DataFrame) -> list:
    vals = [v for v in pd.unique(frame["batch_size"]) if v is not None and not pd.isna(v)]
    try:
        return sorted(vals, key=float)
    except (TypeError, ValueError):
        return sorted(vals, key=str)


def _panel_grid(n: int) -> tuple[int, int]:
    ncols = min(3, max(1, n))
    return int(math.ceil(n / ncols)), ncols


def _bands_figure(info: ReportInfo, bands: pd.DataFrame, *, ylabel: str, title: str, kind: str):
    """Shared layout of figures (a) and (b): one panel per batch size, a line per series."""
    red, focus = info.reduction, info.focus
    if focus:
        bands = bands[bands["config"].isin(focus)]
    sizes = _batch_sizes(bands)
    if not sizes:
        return None
    nrows, ncols = _panel_grid(len(sizes))
    width = max(MIN_WIDTH, 4.6 * ncols + 0.4)
    fig = new_figure((width, 3.6 * nrows + 0.6))  # legend_below adds the legend's height
    axs = fig.subplots(nrows, ncols, squeeze=False, sharey=False)
    styles = _focus_styles(red, bands)
    note = focus_note(red, len(focus))
    if note:
        title += f"\n{note} (ranking table: all)"
    ranking = red.ranking.set_index("config")
    for k, bs in enumerate(sizes):
        ax = axs[k // ncols][k % ncols]
        y_top, y_bot = _draw_bands(ax, bands[bands["batch_size"] == bs], styles, ranking, kind)
        ax.set_xscale("log")
        _band_ylim(ax, kind, y_top, y_bot)
        ax.set_title(mpl_text(f"batch size {bs}"), fontsize=11)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for k in range(len(sizes), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    legend_below(fig, axs)
    fig.suptitle(wrapped(title, width - 0.3, 12), fontsize=12)
    return fig


def _draw_bands(ax, sub: pd.DataFrame, styles: dict, ranking: pd.DataFrame, kind: str) -> tuple[list, list]:
    """One panel's bands, mean lines and suggestion markers; returns the y values that bound
    the useful part of the panel (start losses and lowest band values, or lowest changes)."""
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
        ax.plot(lr, mean, color=st["color"], linestyle=st["linestyle"], linewidth=1.8, label=mpl_text(label))
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
                lr_min = float(ranking.loc[config, "lr_at_min_loss_gmean"]) if config in ranking.index else math.nan
                y_bot.append(_descent_floor(lr, mean, lr_min))
    return y_top, y_bot


def _descent_floor(lr: np.ndarray, change: np.ndarray, lr_min: float) -> float:
    """How far a loss-change line goes down while the loss falls: the 2nd percentile of its
    values up to the rate of the minimum loss (``lr_min``; all of it when unknown). The
    spikes of a blow-up past the minimum (or one wild step) do not set the panel's scale."""
    part = change[(lr <= lr_min) & np.isfinite(change)] if np.isfinite(lr_min) else change[np.isfinite(change)]
    if part.size < 3:
        part = change[np.isfinite(change)]
    return float(np.percentile(part, 2)) if part.size else math.nan


def _band_ylim(ax, kind: str, y_top: list, y_bot: list) -> None:
    """Loss panels: cut the blow-up (it would squash the curve); change panels: the negative part."""
    if kind == "loss" and y_top:
        lo_, hi_ = min(y_bot), max(y_top)
        pad = 0.08 * (hi_ - lo_ if hi_ > lo_ else abs(hi_) + 1e-12)
        ax.set_ylim(lo_ - pad, hi_ + 3 * pad)
    elif kind == "change":
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        y_bot = [y for y in y_bot if np.isfinite(y)]
        if y_bot and min(y_bot) < 0:
            m = abs(min(y_bot))
            ax.set_ylim(-1.25 * m, 0.6 * m)


def _focus_styles(red, bands: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Styles of the series in ``bands`` (the focused ones): colour by optimizer, line style and
    marker by the series' place among its optimizer's series (order of appearance)."""
    order = bands.drop_duplicates("series")
    return style_map(list(order["series"]), [str(o) for o in order["optimizer"]])


def fig_loss_vs_lr(info: ReportInfo):
    """(a) Smoothed loss vs learning rate per batch size, mean over seeds with min–max band.

    Returns a :class:`matplotlib.figure.Figure`, or ``None`` when no trial is ok.
    """
    bands = info.bands
    if bands.empty:
        return None
    return _bands_figure(
        info, bands, kind="loss", ylabel="smoothed loss",
        title=f"Smoothed loss vs learning rate (mean over seeds; band: min–max; ● suggested lr, {info.rank_by})",
    )


def fig_loss_change(info: ReportInfo, sma: int = DEFAULT_SMA):
    """(b) The seed article's loss-change plot: (loss[i] - loss[i-sma]) / sma vs learning rate."""
    bands = info.change_bands if sma == DEFAULT_SMA else seed_bands(info.reduction, "loss_change", sma=sma)
    if bands.empty:
        return None
    return _bands_figure(
        info, bands, kind="change", ylabel=f"loss change per step (SMA {sma})",
        title=f"Rate of loss change vs learning rate (keras-lr-finder, SMA {sma}; most negative = fastest descent)",
    )


def fig_lr_scaling(info: ReportInfo):
    """(c) Suggested learning rate vs batch size per optimizer, log-log, fitted slope in the legend."""
    red = info.reduction
    r = red.ranking
    if r.empty:
        return None
    r = r[np.isfinite(pd.to_numeric(r["suggested_lr_gmean"], errors="coerce").astype(float))]
    r = r[pd.to_numeric(r["batch_size"], errors="coerce").notna()]
    if r["batch_size"].nunique() < 2:  # one batch size (or none): there is no scaling to show
        return None
    labels = [series_label(row, red.axes) for row in r.to_dict("records")]
    r = r.assign(series=labels)
    shown = list(dict.fromkeys(r.set_index("config").loc[[c for c in info.focus if c in set(r["config"])],
                                                          "series"]))
    note = focus_note(red, len(shown), "series") if len(shown) < len(set(labels)) else ""
    r = r[r["series"].isin(shown)] if shown else r
    pairs = list(dict.fromkeys(zip(r["series"], r["optimizer"].astype(str))))
    styles = style_map([p[0] for p in pairs], [p[1] for p in pairs])
    fits = {}
    for _, s in (red.scaling if red.scaling is not None else pd.DataFrame()).iterrows():
        fits[series_label(s, red.axes)] = s
    fig = new_figure((MIN_WIDTH, 4.4))  # legend_below adds the legend's height
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
                    markersize=7, capsize=3, label=mpl_text(text))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted(set(float(v) for v in r["batch_size"]))
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{v:g}" for v in sizes])
    ax.minorticks_off() if len(sizes) > 1 else None
    ax.set_xlabel("batch size (log scale)")
    ax.set_ylabel(f"suggested learning rate ({red.rank_by})")
    ax.set_title(wrapped("Suggested learning rate vs batch size\n(geometric mean over seeds, bars ×/÷ geometric sd)"
                          + (f"\n{len(shown)} best series of {len(set(labels))} shown" if note else ""),
                          MIN_WIDTH - 1.0, 11),
                 fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    legend_below(fig, [ax], title="fit: log lr = slope · log bs + c")
    return fig


def fig_min_loss_heatmap(info: ReportInfo):
    """(d) Heat map of the mean minimum smoothed loss over (optimizer + axes) × batch size."""
    red = info.reduction
    r = red.ranking
    if r.empty or not np.isfinite(r["min_loss_mean"].astype(float)).any():
        return None
    r = r.assign(series=[series_label(row, red.axes) for row in r.to_dict("records")])
    all_rows = list(dict.fromkeys(r["series"]))
    focus = set(info.focus)
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
        best[i, j] = not pd.isna(row["rank"]) and row["rank"] == 1  # an empty rank (no ok trial) is no star
    # row labels wrapped at 3 in (an axis value can be a 60-character model name); the figure
    # widened by what they need beyond the 1.6 in the base width leaves for them
    names = [wrapped(mpl_text(x), 3.0, 10, min_chars=12) for x in rows]
    label_w = max(text_width(len(line), 10) for n in names for line in n.split("\n"))
    lines = sum(n.count("\n") + 1 for n in names)
    width = max(5.5, 1.3 * len(cols) + 3.2 + max(0.0, label_w - 1.6))
    fig = new_figure((width, 0.55 * max(len(rows), 0.6 * lines) + 2.3))
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
    ax.set_xticklabels([mpl_text(c) for c in cols])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names)
    ax.set_xlabel("batch size")
    ax.set_ylabel("optimizer")
    more = f"\n{len(rows)} best rows of {len(all_rows)} shown" if len(rows) < len(all_rows) else ""
    ax.set_title(wrapped(f"Mean minimum smoothed loss (lower is better; ★ rank 1){more}", width - 2.2 - label_w, 11),
                 fontsize=11)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label("min smoothed loss")
    return fig


def fig_axis_effects(info: ReportInfo):
    """(f) Per-axis effects: for each axis, the mean (over the other axes) and best minimum
    loss (top row) and the suggested rate (bottom row, log) against the axis values; one
    legend below the panels. ``None`` when no axis has two values."""
    effects = info.effects
    if not effects:
        return None
    n = len(effects)
    width = max(MIN_WIDTH, 2.7 * n + 0.6)
    fig = new_figure((width, 5.3))  # legend_below adds the legend's height
    axs = fig.subplots(2, n, squeeze=False)
    for k, e in enumerate(effects):
        t = e.table
        x = np.arange(len(t))
        for row, (mean, best, ylabel) in enumerate((("loss_mean", "loss_best", "min smoothed loss"),
                                                     ("lr_gmean", "lr_best", f"suggested lr ({info.rank_by})"))):
            ax = axs[row][k]
            ax.plot(x, t[mean].astype(float), color=PALETTE[0], marker="o", markersize=4, label="mean over the rest")
            ax.plot(x, t[best].astype(float), color=PALETTE[1], marker="s", markersize=4, linestyle="--",
                    label="best configuration")
            step = max(1, int(math.ceil(len(t) / 6)))
            ax.set_xticks(x[::step])
            ax.set_xticklabels([mpl_text(fmt_value(v)) for v in t["value"].iloc[::step]], fontsize=8,
                               rotation=30 if step > 1 or n > 3 else 0)
            if row == 1:
                ax.set_yscale("log")
                ax.set_xlabel(mpl_text(e.axis.replace("_", " ")))
            else:
                ax.set_title(mpl_text(f"{e.axis.replace('_', ' ')} (effect {fmt_loss(e.effect)})"), fontsize=10)
            if k == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            ax.grid(True, alpha=0.3)
    legend_below(fig, axs[:1])
    fig.suptitle(wrapped("Per-axis effects: loss and suggested learning rate against each axis's values", width - 0.3,
                          11), fontsize=11)
    return fig


#: every figure by file stem, in drawing order (captions: ``sweeps.report.sections.CAPTIONS``).
FIGURES: dict[str, Callable[..., Any]] = {
    "loss_vs_lr": fig_loss_vs_lr, "loss_change": fig_loss_change, "lr_scaling": fig_lr_scaling,
    "min_loss_heatmap": fig_min_loss_heatmap, "axis_effects": fig_axis_effects, "verification": fig_verification,
}


def make_plots(info: ReportInfo, plots_dir: str | os.PathLike) -> dict[str, Path]:
    """Draw every figure into ``plots_dir`` (atomically); return ``{stem: path}`` in report order.

    A figure without data (e.g. no ok trial) is skipped; one that raises is logged and
    skipped, so a plotting bug never costs the tables or the report. Stale PNGs of the
    standard names that were not redrawn are removed so the folder matches the report.
    """
    from lrrt_core.plot import save_figure

    plots_dir = Path(plots_dir)
    paths: dict[str, Path] = {}
    for stem, builder in FIGURES.items():
        path = plots_dir / f"{stem}.png"
        try:
            fig = builder(info)
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


