"""The on-disk store of a sweep: atomic writes, the manifest and one record per trial.

A sweep output directory (``--out DIR``, see ``docs/internals.md``) looks like::

    DIR/sweep.json               manifest: spec, fingerprint, every planned trial
    DIR/trials/<trial_id>.json   one record per finished trial (ok or failed)
    DIR/ray/                     Ray Tune's own state (never read here)
    DIR/trials.csv, ranking.csv, curves.parquet, report.html, report.md, plots/*.png

Every file is written atomically (STYLE.md #11): the bytes go to a temporary file in the
same folder, are flushed and ``fsync``-ed, then ``os.replace`` swaps it in. A reader (the
reducer, possibly on a laptop while the sweep still runs) therefore sees either the old
file or the new one whole, never half of one. A crash leaves at most a stray
``.<name>.*.tmp`` file, which readers ignore.

This module imports neither Ray nor TensorFlow (nor pandas, until a frame is written), so
it is safe to use from the driver, from tests and from the reducer alike.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = write_manifest(d, {"name": "demo", "spec": {}, "fingerprint": "abc", "trials": []})
    >>> read_manifest(d)["name"]
    'demo'
    >>> _ = write_record(d, {"trial_id": "0123456789ab", "status": "ok", "curve": None})
    >>> sorted(read_records(d))
    ['0123456789ab']
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

# One implementation of atomic writes for the whole project, re-exported for the store's callers.
from lrrt_core.atomic import atomic_write_bytes, atomic_write_frame, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "sweep.json"
TRIALS_DIR = "trials"

_TRIAL_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "TRIALS_DIR",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_frame",
    "LOCK_NAME",
    "OutDirBusy",
    "lock_out_dir",
    "manifest_path",
    "record_path",
    "write_manifest",
    "read_manifest",
    "write_record",
    "read_record",
    "read_records",
    "scan_records",
]


# --------------------------------------------------------------------------- lock
LOCK_NAME = ".lock"


class OutDirBusy(RuntimeError):
    """Another ``lrrt sweep`` holds the output directory."""


def lock_out_dir(out_dir: str | os.PathLike):
    """Take the exclusive lock of a sweep directory for this process's lifetime.

    Two drivers writing one ``--out`` would run every trial twice and race on the records.
    ``flock`` is released by the kernel when the process ends, even on SIGKILL, so a crashed
    sweep never leaves a stale lock. Returns the open lock file (keep a reference to it).

    Raises:
        OutDirBusy: another process holds the lock.
    """
    import fcntl

    path = Path(out_dir) / LOCK_NAME
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        raise OutDirBusy(f"another lrrt sweep{f' (pid {holder})' if holder else ''} is running on {out_dir}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


# --------------------------------------------------------------------------- manifest
def manifest_path(out_dir: str | os.PathLike) -> Path:
    """``DIR/sweep.json``."""
    return Path(out_dir) / MANIFEST_NAME


def record_path(out_dir: str | os.PathLike, trial_id: str, folder: str = TRIALS_DIR) -> Path:
    """``DIR/<folder>/<trial_id>.json`` (``trials/``, or ``verify/`` for verification trials);
    refuses ids that could escape the folder."""
    trial_id = str(trial_id)
    if not _TRIAL_ID_RE.match(trial_id) or trial_id in (".", ".."):
        raise ValueError(f"invalid trial_id {trial_id!r} (letters, digits, '_', '.', '-' only)")
    return Path(out_dir) / folder / f"{trial_id}.json"


def write_manifest(out_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write the sweep manifest ``DIR/sweep.json`` atomically.

    Args:
        out_dir: the sweep output directory (created if missing).
        manifest: ``{name, spec, fingerprint, trials: [{trial_id, name, config, params}]}``;
            ``schema`` is set to :data:`SCHEMA_VERSION` if absent. ``spec`` is the JSON form
            of the sweep spec; ``fingerprint`` its hash (used to refuse a different spec on
            an existing directory).

    Returns:
        the path written.
    """
    data = {"schema": SCHEMA_VERSION, **dict(manifest)}
    data.setdefault("trials", [])
    return atomic_write_json(manifest_path(out_dir), data)


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``DIR/sweep.json``; ``None`` if there is none.

    Raises:
        ValueError: if the file exists but is not a JSON object (a manifest is written
            atomically, so a broken one is not a race but a real problem to report).
    """
    path = manifest_path(out_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        logger.warning("%s: schema %r, this version reads schema %d", path, schema, SCHEMA_VERSION)
    data.setdefault("trials", [])
    return data


# --------------------------------------------------------------------------- trial records
def write_record(out_dir: str | os.PathLike, record: dict[str, Any], folder: str = TRIALS_DIR) -> Path:
    """Write one trial record to ``DIR/<folder>/<trial_id>.json`` atomically.

    The record schema (``docs/internals.md``)::

        {schema: 1, trial_id, name, config,
         params: {optimizer, optimizer_name, optimizer_kwargs, batch_size, seed, axes},
         status: "ok" | "failed", error, attempts, node, gpu_ids, wall_s,
         curve: Curve.to_dict() | null}

    A verification trial's record (``folder="verify"``) has ``result``
    (``lrrt_core.verify.TrainResult.to_dict()``) instead of ``curve``, and ``factor``/``lr``
    in its ``params``.

    ``schema`` is filled in if absent. Writing the same trial again replaces the record
    whole (a re-run after a failure overwrites the failed record).

    Raises:
        ValueError: if ``record`` has no valid ``trial_id``.
    """
    if "trial_id" not in record:
        raise ValueError("write_record: record has no 'trial_id'")
    data = {"schema": SCHEMA_VERSION, **dict(record)}
    return atomic_write_json(record_path(out_dir, record["trial_id"], folder), data)


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read and minimally validate one record file.

    Raises:
        ValueError: not JSON, not an object, or without ``trial_id``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if "trial_id" not in data:
        raise ValueError(f"{path}: record has no 'trial_id'")
    return data


def scan_records(out_dir: str | os.PathLike, folder: str = TRIALS_DIR) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Read every record in ``DIR/<folder>/`` (default ``trials/``); return ``(records, corrupt)``.

    ``records`` is ``{trial_id: record}``; ``corrupt`` is ``{file stem: reason}`` for each
    file that could not be read (the stem is the trial id it was meant to hold), so the
    reducer can list those trials as missing *and* say why. Each corrupt file is also
    logged as a warning. Temporary files (``.*.tmp``, left by an interrupted atomic
    write) are ignored. A record whose ``trial_id`` disagrees with its file name is keyed
    by its ``trial_id``, with a warning. A missing ``trials/`` folder gives ``({}, {})``.
    """
    folder = Path(out_dir) / folder
    records: dict[str, dict[str, Any]] = {}
    corrupt: dict[str, str] = {}
    if not folder.is_dir():
        return records, corrupt
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            rec = read_record(path)
        except (OSError, ValueError) as exc:
            logger.warning("skipping corrupt trial record %s: %s", path, exc)
            corrupt[path.stem] = str(exc)
            continue
        tid = str(rec["trial_id"])
        if tid != path.stem:
            logger.warning("trial record %s holds trial_id %r (file name differs)", path, tid)
        records[tid] = rec
    return records, corrupt


def read_records(out_dir: str | os.PathLike, folder: str = TRIALS_DIR) -> dict[str, dict[str, Any]]:
    """Read every record in ``DIR/<folder>/`` (default ``trials/``) as ``{trial_id: record}``.

    Robust to a directory that is still being written: temporary files are ignored, and a
    corrupt or unreadable record is skipped with a logged warning rather than crashing
    the reducer (the trial then counts as missing). See :func:`scan_records` to also get
    the list of corrupt files.
    """
    return scan_records(out_dir, folder)[0]
