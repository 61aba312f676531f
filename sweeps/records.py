"""The typed records of a sweep directory, each owning its JSON form (STYLE.md #13).

:class:`Manifest` is ``DIR/sweep.json`` (which sweep, every planned trial as a
:class:`TrialEntry`); :class:`TrialRecord` is ``DIR/trials/<id>.json`` or
``DIR/verify/<id>.json`` (how one trial ended, its payload). ``to_json`` / ``from_json``
write and read the files earlier versions wrote, key for key, so old output directories
still load and resume; keys a version does not know are kept and written back. Plain data:
no file access (``sweeps.store`` reads and writes them), no pydantic, no Ray.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable

__all__ = ["SCHEMA_VERSION", "TrialEntry", "TrialRecord", "Manifest"]

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class TrialEntry:
    """A planned trial as the manifest lists it: ``{trial_id, name, config, params}``.

    ``params`` is ``sweeps.grid.Trial.params()`` (``optimizer, optimizer_name,
    optimizer_kwargs, batch_size, seed, axes``; a verification trial adds ``factor, lr``).
    """

    trial_id: str | None
    name: str | None = None
    config: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, trial) -> "TrialEntry":
        """The entry of a grid trial (``sweeps.grid.Trial`` or ``verification.VerifyTrial``)."""
        return cls(trial.trial_id, trial.name, trial.config, trial.params())

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "name": self.name, "config": self.config, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrialEntry":
        tid = data.get("trial_id")
        return cls(None if tid is None else str(tid), data.get("name"), data.get("config"),
                   dict(data.get("params") or {}))


#: a record's keys in file order; the payload (``curve`` or ``result``) comes last.
_RECORD_KEYS = ("schema", "trial_id", "name", "config", "params", "status", "error", "attempts", "retried",
                "node", "node_ip", "gpu_ids", "wall_s", "finished_at")


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """What one finished trial left: who it was, how it ended, where it ran, its payload.

    The JSON form (``DIR/trials/<trial_id>.json``, ``DIR/verify/<trial_id>.json``)::

        {schema: 1, trial_id, name, config,
         params: {optimizer, optimizer_name, optimizer_kwargs, batch_size, seed, axes},
         status: "ok" | "failed", error, attempts, retried, node, node_ip, gpu_ids, wall_s,
         finished_at, curve: Curve.to_dict() | null}

    A verification record has ``result`` (``lrrt_core.verify.TrainResult.to_dict()``) in
    place of ``curve`` (``payload_key``), and ``factor``/``lr`` in its ``params``. Keys a
    record does not know are kept in ``extra`` and written back after the known ones.

    Attributes:
        payload: the trial's result (``curve`` or ``result``); ``None`` for a failure.
        payload_key: the JSON key of ``payload``.
    """

    trial_id: str
    name: str | None = None
    config: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "failed"
    error: str | None = None
    attempts: int | None = None
    retried: bool | None = None
    node: str | None = None
    node_ip: str | None = None
    gpu_ids: Any = ""
    wall_s: float | None = None
    finished_at: float | None = None
    payload: dict[str, Any] | None = None
    payload_key: str = "curve"
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def entry(self) -> TrialEntry:
        """The record's identity, as the manifest would list it."""
        return TrialEntry(self.trial_id, self.name, self.config, dict(self.params))

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in _RECORD_KEYS}
        return {**data, self.payload_key: self.payload, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrialRecord":
        """A record from its JSON form (also an older or partial one: absent keys take defaults)."""
        key = "result" if "result" in data and "curve" not in data else "curve"
        known = {k: data[k] for k in _RECORD_KEYS if k in data}
        known["trial_id"] = str(data["trial_id"])
        known["params"] = dict(data.get("params") or {})
        extra = {k: v for k, v in data.items() if k not in _RECORD_KEYS and k != key}
        return cls(**known, payload=data.get(key), payload_key=key, extra=extra)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """``DIR/sweep.json``: which sweep this directory holds and every trial it plans.

    Attributes:
        name: the sweep's name. fingerprint: the spec's hash (a different spec on an
            existing directory is refused). source: the sweep file, if any.
        spec: the spec's JSON form. created_at: when the sweep was first launched.
        trials: the planned range tests. verify_trials: the planned verification trainings
            (``None`` until verification is planned; the key is then absent from the file).
        extra: keys this version does not know, written back unchanged.
    """

    name: str | None = None
    fingerprint: str | None = None
    source: str | None = None
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: float | None = None
    trials: list[TrialEntry] = dataclasses.field(default_factory=list)
    verify_trials: list[TrialEntry] | None = None
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_sweep(cls, spec, trials: Iterable, fingerprint: str | None = None) -> "Manifest":
        """The manifest of a sweep spec and its grid (``sweeps.grid.expand(spec)``), stamped now
        (``fingerprint``: ``spec.fingerprint()`` when the caller has it, a ``SweepPlan``'s)."""
        return cls(name=spec.name, fingerprint=fingerprint or spec.fingerprint(),
                   source=str(spec.source) if getattr(spec, "source", None) else None,
                   spec=spec.model_dump(mode="json"), created_at=time.time(), trials=[TrialEntry.of(t) for t in trials])

    def with_verification(self, verify_json: dict[str, Any], planned: Iterable) -> "Manifest":
        """This manifest with the verification settings in ``spec.verify`` and its plan."""
        return dataclasses.replace(self, spec={**self.spec, "verify": verify_json},
                                   verify_trials=[TrialEntry.of(t) for t in planned])

    @property
    def rank_by(self) -> str | None:
        """The sweep file's ``report.rank_by`` (``None`` when it does not say)."""
        return (self.spec.get("report") or {}).get("rank_by")

    def to_json(self) -> dict[str, Any]:
        data = {"schema": self.schema, "name": self.name, "fingerprint": self.fingerprint, "source": self.source,
                "spec": self.spec, "created_at": self.created_at, "trials": [t.to_json() for t in self.trials]}
        if self.verify_trials is not None:
            data["verify_trials"] = [t.to_json() for t in self.verify_trials]
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        """A manifest from its JSON form (also an older or partial one)."""
        known = ("schema", "name", "fingerprint", "source", "spec", "created_at", "trials", "verify_trials")
        verify = data.get("verify_trials")
        return cls(name=data.get("name"), fingerprint=data.get("fingerprint"), source=data.get("source"),
                   spec=dict(data.get("spec") or {}), created_at=data.get("created_at"),
                   trials=[TrialEntry.from_json(t) for t in data.get("trials") or []],
                   verify_trials=None if verify is None else [TrialEntry.from_json(t) for t in verify],
                   schema=data.get("schema", SCHEMA_VERSION), extra={k: v for k, v in data.items() if k not in known})
