"""Suite-wide helpers."""

from __future__ import annotations

import os

import pytest


def missing_tool(what: str, how: str) -> None:
    """A check README claims needs ``what``, which is not here: skip locally, FAIL under CI.

    ``.ci/run`` installs every tool the suite uses (PyTorch, JAX, Chromium) and sets
    ``CI=true``; there a missing tool means a claimed check did not run, which must not
    pass as a skip.
    """
    msg = f"{what} is not installed ({how})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {msg}; this check is claimed as tested", pytrace=False)
    pytest.skip(msg)
