"""A range-test curve: the raw per-step record plus metadata, and its smoothing.

The finder stores raw per-batch losses; everything else (smoothing, suggestions,
plots) is derived from them downstream, with its parameters recorded.
No TensorFlow here: this module is pure numpy (pandas only inside ``to_frame``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

STOP_REASONS = ("completed", "diverged", "nonfinite")
#: how a non-finite stop loss is recorded (``str(value)`` of the float).
NONFINITE_LOSSES = ("nan", "inf", "-inf")
DEFAULT_BETA = 0.98


class RunningEMA:
    """The bias-corrected exponential moving average, one value at a time.

    ``avg_i = beta * avg_{i-1} + (1 - beta) * x_i``, reported as ``avg_i / (1 - beta**(i+1))``
    (fastai / Lightning's LR-finder smoothing); ``beta = 0`` reports the values unchanged.
    The one implementation behind :func:`ema` (the analysis) and :class:`StopRule` (the
    range test's loop), so both smooth identically, to the last bit.
    """

    def __init__(self, beta: float = DEFAULT_BETA) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"smoothing beta must be in [0, 1), got {beta!r}")
        self.beta, self._avg, self._n = float(beta), 0.0, 0

    def update(self, x: float) -> float:
        """Add ``x``; return the smoothed value up to and including it."""
        self._avg = self.beta * self._avg + (1.0 - self.beta) * x
        self._n += 1
        return self._avg / (1.0 - self.beta ** self._n)


def ema(values: np.ndarray, beta: float = DEFAULT_BETA) -> np.ndarray:
    """Bias-corrected exponential moving average of ``values`` (:class:`RunningEMA`)."""
    values = np.asarray(values, dtype=np.float64)
    running = RunningEMA(beta)
    out = np.empty_like(values)
    for i, x in enumerate(values):
        out[i] = running.update(x)
    return out


class StopRule:
    """When a range test stops: at a NaN/inf loss, or once the smoothed loss exceeds
    ``threshold`` x the best smoothed loss so far (fastai / Lightning's "4x best" rule).

    Feed the losses in order with :meth:`update`; it returns ``None`` to go on,
    ``"nonfinite"`` (that step is cut) or ``"diverged"`` (that step is kept). ``threshold``
    ``None`` never stops on divergence; the rule is not applied while the best is <= 0 (it
    assumes a positive loss). The range test's loop (:mod:`lrrt_core.finder`) feeds it.
    """

    def __init__(self, beta: float = DEFAULT_BETA, threshold: float | None = 4.0) -> None:
        self.ema = RunningEMA(beta)
        self.threshold = threshold
        self.best = math.inf

    def update(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return "nonfinite"
        smoothed = self.ema.update(loss)
        if self.threshold is not None and 0.0 < self.best < math.inf and smoothed > self.threshold * self.best:
            return "diverged"
        if smoothed < self.best:
            self.best = smoothed
        return None


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing simple moving average over ``window`` points (shorter at the start).

    Point ``i`` is the mean of ``values[max(0, i-window+1) : i+1]``, so the output has the
    same length as the input (keras-lr-finder's moving average, without dropping points).
    """
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window!r}")
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(len(values))
    lo = np.maximum(0, idx - window + 1)
    return (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)


def centered(lrs: np.ndarray, values: np.ndarray, decades: float = 0.5) -> np.ndarray:
    """Centred moving average over a window of ``decades`` of learning rate (no lag).

    Point ``i`` is the mean of the values whose ``log10(lr)`` lies within ``decades / 2`` of
    ``log10(lrs[i])`` (fewer points near the ends). Unlike the causal EMA, which trails the
    raw curve — with beta 0.98, about 50 steps, almost two decades on a 200-step ladder over
    seven — its minimum sits where the raw loss is lowest, and a window set in decades
    smooths the same whatever the number of steps (60 or 240 with a sample budget).
    ``lrs`` must be positive and increasing.
    """
    x = np.log10(np.asarray(lrs, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    if not decades > 0:
        raise ValueError(f"decades must be > 0, got {decades!r}")
    csum = np.concatenate([[0.0], np.cumsum(values)])
    lo = np.searchsorted(x, x - decades / 2, side="left")
    hi = np.searchsorted(x, x + decades / 2, side="right")
    return (csum[hi] - csum[lo]) / (hi - lo)


def cut_nonfinite(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut both arrays at the first non-finite loss (NaN or inf), which is excluded."""
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        n = int(bad[0])
        return lrs[:n], losses[:n]
    return lrs, losses


@dataclasses.dataclass(frozen=True, eq=False)
class Curve:
    """One range test's record.

    Attributes:
        lrs: learning rate of each step run (float64, length ``steps_run``).
        losses: raw loss of each step (the exact loss of that batch, or the validation
            loss after that step when ``params["loss"] == "val"``); finite.
        stop_reason: ``"completed"`` (whole ladder run), ``"diverged"`` (smoothed loss went
            above ``diverge_threshold`` x best), or ``"nonfinite"`` (NaN/inf loss).
        diverged_lr: learning rate of the step that stopped the test, else ``None``.
        nonfinite_loss: for ``stop_reason == "nonfinite"``, the loss of the stopping step,
            which is not in ``losses``: ``"nan"``, ``"inf"`` or ``"-inf"``; ``None`` otherwise
            or when not recorded (curves from before it was). The suggestion ports need it:
            fastai's finder stops after an inf loss but runs on after a NaN
            (:func:`lrrt_core.suggest.peer_record_length`).
        steps_planned: length of the ladder.
        wall_s: wall time of the test in seconds.
        params: the parameters used (start_lr, end_lr, steps, ladder, loss, diverge_threshold,
            smoothing, seed, batch_size, ...), JSON-serialisable.
    """

    lrs: np.ndarray
    losses: np.ndarray
    stop_reason: str = "completed"
    diverged_lr: float | None = None
    steps_planned: int = 0
    wall_s: float = 0.0
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    nonfinite_loss: str | None = None

    def __post_init__(self) -> None:
        lrs = np.asarray(self.lrs, dtype=np.float64)
        losses = np.asarray(self.losses, dtype=np.float64)
        if lrs.shape != losses.shape or lrs.ndim != 1:
            raise ValueError(f"lrs and losses must be 1-D of equal length, got {lrs.shape} and {losses.shape}")
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"stop_reason must be one of {STOP_REASONS}, got {self.stop_reason!r}")
        if self.nonfinite_loss is not None and self.nonfinite_loss not in NONFINITE_LOSSES:
            raise ValueError(f"nonfinite_loss must be None or one of {NONFINITE_LOSSES}, got {self.nonfinite_loss!r}")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "losses", losses)

    @property
    def steps_run(self) -> int:
        return int(self.lrs.size)

    @property
    def beta(self) -> float:
        """EMA smoothing parameter recorded with the curve (0.98 if none was, or it is null)."""
        value = self.params.get("smoothing")
        return DEFAULT_BETA if value is None else float(value)

    def smoothed(self, beta: float | None = None) -> np.ndarray:
        """Bias-corrected EMA of the raw losses (``beta`` defaults to the recorded one)."""
        return ema(self.losses, self.beta if beta is None else beta)

    def to_frame(self):
        """``pandas.DataFrame`` with columns step, lr, loss, smoothed_loss."""
        import pandas as pd

        return pd.DataFrame(
            {
                "step": np.arange(self.steps_run, dtype=np.int64),
                "lr": self.lrs,
                "loss": self.losses,
                "smoothed_loss": self.smoothed(),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists of floats); inverse of :meth:`from_dict`."""
        return {
            "lrs": [float(x) for x in self.lrs],
            "losses": [float(x) for x in self.losses],
            "stop_reason": self.stop_reason,
            "diverged_lr": None if self.diverged_lr is None else float(self.diverged_lr),
            "steps_planned": int(self.steps_planned),
            "wall_s": float(self.wall_s),
            "params": dict(self.params),
            "nonfinite_loss": self.nonfinite_loss,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Curve":
        diverged = d.get("diverged_lr")
        return cls(
            lrs=np.asarray(d["lrs"], dtype=np.float64),
            losses=np.asarray(d["losses"], dtype=np.float64),
            stop_reason=d.get("stop_reason", "completed"),
            diverged_lr=None if diverged is None or (isinstance(diverged, float) and math.isnan(diverged)) else float(diverged),
            steps_planned=int(d.get("steps_planned", len(d["lrs"]))),
            wall_s=float(d.get("wall_s", 0.0)),
            params=dict(d.get("params", {})),
            nonfinite_loss=d.get("nonfinite_loss"),
        )
