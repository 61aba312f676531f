"""sweeps: learning-rate range tests for whole grids on Ray Tune, reduced into one ranked report.

The Python API (``sweep``, ``verify``, ``load``, ``find``, ``SweepResult``, ``InvalidInput``; see
:mod:`sweeps.api`) mirrors the ``lrrt`` command (:mod:`sweeps.cli`). Names are loaded on
first use, so ``import sweeps`` imports neither Ray nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sweep", "verify", "load", "find", "SweepResult", "InvalidInput"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("sweeps.api"), name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
