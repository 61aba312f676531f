"""Learning-rate ladders for a range test: pure functions of the step.

A ladder maps step ``i`` of ``steps`` to a learning rate. The first and the last
points are exactly ``start_lr`` and ``end_lr`` (no floating-point drift at the ends).

Example:
    >>> from lrrt_core.ladders import ladder
    >>> ladder("exp", 1e-4, 1e-1, 4)
    array([0.0001, 0.001 , 0.01  , 0.1   ])

References:
    Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks. arXiv:1506.01186.
"""

from __future__ import annotations

import math

import numpy as np

LADDERS = ("exp", "linear")


def check_bounds(start_lr: float, end_lr: float, steps: int) -> None:
    """Raise ``ValueError`` (saying what to change) unless the bounds make a ladder."""
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(
                f"{name} must be a number (a float such as 1e-6), got {type(value).__name__} {value!r}; "
                "a learning-rate schedule object cannot be used as a bound"
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if start_lr <= 0:
        raise ValueError(f"start_lr must be > 0, got {start_lr!r}; use a small positive value such as 1e-7")
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be greater than start_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}; a range test needs at least two points")


def exp_lr(step: int, start_lr: float, end_lr: float, steps: int) -> float:
    """Learning rate of ``step`` on the exponential ladder ``start * (end/start)^(i/(n-1))``."""
    if step <= 0:
        return float(start_lr)
    if step >= steps - 1:
        return float(end_lr)
    return float(start_lr * (end_lr / start_lr) ** (step / (steps - 1)))


def linear_lr(step: int, start_lr: float, end_lr: float, steps: int) -> float:
    """Learning rate of ``step`` on the linear ladder ``start + (end-start) * i/(n-1)``."""
    if step <= 0:
        return float(start_lr)
    if step >= steps - 1:
        return float(end_lr)
    return float(start_lr + (end_lr - start_lr) * step / (steps - 1))


_LADDER_FNS = {"exp": exp_lr, "linear": linear_lr}


def ladder(kind: str, start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """All ``steps`` learning rates of a ladder as a float64 array.

    Args:
        kind: ``"exp"`` (geometric, the usual choice) or ``"linear"``.
        start_lr: first learning rate, > 0.
        end_lr: last learning rate, > start_lr.
        steps: number of points, >= 2.

    Returns:
        ``np.ndarray`` of shape ``(steps,)``; ``[0] == start_lr`` and ``[-1] == end_lr`` exactly.
    """
    if kind not in _LADDER_FNS:
        raise ValueError(f"ladder must be one of {', '.join(LADDERS)}, got {kind!r}")
    check_bounds(start_lr, end_lr, steps)
    fn = _LADDER_FNS[kind]
    return np.array([fn(i, start_lr, end_lr, steps) for i in range(steps)], dtype=np.float64)
