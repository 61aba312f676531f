"""The on-disk store of a sweep: its directory, typed manifest and trial records, atomic writes.

One kind of job: persistence. A sweep output directory (``--out DIR``, see
``docs/internals.md``) looks like::

    DIR/sweep.json               manifest (:class:`Manifest`): spec, fingerprint, every planned trial
    DIR/trials/<trial_id>.json   one record (:class:`TrialRecord`) per finished trial (ok or failed)
    DIR/verify/<trial_id>.json   one record per finished verification training
    DIR/ray/                     Ray Tune's own state (never read here)
    DIR/trials.csv, ranking.csv, curves.parquet, report.html, report.md, plots/*.png

:class:`SweepDir` is the directory as one object: lock, fingerprint check, clear, manifest,
pending trials, records. :class:`Manifest` and :class:`TrialRecord` own their JSON form
(``to_json`` / ``from_json``); the files they write are those earlier versions wrote, key
for key, so old output directories still load and resume. The module-level functions
(:func:`write_record`, :func:`read_manifest`, ...) are the plain-JSON layer underneath.

Every file is written atomically (STYLE.md #11): the bytes go to a temporary file in the
same folder, are flushed and ``fsync``-ed, then ``os.replace`` swaps it in. A reader (the
reducer, possibly on a laptop while the sweep still runs) therefore sees either the old
file or the new one whole, never half of one. A crash leaves at most a stray
``.<name>.*.tmp`` file, which readers ignore.

This module imports neither Ray nor TensorFlow (nor pandas, until a frame is written), so
it is safe to use from the driver, from tests and from the reducer alike.

Example:
    >>> import tempfile
    >>> d = SweepDir(tempfile.mkdtemp())
    >>> _ = d.write_manifest(Manifest(name="demo", fingerprint="abc", spec={}))
    >>> d.read_manifest().name
    'demo'
    >>> _ = d.write_record(TrialRecord(trial_id="0123456789ab", status="ok"))
    >>> sorted(d.records())
    ['0123456789ab']
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

# One implementation of atomic writes for the whole project, re-exported for the store's callers.
from lrrt_core.atomic import atomic_write_bytes, atomic_write_frame, atomic_write_json, atomic_write_text
from sweeps.errors import OutDirBusy, OutDirRefused
from sweeps.records import SCHEMA_VERSION, Manifest, TrialEntry, TrialRecord

logger = logging.getLogger(__name__)

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
    "TrialEntry",
    "TrialRecord",
    "Manifest",
    "SweepDir",
    "OutDirRefused",
    "OUTPUT_NAMES",
]


# --------------------------------------------------------------------------- lock
LOCK_NAME = ".lock"


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
        raise OutDirBusy(f"--out: another lrrt sweep{f' (pid {holder})' if holder else ''} is running on {out_dir}; "
                         "wait for it or stop it first") from None
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


# --------------------------------------------------------------------------- typed layer
#: every name an lrrt sweep writes into its directory (what ``--fresh`` may clear).
OUTPUT_NAMES = (LOCK_NAME, MANIFEST_NAME, TRIALS_DIR, "verify", "ray", "plots", "trials.csv", "ranking.csv",
                "curves.parquet", "verify.csv", "recipes.json", "report.html", "report.md")


class SweepDir:
    """A sweep's output directory: its lock, manifest and records, and the checks on them.

    Nothing is created until something is written (:meth:`prepare`, :meth:`write_record`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy (Tune pickles the launch's callbacks, which hold :meth:`write_record`) never
        holds the lock: the lock belongs to this process."""
        return {**self.__dict__, "_lock": None}

    # ---- manifest
    def read_manifest(self) -> Manifest | None:
        """The manifest, or ``None`` when there is none (``ValueError`` if it is damaged)."""
        data = read_manifest(self.path)
        return None if data is None else Manifest.from_json(data)

    def write_manifest(self, manifest: Manifest) -> Path:
        return write_manifest(self.path, manifest.to_json())

    # ---- records
    def scan(self, folder: str = TRIALS_DIR) -> tuple[dict[str, TrialRecord], dict[str, str]]:
        """``({trial_id: record}, {file stem: why unreadable})`` of one records folder."""
        raw, corrupt = scan_records(self.path, folder)
        return {tid: TrialRecord.from_json(r) for tid, r in raw.items()}, corrupt

    def records(self, folder: str = TRIALS_DIR) -> dict[str, TrialRecord]:
        return self.scan(folder)[0]

    def write_record(self, record: TrialRecord, folder: str = TRIALS_DIR) -> Path:
        return write_record(self.path, record.to_json(), folder)

    def pending(self, trials: Sequence, folder: str = TRIALS_DIR, *,
                fresh: bool = False) -> tuple[list, dict[str, TrialRecord]]:
        """The trials without an ``ok`` record (never started, unfinished, failed), and the
        records there are. ``fresh``: the records are about to be cleared, so none count."""
        records = {} if fresh or not self.path.exists() else self.records(folder)
        return [t for t in trials if not (t.trial_id in records and records[t.trial_id].ok)], records

    # ---- the directory
    def check(self, fingerprint: str, fresh: bool) -> None:
        """Refuse a directory holding another sweep (or foreign files) unless ``fresh``; a
        damaged manifest raises ``ValueError``.

        Raises:
            OutDirRefused: with the line the CLI prints.
        """
        out = self.path
        if not out.exists():
            return
        if not out.is_dir():
            raise OutDirRefused(f"--out: {out} exists and is not a directory")
        manifest = self.read_manifest()
        if fresh:
            if manifest is None and any(p for p in out.iterdir() if p.name not in OUTPUT_NAMES):
                raise OutDirRefused(f"--out: {out} holds files that are not lrrt outputs; "
                                    "--fresh only clears an lrrt output directory")
            return
        if manifest is None:
            if any(p.name != LOCK_NAME for p in out.iterdir()):
                raise OutDirRefused(f"--out: {out} is not empty and holds no lrrt sweep (no sweep.json); "
                                    "choose another --out")
            return
        if manifest.fingerprint != fingerprint:
            raise OutDirRefused(
                f"--out: {out} holds results of a different sweep ({manifest.name!r}, "
                f"other grid, settings or workload builder); rerun with --fresh (fresh=True) to discard them, "
                f"or choose another --out"
            )

    def lock(self) -> None:
        """Take the directory's lock for as long as this object holds it (:func:`lock_out_dir`);
        a second call keeps the first lock. The one place a sweep's lock is taken.

        Raises:
            OutDirBusy: another process holds it (the line the CLI prints).
        """
        if self._lock is None:
            self._lock = lock_out_dir(self.path)

    @contextlib.contextmanager
    def locked(self):
        """Hold the lock for the block (a command's whole run), released on leaving, so a
        notebook can run the same ``out`` again. A directory that does not exist yet is
        locked by :meth:`prepare` when it is created (after the launch checks passed)."""
        try:
            if self.path.is_dir():
                self.lock()  # refuse a second driver before starting Ray
            yield self
        finally:
            self.unlock()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def clear(self) -> None:
        """Delete every lrrt output (:data:`OUTPUT_NAMES`) except the lock this process holds."""
        for name in OUTPUT_NAMES:
            p = self.path / name
            if name == LOCK_NAME:  # deleting it would let a second driver in
                continue
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def prepare(self, manifest: Manifest, *, fresh: bool) -> None:
        """Make the directory ready for a launch: create it, lock it, clear it when ``fresh``,
        write ``manifest``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock()
        if fresh:
            self.clear()
        self.write_manifest(manifest)
