"""What a launch runs and what an ended trial leaves: trial kinds and their records (no Ray).

A :class:`TrialKind` is what differs between a sweep's range tests (:func:`range_tests`)
and its verification trainings (:func:`verifications`): the Tune trainable, the config it
gets, the records folder, the payload and what makes an ended trial a failure. The launch
(``sweeps.tune_run``) hands each trial Tune ended to :func:`trial_outcome` and
:func:`trial_record`; :func:`error_summary` reads the one line that matters out of Tune's
``error.txt``. Nothing here imports Ray: it reads the attributes of Tune's trial objects.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sweeps import store
from sweeps.spec import DEFAULT_STEPS
from sweeps.store import TrialRecord
from sweeps.trainable import final_payload, run_trial, run_verify_trial, trial_config

__all__ = ["TrialKind", "range_tests", "verifications", "OnRecord", "trial_record", "trial_outcome",
           "error_summary", "error_text"]

#: where a launch hands each finished trial's record: ``on_record(record, folder)``.
OnRecord = Callable[[TrialRecord, str], None]


@dataclasses.dataclass(frozen=True)
class TrialKind:
    """What differs between a sweep's range tests and its verification trainings; the
    launching, records, retries and resume are the same for both.

    Attributes:
        what: how progress and errors name a trial of this kind.
        folder: the records folder in OUT (``trials``, ``verify``).
        payload_key: the record key of the trial's result (``curve``, ``result``).
        trainable: the Tune function trainable.
        make_config: trial -> the JSON-able config the trainable gets.
        check: payload -> why an ended trial counts as failed (``None``: ok).
        steps: progress units per trial (for the ETA).
    """

    what: str
    folder: str
    payload_key: str
    trainable: Callable[[dict], None]
    make_config: Callable[[Any], dict]
    check: Callable[[dict], str | None]
    steps: int


def _check_curve(curve: dict) -> str | None:
    return None if curve.get("lrs") else "no finite loss: the first step's loss was NaN/inf (lower start_lr?)"


def range_tests(spec, trials: Sequence = ()) -> TrialKind:
    """The range tests of ``spec`` (``trials``: to average their step counts for the ETA)."""
    steps = [spec.range_test.steps_for(t.batch_size) or DEFAULT_STEPS for t in trials] or [DEFAULT_STEPS]
    return TrialKind("range test", store.TRIALS_DIR, "curve", run_trial, lambda t: trial_config(t, spec),
                     _check_curve, max(1, sum(steps) // len(steps)))


def verifications(spec, verify) -> TrialKind:
    """The verification trainings of ``spec`` with the settings ``verify`` (a ``VerifySpec``).

    A training that diverges is a result (its candidate scores worst), not a failure."""
    from sweeps.verification import VERIFY_DIR, verify_config

    return TrialKind("verification", VERIFY_DIR, "result", run_verify_trial, lambda t: verify_config(t, spec, verify),
                     lambda result: None, 1)


# Ray's own wording when a trial's process or node is gone (not a Python error of the trial).
_DEATH_PHRASES = ("the actor died", "worker process has died", "nodedied", "node died unexpectedly",
                  "actordiederror", "actor is dead")


def error_summary(text: str) -> str:
    """The readable line of Tune's ``error.txt`` for the trial's last failure.

    The file holds one ``Failure # n`` block per attempt; a Python error ends with
    ``Type: message``; a dead worker (``os._exit``, OOM kill, lost node) says the actor died.
    """
    blocks = re.split(r"^Failure # \d+ .*$", text, flags=re.M)
    last = next((b for b in reversed(blocks) if b.strip()), "")
    lines = [ln.strip() for ln in last.splitlines() if ln.strip()]
    if not lines:
        return "trial failed (no error text recorded)"
    lowered = last.lower()
    if any(phrase in lowered for phrase in _DEATH_PHRASES):
        detail = next((ln for ln in lines if "exit detail" in ln.lower()), "")
        detail = detail.split("Worker exit detail:", 1)[-1].split(". Some common causes")[0].strip()
        return "worker process died" + (f" ({detail})" if detail else "")
    exc_lines = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*:", ln)]
    return (exc_lines[-1] if exc_lines else lines[-1])[:500]


def error_text(trial) -> str:
    """The readable line of a failed Tune trial's ``error.txt`` (:func:`error_summary`)."""
    try:
        return error_summary(Path(trial.error_file).read_text(errors="replace"))
    except (OSError, TypeError):
        return "trial failed (no error text recorded)"


def trial_record(trial, kind: TrialKind, entry, attempts: int, status: str, error: str | None,
                 payload: dict | None) -> TrialRecord:
    """The record of a trial that ended (``entry``: its grid trial; ``attempts``: all so far)."""
    last = trial.last_result or {}
    return TrialRecord(trial_id=entry.trial_id, name=entry.name, config=entry.config, params=entry.params(),
                       status=status, error=error, attempts=attempts, retried=attempts > 1, node=last.get("node"),
                       node_ip=last.get("node_ip"), gpu_ids=last.get("gpu_ids", ""), wall_s=last.get("wall_s"),
                       finished_at=time.time(), payload=payload, payload_key=kind.payload_key)


def trial_outcome(trial, kind: TrialKind) -> tuple[str, str | None, dict | None]:
    """Status, error and payload of a trial Tune calls complete."""
    payload = final_payload(trial.last_result)
    if payload is None:
        return "failed", f"trial ended without reporting its {kind.payload_key}", None
    problem = kind.check(payload)
    return ("failed" if problem else "ok"), problem, payload
