"""The shared pipeline of every suggestion method: the input, the NaN cut, the smoothing,
the window, and the value returned (pure numpy).

1. **cut** the curve at the first non-finite loss (:func:`lrrt_core.curve.cut_nonfinite`);
2. **smooth** the whole finite prefix with the bias-corrected EMA (:func:`lrrt_core.curve.ema`,
   ``beta`` = the curve's recorded ``params["smoothing"]``, else 0.98) — smoothing runs from
   step 0, as fastai and Lightning do, so the values picked are the ones a plot shows;
3. **trim** the start and the end of the curve (the window: :func:`trim_window`, or a peer's
   :func:`peer_window` on the record :func:`peer_record_length` says it would have made);

:func:`prepare` does all three; a method (:mod:`lrrt_core.suggest.methods`) then **picks** an
index inside the window and returns a :class:`Suggestion`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lrrt_core.curve import Curve, cut_nonfinite, ema

#: default start trim of ``steepest`` and ``sma_rule`` (keras-lr-finder's n_skip_beginning=10);
#: the fastai ports skip ``steps_planned // 10`` instead (fastai's ``num_it // 10``).
DEFAULT_SKIP_START = 10
#: default end trim of every method (fastai's ``[:-5]``, keras-lr-finder's n_skip_end=5).
DEFAULT_SKIP_END = 5
#: the finders whose records the ports model (:func:`peer_record_length`).
PEERS = ("fastai", "keras_lr_finder")
#: fewest finite points a curve needs before any method answers.
DEFAULT_MIN_POINTS = 5
#: a window whose loss range is below this fraction of its magnitude counts as flat.
FLAT_RTOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """A suggested learning rate, or a reasoned "no suggestion".

    Attributes:
        method: name of the method (a name in :data:`lrrt_core.suggest.METHODS`).
        lr: suggested learning rate, or ``None`` when there is no suggestion.
        index: index on the (NaN-cut) curve that the suggestion comes from, or ``None``.
            For ``minimum_div10`` it is the index of the minimum (``lr`` is a tenth of
            ``lrs[index]`` and lies left of it, as fastai plots it).
        reason: why there is no suggestion ("all losses NaN"), or a short note on the pick.
    """

    method: str
    lr: float | None
    index: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when there is a learning rate (``index`` may be ``None`` for an lr set by hand)."""
        return self.lr is not None



def trim_window(n: int, skip_start: int = DEFAULT_SKIP_START, skip_end: int = DEFAULT_SKIP_END) -> slice:
    """Slice of ``range(n)`` left after skipping ``skip_start`` / ``skip_end`` points.

    The skips never empty a curve: when together they exceed half the points, both are
    scaled down proportionally so that at most ``n // 2`` points are skipped
    (``trim_window(20, 10, 5)`` keeps points 6..16). ``n == 0`` gives an empty slice.

    Args:
        n: number of points.
        skip_start: points to drop at the start (the EMA warm-up and the flat region).
        skip_end: points to drop at the end (the blow-up).

    Returns:
        ``slice(lo, hi)`` with ``hi - lo >= 1`` whenever ``n >= 1``.
    """
    if skip_start < 0 or skip_end < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got {skip_start!r}, {skip_end!r}")
    n = int(n)
    if n <= 0:
        return slice(0, 0)
    total = skip_start + skip_end
    budget = n // 2
    if total > budget:
        skip_start = (skip_start * budget) // total
        skip_end = (skip_end * budget) // total
    return slice(int(skip_start), n - int(skip_end))


def peer_record_length(curve: Curve, peer: str) -> int:
    """Number of points ``peer``'s own finder would have recorded for the test ``curve`` records.

    lrrt's finder keeps the step that trips the divergence rule (both peers record that step,
    then stop) but not a non-finite step (``stop_reason == "nonfinite"``). On a non-finite loss:

    * keras-lr-finder records it, then stops (``on_batch_end``: ``self.losses.append(loss)``,
      then ``if ... math.isnan(loss) or loss > self.best_loss * 4: stop``; an inf is > 4 x best):
      one point more than ``curve.losses``;
    * fastai records the smoothed loss (``Recorder.after_batch``) and its ``LRFinder`` stops
      when ``smooth_loss > 4 * best_loss``: true for an inf, so one point more; false for a
      NaN, so fastai runs on to ``num_it`` steps whose smoothed loss is NaN from the first NaN
      on: ``steps_planned`` points. A ``"-inf"`` or unrecorded (``None``) value counts as NaN.

    Args:
        curve: the range-test curve.
        peer: ``"fastai"`` or ``"keras_lr_finder"`` (:data:`PEERS`).

    Returns:
        The record's length, >= ``curve.steps_run``.

    References:
        fastai ``fastai/callback/schedule.py`` ``LRFinder.after_batch``, ``fastai/learner.py``
        ``Recorder.after_batch``; surmenok/keras-lr-finder ``keras_lr_finder/lr_finder.py``
        ``on_batch_end``.
    """
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
    n = curve.steps_run
    if curve.stop_reason != "nonfinite":
        return n
    if peer == "keras_lr_finder" or curve.nonfinite_loss == "inf":
        return n + 1
    return max(int(curve.steps_planned), n + 1)


def peer_window(
    n_finite: int,
    n_record: int,
    skip_start: int,
    skip_end: int = DEFAULT_SKIP_END,
    min_points: int = DEFAULT_MIN_POINTS,
) -> slice:
    """A peer's window on its record, cut at the first non-finite point.

    fastai's ``lr_find`` takes ``recorder.losses[num_it//10:-5]`` and then cuts at the first
    NaN; keras-lr-finder's ``get_best_lr`` takes ``[n_skip_beginning:-n_skip_end]`` of a record
    whose only non-finite point is its last. Both are ``range(skip_start, n_record - skip_end)``
    cut at ``n_finite``: the end skip counts the record's points that are not in the finite
    prefix (the NaN/inf step, fastai's NaN tail), so it removes
    ``max(skip_end - (n_record - n_finite), 0)`` finite points.

    Where that window would keep fewer than ``min_points`` points, the skips shrink as
    :func:`trim_window` does (fastai would crash on an empty window or answer from a handful of
    points); ``skip_end=0`` skips nothing (keras-lr-finder's ``[s:-0]`` is empty).

    Args:
        n_finite: length of the finite prefix of the record (the points a suggestion may pick).
        n_record: length of the peer's whole record (>= ``n_finite``).
        skip_start: points the peer skips at the start.
        skip_end: points the peer skips at the end of its whole record.
        min_points: fewest points the exact window may keep before the skips shrink.

    Returns:
        ``slice(lo, hi)`` into the finite prefix; non-empty whenever ``n_finite >= 1``.

    Example:
        >>> peer_window(100, 100, 10)  # a completed test of 100 steps
        slice(10, 95, None)
        >>> peer_window(60, 100, 10)   # NaN at step 60: fastai runs on to step 100
        slice(10, 60, None)
        >>> peer_window(60, 61, 10)    # keras-lr-finder recorded the NaN step, then stopped
        slice(10, 56, None)
    """
    if skip_start < 0 or skip_end < 0:
        raise ValueError(f"skip_start and skip_end must be >= 0, got {skip_start!r}, {skip_end!r}")
    if n_record < n_finite:
        raise ValueError(f"n_record ({n_record}) must be >= n_finite ({n_finite})")
    end_skip = max(skip_end - (n_record - n_finite), 0)
    lo, hi = int(skip_start), int(n_finite - end_skip)
    if hi - lo >= min_points:
        return slice(lo, hi)
    return trim_window(n_finite, skip_start, end_skip)

@dataclasses.dataclass(frozen=True)
class Prepared:
    lrs: np.ndarray  # finite prefix
    raw: np.ndarray
    smoothed: np.ndarray
    window: slice
    problem: str  # "" when usable


def as_curve(curve_or_lrs: Curve | np.ndarray, losses: np.ndarray | None = None) -> Curve:
    """A :class:`Curve`, or ``lrs, losses`` arrays taken as a record as it is (no planned
    length, no stop reason, the default smoothing): what every method accepts."""
    if isinstance(curve_or_lrs, Curve):
        if losses is not None:
            raise TypeError("pass either a Curve or (lrs, losses), not a Curve and losses")
        return curve_or_lrs
    if losses is None:
        raise TypeError(f"expected a Curve or (lrs, losses) arrays, got {type(curve_or_lrs).__name__} alone")
    return Curve(np.asarray(curve_or_lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64))


def _peer_skip_start(curve_or_lrs: Any, n_record: int, steps_planned: int | None) -> int:
    """fastai's ``num_it // 10``: ``steps_planned`` given, else the Curve's, else the record's length."""
    if steps_planned is None and isinstance(curve_or_lrs, Curve) and curve_or_lrs.steps_planned > 0:
        steps_planned = curve_or_lrs.steps_planned
    if steps_planned is None:
        steps_planned = n_record
    if isinstance(steps_planned, bool) or not isinstance(steps_planned, (int, np.integer)) or steps_planned < 0:
        raise ValueError(f"steps_planned must be an integer >= 0, got {steps_planned!r}")
    return int(steps_planned) // 10


def _window(
    curve_or_lrs: Any,
    n_all: int,
    n: int,
    *,
    peer: str | None,
    skip_start: int | None,
    skip_end: int,
    steps_planned: int | None,
    min_points: int,
) -> slice:
    """The trimmed window on the finite prefix of ``n`` points (``peer=None``: lrrt's own trim)."""
    if peer is None:
        return trim_window(n, DEFAULT_SKIP_START if skip_start is None else skip_start, skip_end)
    # plain arrays are taken as the peer's record as it is; a Curve as lrrt's record of the test
    n_record = peer_record_length(curve_or_lrs, peer) if isinstance(curve_or_lrs, Curve) else n_all
    if skip_start is None:
        skip_start = _peer_skip_start(curve_or_lrs, n_record, steps_planned)
    return peer_window(n, n_record, skip_start, skip_end, min_points)


def prepare(
    curve_or_lrs: Any,
    losses: Any,
    *,
    skip_start: int | None,
    skip_end: int,
    beta: float | None,
    min_points: int,
    peer: str | None = None,
    steps_planned: int | None = None,
) -> Prepared:
    curve = as_curve(curve_or_lrs, losses)
    lrs_all, losses_all = curve.lrs, curve.losses
    beta = curve.beta if beta is None else float(beta)
    lrs, raw = cut_nonfinite(lrs_all, losses_all)
    n_all, n = losses_all.size, raw.size
    empty = np.empty(0)
    problem = ""
    if n_all == 0:
        problem = "curve is empty"
    elif n == 0:
        if np.isnan(losses_all).all():
            problem = "all losses NaN"
        elif not np.isfinite(losses_all).any():
            problem = "all losses non-finite (NaN/inf)"
        else:
            problem = "loss is non-finite (NaN/inf) from the first step"
    elif n < min_points:
        cut = f" finite (cut at the first NaN/inf at step {n})" if n < n_all else ""
        problem = f"curve has {n}{cut} point{'s' if n != 1 else ''}, need >= {min_points}"
    elif not (np.isfinite(lrs).all() and (lrs > 0).all()):
        problem = "learning rates must be finite and > 0"
    elif not (np.diff(lrs) > 0).all():
        problem = "learning rates must be strictly increasing"
    if problem:
        return Prepared(empty, empty, empty, slice(0, 0), problem)
    window = _window(curve_or_lrs, n_all, n, peer=peer, skip_start=skip_start, skip_end=skip_end,
                     steps_planned=steps_planned, min_points=min_points)
    return Prepared(lrs, raw, ema(raw, beta), window, "")


def is_flat(values: np.ndarray) -> bool:
    if values.size < 2:
        return True
    scale = float(np.max(np.abs(values)))
    return float(np.ptp(values)) <= FLAT_RTOL * max(scale, np.finfo(np.float64).tiny)


def window_problem(values: np.ndarray, what: str = "smoothed loss", *, below_first: bool = False) -> str:
    """Reason a window of loss values cannot give a suggestion ("" if it can).

    ``below_first``: also require some value below the first one (for the minimum rules,
    whose pick would otherwise be the window's first point).
    """
    if values.size < 2:
        return f"{values.size} point(s) left after trimming, need >= 2"
    if is_flat(values):
        return f"{what} is flat (constant) over the trimmed window"
    if below_first and not (values[1:] < values[0]).any():
        return f"loss never decreases ({what} never goes below its first value in the trimmed window)"
    return ""


def no_suggestion(method: str, reason: str) -> Suggestion:
    return Suggestion(method=method, lr=None, index=None, reason=reason)


__all__ = ["Suggestion", "Prepared", "as_curve", "prepare", "trim_window", "peer_window", "peer_record_length", "PEERS",
           "DEFAULT_SKIP_START", "DEFAULT_SKIP_END", "DEFAULT_MIN_POINTS", "FLAT_RTOL", "is_flat", "window_problem",
           "no_suggestion"]
