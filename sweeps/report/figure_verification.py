"""The verification figure: held-out metric vs candidate rate, one panel per optimizer (drawing only).

``verification.png`` — (e) in :mod:`sweeps.report.figures` — in the report's "Verification" section.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sweeps.report.figure_kit import legend_below, mpl_text, new_figure, style_map, wrapped
from sweeps.report.info import FOCUS_TOP, ReportInfo, focus_note

__all__ = ["fig_verification"]


def fig_verification(info: ReportInfo):
    """(e) Held-out metric after short training vs the candidate rate as a multiple of the range
    test's recommendation (mean over seeds), one panel per optimizer, the verified pick marked
    with a star; ``None`` when the sweep has no verification results.

    Read it as "how far from the range test's answer training was best": a star at 1 means the
    recommendation was confirmed, at 3 that training preferred a rate 3x higher. The
    configurations of a panel sit side by side at each candidate (a small horizontal offset),
    so no marker hides another; values past the whiskers of the rest (a training that blew
    up) are drawn at the edge as triangles, so they do not squash the scale.
    """
    red = info.reduction
    v = red.verification
    if v is None or v.candidates.empty:
        return None
    cands = v.candidates[np.isfinite(v.candidates["metric"].astype(float))]
    order = _verified_focus(red, cands)
    if not order:
        return None
    cands = cands[cands["config"].isin(order)]
    opt_of = red.ranking.set_index("config")["optimizer"].astype(str)
    optimizers = list(dict.fromkeys(opt_of[c] for c in order))
    styles = style_map(order, [opt_of[c] for c in order])
    ncols = min(4, len(optimizers))
    nrows = int(math.ceil(len(optimizers) / ncols))
    width = max(10.0, 3.4 * ncols + 1.6)
    fig = new_figure((width, 3.4 * nrows + 1.6))  # legend_below adds the legend's height
    axs = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    lo, hi = _fences(cands["metric"].to_numpy(dtype=np.float64))
    for k, opt in enumerate(optimizers):
        ax = axs[k // ncols][k % ncols]
        mine = [c for c in order if opt_of[c] == opt]
        step = min(_DODGE, 0.36 / max(1, len(mine) - 1))  # side by side, within the candidate's own third
        for j, config in enumerate(mine):
            _draw_candidates(ax, cands[cands["config"] == config], styles[config], config,
                             red.ranking.set_index("config").loc[config], (j - (len(mine) - 1) / 2) * step, lo, hi)
        _candidate_axes(ax, cands, opt, k % ncols == 0, v)
    for k in range(len(optimizers), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        pad = 0.06 * (hi - lo)
        axs[0][0].set_ylim(lo - pad, hi + pad)
    legend_below(fig, axs)
    note = focus_note(red, len(order), "verified configurations") if v.candidates["config"].nunique() > len(order) else ""
    title = ("Verification: held-out metric after short training at each candidate rate, as a multiple of the range "
             "test's recommendation (★ the verified rate; ▲▼ off the scale)" + (f"\n{note}" if note else ""))
    fig.suptitle(wrapped(title, width - 0.3, 12), fontsize=12)
    return fig


#: horizontal offset (decades) between the configurations of one panel at the same candidate.
_DODGE = 0.1


def _verified_focus(red, cands: pd.DataFrame) -> list[str]:
    """The verified configurations the figure draws: the :data:`~sweeps.report.info.FOCUS_TOP`
    best by verified rank plus the best of each optimizer, in verified-rank order."""
    r = red.ranking[red.ranking["config"].isin(set(cands["config"]))]
    if r.empty:
        return []
    r = r.sort_values(["verified_rank", "rank"], na_position="last", kind="mergesort")
    keep = set(r["config"].head(FOCUS_TOP)) | set(r.drop_duplicates("optimizer")["config"])
    return [str(c) for c in r["config"] if c in keep]


def _fences(values: np.ndarray) -> tuple[float, float]:
    """Tukey's fences (quartiles -/+ 1.5 IQR), clipped to the data: the y range that shows the
    candidates that trained, without a blown-up one squashing them."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    q1, q3 = np.percentile(values, [25, 75])
    iqr = max(q3 - q1, 1e-12)
    return float(max(values.min(), q1 - 1.5 * iqr)), float(min(values.max(), q3 + 1.5 * iqr))


def _draw_candidates(ax, g: pd.DataFrame, st: dict, config: str, row: pd.Series, dodge: float, lo: float,
                     hi: float) -> None:
    """One configuration's candidates: line and markers (off-scale ones as triangles at the
    edge), the verified pick as a star; ``dodge`` decades to the side."""
    g = g.sort_values("factor")
    x = g["factor"].to_numpy(dtype=np.float64) * 10 ** dodge
    y = g["metric"].to_numpy(dtype=np.float64)
    yc = np.clip(y, lo, hi) if np.isfinite(lo) and np.isfinite(hi) else y
    label = f"{config} (recommended {_fmt_lr_short(row['suggested_lr_gmean'])})"
    ax.plot(x, yc, color=st["color"], linestyle=st["linestyle"], linewidth=1.4, label=mpl_text(label), gid=config)
    inside = yc == y
    ax.plot(x[inside], y[inside], linestyle="none", marker=st["marker"], markersize=6, color=st["color"], gid=config)
    for xs, mark, edge in ((x[y > hi], "^", hi), (x[y < lo], "v", lo)):
        if xs.size:  # inside the padded limits: no need to draw outside the axes
            ax.plot(xs, np.full(xs.size, edge), linestyle="none", marker=mark, markersize=7, color=st["color"],
                    gid=config)
    picked = np.isclose(g["lr"].to_numpy(dtype=np.float64), float(row.get("verified_lr", np.nan)))
    ax.plot(x[picked], yc[picked], linestyle="none", marker="*", markersize=15, color=st["color"],
            markeredgecolor="white", markeredgewidth=0.8, zorder=5, gid=config)


def _candidate_axes(ax, cands: pd.DataFrame, optimizer: str, first: bool, v) -> None:
    """Scale, ticks and labels of one optimizer's panel."""
    factors = sorted(set(float(f) for f in cands["factor"]))
    ax.set_xscale("log")
    ax.set_xlim(factors[0] / 1.8, factors[-1] * 1.8)
    ax.set_xticks(factors)
    ax.set_xticklabels([f"{f:.3g}x" for f in factors])
    ax.minorticks_off()
    ax.set_title(mpl_text(optimizer), fontsize=11)
    ax.set_xlabel("candidate rate / recommended rate")
    if first:
        ax.set_ylabel(f"held-out {mpl_text(v.metric)} ({'higher' if v.higher_is_better else 'lower'} is better)")
    ax.grid(True, which="major", alpha=0.3)


def _fmt_lr_short(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{value:.3g}" if np.isfinite(value) else "n/a"
