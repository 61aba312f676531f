"""The settings of one range test, declared once: :class:`RangeTest`.

Each setting, its default, its help text and its rule live here, and every surface derives
from this one declaration:

* :func:`lrrt_core.finder.range_test` and :func:`lrrt_core.runner.run_workload` take a
  ``RangeTest`` (or its fields as keywords, applied over the defaults);
* the sweep file's ``range_test:`` section (``sweeps.spec.RangeTestSpec``) has one key per
  field (plus the sweep's own ``samples`` budget), with these defaults and help texts, and
  checks each value with ``RangeTest``'s rules;
* ``lrrt find`` has one flag per field (``--start-lr``, ..., ``--steps-per-call``);
* ``sweeps.find`` takes the fields as keywords;
* a curve records them in ``Curve.params`` (:meth:`RangeTest.params`).

The defaults are those the truth benchmark (``tests/benchmarks/bench_truth.py``) ran its
range tests with when it chose the default suggestion: 1e-6 -> 10 over 200 steps,
exponential, the training loss, the "4x the best smoothed loss" stop rule, EMA beta 0.98.
Pure Python: nothing here imports Keras.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from lrrt_core.ladders import LADDERS, check_bounds

#: steps of a range test given neither ``steps`` nor ``epochs``.
DEFAULT_STEPS = 200
LOSSES = ("train", "val")


class SettingError(ValueError):
    """An invalid range-test setting; ``setting`` names the field (``"end_lr"``), ``reason``
    says what is wrong without the name (``"must be greater than start_lr ..."``)."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting, self.reason = setting, reason
        super().__init__(f"{setting} {reason}")


def _setting(default: Any, help: str, kind: type, *, nullable: bool = False, choices: tuple[str, ...] = ()) -> Any:
    """A :class:`RangeTest` field with what the surfaces derive from it: ``help`` (flag help,
    the sweep file's description), ``kind`` (``float``, ``int`` or ``str``), whether ``None`` is
    a value, and the ``choices`` of a text setting."""
    return dataclasses.field(default=default, metadata={"help": help, "kind": kind, "nullable": nullable,
                                                         "choices": choices})


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


@dataclasses.dataclass(frozen=True)
class RangeTest:
    """How one range test runs (validated when made; a bad value is a :class:`SettingError`
    naming the setting).

    The length is ``steps`` or ``epochs``, never both; with neither it is
    :data:`DEFAULT_STEPS` steps (``RangeTest().steps == 200``). :meth:`replace` with one of
    them clears the other.

    Example:
        >>> RangeTest().start_lr, RangeTest().steps
        (1e-06, 200)
        >>> RangeTest(epochs=2).steps is None
        True
    """

    start_lr: float = _setting(1e-6, "first learning rate of the ladder (> 0)", float)
    end_lr: float = _setting(10.0, "last learning rate of the ladder (> start_lr)", float)
    steps: int | None = _setting(None, f"ladder points (>= 2); default {DEFAULT_STEPS} unless epochs is given", int,
                                 nullable=True)
    epochs: int | None = _setting(None, "whole passes over the data instead of steps (>= 1)", int, nullable=True)
    ladder: str = _setting("exp", "how the rate grows per step: exp (geometric) or linear", str, choices=LADDERS)
    loss: str = _setting("train", "the loss recorded: each training batch's (train), or the held-out set's "
                                  "after each step (val)", str, choices=LOSSES)
    diverge_threshold: float | None = _setting(4.0, "stop once the smoothed loss exceeds this multiple (> 1) of its "
                                                    "best; null/None or inf: never", float, nullable=True)
    smoothing: float = _setting(0.98, "beta of the bias-corrected EMA of the stop rule and the smoothed loss, "
                                      "in [0, 1)", float)
    steps_per_call: int | None = _setting(None, "training steps per compiled call (>= 1; 1: one train_on_batch per "
                                                "step); default 16 on a CPU, 32 on a GPU; the curve is the same",
                                          int, nullable=True)

    def __post_init__(self) -> None:
        self._check_bounds_are_numbers()
        for name in ("ladder", "loss"):
            choices = FIELDS[name].metadata["choices"]
            if getattr(self, name) not in choices:
                raise SettingError(name, f"must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        thr = self.diverge_threshold
        if thr is not None and not (_is_number(thr) and thr > 1):
            raise SettingError("diverge_threshold", f"must be a number > 1 (or None to disable), got {thr!r}")
        s = self.smoothing
        if not (_is_number(s) and 0.0 <= s < 1.0):
            raise SettingError("smoothing", f"must be >= 0 and < 1 (the EMA's beta), got {s!r}")
        self._check_length()
        k = self.steps_per_call
        if k is not None and (not _is_int(k) or k < 1):
            raise SettingError("steps_per_call", f"must be an integer >= 1 (or None for the default), got {k!r}")
        try:
            check_bounds(self.start_lr, self.end_lr, self.steps if self.steps is not None else 2)
        except ValueError as err:
            name, _, reason = str(err).partition(" ")
            raise SettingError(name, reason) from None
        for name in ("start_lr", "end_lr", "smoothing"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if thr is not None:
            object.__setattr__(self, "diverge_threshold", float(thr))

    def _check_bounds_are_numbers(self) -> None:
        for name in ("start_lr", "end_lr"):
            value = getattr(self, name)
            if hasattr(value, "get_config") or callable(value):
                raise SettingError(name, f"must be a float, got a {type(value).__name__} (a learning-rate schedule); "
                                         "the range test makes its own ladder from start_lr to end_lr")

    def _check_length(self) -> None:
        """One of ``steps`` and ``epochs``; neither: :data:`DEFAULT_STEPS` steps."""
        if self.steps is not None and self.epochs is not None:
            raise SettingError("epochs", "and steps: give either steps or epochs, not both")
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 2):
            raise SettingError("steps", f"must be an integer >= 2, got {self.steps!r}; a range test needs at least "
                                        "two points")
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise SettingError("epochs", f"must be an integer >= 1, got {self.epochs!r}")
        if self.steps is None and self.epochs is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS)
        elif self.steps is not None:
            object.__setattr__(self, "steps", int(self.steps))

    @property
    def threshold(self) -> float | None:
        """The divergence threshold in effect (``None``: never stops on divergence)."""
        thr = self.diverge_threshold
        return None if thr is None or math.isinf(thr) else float(thr)

    def steps_for(self, batches_per_epoch: int | None) -> int:
        """Planned steps: ``steps``, or ``epochs`` whole epochs of the data."""
        if self.epochs is None:
            return int(self.steps)
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
        """A copy with ``changes`` (validated); unknown names are a ``TypeError`` listing the
        known. The length is one setting given two ways: changing ``steps`` clears ``epochs``
        and the other way round."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise TypeError(f"unknown range-test setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        if not changes:
            return self
        for given, other in (("steps", "epochs"), ("epochs", "steps")):
            if given in changes and other not in changes:
                changes[other] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``RangeTest(**d)`` gives it back."""
        return dataclasses.asdict(self)

    def params(self, steps: int) -> dict[str, Any]:
        """What a curve records of these settings (``Curve.params``): every field, with
        ``steps`` the planned steps and ``diverge_threshold`` the one in effect (inf -> None)."""
        return {**self.to_dict(), "steps": int(steps), "diverge_threshold": self.threshold}


#: the fields of :class:`RangeTest` by name, in declaration order (what every surface derives from).
FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RangeTest)}


def describe(indent: str = "    ") -> str:
    """One line per setting, ``name: help (default ...)``: for docstrings and help texts."""
    return "\n".join(f"{indent}{name}: {f.metadata['help']}" + ("" if f.default is None else f" (default {f.default!r})")
                     for name, f in FIELDS.items())


def settings_from(settings: RangeTest | None, overrides: dict[str, Any]) -> RangeTest:
    """``settings`` (or the defaults) with keyword ``overrides``: the keyword call style."""
    return (settings if settings is not None else RangeTest()).replace(**overrides)


__all__ = ["RangeTest", "SettingError", "DEFAULT_STEPS", "LOSSES", "FIELDS", "describe", "settings_from"]
