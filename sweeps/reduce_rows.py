"""One row of ``trials.csv`` per planned trial: its identity and the summary of its curve.

The trial list is the manifest's (then any record it does not know); each trial's identity
comes from its manifest entry, then its record; an ok record's curve is summarised here from
the raw stored curve with :func:`lrrt_core.suggest.summarize` (one column per registered
suggestion method, :data:`lrrt_core.suggest.METHODS`), never trusted from what the trial
reported while running. No Ray: only the store's records.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from lrrt_core.curve import Curve
from lrrt_core.suggest import DEFAULT_METHOD, METHODS, summarize, summary_keys
from sweeps.store import Manifest, TrialEntry, TrialRecord

logger = logging.getLogger(__name__)

DEFAULT_RANK_BY = DEFAULT_METHOD
#: the identity columns of ``trials.csv``; the extra grid axes follow ``seed``.
TRIAL_ID_COLUMNS = ["trial_id", "name", "config", "optimizer", "batch_size", "seed"]


def trial_columns() -> list[str]:
    """The columns of ``trials.csv`` without the axes: identity, status, the summary (one
    column per registered method, :func:`lrrt_core.suggest.summary_keys`), where it ran."""
    return TRIAL_ID_COLUMNS + ["status", "error", "attempts"] + summary_keys() + ["wall_s", "node", "gpu_ids"]


def check_rank_by(rank_by: str | None) -> str:
    """``rank_by`` (default :data:`DEFAULT_RANK_BY`) if it names a registered method."""
    rank_by = DEFAULT_RANK_BY if rank_by is None else str(rank_by)
    if rank_by not in METHODS:
        raise ValueError(f"rank_by must be one of {sorted(METHODS)}, got {rank_by!r}")
    return rank_by


def gpu_ids_str(value: Any) -> str:
    """``[0, 1]`` / ``"0,1"`` / ``None`` -> ``"0,1"`` / ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def as_float(value: Any) -> float:
    """``None``/unparseable -> NaN, else ``float(value)``."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan



def planned_trials(manifest: Manifest | None, records: dict[str, TrialRecord]) -> list[TrialEntry]:
    """The trial list: the manifest's, then any record the manifest does not know."""
    planned: list[TrialEntry] = []
    seen: set[str] = set()
    for t in manifest.trials if manifest is not None else []:
        tid = str(t.trial_id)
        if tid in seen:
            logger.warning("manifest lists trial %s twice; keeping the first", tid)
            continue
        seen.add(tid)
        planned.append(t)
    extra = [r for tid, r in records.items() if tid not in seen]
    if extra and manifest is not None:
        logger.warning("%d trial record(s) are not in the manifest; reducing them anyway", len(extra))
    planned += [r.entry for r in sorted(extra, key=lambda r: str(r.name or r.trial_id))]
    return planned


def identity(t: TrialEntry, record: TrialRecord | None) -> dict[str, Any]:
    """Identity columns of one trial, preferring the manifest entry, then the record."""
    src = record.entry if record is not None else TrialEntry(None)
    params = dict(src.params)
    params.update({k: v for k, v in t.params.items() if v is not None})
    tid = str(t.trial_id or src.trial_id)
    name = t.name or src.name or tid
    config = t.config or src.config or name
    return {
        "trial_id": tid,
        "name": str(name),
        "config": str(config),
        "optimizer": params.get("optimizer") or params.get("optimizer_name"),
        "batch_size": params.get("batch_size"),
        "seed": params.get("seed"),
        "axes": dict(params.get("axes") or {}),
    }



def identities(planned: list[TrialEntry], records: dict[str, TrialRecord]) -> tuple[list[dict], list[str]]:
    """Each planned trial's identity, and the extra axis names in order of first appearance."""
    axes: list[str] = []
    idents = []
    for t in planned:
        ident = identity(t, records.get(str(t.trial_id)))
        idents.append(ident)
        axes += [a for a in ident["axes"] if a not in axes]
    return idents, axes


def trial_row(ident: dict, rec: TrialRecord | None, corrupt: dict[str, str], axes: list[str], axis_cols: list[str],
               rank_by: str) -> tuple[dict[str, Any], Curve | None]:
    """One row of ``trials.csv`` (status ok / failed / missing) and the trial's curve if ok."""
    tid = ident["trial_id"]
    row: dict[str, Any] = {k: ident[k] for k in TRIAL_ID_COLUMNS}
    for a, col in zip(axes, axis_cols):
        row[col] = ident["axes"].get(a)
    row.update({k: math.nan for k in summary_keys()})
    row.update(stop_reason=None, error="", attempts=math.nan, wall_s=math.nan, node="", gpu_ids="")
    if rec is None:
        row["status"] = "missing"
        if tid in corrupt:
            row["error"] = f"corrupt record: {corrupt[tid]}"
        return row, None
    row["attempts"] = as_float(rec.attempts)
    row["node"] = "" if rec.node is None else str(rec.node)
    row["gpu_ids"] = gpu_ids_str(rec.gpu_ids)
    row["wall_s"] = as_float(rec.wall_s)
    status, error, curve = _status_and_curve(ident, rec, rank_by, row)
    row["status"] = status
    row["error"] = "" if error is None else str(error)
    return row, curve


def _status_and_curve(ident: dict, rec: TrialRecord, rank_by: str, row: dict[str, Any]):
    """The record's status, error and curve; an ok record's summary scalars go into ``row``."""
    status = str(rec.status)
    error = rec.error
    curve = None
    if status == "ok":
        try:
            if rec.payload is None:
                raise ValueError("status ok but the record holds no curve")
            curve = Curve.from_dict(rec.payload)
            if curve.steps_run == 0:
                raise ValueError("the curve has no steps")
            summary = summarize(curve, rank_by=rank_by)
        except Exception as exc:  # a bad record must not stop the whole report
            logger.warning("trial %s (%s): cannot reduce its curve: %s", ident["name"], ident["trial_id"], exc)
            return "failed", f"reducer: {exc}", None
        row.update(summary)
        if math.isnan(row["wall_s"]):
            row["wall_s"] = float(curve.wall_s)
    elif status != "failed":
        logger.warning("trial %s: unknown status %r, counted as failed", ident["trial_id"], status)
        error = error or f"unknown status {status!r}"
        status = "failed"
    return status, error, curve


def failure(ident: dict, row: dict[str, Any]) -> dict[str, Any]:
    """An entry of :attr:`Reduction.failed`."""
    return {
        "trial_id": ident["trial_id"],
        "name": ident["name"],
        "config": ident["config"],
        "error": row["error"] or "(no error message recorded)",
        "attempts": None if math.isnan(row["attempts"]) else int(row["attempts"]),
    }



__all__ = ["TRIAL_ID_COLUMNS", "DEFAULT_RANK_BY", "trial_columns", "check_rank_by", "planned_trials", "identity",
           "identities", "trial_row", "failure", "gpu_ids_str", "as_float"]
