"""How values read in a report's cells and sentences: learning rates, losses, ranks, ratios.

One place, so the HTML page, the Markdown file, the notebook view and ``lrrt``'s printout
write a number the same way. Plain text, unescaped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lrrt_core.plot import fmt_lr as _lr_text

__all__ = ["fmt_lr", "fmt_loss", "fmt_int", "fmt_value", "is_nan", "ratio_text", "rank_of"]


def fmt_value(v: Any) -> str:
    """An axis value as text: integral floats without ``.0``."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def is_nan(v: Any) -> bool:
    """``None`` or NaN (of any type pandas knows)."""
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def fmt_lr(v: float) -> str:
    """A learning rate as the report writes it (``lrrt_core.plot``'s format; ``n/a`` if not finite)."""
    return "n/a" if v is None or not np.isfinite(v) else _lr_text(v)


def fmt_loss(v: float) -> str:
    """A loss to 4 significant digits (``n/a`` if not finite)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.4g}"


def fmt_int(v: Any) -> str:
    """An integer (a rank, a batch size); ``""`` when missing."""
    return "" if is_nan(v) else str(int(v))


def ratio_text(ratio: float) -> str:
    """``"3x higher"``, ``"3x lower"`` or ``"the same"``: a verified rate against the range test's."""
    if not np.isfinite(ratio):
        return "n/a"
    if np.isclose(ratio, 1.0, rtol=0.01):
        return "the same"
    return f"{ratio:.3g}x higher" if ratio > 1 else f"{1 / ratio:.3g}x lower"


def rank_of(rank: int | None, n: int) -> str:
    """``"3 of 12"`` (``""`` without a rank)."""
    return "" if rank is None else f"{rank} of {n}"
