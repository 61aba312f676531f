"""The built-in suggestion methods: curve -> :class:`~lrrt_core.suggest.pipeline.Suggestion` (pure numpy).

Each takes a :class:`~lrrt_core.curve.Curve` (or the learning rates and raw losses as arrays)
and its own keyword options, runs the pipeline (:func:`~lrrt_core.suggest.pipeline.prepare`:
cut, smooth, window) and picks one index. The registry (:mod:`lrrt_core.suggest.registry`)
calls them all one way.

The methods named after a peer window the curve exactly as that peer does
(:func:`~lrrt_core.suggest.pipeline.peer_window`), on the record the peer's own finder would
have made of the same test (:func:`~lrrt_core.suggest.pipeline.peer_record_length`):

* ``minimum``, ``minimum_div10``, ``valley`` — fastai's ``Learner.lr_find``: skip
  ``num_it // 10`` of the *planned* steps (``steps_planned // 10``) and the last 5 points of
  the whole record, then cut at the first NaN;
* ``sma_rule`` — keras-lr-finder's ``get_best_lr``: ``[n_skip_beginning:-n_skip_end]`` of the
  record, whose last point is the non-finite loss when the test stopped on one.

Where the peer's window would keep fewer than ``min_points`` points (fastai crashes on an empty
one), the skips shrink instead (:func:`~lrrt_core.suggest.pipeline.trim_window`), so a short
curve is never emptied. ``steepest`` is lrrt's own rule and trims the finite curve with
``trim_window``; the centred-minimum rules neither trim nor use the EMA.

A method that cannot give a sensible answer (too few points, all-NaN losses, a flat curve,
a loss that never decreases) returns a ``Suggestion`` with ``lr=None``, ``index=None`` and a
``reason`` — never a crash, never a nonsense index.

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

from typing import Any

import numpy as np

from lrrt_core.curve import Curve, centered
from lrrt_core.suggest.features import DEFAULT_SMA, final_descent, log_slope, longest_valley, loss_change, valley_pick
from lrrt_core.suggest.pipeline import (DEFAULT_MIN_POINTS, DEFAULT_SKIP_END, DEFAULT_SKIP_START, Prepared, Suggestion,
                                        is_flat, no_suggestion, prepare, window_problem)

#: divisors of the rate at the centred loss minimum (:func:`centered_min_opt`): plain SGD
#: (no momentum) trains best closer to the largest stable rate than momentum and adaptive
#: methods do; both chosen by ``bench_truth.py`` leave-one-family-out.
DIVISOR_PLAIN_SGD = 1.5
DIVISOR_OTHER = 4.0
#: width of the centred moving average of :func:`centered_min_div3`, in decades of learning rate.
CENTERED_DECADES = 0.5


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
    p = prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
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
    p = prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
                min_points=min_points, peer="fastai", steps_planned=steps_planned)
    return _minimum_from(p, "minimum_div10", 10)


def _minimum_from(p: Prepared, method: str, divisor: int) -> Suggestion:
    if p.problem:
        return no_suggestion(method, p.problem)
    win = p.smoothed[p.window]
    problem = window_problem(win, below_first=True)
    if problem:
        return no_suggestion(method, problem)
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
    p = prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta, min_points=min_points)
    if p.problem:
        return no_suggestion(method, p.problem)
    win = p.smoothed[p.window]
    problem = window_problem(win)
    if problem:
        return no_suggestion(method, problem)
    # Only the descent up to the lowest smoothed loss counts: past the minimum the test is
    # in the unstable region, where the loss can drop back after a spike; such a drop is
    # not a learning rate to train with.
    lowest = int(np.nanargmin(win))
    if lowest == 0:  # lowest at the window's start: the loss only rises inside the window
        return no_suggestion(method, "loss never decreases (the trimmed window starts at its minimum)")
    # ... and only the descent into that minimum (:func:`final_descent`): at rates too small to
    # train, the early (barely averaged) EMA wanders with the batches' noise, and a dip there
    # is not where training starts to work.
    top = final_descent(win, lowest)
    slope = log_slope(p.lrs, p.smoothed)[p.window][top: lowest + 1]
    if not np.isfinite(slope).any() or np.nanmin(slope) >= 0:
        return no_suggestion(method, "loss never decreases (no negative slope in the trimmed window)")
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
    p = prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=beta,
                min_points=min_points, peer="fastai", steps_planned=steps_planned)
    if p.problem:
        return no_suggestion(method, p.problem)
    win = p.smoothed[p.window]
    problem = window_problem(win)
    if problem:
        return no_suggestion(method, problem)
    max_start, max_end, length = longest_valley(win)
    if length < 2:
        return no_suggestion(method, "loss never decreases (longest valley has one point)")
    local = valley_pick(max_start, max_end)
    if local < 0:
        return no_suggestion(method, "longest valley has 2 points from the window's start (fastai's index -1: the last lr)")
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
    p = prepare(curve_or_lrs, losses, skip_start=skip_start, skip_end=skip_end, beta=0.0,
                min_points=min_points, peer="keras_lr_finder")
    if p.problem:
        return no_suggestion(method, p.problem)
    n = p.raw.size
    if n <= sma:
        return no_suggestion(method, f"curve has {n} finite points, sma={sma} needs > {sma}")
    win_raw = p.raw[p.window]
    if is_flat(win_raw):
        return no_suggestion(method, "raw loss is flat (constant) over the trimmed window")
    change = loss_change(p.raw, sma)[p.window]
    if not np.isfinite(change).any():
        return no_suggestion(method, f"no loss change defined in the trimmed window (sma={sma} is too long)")
    if np.nanmin(change) >= 0:
        return no_suggestion(method, f"loss never decreases (no negative {sma}-step loss change in the trimmed window)")
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
    p = prepare(curve_or_lrs, losses, skip_start=0, skip_end=0, beta=0.0, min_points=min_points)
    if p.problem:
        return no_suggestion(method, p.problem)
    smooth = centered(p.lrs, p.raw, decades)
    problem = window_problem(smooth, "centred smoothed loss", below_first=True)
    if problem:
        return no_suggestion(method, problem)
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



__all__ = ["minimum", "minimum_div10", "steepest", "valley", "sma_rule", "centered_min_div3", "centered_min_opt",
           "plain_sgd", "DIVISOR_PLAIN_SGD", "DIVISOR_OTHER", "CENTERED_DECADES"]
