"""Seed bands: each configuration's curves over its seeds on a common log-lr grid (computing only).

Seeds of one configuration run the same ladder but may stop at different steps; the band
of a configuration is the mean and the min–max of its seeds' curves, interpolated linearly
in log10(lr) onto one grid. :func:`seed_bands` is computed once per report
(:func:`sweeps.report.info.build_report`) and drawn by the figures. No matplotlib here.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lrrt_core.suggest import DEFAULT_SMA, loss_change

__all__ = ["GRID_POINTS", "seed_bands", "series_label"]

GRID_POINTS = 200


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
