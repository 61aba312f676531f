"""lrrt_core: one learning-rate range test on one device.

The analysis pieces (``settings``, ``ladders``, ``curve``, ``suggest``) are pure numpy; the
finder, the Keras ladder (``keras_ladder``), the training schedules and the workloads import
Keras, and are loaded only when first used, so ``import lrrt_core`` and ``from lrrt_core
import suggest`` never import TensorFlow. ``RangeTest`` declares every range-test setting;
``METHODS`` holds every suggestion method (``register`` adds one).
"""

from __future__ import annotations

import importlib
from typing import Any

from lrrt_core.curve import Curve, ema, sma
from lrrt_core.ladders import ladder
from lrrt_core.settings import RangeTest

__all__ = [
    "Curve",
    "ema",
    "sma",
    "ladder",
    "RangeTest",
    "Suggestion",
    "suggest_all",
    "summarize",
    "METHODS",
    "Method",
    "register",
    "range_test",
    "LRFinder",
    "ladder_schedule",
    "make_optimizer",
    "get_workload",
    "DEFAULT_METHOD",
    "one_cycle",
    "triangular",
    "verify_workload",
    "train_fixed",
]

_LAZY = {
    "Suggestion": "lrrt_core.suggest",
    "suggest_all": "lrrt_core.suggest",
    "summarize": "lrrt_core.suggest",
    "METHODS": "lrrt_core.suggest",
    "Method": "lrrt_core.suggest",
    "register": "lrrt_core.suggest",
    "range_test": "lrrt_core.finder",
    "LRFinder": "lrrt_core.lr_finder",
    "ladder_schedule": "lrrt_core.keras_ladder",
    "make_optimizer": "lrrt_core.optimizers",
    "get_workload": "lrrt_core.workloads",
    "DEFAULT_METHOD": "lrrt_core.suggest",
    "one_cycle": "lrrt_core.training_schedules",
    "triangular": "lrrt_core.training_schedules",
    "verify_workload": "lrrt_core.verify",
    "train_fixed": "lrrt_core.verify",
}

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrrt_core' has no attribute {name!r}")
