"""What the report recommends per optimizer: :class:`Recommendation` (computing only).

:func:`recommendations` takes each optimizer's best-ranked configuration, the learning-rate
range where its mean smoothed loss falls (:func:`falling_range`, from the seed bands), its
lr-vs-batch-size slope and, after verification, its best verified configuration and rate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from sweeps.report.bands import seed_bands, series_label
from sweeps.report.cells import is_nan

__all__ = ["Recommendation", "recommendations", "falling_range"]


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
        verified_config: after verification, this optimizer's configuration with the best
            verified rank (``None`` before verification); it may differ from ``config``.
        verified_lr: the candidate rate that trained best for ``verified_config``.
        verified_rank / n_verified: its rank among the verified configurations.
        verified_range_lr / verified_range_rank: the range test's suggestion and rank for
            ``verified_config`` (what the verified answer replaces).
        metric / verified_metric: the held-out metric that picked the rate, and its value.
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
    verified_config: str | None = None
    verified_lr: float = math.nan
    verified_rank: int | None = None
    n_verified: int = 0
    verified_range_lr: float = math.nan
    verified_range_rank: int | None = None
    metric: str = ""
    verified_metric: float = math.nan

    @property
    def verified(self) -> bool:
        """True when verification picked a rate for this optimizer."""
        return self.verified_config is not None and math.isfinite(self.verified_lr)

    @property
    def lr(self) -> float:
        """The rate to train with: the verified one when there is one, else the range test's."""
        return self.verified_lr if self.verified else self.suggested_lr

    @property
    def lr_source(self) -> str:
        """``"verified"`` or ``"range test"``: where :attr:`lr` comes from."""
        return "verified" if self.verified else "range test"

    @property
    def lr_change(self) -> float:
        """``verified_lr / verified_range_lr`` (NaN before verification): how far training
        moved the range test's rate for the verified configuration."""
        return self.verified_lr / self.verified_range_lr if self.verified and self.verified_range_lr > 0 else math.nan


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
    """One :class:`Recommendation` per optimizer, from its best-ranked configuration
    (``bands``: :func:`~sweeps.report.bands.seed_bands` of ``red``, computed when not given)."""
    ranking = red.ranking
    if ranking.empty:
        return []
    if bands is None:
        bands = seed_bands(red)
    slopes = {}
    if red.scaling is not None and not red.scaling.empty:
        for _, s in red.scaling.iterrows():
            slopes.setdefault(s["optimizer"], float(s["slope"]))
    out = []
    n_ranked = int(ranking["rank"].notna().sum())
    metric = red.verification.metric if getattr(red, "verification", None) is not None else ""
    for opt in pd.unique(ranking["optimizer"]):
        rows = ranking[(ranking["optimizer"] == opt) & (ranking["n_ok"] > 0)].sort_values("rank")
        if rows.empty:
            out.append(Recommendation(optimizer=str(opt), config=None, n_configs=n_ranked))
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
                rank=None if is_nan(best["rank"]) else int(best["rank"]),
                n_configs=n_ranked,
                min_loss_mean=float(best["min_loss_mean"]),
                min_loss_std=float(best["min_loss_std"]),
                n_ok=int(best["n_ok"]),
                suggested_lr=float(best["suggested_lr_gmean"]),
                suggested_gsd=float(best["suggested_lr_gsd"]),
                falling_lo=lo,
                falling_hi=hi,
                slope=slopes.get(opt, math.nan),
                **_verified_fields(ranking, opt, metric),
            )
        )
    return out


def _verified_fields(ranking: pd.DataFrame, optimizer: str, metric: str) -> dict[str, Any]:
    """The :class:`Recommendation` fields of ``optimizer``'s best verified configuration
    (``{}`` when none of its configurations was verified)."""
    if "verified_rank" not in ranking:
        return {}
    verified = ranking[ranking["verified_rank"].notna() & np.isfinite(ranking["verified_lr"].astype(float))]
    mine = verified[verified["optimizer"] == optimizer].sort_values("verified_rank")
    if mine.empty:
        return {}
    b = mine.iloc[0]
    return {"verified_config": str(b["config"]), "verified_lr": float(b["verified_lr"]),
            "verified_rank": int(b["verified_rank"]), "n_verified": len(verified),
            "verified_range_lr": float(b["suggested_lr_gmean"]),
            "verified_range_rank": None if is_nan(b["rank"]) else int(b["rank"]),
            "metric": metric, "verified_metric": float(b["verified_metric"])}
