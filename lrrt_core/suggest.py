"""Learning-rate suggestions from a range-test curve (pure numpy).

Every method is the same short pipeline of small pure pieces:

1. **cut** the curve at the first non-finite loss (:func:`lrrt_core.curve.cut_nonfinite`);
2. **smooth** the whole finite prefix with the bias-corrected EMA (:func:`lrrt_core.curve.ema`,
   ``beta`` = the curve's recorded ``params["smoothing"]``, else 0.98) — smoothing runs from
   step 0, as fastai and Lightning do, so the values picked are the ones a plot shows;
3. **trim** the start and the end of the curve (the window);
4. **pick** an index inside the window.

The methods named after a peer window the curve exactly as that peer does (:func:`peer_window`),
on the record the peer's own finder would have made of the same test
(:func:`peer_record_length`):

* ``minimum``, ``minimum_div10``, ``valley`` — fastai's ``Learner.lr_find``: skip
  ``num_it // 10`` of the *planned* steps (``steps_planned // 10``) and the last 5 points of
  the whole record, then cut at the first NaN;
* ``sma_rule`` — keras-lr-finder's ``get_best_lr``: ``[n_skip_beginning:-n_skip_end]`` of the
  record, whose last point is the non-finite loss when the test stopped on one.

Where the peer's window would keep fewer than ``min_points`` points (fastai crashes on an empty
one), the skips shrink instead (:func:`trim_window`), so a short curve is never emptied.
``steepest`` is lrrt's own rule and trims the finite curve with :func:`trim_window`.

A method that cannot give a sensible answer (too few points, all-NaN losses, a flat curve,
a loss that never decreases) returns a :class:`Suggestion` with ``lr=None``,
``index=None`` and a ``reason`` — never a crash, never a nonsense index.

Example:
    >>> import numpy as np
    >>> from lrrt_core.suggest import steepest
    >>> lrs = np.logspace(-5, 0, 101)
    >>> losses = 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.5)
    >>> s = steepest(lrs, losses, beta=0.0, skip_start=0, skip_end=0)
    >>> s.method, round(float(np.log10(s.lr)), 2), s.index
    ('steepest', -2.5, 50)

References:
    Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks. arXiv:1506.01186.
    Smith, L. N. (2018). A disciplined approach to neural network hyper-parameters: Part 1.
    arXiv:1803.09820.
    fastai, ``fastai/callback/schedule.py``: ``minimum``, ``steep``, ``valley`` (valley by ESRI,
    https://forums.fast.ai/t/automated-learning-rate-suggester/44199/30).
    surmenok/keras-lr-finder, ``keras_lr_finder/lr_finder.py``: ``get_derivatives``,
    ``get_best_lr(sma, n_skip_beginning=10, n_skip_end=5)``.
    Lightning ``LearningRateFinder``; Lightning-AI/pytorch-lightning#21141 (the slope must be
    taken against log lr, not lr).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from lrrt_core.curve import DEFAULT_BETA, Curve, centered, cut_nonfinite, ema

__all__ = [
    "METHODS",
    "ALIASES",
    "method_name",
    "Suggestion",
    "minimum",
    "minimum_div10",
    "steepest",
    "valley",
    "sma_rule",
    "centered_min_div3",
    "centered_min_opt",
    "plain_sgd",
    "DEFAULT_METHOD",
    "DESCRIPTIONS",
    "suggest_all",
    "summarize",
    "trim_window",
    "peer_window",
    "peer_record_length",
    "PEERS",
    "log_slope",
    "loss_change",
    "longest_valley",
    "final_descent",
    "range_warning",
    "short_ladder",
]

METHODS = ("minimum", "minimum_div10", "steepest", "valley", "sma_rule", "centered_min_div3", "centered_min_opt")
#: the method a sweep's report recommends unless told otherwise; chosen against real training
#: over five model families, leave-one-family-out (``tests/benchmarks/bench_truth.py``;
#: README "Which learning rate").
DEFAULT_METHOD = "centered_min_opt"
#: divisors of the rate at the centred loss minimum (:func:`centered_min_opt`): plain SGD
#: (no momentum) trains best closer to the largest stable rate than momentum and adaptive
#: methods do; both chosen by ``bench_truth.py`` leave-one-family-out.
DIVISOR_PLAIN_SGD = 1.5
DIVISOR_OTHER = 4.0
#: other names a user may give a method: keras-lr-finder's ``sma`` is ``sma_rule``.
ALIASES = {"sma": "sma_rule"}


def method_name(name: str | None) -> str | None:
    """The registry name of a suggestion method given by the user (an alias resolved;
    ``None`` and unknown names are returned as they are, for the caller to refuse)."""
    return ALIASES.get(name, name) if isinstance(name, str) else name
#: one line per method, for reports and help texts.
DESCRIPTIONS = {
    "minimum": "the learning rate at the minimum of the EMA-smoothed loss (Smith 2015)",
    "minimum_div10": "a tenth of the learning rate at the minimum of the EMA-smoothed loss (fastai's minimum)",
    "steepest": "where the EMA-smoothed loss falls fastest per decade of learning rate",
    "valley": "fastai's default: a third of the way into the longest descent of the EMA-smoothed loss",
    "sma_rule": "keras-lr-finder's get_best_lr: the steepest 20-step fall of the raw loss",
    "centered_min_div3": ("a third of the learning rate at the minimum of a lag-free (centred, half-decade) "
                          "smoothing of the loss: Smith's max_lr / 3; the closest to the best rate in real "
                          "training on the digits ConvNet (the default before centered_min_opt)"),
    "centered_min_opt": ("the learning rate at the minimum of a lag-free (centred, half-decade) smoothing of the "
                         "loss (Smith's max_lr), divided by 4 — by 1.5 for plain SGD without momentum; chosen "
                         "against real training on five model families, leave-one-family-out (README, "
                         "'Which learning rate')"),
}
#: width of the centred moving average of :func:`centered_min_div3`, in decades of learning rate.
CENTERED_DECADES = 0.5

#: default start trim of ``steepest`` and ``sma_rule`` (keras-lr-finder's n_skip_beginning=10);
#: the fastai ports skip ``steps_planned // 10`` instead (fastai's ``num_it // 10``).
DEFAULT_SKIP_START = 10
#: default end trim of every method (fastai's ``[:-5]``, keras-lr-finder's n_skip_end=5).
DEFAULT_SKIP_END = 5
#: the finders whose records the ports model (:func:`peer_record_length`).
PEERS = ("fastai", "keras_lr_finder")
#: fewest finite points a curve needs before any method answers.
DEFAULT_MIN_POINTS = 5
#: keras-lr-finder's ``sma`` as used in the seed article.
DEFAULT_SMA = 20
#: a window whose loss range is below this fraction of its magnitude counts as flat.
FLAT_RTOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """A suggested learning rate, or a reasoned "no suggestion".

    Attributes:
        method: name of the method (one of :data:`METHODS`).
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


# --------------------------------------------------------------------------- pieces


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


def log_slope(lrs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``d values / d log10(lr)`` at every point (``np.gradient``: central inside, one-sided at ends).

    Taken against log10 lr — the axis the ladder is uniform on for an exponential ladder, and
    the one the curve is read on — so a linear ladder gives the same answer for the same curve
    shape (Lightning-AI/pytorch-lightning#21141). Needs >= 2 strictly increasing, positive lrs.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if lrs.size < 2:
        return np.full(lrs.shape, np.nan)
    return np.gradient(values, np.log10(lrs))


def loss_change(losses: np.ndarray, sma: int = DEFAULT_SMA) -> np.ndarray:
    """keras-lr-finder's loss change: ``(loss[i] - loss[i - sma]) / sma``, NaN for ``i < sma``.

    This is the per-step loss difference averaged over the last ``sma`` steps (a simple moving
    average of ``diff(loss)``). keras-lr-finder pads the first ``sma`` entries with 0; here they
    are NaN (undefined), which gives the same argmin whenever any change is negative.
    """
    if isinstance(sma, bool) or not isinstance(sma, (int, np.integer)) or sma < 1:
        raise ValueError(f"sma must be an integer >= 1, got {sma!r}")
    losses = np.asarray(losses, dtype=np.float64)
    out = np.full(losses.shape, np.nan)
    if losses.size > sma:
        out[sma:] = (losses[sma:] - losses[:-sma]) / sma
    return out


def final_descent(values: np.ndarray, lowest: int) -> int:
    """Where the descent into ``values[lowest]`` starts: from the last point at least halfway
    up from the minimum to the highest value before it, back up the slope while the values
    keep rising (to the local top the descent leaves from)."""
    half = values[lowest] + 0.5 * (np.nanmax(values[: lowest + 1]) - values[lowest])
    start = int(np.flatnonzero(values[: lowest + 1] >= half)[-1])
    while start > 0 and values[start - 1] >= values[start]:
        start -= 1
    return start


def longest_valley(values: np.ndarray) -> tuple[int, int, int]:
    """fastai's longest valley: ``(max_start, max_end, length)`` of the longest decreasing subsequence.

    Port of ``valley`` in fastai ``fastai/callback/schedule.py``: ``lds[i]`` is the length of
    the longest strictly decreasing subsequence ending at ``i``; ``max_end`` is the first index
    with the largest ``lds``; ``max_start = max_end - lds[max_end]`` (fastai's rule, which can be
    -1 when the valley starts at index 0). The O(n^2) double loop is vectorised over ``j``.
    fastai updates ``max_start`` inside the ``j`` loop, with ``lds[i]`` not yet final; that is
    the same value: ``lds[i]`` can exceed the best so far, ``lds[max_end]``, only by one (every
    ``lds[j]``, ``j < i``, is at most that best), so the first exceeding value is the final one.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return 0, 0, 0
    lds = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        higher = values[:i] > values[i]
        if higher.any():
            lds[i] = lds[:i][higher].max() + 1
    max_end = int(np.argmax(lds))  # first index of the maximum, as fastai's strict update
    length = int(lds[max_end])
    return max_end - length, max_end, length


def _valley_pick(max_start: int, max_end: int) -> int:
    """fastai's pick inside the valley: ``start + int(sections) + int(sections / 2)``, sections = len/3."""
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


# --------------------------------------------------------------------------- preparation


@dataclasses.dataclass(frozen=True)
class _Prepared:
    lrs: np.ndarray  # finite prefix
    raw: np.ndarray
    smoothed: np.ndarray
    window: slice
    problem: str  # "" when usable


def _split_input(curve_or_lrs: Any, losses: Any) -> tuple[np.ndarray, np.ndarray, float]:
    if isinstance(curve_or_lrs, Curve):
        if losses is not None:
            raise TypeError("pass either a Curve or (lrs, losses), not a Curve and losses")
        return curve_or_lrs.lrs, curve_or_lrs.losses, curve_or_lrs.beta
    if losses is None:
        raise TypeError(f"expected a Curve or (lrs, losses) arrays, got {type(curve_or_lrs).__name__} alone")
    lrs = np.asarray(curve_or_lrs, dtype=np.float64)
    loss_arr = np.asarray(losses, dtype=np.float64)
    if lrs.ndim != 1 or lrs.shape != loss_arr.shape:
        raise ValueError(f"lrs and losses must be 1-D of equal length, got {lrs.shape} and {loss_arr.shape}")
    return lrs, loss_arr, DEFAULT_BETA


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


def _prepare(
    curve_or_lrs: Any,
    losses: Any,
    *,
    skip_start: int | None,
    skip_end: int,
    beta: float | None,
    min_points: int,
    peer: str | None = None,
    steps_planned: int | None = None,
) -> _Prepared:
    lrs_all, losses_all, recorded_beta = _split_input(curve_or_lrs, losses)
    beta = recorded_beta if beta is None else float(beta)
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
        return _Prepared(empty, empty, empty, slice(0, 0), problem)
    window = _window(curve_or_lrs, n_all, n, peer=peer, skip_start=skip_start, skip_end=skip_end,
                     steps_planned=steps_planned, min_points=min_points)
    return _Prepared(lrs, raw, ema(raw, beta), window, "")


def _is_flat(values: np.ndarray) -> bool:
    if values.size < 2:
        return True
    scale = float(np.max(np.abs(values)))
    return float(np.ptp(values)) <= FLAT_RTOL * max(scale, np.finfo(np.float64).tiny)


def _window_problem(values: np.ndarray, what: str = "smoothed loss", *, below_first: bool = False) -> str:
    """Reason a window of loss values cannot give a suggestion ("" if it can).

    ``below_first``: also require some value below the first one (for the minimum rules,
    whose pick would otherwise be the window's first point).
    """
    if values.size < 2:
        return f"{values.size} point(s) left after trimming, need >= 2"
    if _is_flat(values):
        return f"{what} is flat (constant) over the trimmed window"
    if below_first and not (values[1:] < values[0]).any():
        return f"loss never decreases ({what} never goes below its first value in the trimmed window)"
    return ""


def _none(method: str, reason: str) -> Suggestion:
    return Suggestion(method=method, lr=None, index=None, reason=reason)


# --------------------------------------------------------------------------- methods


def minimum(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int = DEFAULT_SKIP_END,
    steps_planned: int | None = None,
    beta: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """Learning rate at the minimum of the smoothed loss (Smith 2015), in fastai's window.

    Smith reads the upper bound of a cyclical schedule off the loss minimum; a constant
    learning rate should be somewhat smaller (see :func:`minimum_div10`). The window is
    fastai's ``lr_find`` window (:func:`peer_window`): ``steps_planned // 10`` points skipped
    at the start, the last 5 points of fastai's record at the end, cut at the first NaN.

    Args:
        curve_or_lrs: a :class:`~lrrt_core.curve.Curve`, or the learning rates of a record
            (taken as the record as it is: a trailing NaN is a recorded step).
        losses: the raw losses when ``curve_or_lrs`` is an array.
        skip_start: points skipped at the start; ``None``: fastai's ``num_it // 10``, i.e.
            ``steps_planned // 10``.
        skip_end: points of the whole record skipped at the end (fastai: 5).
        steps_planned: fastai's ``num_it``; ``None``: the Curve's ``steps_planned`` (if > 0),
            else the record's length.
        beta: EMA smoothing; ``None`` uses the curve's recorded ``params["smoothing"]`` (0.98,
            fastai's ``Recorder`` smoothing).
        min_points: fewest finite points needed; also the fewest the window may keep before
            its skips shrink (:func:`peer_window`).

    Returns:
        :class:`Suggestion` with the index of the minimum on the NaN-cut curve. A window whose
        smoothed loss never goes below its first value (or is flat) gives no suggestion, where
        fastai would return the window's first learning rate.

    References:
        Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks, sec. 3.3.
        fastai ``fastai/callback/schedule.py``: ``lr_find`` (the window), ``minimum``.
    """
    p = _prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
                 min_points=min_points, peer="fastai", steps_planned=steps_planned)
    return _minimum_from(p, "minimum", 1)


def minimum_div10(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int = DEFAULT_SKIP_END,
    steps_planned: int | None = None,
    beta: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """A tenth of the learning rate at the minimum smoothed loss (fastai's ``minimum``).

    Same arguments and window as :func:`minimum`. ``index`` is the index of the minimum
    itself; ``lr`` is ``lrs[index] / 10`` (generally not a point of the ladder).

    References:
        fastai ``fastai/callback/schedule.py``: ``minimum`` returns ``lr_min / 10``.
    """
    p = _prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
                 min_points=min_points, peer="fastai", steps_planned=steps_planned)
    return _minimum_from(p, "minimum_div10", 10)


def _minimum_from(p: _Prepared, method: str, divisor: int) -> Suggestion:
    if p.problem:
        return _none(method, p.problem)
    win = p.smoothed[p.window]
    problem = _window_problem(win, below_first=True)
    if problem:
        return _none(method, problem)
    idx = p.window.start + int(np.argmin(win))
    lr = float(p.lrs[idx]) / divisor  # fastai: lr_min/10 (a division, to the last bit)
    note = f"min smoothed loss {p.smoothed[idx]:.4g} at step {idx} (lr {p.lrs[idx]:.3g})"
    return Suggestion(method, lr, idx, note + (f" / {divisor}" if divisor != 1 else ""))


def steepest(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    skip_start: int = DEFAULT_SKIP_START,
    skip_end: int = DEFAULT_SKIP_END,
    beta: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """Learning rate where the smoothed loss falls fastest per decade of learning rate (lrrt's rule).

    The slope is ``d smoothed_loss / d log10(lr)`` from :func:`log_slope` (``np.gradient``
    on log10 lr: central differences inside, so it is right for linear ladders too), computed
    on the whole finite curve and minimised inside the trimmed window (:func:`trim_window` of
    the finite curve: ``skip_start`` and ``skip_end`` finite points), on the descent into the
    window's lowest smoothed loss (:func:`final_descent`: from the local top the last fall
    through half the loss's range leaves from; earlier dips are the barely averaged EMA
    wandering with the batches' noise at rates too small to train — they once put the pick
    at the window's first rate) up to the minimum (a drop after it is
    the loss recovering from a spike in the unstable region). A window whose loss never falls
    gives no suggestion.

    Not a port of fastai's ``steep``, which takes the forward difference
    ``(loss[i+1] - loss[i]) / (ln lr[i+1] - ln lr[i])`` over fastai's whole window
    (:func:`minimum`'s), past the minimum too, and returns ``lrs[i]`` — the left end of the
    steepest step, half a step left of the central difference here; fastai's pick can also
    land on a drop after a spike beyond the minimum.

    Args: as :func:`minimum`, but ``skip_start`` defaults to 10 points and both skips count
        finite points.

    References:
        Smith (2015), sec. 3.3 (the lr where the loss starts to fall fastest);
        fastai ``steep``; Lightning ``_LRFinder.suggestion`` and
        Lightning-AI/pytorch-lightning#21141 (slope against log lr, not lr).
    """
    method = "steepest"
    p = _prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta, min_points=min_points)
    if p.problem:
        return _none(method, p.problem)
    win = p.smoothed[p.window]
    problem = _window_problem(win)
    if problem:
        return _none(method, problem)
    # Only the descent up to the lowest smoothed loss counts: past the minimum the test is
    # in the unstable region, where the loss can drop back after a spike; such a drop is
    # not a learning rate to train with.
    lowest = int(np.nanargmin(win))
    if lowest == 0:  # lowest at the window's start: the loss only rises inside the window
        return _none(method, "loss never decreases (the trimmed window starts at its minimum)")
    # ... and only the descent into that minimum (:func:`final_descent`): at rates too small to
    # train, the early (barely averaged) EMA wanders with the batches' noise, and a dip there
    # is not where training starts to work.
    top = final_descent(win, lowest)
    slope = log_slope(p.lrs, p.smoothed)[p.window][top: lowest + 1]
    if not np.isfinite(slope).any() or np.nanmin(slope) >= 0:
        return _none(method, "loss never decreases (no negative slope in the trimmed window)")
    idx = p.window.start + top + int(np.nanargmin(slope))
    return Suggestion(method, float(p.lrs[idx]), idx,
                      f"slope {slope[idx - p.window.start - top]:.4g} loss/decade at step {idx}")


def valley(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int = DEFAULT_SKIP_END,
    steps_planned: int | None = None,
    beta: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """fastai's default suggestion: near the middle of the longest valley.

    In fastai's ``lr_find`` window (as :func:`minimum`), on the smoothed loss, find the longest
    strictly decreasing subsequence (:func:`longest_valley`) and take
    ``idx = max_start + int(L/3) + int(L/6)``, with ``L = max_end - max_start`` — fastai's
    rule, ported as is. Where fastai's pick is not a learning rate to train with, there is no
    suggestion instead: a flat or never-decreasing window (fastai returns the window's first
    learning rate), and a valley of two points from the window's start, where fastai's
    ``idx`` is -1 and it returns the window's *last* learning rate.

    Args: as :func:`minimum`.

    References:
        fastai ``fastai/callback/schedule.py`` ``valley``, ``lr_find``; algorithm by ESRI,
        https://forums.fast.ai/t/automated-learning-rate-suggester/44199/30.
    """
    method = "valley"
    p = _prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
                 min_points=min_points, peer="fastai", steps_planned=steps_planned)
    if p.problem:
        return _none(method, p.problem)
    win = p.smoothed[p.window]
    problem = _window_problem(win)
    if problem:
        return _none(method, problem)
    max_start, max_end, length = longest_valley(win)
    if length < 2:
        return _none(method, "loss never decreases (longest valley has one point)")
    local = _valley_pick(max_start, max_end)
    if local < 0:
        return _none(method, "longest valley has 2 points from the window's start (fastai's index -1: the last lr)")
    idx = p.window.start + local
    note = f"valley of {length} points ending at step {p.window.start + max_end}; pick at step {idx}"
    return Suggestion(method, float(p.lrs[idx]), idx, note)


def sma_rule(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    sma: int = DEFAULT_SMA,
    skip_start: int = DEFAULT_SKIP_START,
    skip_end: int = DEFAULT_SKIP_END,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """keras-lr-finder's ``get_best_lr(sma, n_skip_beginning, n_skip_end)``.

    Takes the **raw** losses (no EMA), the backward difference over ``sma`` steps
    ``(loss[i] - loss[i - sma]) / sma`` (:func:`loss_change`), and the learning rate where it
    is most negative in keras-lr-finder's window ``[n_skip_beginning:-n_skip_end]`` of its
    record (:func:`peer_window`): for a test that stopped on a NaN/inf loss that record ends
    with the non-finite step, which is one of the ``n_skip_end`` points skipped.

    Deliberate differences, where keras-lr-finder's answer is not a learning rate: it pads the
    first ``sma`` changes with zeros and picks one of them (the window's first lr) when no
    change is negative — here "no suggestion", as for a flat curve or one shorter than
    ``sma + 1``; ``skip_end=0`` skips nothing (keras-lr-finder's ``[s:-0]`` is empty);
    a window of fewer than ``min_points`` points shrinks its skips (keras-lr-finder's may be
    empty and crash).

    Args:
        sma: number of steps of the backward difference (the article uses 20).
        skip_start: keras-lr-finder's ``n_skip_beginning``.
        skip_end: keras-lr-finder's ``n_skip_end`` (points of its whole record).
        min_points: as :func:`minimum` (no ``beta``: the rule uses raw losses).

    References:
        surmenok/keras-lr-finder ``keras_lr_finder/lr_finder.py``: ``on_batch_end``,
        ``get_derivatives``, ``get_best_lr``; the seed article (sma=20).
    """
    method = "sma_rule"
    p = _prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=0.0,
                 min_points=min_points, peer="keras_lr_finder")
    if p.problem:
        return _none(method, p.problem)
    n = p.raw.size
    if n <= sma:
        return _none(method, f"curve has {n} finite points, sma={sma} needs > {sma}")
    win_raw = p.raw[p.window]
    if _is_flat(win_raw):
        return _none(method, "raw loss is flat (constant) over the trimmed window")
    change = loss_change(p.raw, sma)[p.window]
    if not np.isfinite(change).any():
        return _none(method, f"no loss change defined in the trimmed window (sma={sma} is too long)")
    if np.nanmin(change) >= 0:
        return _none(method, f"loss never decreases (no negative {sma}-step loss change in the trimmed window)")
    idx = p.window.start + int(np.nanargmin(change))
    return Suggestion(method, float(p.lrs[idx]), idx, f"loss change {change[idx - p.window.start]:.4g}/step at step {idx}")


def centered_min_div3(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    decades: float = CENTERED_DECADES,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """A third of the learning rate at the minimum of the lag-free smoothed loss (the previous default).

    The raw losses are smoothed with a centred moving average over ``decades`` of learning
    rate (:func:`lrrt_core.curve.centered`), whose minimum — unlike the causal EMA's, which
    trails the raw curve by up to two decades and so pushes every EMA-based pick toward
    divergence — is where the loss is really lowest: the largest rate that still trains,
    Smith's ``max_lr``. A constant rate of a third of it is Smith's ``base_lr`` bound
    ("1/3 or 1/4 of max_lr", 2015, sec. 3.3). No start/end trimming: the window already
    averages the noisy start, and the blow-up is what places the minimum.

    The default until the truth benchmark grew to five model families: on the digits ConvNet
    it lands within 0.2 decades of the best rate, but it under-suggests plain SGD about 3x
    elsewhere; :func:`centered_min_opt` divides by the optimizer family's divisor instead.

    Args:
        curve_or_lrs: a :class:`~lrrt_core.curve.Curve`, or the learning rates.
        losses: the raw losses when ``curve_or_lrs`` is an array.
        decades: width of the centred window.
        min_points: fewest finite points needed.

    Returns:
        :class:`Suggestion` with the index of the minimum (``lr`` is ``lrs[index] / 3``).

    References:
        Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks, sec. 3.3.
    """
    return _centred_min("centered_min_div3", curve_or_lrs, losses, 3.0, "", decades, min_points)


def _centred_min(method: str, curve_or_lrs: Any, losses: Any, divisor: float, why: str, decades: float,
                 min_points: int) -> Suggestion:
    """``lrs[i] / divisor`` at the minimum ``i`` of the centred smoothed loss (no trims, no EMA)."""
    p = _prepare(curve_or_lrs, losses, skip_start=0, skip_end=0, beta=0.0, min_points=min_points)
    if p.problem:
        return _none(method, p.problem)
    smooth = centered(p.lrs, p.raw, decades)
    problem = _window_problem(smooth, "centred smoothed loss", below_first=True)
    if problem:
        return _none(method, problem)
    idx = int(np.argmin(smooth))
    note = f"min centred-smoothed loss {smooth[idx]:.4g} at step {idx} (lr {p.lrs[idx]:.3g}) / {divisor:g}{why}"
    if idx == p.lrs.size - 1:
        note += "; the loss still falls at the end of the ladder (a higher end_lr would show more)"
    return Suggestion(method, float(p.lrs[idx]) / divisor, idx, note)


def plain_sgd(curve_or_lrs: Any) -> bool:
    """Whether a curve was run with plain SGD (no momentum), from what the finder recorded.

    ``params["optimizer"]`` (lrrt's name: ``"sgd"`` without a ``momentum`` kwarg) when a sweep
    or ``lrrt find`` ran it, else ``params["optimizer_class"]`` / ``params["momentum"]`` (a
    compiled model's optimizer, recorded by :func:`lrrt_core.finder.range_test`). Arrays, or
    a curve without either, count as not plain SGD.
    """
    params = getattr(curve_or_lrs, "params", None) or {}
    name = params.get("optimizer")
    if name is not None:
        return str(name).lower() == "sgd" and not (params.get("optimizer_kwargs") or {}).get("momentum")
    return params.get("optimizer_class") == "SGD" and not params.get("momentum")


def centered_min_opt(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    decades: float = CENTERED_DECADES,
    min_points: int = DEFAULT_MIN_POINTS,
) -> Suggestion:
    """The rate at the minimum of the lag-free smoothed loss, divided by the optimizer family's divisor (the default).

    The minimum is :func:`centered_min_div3`'s (a centred moving average over ``decades`` of
    learning rate: where the loss is really lowest, Smith's ``max_lr``). The divisor is
    :data:`DIVISOR_OTHER` (4: Smith's ``base_lr`` = ``max_lr`` / 3 or 4) for momentum and
    adaptive optimizers, and :data:`DIVISOR_PLAIN_SGD` (1.5) for plain SGD (:func:`plain_sgd`),
    which trains best much closer to the largest rate that still trains: on five model
    families, a third of the minimum under-suggested plain SGD by about 3x while it fit the
    others (``tests/benchmarks/bench_truth.py``; README, "Which learning rate").

    Args, Returns: as :func:`centered_min_div3`; ``lr`` is ``lrs[index] / divisor``.

    References:
        Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks, sec. 3.3.
    """
    divisor, family = (DIVISOR_PLAIN_SGD, "plain SGD") if plain_sgd(curve_or_lrs) else (DIVISOR_OTHER,
                                                                                         "momentum/adaptive")
    return _centred_min("centered_min_opt", curve_or_lrs, losses, divisor, f" ({family})", decades, min_points)


_METHOD_FNS: dict[str, Callable[..., Suggestion]] = {
    "minimum": minimum,
    "minimum_div10": minimum_div10,
    "steepest": steepest,
    "valley": valley,
    "sma_rule": sma_rule,
    "centered_min_div3": centered_min_div3,
    "centered_min_opt": centered_min_opt,
}
_FASTAI_PORTS = ("minimum", "minimum_div10", "valley")


def get_method(name: str) -> Callable[..., Suggestion]:
    """The suggestion function called ``name`` (one of :data:`METHODS`)."""
    if name not in _METHOD_FNS:
        raise ValueError(f"unknown suggestion method {name!r}; choose one of {', '.join(METHODS)}")
    return _METHOD_FNS[name]


def suggest_all(
    curve_or_lrs: Curve | np.ndarray,
    losses: np.ndarray | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int | None = None,
    steps_planned: int | None = None,
    beta: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
    sma: int = DEFAULT_SMA,
) -> dict[str, Suggestion]:
    """All methods on one curve: ``{name: Suggestion}`` in :data:`METHODS` order.

    ``skip_start`` / ``skip_end``: ``None`` leaves each method its own default (fastai's
    ``steps_planned // 10`` and 5 for the fastai ports, 10 and 5 for ``steepest`` and
    ``sma_rule``); a number applies to all. ``steps_planned`` applies to the fastai ports,
    ``beta`` to the EMA-based methods, ``sma`` to :func:`sma_rule`, ``min_points`` to all.

    Example:
        >>> import numpy as np
        >>> lrs = np.logspace(-5, 0, 101)
        >>> out = suggest_all(lrs, 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.5))
        >>> list(out) == list(METHODS) and all(s.ok for s in out.values())
        True
    """
    trims: dict[str, Any] = {}
    if skip_start is not None:
        trims["skip_start"] = skip_start
    if skip_end is not None:
        trims["skip_end"] = skip_end
    out: dict[str, Suggestion] = {}
    for name in METHODS:
        fn = _METHOD_FNS[name]
        if name == "sma_rule":
            out[name] = fn(curve_or_lrs, losses, sma=sma, min_points=min_points, **trims)
        elif name in ("centered_min_div3", "centered_min_opt"):  # no trims, no EMA: the centred window smooths
            out[name] = fn(curve_or_lrs, losses, min_points=min_points)
        elif name in _FASTAI_PORTS:
            out[name] = fn(curve_or_lrs, losses, beta=beta, min_points=min_points, steps_planned=steps_planned, **trims)
        else:
            out[name] = fn(curve_or_lrs, losses, beta=beta, min_points=min_points, **trims)
    return out


#: a loss minimum within this many decades of ``end_lr`` counts as "at the end of the ladder".
END_DECADES = 0.1
#: a completed test whose smoothed loss, by ``end_lr``, regained less than this share of its
#: descent (from the first step to the minimum) never clearly turned up.
RISE_SHARE = 0.5


def short_ladder(lrs: np.ndarray, smoothed: np.ndarray) -> str:
    """Why a test that ran its whole ladder (to ``lrs[-1]``, ``end_lr``) without diverging may
    have stopped short of the informative region, or "" when its loss clearly turned up.

    "still falling": the smoothed loss was lowest within :data:`END_DECADES` of ``end_lr``;
    "barely rose": after its minimum it regained less than :data:`RISE_SHARE` of its descent.
    Either way the minimum, and every suggestion read from it, may lie below the real one.
    """
    if lrs.size < 2:
        return ""
    i = int(np.argmin(smoothed))
    if math.log10(lrs[-1]) - math.log10(lrs[i]) <= END_DECADES:
        return "still falling"
    if smoothed[-1] < smoothed[i] + RISE_SHARE * (smoothed[0] - smoothed[i]):
        return "barely rose"
    return ""


def range_warning(curve: Curve) -> str:
    """A warning naming the setting to change when a test that ran its whole ladder without
    diverging may have stopped short (:func:`short_ladder`), else ""."""
    if curve.stop_reason != "completed":
        return ""
    lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
    why = short_ladder(lrs, ema(raw, curve.beta))
    if not why:
        return ""
    what = ("the loss was still falling at end_lr" if why == "still falling"
            else "the loss barely rose past its minimum")
    return (f"the range test ran to end_lr={lrs[-1]:g} without diverging ({what}): the suggestions may be too low; "
            "raise end_lr (range_test.end_lr in a sweep file, --end-lr of lrrt find)")


def summarize(curve: Curve, rank_by: str = DEFAULT_METHOD, **opts: Any) -> dict[str, Any]:
    """Summary scalars of one curve (a row of ``trials.csv``).

    Keys: ``steps`` (points run), ``min_loss`` (min of the smoothed loss over the finite
    curve, untrimmed), ``lr_at_min_loss``, ``steepest_lr``, ``valley_lr``, ``minimum_lr``,
    ``minimum_div10_lr``, ``sma_lr``, ``suggested_lr`` (the ``rank_by`` method's lr),
    ``diverged_lr`` (NaN if none), ``stop_reason``. A method without a suggestion gives NaN.

    Args:
        curve: the range-test curve.
        rank_by: the method whose lr is ``suggested_lr`` (one of :data:`METHODS`).
        **opts: passed to :func:`suggest_all` (skip_start, skip_end, steps_planned, beta, min_points, sma).
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"summarize expects a Curve, got {type(curve).__name__}")
    get_method(rank_by)  # validates the name
    sugg = suggest_all(curve, **opts)
    beta = opts.get("beta")
    lrs, raw = cut_nonfinite(curve.lrs, curve.losses)
    if raw.size:
        smoothed = ema(raw, curve.beta if beta is None else beta)
        i_min = int(np.argmin(smoothed))
        min_loss, lr_at_min = float(smoothed[i_min]), float(lrs[i_min])
    else:
        min_loss = lr_at_min = math.nan

    def lr_of(name: str) -> float:
        s = sugg[name]
        return float(s.lr) if s.ok else math.nan

    return {
        "steps": int(curve.steps_run),
        "min_loss": min_loss,
        "lr_at_min_loss": lr_at_min,
        "steepest_lr": lr_of("steepest"),
        "valley_lr": lr_of("valley"),
        "minimum_lr": lr_of("minimum"),
        "minimum_div10_lr": lr_of("minimum_div10"),
        "sma_lr": lr_of("sma_rule"),
        "centered_min_div3_lr": lr_of("centered_min_div3"),
        "centered_min_opt_lr": lr_of("centered_min_opt"),
        "suggested_lr": lr_of(rank_by),
        "diverged_lr": math.nan if curve.diverged_lr is None else float(curve.diverged_lr),
        "stop_reason": curve.stop_reason,
    }
