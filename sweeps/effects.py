"""Per-axis effects of a sweep: which grid axis matters, and which value of it is best (computing only).

The marginal view (as optuna's slice and importance plots give it) computed from a
:class:`sweeps.reduce.Reduction` as plain tables, drawn by :mod:`sweeps.report`: for each
grid axis (optimizer, batch size, every extra axis) one row per axis value with the ranking
criterion (the configuration's mean minimum smoothed loss over seeds) and the recommended
rate (``suggested_lr_gmean``), averaged over the other axes and at the best configuration
with that value; for the seed, the same over the ok trials of each seed. The *effect* of an
axis is the range (max - min) of its per-value mean loss: the larger, the more the axis
matters. Configurations without an ok seed do not count. No matplotlib here.

Example:
    >>> effs = axis_effects(red)                         # doctest: +SKIP
    >>> effs[0].axis, effs[0].table[["value", "loss_mean", "loss_best"]]   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["AxisEffect", "axis_effects"]

#: columns of :attr:`AxisEffect.table`.
EFFECT_COLUMNS = ["value", "n", "loss_mean", "loss_best", "best_config", "lr_gmean", "lr_best"]


@dataclasses.dataclass(frozen=True)
class AxisEffect:
    """The effect of one axis.

    Attributes:
        axis: the column name (``"optimizer"``, ``"batch_size"``, an extra axis, ``"seed"``).
        table: one row per axis value, sorted by value: ``value``, ``n`` (configurations, or
            ok trials for the seed), ``loss_mean`` (mean of the min loss over the other
            axes), ``loss_best`` (the lowest), ``best_config`` (where it is), ``lr_gmean``
            (geometric mean of the suggested rate over the other axes), ``lr_best`` (the
            suggested rate of ``best_config``).
        effect: ``max - min`` of ``loss_mean`` (NaN with fewer than two values).
    """

    axis: str
    table: pd.DataFrame
    effect: float


def _gmean(x: pd.Series) -> float:
    x = pd.to_numeric(x, errors="coerce").astype(float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if len(x) else float("nan")


def _marginal(frame: pd.DataFrame, axis: str, loss: str, lr: str, name: str) -> AxisEffect:
    """Group ``frame`` by ``axis``: mean / best of ``loss``, gmean of ``lr``, lr at the best."""
    f = frame[np.isfinite(frame[loss].astype(float))]
    g = f.groupby(axis, sort=True, dropna=False)  # an axis value given as null (YAML) is a value too
    best = f.loc[g[loss].idxmin()].set_index(axis)
    table = pd.DataFrame({"n": g.size(), "loss_mean": g[loss].mean(), "loss_best": g[loss].min(),
                          "best_config": best[name], "lr_gmean": g[lr].agg(_gmean),
                          "lr_best": best[lr].astype(float)})
    table = table.rename_axis("value").reset_index()[EFFECT_COLUMNS]
    if table["value"].isna().any():  # the null value shows as None (as in the configuration's name)
        table["value"] = table["value"].astype(object).where(table["value"].notna(), None)
    effect = float(table["loss_mean"].max() - table["loss_mean"].min()) if len(table) > 1 else float("nan")
    return AxisEffect(axis=axis, table=table, effect=effect)


def axis_effects(red) -> list[AxisEffect]:
    """One :class:`AxisEffect` per grid axis with two or more values (seed last), computed
    from ``red.ranking`` (configurations) and ``red.trials`` (seeds)."""
    r = red.ranking
    if r.empty:
        return []
    r = r[r["n_ok"] > 0]
    out = []
    for axis in ["optimizer", "batch_size", *red.axes]:
        if r[axis].nunique(dropna=False) >= 2:
            out.append(_marginal(r, axis, "min_loss_mean", "suggested_lr_gmean", "config"))
    t = red.trials[red.trials["status"] == "ok"]
    if t["seed"].nunique(dropna=False) >= 2:
        out.append(_marginal(t, "seed", "min_loss", "suggested_lr", "config"))
    return out
