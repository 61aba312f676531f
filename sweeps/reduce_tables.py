"""The sweep's tables from its trial rows and curves: ``trials.csv``, ``curves.parquet``,
``ranking.csv`` (aggregated over seeds and ranked) and the lr-vs-batch-size fit.

Pure pandas and numpy (no Ray): :mod:`sweeps.reduce` composes these with the rows of
:mod:`sweeps.reduce_rows`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sweeps import ranking as ranking_mod
from sweeps.reduce_rows import TRIAL_ID_COLUMNS, trial_columns
from sweeps.verification import RANKING_COLUMNS as VERIFIED_COLUMNS

_CURVE_ID_COLUMNS = ["trial", "name", "config", "optimizer", "batch_size", "seed"]
CURVE_COLUMNS = _CURVE_ID_COLUMNS + ["step", "lr", "loss", "smoothed_loss"]
_RANK_ID_COLUMNS = ["config", "optimizer", "batch_size"]
_RANK_STATS = [
    "n_ok",
    "n_failed",
    "n_missing",
    "min_loss_mean",
    "min_loss_std",
    "suggested_lr_gmean",
    "suggested_lr_gsd",
    "steepest_lr_gmean",
    "valley_lr_gmean",
    "lr_at_min_loss_gmean",
    "rank",
    "rank_group",
]
RANKING_COLUMNS = _RANK_ID_COLUMNS + _RANK_STATS + VERIFIED_COLUMNS
STATUSES = ("ok", "failed", "missing")


def axis_column(axis: str) -> str:
    """Column name for an extra grid axis (prefixed ``axis_`` if it clashes)."""
    reserved = set(trial_columns()) | set(CURVE_COLUMNS) | set(RANKING_COLUMNS) | {"status"}
    return f"axis_{axis}" if axis in reserved else axis


def normalise_axis_column(series: pd.Series) -> pd.Series:
    """Keep a numeric axis numeric; anything mixed becomes text (parquet needs one type)."""
    vals = [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pd.to_numeric(series, errors="coerce")
    if vals and all(isinstance(v, bool) for v in vals):
        return series
    return series.map(lambda v: None if v is None else (v if isinstance(v, str) else _jsonish(v)))


def _jsonish(value: Any) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return str(value)


def trials_table(rows: list[dict[str, Any]], axis_cols: list[str]) -> pd.DataFrame:
    columns = TRIAL_ID_COLUMNS + axis_cols + [c for c in trial_columns() if c not in TRIAL_ID_COLUMNS]
    trials = pd.DataFrame(rows, columns=columns)
    for col in axis_cols:
        trials[col] = normalise_axis_column(trials[col])
    for col in ("steps", "attempts"):
        trials[col] = pd.to_numeric(trials[col], errors="coerce").astype("Int64")
    for col in ("batch_size", "seed"):
        trials[col] = _maybe_int(trials[col])
    return trials


def curves_table(curve_frames: list[tuple[dict, pd.DataFrame]], axes: list[str], axis_cols: list[str]) -> pd.DataFrame:
    """Every ok curve in long form, the trial's identity columns in front (one concat,
    identity columns repeated per step with numpy: no per-trial column inserts)."""
    curve_columns = _CURVE_ID_COLUMNS + axis_cols + ["step", "lr", "loss", "smoothed_loss"]
    if curve_frames:
        curves = pd.concat([cf for _, cf in curve_frames], ignore_index=True)
        lengths = [len(cf) for _, cf in curve_frames]
        idents = [ident for ident, _ in curve_frames]
        ident_cols = {"trial": [i["trial_id"] for i in idents], **{k: [i[k] for i in idents] for k in _CURVE_ID_COLUMNS[1:]}}
        for a, col in zip(axes, axis_cols):
            ident_cols[col] = [i["axes"].get(a) for i in idents]
        for k, values in ident_cols.items():
            curves[k] = np.repeat(_object_array(values), lengths)
        curves = curves[curve_columns]
    else:
        curves = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("lr", "loss", "smoothed_loss") else "object")
                               for c in curve_columns})
    for col in axis_cols:
        curves[col] = normalise_axis_column(curves[col])
    for col in ("batch_size", "seed"):
        curves[col] = _maybe_int(curves[col])
    return curves


def _object_array(values: list) -> np.ndarray:
    """A 1-D object array of ``values`` as they are (a list-valued axis stays one cell)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _maybe_int(series: pd.Series) -> pd.Series:
    """Integer-valued columns (batch size, seed) as nullable Int64; else left alone."""
    num = pd.to_numeric(series, errors="coerce")
    finite = num.dropna()
    if len(finite) == series.notna().sum() and (finite == finite.round()).all():
        return num.astype("Int64")
    return series


def _aggregate_seeds(trials: pd.DataFrame, axis_cols: list[str]) -> pd.DataFrame:
    """Per configuration (first-appearance order): identity of its first trial, status counts,
    loss mean / sd over ok seeds and geometric means / sd of the rates — one group-by each."""
    keys = trials["config"]
    first = trials.drop_duplicates("config").set_index("config")[["optimizer", "batch_size", *axis_cols]]
    status = pd.crosstab(keys, trials["status"]).reindex(columns=list(STATUSES), fill_value=0)
    ok = trials[trials["status"] == "ok"]
    g_loss = ok["min_loss"].astype(float).groupby(ok["config"], sort=False)
    out = first.assign(n_ok=status["ok"], n_failed=status["failed"], n_missing=status["missing"],
                       min_loss_mean=g_loss.mean(), min_loss_std=g_loss.std(ddof=1))
    for col in ("suggested_lr", "steepest_lr", "valley_lr", "lr_at_min_loss"):
        x = pd.to_numeric(ok[col], errors="coerce").astype(float)
        logs = np.log(x.where(np.isfinite(x) & (x > 0)))
        g = logs.groupby(ok["config"], sort=False)
        out[f"{col}_gmean"] = np.exp(g.mean())
        if col == "suggested_lr":
            out["suggested_lr_gsd"] = np.exp(g.std(ddof=1))
    for col in ("n_ok", "n_failed", "n_missing"):
        out[col] = out[col].fillna(0).astype(int)
    return out.rename_axis("config").reset_index()


def rank_configs(trials: pd.DataFrame, axis_cols: list[str], group_cols: list[str] = ()) -> pd.DataFrame:
    """Aggregate trials over seeds per configuration and rank them (:func:`sweeps.ranking.rank`)."""
    columns = _RANK_ID_COLUMNS + axis_cols + _RANK_STATS
    if trials.empty:
        return pd.DataFrame(columns=columns)
    return ranking_mod.rank(_aggregate_seeds(trials, axis_cols), list(group_cols))[columns]



# --------------------------------------------------------------------------- scaling fit
def fit_lr_scaling(ranking: pd.DataFrame, lr_column: str = "suggested_lr_gmean") -> pd.DataFrame:
    """Fit ``log10(lr) = slope * log10(batch_size) + intercept`` per optimizer.

    The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD") predicts
    slope ≈ 1 for SGD (double the batch, double the learning rate); for Adam a square-root
    rule, slope ≈ 0.5, is often reported. Least squares on the log-log points
    (``numpy.polyfit`` of degree 1). Rows with the same optimizer but different extra
    axis values are fitted separately (one series per optimizer × axes).

    Args:
        ranking: the ranking table (:attr:`Reduction.ranking`).
        lr_column: which learning-rate column to fit.

    Returns:
        DataFrame with ``optimizer``, the axis columns, ``n_batch_sizes``, ``slope``,
        ``intercept``, ``r2`` — one row per series that has finite positive learning
        rates at two or more distinct batch sizes.

    Example:
        >>> r = pd.DataFrame({"optimizer": ["sgd"] * 3, "batch_size": [32, 64, 128],
        ...                   "suggested_lr_gmean": [0.01, 0.02, 0.04]})
        >>> fit_lr_scaling(r)[["optimizer", "slope"]].round(6).values.tolist()
        [['sgd', 1.0]]
    """
    axis_cols = [c for c in ranking.columns if c not in set(RANKING_COLUMNS)]
    columns = ["optimizer"] + axis_cols + ["n_batch_sizes", "slope", "intercept", "r2"]
    if ranking.empty or lr_column not in ranking:
        return pd.DataFrame(columns=columns)
    keys = ["optimizer"] + axis_cols
    out = []
    for key, g in ranking.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        bs = pd.to_numeric(g["batch_size"], errors="coerce").to_numpy(dtype=np.float64)
        lr = pd.to_numeric(g[lr_column], errors="coerce").to_numpy(dtype=np.float64)
        good = np.isfinite(bs) & (bs > 0) & np.isfinite(lr) & (lr > 0)
        x, y = np.log10(bs[good]), np.log10(lr[good])
        if np.unique(x).size < 2:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        resid = y - (slope * x + intercept)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
        row = dict(zip(keys, key))
        row.update(n_batch_sizes=int(np.unique(x).size), slope=float(slope), intercept=float(intercept), r2=r2)
        out.append(row)
    return pd.DataFrame(out, columns=columns)


__all__ = ["CURVE_COLUMNS", "RANKING_COLUMNS", "STATUSES", "axis_column", "normalise_axis_column", "trials_table",
           "curves_table", "rank_configs", "fit_lr_scaling"]
