"""The ranking of configurations: over seeds, like with like, and only what finished.

:func:`rank` aggregates the trials of each configuration over its seeds and ranks the
configurations by their mean minimum smoothed loss (ties: the larger suggested rate, then
the name). Two rules keep a rank meaning what it says:

* **Only what finished is ranked.** A configuration with no ok trial (all seeds missing or
  failed) has an empty ``rank`` and sorts last: "rank 1" is never a configuration without
  a result.
* **Like with like.** An extra grid axis can change what the loss *is* (a ``task`` axis
  mixing an MSE regression with a cross-entropy classifier, a ``loss`` axis): then the
  minimum losses of its values are not comparable, and a global ranking puts every
  configuration of the lowest-scaled value first. :func:`loss_scale_axes` finds such axes
  from the curves themselves — the loss at the start of a range test, before the ladder's
  tiny rates have trained anything, is the loss's own scale; where the medians of two values
  of an axis differ by :data:`LOSS_SCALE_RATIO` or more, the axis changes the loss's scale
  — and :func:`rank` ranks within each combination of those axes' values (``rank_group``
  names it, e.g. ``task=regression``). The report says so.

No Ray, no TensorFlow: pandas and numpy on the tables of :mod:`sweeps.reduce`.
"""

from __future__ import annotations

import math
import numpy as np
import pandas as pd

#: two values of an axis whose median initial losses differ by this factor or more are not
#: comparable by loss (cross-entropy over 10 vs 4 classes differs by 1.66x; the same task at
#: two widths or dropouts by a few percent).
LOSS_SCALE_RATIO = 1.5
#: share of a curve's first steps averaged into its initial loss (at least one step).
INITIAL_SHARE = 0.05


def initial_losses(curves: pd.DataFrame) -> pd.Series:
    """Per trial (``curves["trial"]``): the mean raw loss over the first :data:`INITIAL_SHARE`
    of its finite steps (at least one); the curves table holds each trial's steps in order."""
    finite = curves[np.isfinite(curves["loss"].to_numpy(dtype=np.float64))]
    by_trial = finite.groupby("trial", sort=False)
    n = by_trial["loss"].transform("size").to_numpy()
    head = by_trial.cumcount().to_numpy() < np.maximum(1, np.ceil(INITIAL_SHARE * n))
    return finite[head].groupby("trial", sort=False)["loss"].mean()


def loss_scale_axes(trials: pd.DataFrame, curves: pd.DataFrame, axis_cols: list[str]) -> dict[str, float]:
    """``{axis column: ratio}`` of the extra axes whose values' median initial losses differ
    by :data:`LOSS_SCALE_RATIO` or more (ratio = largest / smallest median), in axis order."""
    if not axis_cols or curves.empty:
        return {}
    init = initial_losses(curves)
    ok = trials[trials["status"] == "ok"].assign(initial=lambda t: t["trial_id"].map(init))
    out = {}
    for col in axis_cols:
        med = ok.groupby(ok[col].astype(str), sort=False)["initial"].median().abs()
        med = med[np.isfinite(med) & (med > 0)]
        if len(med) > 1 and med.max() / med.min() >= LOSS_SCALE_RATIO:
            out[col] = float(med.max() / med.min())
    return out


def group_labels(frame: pd.DataFrame, group_cols: list[str]) -> pd.Series:
    """``"a=1, b=x"`` per row for the grouping axes (``""`` for every row when there are none)."""
    if not group_cols:
        return pd.Series([""] * len(frame), index=frame.index, dtype="object")
    parts = [frame[c].astype(str).radd(f"{c}=") for c in group_cols]
    return pd.concat(parts, axis=1).agg(", ".join, axis=1)


def rank(ranking: pd.DataFrame, group_cols: list[str]) -> pd.DataFrame:
    """``ranking`` (one row per configuration, from the seed aggregation) sorted and ranked.

    Order: configurations with an ok trial first, then by mean minimum loss (rounded to 12
    significant digits, so float noise does not decide a tie), the larger suggested rate, the
    name. ``rank`` is 1..n within each ``rank_group`` (nullable integer), empty for a
    configuration with no ok trial.
    """
    has_ok = ranking["n_ok"] > 0
    key_loss = ranking["min_loss_mean"].map(lambda v: float(f"{v:.12g}") if np.isfinite(v) else math.inf)
    key_lr = -ranking["suggested_lr_gmean"].fillna(-math.inf)  # larger lr first, NaN last
    order = pd.DataFrame(
        {"no_ok": ~has_ok, "loss": key_loss, "lr": key_lr, "config": ranking["config"].astype(str)}
    ).sort_values(["no_ok", "loss", "lr", "config"], kind="mergesort")
    out = ranking.loc[order.index].reset_index(drop=True)
    out["rank_group"] = group_labels(out, group_cols)
    ranked = out["n_ok"] > 0
    ranks = out[ranked].groupby("rank_group", sort=False).cumcount() + 1
    out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out.loc[ranked, "rank"] = ranks.astype("int64").to_numpy()
    return out


def group_note(groups: dict[str, float]) -> str:
    """The report's sentence on ranks given within groups ("" when ranking is global)."""
    if not groups:
        return ""
    parts = ", ".join(f"{c} ({r:.3g}x)" for c, r in groups.items())
    return (f"Warning: the loss at the start of the range tests differs between the values of {parts}, so their "
            "losses are not comparable: configurations are ranked within each value (ranking.csv's rank_group), "
            "not across them.")


__all__ = ["LOSS_SCALE_RATIO", "initial_losses", "loss_scale_axes", "group_labels", "rank", "group_note"]
