"""The range test's ladder as a Keras learning-rate schedule, computed inside the train step.

By default :func:`lrrt_core.finder.range_test` assigns each step's rate to the optimizer's
learning-rate variable from Python before the step. That assign is an eager op of its own
(about 0.1-0.2 ms on a CPU, 5-10 % of a 2 ms step of a small model). An optimizer
compiled with :class:`LadderSchedule` instead looks the rate up from its own ``iterations``
inside the compiled step, so the loop has nothing to do between steps. The rates are the
same float32 values either way, and so are the losses.

``lrrt_core.runner.run_workload`` (``lrrt find`` and every sweep trial) compiles its
optimizers this way; with your own model, compile a fresh optimizer with it::

    from lrrt_core.keras_ladder import ladder_schedule
    model.compile(optimizer=keras.optimizers.Adam(ladder_schedule("exp", 1e-6, 1.0, 300)), loss=...)
    curve = range_test(model, x, y, start_lr=1e-6, end_lr=1.0, steps=300)

The schedule must describe the same ladder as the range test (kind, bounds, steps) and the
optimizer must start at ``iterations == 0``; ``range_test`` checks both. Importing this
module imports Keras.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from lrrt_core.ladders import ladder


@keras.saving.register_keras_serializable(package="lrrt")
class LadderSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Rate of optimizer step ``i``: point ``i`` of the ladder (the last point after the end).

    Args:
        kind: ``"exp"`` or ``"linear"`` (:func:`lrrt_core.ladders.ladder`).
        start_lr, end_lr: the bounds, first and last point exactly.
        steps: number of points, >= 2.
    """

    def __init__(self, kind: str, start_lr: float, end_lr: float, steps: int) -> None:
        self.lrs = ladder(kind, float(start_lr), float(end_lr), int(steps))  # validates
        self.kind, self.start_lr, self.end_lr, self.steps = kind, float(start_lr), float(end_lr), int(steps)
        self._values = self.lrs.astype(np.float32)  # what assigning each float to a float32 variable gives

    def __call__(self, step: Any) -> Any:
        index = ops.clip(ops.cast(step, "int32"), 0, self.steps - 1)
        return ops.take(ops.convert_to_tensor(self._values), index)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "start_lr": self.start_lr, "end_lr": self.end_lr, "steps": self.steps}


def ladder_schedule(kind: str, start_lr: float, end_lr: float, steps: int) -> LadderSchedule:
    """A :class:`LadderSchedule` for ``range_test(..., ladder=kind, start_lr=..., end_lr=..., steps=...)``."""
    return LadderSchedule(kind, start_lr, end_lr, steps)


__all__ = ["LadderSchedule", "ladder_schedule"]
