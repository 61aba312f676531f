"""How a sweep names and identifies things: values in names, file-safe names, hashable JSON,
and a workload builder given as a Python callable (no pydantic, no Ray, no TensorFlow).

Trial names, configuration names and report cells print values with :func:`format_value`
and keep to file-safe characters with :func:`safe_name`; fingerprints and trial ids hash
:func:`canonical_json`; :func:`builder_ref` names a notebook's builder so a sweep resumes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import re
import textwrap
from typing import Any

__all__ = ["format_value", "safe_name", "canonical_json", "short_hash", "builder_ref"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def format_value(value: Any) -> str:
    """A value as it appears in trial names and tables: ``32``, ``0.01``, ``1e-05``, ``relu``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def safe_name(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._=-]`` replaced by ``_``.

    Trial names are used as file and directory names and in reports; this keeps them
    portable. Example: ``safe_name("adam w/0.9") == "adam_w_0.9"``.
    """
    return _UNSAFE.sub("_", text)


def canonical_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces, no NaN): the text hashed for fingerprints and ids."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def short_hash(value: Any) -> str:
    """12 hex digits of SHA-1 over :func:`canonical_json` of ``value``: a trial's id."""
    return hashlib.sha1(canonical_json(value).encode("utf-8")).hexdigest()[:12]


def _importable(fn: Any) -> bool:
    """True when ``module:qualname`` of ``fn`` imports back to ``fn`` itself (a module-level function)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return False
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is fn


def _source_digest(fn: Any) -> str:
    """12 hex digits of SHA-256 over the builder's source (its bytecode when there is none)."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = (code.co_code.hex() + repr(code.co_names)) if code is not None else ""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def builder_ref(fn: Any) -> str:
    """How a sweep names a workload builder given as a Python callable.

    A module-level function of an importable module is named like a sweep file names it,
    ``module:function``: the workers import it, and the sweep is the same sweep as the YAML
    one. Any other callable (defined in a notebook or script, i.e. in ``__main__``, or
    nested) is shipped to the workers by value and named ``module:qualname@digest``, the
    digest taken over its source code: the name is stable across kernel restarts and
    reruns (so a sweep resumes), and editing the builder makes it a different sweep (the
    old results are not taken for the new builder's). A sweep file cannot use this form.

    Example:
        >>> from lrrt_core.workloads import digits_cnn
        >>> builder_ref(digits_cnn)
        'lrrt_core.workloads:digits_cnn'
    """
    module = getattr(fn, "__module__", None) or "__main__"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    if _importable(fn):
        return f"{module}:{qualname}"
    return f"{module}:{qualname}@{_source_digest(fn)}"
