"""The training recipe per configuration (``recipes.json``): what to train with, best first.

From the ranking (after verification: its ``verified_*`` columns), each configuration's
constant learning rate (verified when verification ran, else the range test's suggestion),
a one-cycle schedule and triangular cyclical rates around it, bounded by the range test's
loss minimum (:func:`schedule_peak`). ``lrrt_core.training_schedules.one_cycle`` and ``.triangular``
build them as Keras schedules. No Ray, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["recipes", "schedule_peak", "ONE_CYCLE", "ONE_CYCLE_PEAK", "CLR_PEAK", "CLR_RATIO"]

#: one-cycle peak as a multiple of the constant rate, and its warm-up/annealing defaults
#: (PyTorch ``OneCycleLR``'s div_factor 25 and final_div_factor 1e4; fastai's 25 % warm-up).
ONE_CYCLE_PEAK = 3.0
ONE_CYCLE = {"pct_start": 0.25, "div_factor": 25.0, "final_div_factor": 1e4}
#: triangular CLR: max_lr as a multiple of the constant rate; base_lr = max_lr / 4 (Smith 2015, 3.3).
CLR_PEAK, CLR_RATIO = 3.0, 4.0


def recipes(ranking: pd.DataFrame, method: str) -> list[dict[str, Any]]:
    """A training recipe per configuration, best first: by ``verified_rank`` after
    verification (configurations it did not verify follow, by range-test rank), else by
    ``rank``. Each names both ranks: ``rank`` (the range test's) and ``verified_rank``
    (``None`` where not verified, or not ranked).

    * ``lr`` — the constant rate to train with: the verified rate when verification ran,
      else the range test's recommendation (``method``); ``lr_source`` says which.
    * ``max_lr_bound`` — what bounds both schedules' ``max_lr`` (:func:`schedule_peak`):
      ``"3 x lr"``, or ``"lr_at_min_loss"`` where that peak would pass the range test's
      smoothed-loss minimum.
    * ``one_cycle`` — ``max_lr = 3 x lr`` (:func:`schedule_peak`) with fastai's warm-up and annealing defaults
      (``lrrt_core.training_schedules.one_cycle`` takes them): a one-cycle schedule tolerates a
      higher peak than a constant rate (Smith 2018, sec. 4.1).
    * ``triangular`` — cyclical learning rates between ``base_lr = max_lr / 4`` and
      ``max_lr = 3 x lr`` (Smith 2015, sec. 3.3: "base_lr 1/3 or 1/4 of max_lr"), a step
      size of 2-10 epochs of iterations (``lrrt_core.training_schedules.triangular``).
    """
    out = []
    keys = [c for c in ("verified_rank", "rank") if c in ranking]
    for r in ranking.sort_values(keys, na_position="last", kind="mergesort").itertuples():
        verified = getattr(r, "verified_lr", math.nan)
        lr, source = (verified, "verified") if _finite(verified) else (r.suggested_lr_gmean, method)
        if not _finite(lr):
            continue
        at_min = getattr(r, "lr_at_min_loss_gmean", math.nan)
        peak, bound = schedule_peak(float(lr), CLR_PEAK, at_min, verified=source == "verified")
        out.append({
            "config": str(r.config), "rank": _rank_or_none(r.rank),
            "verified_rank": _rank_or_none(getattr(r, "verified_rank", None)), "lr": float(lr), "lr_source": source,
            "max_lr_bound": bound,
            "one_cycle": {"max_lr": schedule_peak(float(lr), ONE_CYCLE_PEAK, at_min, verified=source == "verified")[0],
                          **ONE_CYCLE},
            "triangular": {"base_lr": peak / CLR_RATIO, "max_lr": peak, "step_size_epochs": [2, 10]},
        })
    return out


def schedule_peak(lr: float, multiple: float, lr_at_min_loss: Any, *, verified: bool) -> tuple[float, str]:
    """A schedule's ``max_lr`` and what bounds it: ``multiple x lr``, but never above the rate
    where the range test's smoothed loss was lowest (``lr_at_min_loss``, the geometric mean
    over seeds), unless verification showed a rate at or above that minimum trains best
    (``verified`` and ``lr >= lr_at_min_loss``). Never below ``lr`` itself.

    Returns:
        ``(max_lr, bound)``: ``bound`` is ``"3 x lr"`` (the multiple) or ``"lr_at_min_loss"``.

    Example:
        >>> schedule_peak(0.59, 3.0, 1.11, verified=True)   # quickstart's sgd-bs32: 1.77 before
        (1.11, 'lr_at_min_loss')
        >>> schedule_peak(1.2, 3.0, 1.11, verified=True)
        (3.5999999999999996, '3 x lr')
    """
    peak, at_min = lr * multiple, float(lr_at_min_loss) if _finite(lr_at_min_loss) else math.nan
    if not (at_min > 0 and peak > at_min) or (verified and lr >= at_min):
        return peak, f"{multiple:g} x lr"
    return max(at_min, lr), "lr_at_min_loss"


def _rank_or_none(value: Any) -> int | None:
    """A rank as an ``int`` for JSON, ``None`` when empty (NaN, ``pd.NA``)."""
    return int(value) if _finite(value) else None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False

