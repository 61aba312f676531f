"""Features of a range-test curve that the suggestion methods and the warnings read (pure numpy):
the slope against log lr, keras-lr-finder's loss change, the final descent into the minimum,
fastai's longest valley, and whether the ladder stopped short of the informative region.
"""

from __future__ import annotations

import math

import numpy as np

from lrrt_core.curve import Curve, cut_nonfinite, ema

#: keras-lr-finder's ``sma`` as used in the seed article.
DEFAULT_SMA = 20


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


def valley_pick(max_start: int, max_end: int) -> int:
    """fastai's pick inside the valley: ``start + int(sections) + int(sections / 2)``, sections = len/3."""
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


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


__all__ = ["log_slope", "loss_change", "final_descent", "longest_valley", "valley_pick", "short_ladder",
           "range_warning", "DEFAULT_SMA", "END_DECADES", "RISE_SHARE"]
