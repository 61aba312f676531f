"""Shared setup for lrrt_core tests: quiet TensorFlow, small deterministic models."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
