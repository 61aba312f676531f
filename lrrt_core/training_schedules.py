"""Training schedules that take a range test's recipe: one-cycle and triangular CLR.

A range test gives the bounds of a cyclical learning-rate schedule (Smith 2015, 2018).
``recipes.json`` of a sweep (``sweeps.verification.recipes``) holds, per configuration,
the ``one_cycle`` and ``triangular`` arguments; these Keras schedules take them::

    import json, keras
    from lrrt_core.training_schedules import one_cycle, triangular
    r = json.load(open("runs/quickstart/recipes.json"))["recipes"][0]
    steps = epochs * (len(x) // batch_size)
    opt = keras.optimizers.SGD(one_cycle(total_steps=steps, **r["one_cycle"]), momentum=0.9)
    opt = keras.optimizers.Adam(triangular(r["triangular"]["base_lr"], r["triangular"]["max_lr"],
                                           step_size=4 * (len(x) // batch_size)))

Both are ``keras.optimizers.schedules.LearningRateSchedule`` subclasses computed with
``keras.ops`` (any backend), serialisable (``lrrt>OneCycle``, ``lrrt>Triangular``).
Importing this module imports Keras.

References:
    Smith, L. N. (2015). Cyclical Learning Rates for Training Neural Networks, sec. 3.1
    (triangular policy), 3.3 (bounds from the range test). arXiv:1506.01186.
    Smith, L. N. (2018). A disciplined approach to neural network hyper-parameters: Part 1
    (one-cycle). arXiv:1803.09820. PyTorch ``OneCycleLR`` (cosine annealing,
    ``div_factor``/``final_div_factor`` as here); fastai ``fit_one_cycle``.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops


def _check(name: str, value: Any, low: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="lrrt")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle: cosine warm-up from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps``, then cosine annealing to
    ``max_lr / div_factor / final_div_factor`` at the last step (PyTorch ``OneCycleLR``'s
    ``anneal_strategy="cos"``); constant at that minimum after ``total_steps``.

    Args:
        max_lr: the peak rate (a recipe's ``one_cycle.max_lr``).
        total_steps: optimizer steps of the whole training (>= 2).
        pct_start: share of the steps spent warming up, in (0, 1).
        div_factor: ``initial_lr = max_lr / div_factor``.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0,
                 final_div_factor: float = 1e4) -> None:
        self.max_lr = _check("max_lr", max_lr)
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"total_steps must be an integer >= 2, got {total_steps!r}")
        self.total_steps = total_steps
        self.pct_start = _check("pct_start", pct_start)
        if self.pct_start >= 1:
            raise ValueError(f"pct_start must be < 1, got {pct_start!r}")
        self.div_factor = _check("div_factor", div_factor)
        self.final_div_factor = _check("final_div_factor", final_div_factor)

    @property
    def warmup_steps(self) -> float:
        """Step at which the peak is reached (PyTorch: ``pct_start * total_steps - 1``)."""
        return max(1.0, self.pct_start * self.total_steps - 1)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        up = self.warmup_steps
        down = max(1.0, self.total_steps - 1 - up)

        def cos(start, end, pct):
            return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * pct))

        warm = cos(initial, self.max_lr, ops.clip(step / up, 0.0, 1.0))
        anneal = cos(self.max_lr, final, ops.clip((step - up) / down, 0.0, 1.0))
        return ops.where(step <= up, warm, anneal)

    def get_config(self) -> dict[str, Any]:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}


@keras.saving.register_keras_serializable(package="lrrt")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's triangular cyclical learning rate: linear from ``base_lr`` up to ``max_lr`` in
    ``step_size`` steps and back down in as many, repeated.

    ``cycle = floor(1 + step / (2 step_size))``, ``x = |step / step_size - 2 cycle + 1|``,
    ``lr = base_lr + (max_lr - base_lr) * max(0, 1 - x)`` (Smith 2015, sec. 3.1).

    Args:
        base_lr, max_lr: the bounds (``0 < base_lr < max_lr``; a recipe's ``triangular``).
        step_size: steps of a half cycle (Smith: 2-10 epochs' worth of iterations).
    """

    def __init__(self, base_lr: float, max_lr: float, step_size: int) -> None:
        self.base_lr = _check("base_lr", base_lr)
        self.max_lr = _check("max_lr", max_lr)
        if self.max_lr <= self.base_lr:
            raise ValueError(f"max_lr must be greater than base_lr, got base_lr={base_lr!r}, max_lr={max_lr!r}")
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        self.step_size = step_size

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        return self.base_lr + (self.max_lr - self.base_lr) * ops.maximum(0.0, 1.0 - x)

    def get_config(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "max_lr": self.max_lr, "step_size": self.step_size}


def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0,
              final_div_factor: float = 1e4, **unused: Any) -> OneCycle:
    """A :class:`OneCycle` schedule (extra keys of a recipe are ignored)."""
    return OneCycle(max_lr, total_steps, pct_start, div_factor, final_div_factor)


def triangular(base_lr: float, max_lr: float, step_size: int, **unused: Any) -> Triangular:
    """A :class:`Triangular` schedule (extra keys of a recipe, e.g. ``step_size_epochs``, are ignored)."""
    return Triangular(base_lr, max_lr, step_size)


__all__ = ["OneCycle", "Triangular", "one_cycle", "triangular"]
