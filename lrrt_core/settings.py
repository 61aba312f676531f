"""The settings of one range test, declared once: :class:`RangeTest`.

Each setting, its default and its rule live here. The sweep file's ``range_test:`` section
becomes one ``RangeTest`` per trial (``sweeps.spec.RangeTestSpec.range_test``), which
travels whole through the trial to :func:`lrrt_core.runner.run_workload` and
:func:`lrrt_core.finder.range_test`; keyword arguments to those (``start_lr=...``) are a
convenience that builds one. Pure Python: nothing here imports Keras.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from lrrt_core.schedule import LADDERS, check_bounds

#: steps of a range test given neither ``steps`` nor ``epochs`` (fastai's ``lr_find`` num_it).
DEFAULT_STEPS = 100
LOSSES = ("train", "val")


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclasses.dataclass(frozen=True)
class RangeTest:
    """How one range test runs (validated when made; the message names the setting).

    Attributes:
        start_lr: first learning rate (> 0).
        end_lr: last learning rate (> start_lr).
        steps: ladder points (>= 2); with neither ``steps`` nor ``epochs``,
            :data:`DEFAULT_STEPS`.
        epochs: alternative to ``steps``: whole passes over the data (needs its length).
        ladder: ``"exp"`` (geometric) or ``"linear"``.
        loss: ``"train"`` (each training batch's loss) or ``"val"`` (the held-out loss after
            each step).
        diverge_threshold: stop once the smoothed loss exceeds this multiple (> 1) of its
            best; ``None`` or ``inf`` never stops on it.
        smoothing: beta of the bias-corrected EMA of the stop rule, in [0, 1).
        steps_per_call: training steps per compiled call (``None``: the default of
            :mod:`lrrt_core.execution`; 1: one ``train_on_batch`` per step).
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int | None = None
    epochs: int | None = None
    ladder: str = "exp"
    loss: str = "train"
    diverge_threshold: float | None = 4.0
    smoothing: float = 0.98
    steps_per_call: int | None = None

    def __post_init__(self) -> None:
        for name in ("start_lr", "end_lr"):
            value = getattr(self, name)
            if hasattr(value, "get_config") or callable(value):
                raise ValueError(
                    f"{name} must be a float, got a {type(value).__name__} (a learning-rate schedule); "
                    "the range test makes its own ladder from start_lr to end_lr"
                )
        if self.ladder not in LADDERS:
            raise ValueError(f"ladder must be one of {', '.join(LADDERS)}, got {self.ladder!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be 'train' or 'val', got {self.loss!r}")
        thr = self.diverge_threshold
        if thr is not None and (isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not thr > 1):
            raise ValueError(f"diverge_threshold must be a number > 1 (or None to disable), got {thr!r}")
        s = self.smoothing
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0.0 <= s < 1.0:
            raise ValueError(f"smoothing must be >= 0 and < 1 (the EMA's beta), got {s!r}")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give either steps or epochs, not both")
        if self.steps is not None and not _is_int(self.steps):
            raise ValueError(f"steps must be an integer >= 2, got {self.steps!r}")
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        k = self.steps_per_call
        if k is not None and (not _is_int(k) or k < 1):
            raise ValueError(f"steps_per_call must be an integer >= 1 (or None for the default), got {k!r}")
        check_bounds(self.start_lr, self.end_lr, self.steps if self.steps is not None else 2)

    @property
    def threshold(self) -> float | None:
        """The divergence threshold in effect (``None``: never stops on divergence)."""
        thr = self.diverge_threshold
        return None if thr is None or math.isinf(thr) else float(thr)

    def steps_for(self, batches_per_epoch: int | None) -> int:
        """Planned steps: ``steps``, ``epochs`` whole epochs of the data, or :data:`DEFAULT_STEPS`."""
        if self.epochs is None:
            return DEFAULT_STEPS if self.steps is None else int(self.steps)
        if batches_per_epoch is None:
            raise ValueError("epochs needs data of known length; pass steps=N for a generator or an infinite dataset")
        n = int(self.epochs) * batches_per_epoch
        if n < 2:
            raise ValueError(
                f"epochs={self.epochs} gives only {n} step(s) ({batches_per_epoch} batch(es) per epoch); "
                "use more epochs, a smaller batch_size, or pass steps"
            )
        return n

    def replace(self, **changes: Any) -> "RangeTest":
        """A copy with ``changes`` (validated); unknown names are a ``TypeError`` listing the known."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown range-test setting(s) {', '.join(unknown)}; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``RangeTest(**d)`` gives it back."""
        return dataclasses.asdict(self)


def settings_from(settings: RangeTest | None, overrides: dict[str, Any]) -> RangeTest:
    """``settings`` (or the defaults) with keyword ``overrides``: the keyword call style."""
    return (settings if settings is not None else RangeTest()).replace(**overrides)


__all__ = ["RangeTest", "DEFAULT_STEPS", "settings_from"]
