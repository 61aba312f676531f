"""Render an :class:`~sweeps.export.data.ExportData` as TensorBoard event files (drawing only).

The layout under ``LOGDIR`` (one TensorBoard "run" per finished trial)::

    LOGDIR/<sweep name>/                      the HParams experiment: which axes, which metrics
    LOGDIR/<sweep name>/<trial name>/         one range test: its curve and its HParams row
    LOGDIR/<sweep name>/lrrt_export.json      what was exported (fingerprint, digest, version)

Each trial's run holds, per step, the scalars ``loss/raw``, ``loss/smoothed`` and ``lr``
(the learning rate of that step), so TensorBoard's own charts show the curve against the
step; and, at step 0, its summary values: under ``summary/`` its ``min_loss``, ``steps`` and
every ``*_lr`` of ``trials.csv``, under ``config/`` its configuration's ``ranking.csv`` values
(rank, verified rate, held-out loss and metric). These are the HParams plugin's metrics; the
trial's optimizer, batch size, seed and extra axes are its hyper-parameters.

Values are written as ``tf.summary.scalar`` writes them: float32 tensors with the scalars
plugin's metadata. float32 is what TensorBoard keeps (its data server drops a float64
scalar), so a reader gets the tables' numbers rounded to float32 (7 significant digits);
the exact ones are in MLflow and in the sweep's files. Only the ``tensorboard`` package is
needed, not TensorFlow.

Re-export: the sweep's folder is replaced whole (written beside it, then swapped in), or
skipped when its ``lrrt_export.json`` holds the same digest; a folder of another sweep (or
not an lrrt export) is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np

from sweeps.export.data import ExportData, ExportRefused, TrialExport

__all__ = ["write_tensorboard", "summary_tags", "MARKER", "SCALAR_TAGS", "run_folder"]

MARKER = "lrrt_export.json"
#: the HParams metrics listed first (the table shows the first five): the answer, then the rest.
FIRST_METRICS = ("summary/min_loss", "summary/suggested_lr", "config/rank", "config/verified_lr",
                 "config/verified_metric", "config/verified_rank")
#: TensorBoard tag of each per-step series of ``curves.parquet``.
SCALAR_TAGS = {"loss": "loss/raw", "smoothed_loss": "loss/smoothed", "lr": "lr"}


def run_folder(name: str) -> str:
    """A sweep or trial name as one safe path component."""
    safe = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("._") or "sweep"
    return safe


def _scalar_value(tag: str, value: float):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util import tensor_util

    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(display_name="", description=""),
                                     tensor=tensor_util.make_tensor_proto(np.float32(value)))


def _event(step: int, wall_time: float, summary=None, values=()):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return event_pb2.Event(step=int(step), wall_time=wall_time,
                           summary=summary if summary is not None else summary_pb2.Summary(value=list(values)))


def _hparam_domain(values: list):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if all(isinstance(v, bool) for v in values) or all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in values) or all(isinstance(v, str) for v in values):
        return hp.Discrete(sorted(set(values)))
    return None


def _hparam_values(data: ExportData) -> dict[str, dict[str, object]]:
    """``{trial name: {hparam: value}}``; an axis whose values mix kinds is given as text."""
    by_name = {t.name: dict(t.hparams) for t in data.trials}
    for h in data.hparam_names:
        values = [v[h] for v in by_name.values() if h in v]
        if values and _hparam_domain(values) is None:
            for v in by_name.values():
                if h in v:
                    v[h] = str(v[h])
    return by_name


def summary_tags(trial: TrialExport) -> dict[str, float]:
    """The trial's summary values by tag: ``summary/<trials.csv column>`` and
    ``config/<ranking.csv column>`` (its configuration's)."""
    return {**{f"summary/{k}": v for k, v in trial.values.items()},
            **{f"config/{k}": v for k, v in trial.config_values.items()}}


def _experiment_event(data: ExportData, hparams: dict[str, dict[str, object]], now: float):
    """The HParams experiment: each axis with its values, each summary tag as a metric (the
    ``summary/`` ones shown by their column name)."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    infos = []
    for h in data.hparam_names:
        values = [v[h] for v in hparams.values() if h in v]
        if values:
            infos.append(hp.HParam(h, _hparam_domain(values)))
    tags = dict.fromkeys(tag for t in data.trials for tag in summary_tags(t))
    tags = [*(t for t in FIRST_METRICS if t in tags), *(t for t in tags if t not in FIRST_METRICS)]
    metrics = [hp.Metric(tag, display_name=tag.removeprefix("summary/")) for tag in tags]
    return _event(0, now, hp.hparams_config_pb(infos, metrics, time_created_secs=now))


def _trial_events(trial: TrialExport, hparams: dict[str, object], now: float):
    """The events of one trial's run: its HParams row, its summary values, its curve."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    yield _event(0, now, hp.hparams_pb(hparams, trial_id=trial.name, start_time_secs=now))
    yield _event(0, now, values=[_scalar_value(k, v) for k, v in summary_tags(trial).items()])
    series = trial.series()
    for i, step in enumerate(trial.step):
        yield _event(int(step), now, values=[_scalar_value(SCALAR_TAGS[k], series[k][i]) for k in SCALAR_TAGS])


def _write_run(folder: Path, events) -> None:
    """One event file in ``folder``: the file-version event, then ``events``, as TFRecords.

    ``tensorboard``'s own ``RecordWriter`` frames the records; its ``EventFileWriter`` is not
    used because it opens files through ``tf.io.gfile``, importing TensorFlow when installed.
    """
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = folder / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.lrrt"
    writer = RecordWriter(open(path, "wb"))
    try:
        writer.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for ev in events:
            writer.write(ev.SerializeToString())
    finally:
        writer.close()


def _check_target(root: Path, data: ExportData) -> bool:
    """Whether ``root`` already holds this very export; refuse one of another sweep."""
    if not root.exists():
        return False
    marker = root / MARKER
    if not marker.is_file():
        raise ExportRefused(f"--tensorboard: {root} exists and is not an lrrt export (no {MARKER}); "
                       "choose another log directory")
    try:
        old = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportRefused(f"--tensorboard: {marker} is damaged ({err}); remove {root} to export again") from None
    if old.get("fingerprint") != data.fingerprint:
        raise ExportRefused(f"--tensorboard: {root} holds the export of another sweep named {data.name!r} "
                       f"(fingerprint {str(old.get('fingerprint'))[:12]}); choose another log directory")
    return old.get("digest") == data.digest


def write_tensorboard(data: ExportData, logdir: str | os.PathLike) -> tuple[Path, str]:
    """Write (or replace, or skip) the sweep's runs under ``logdir``.

    Returns:
        ``(the sweep's folder, "written" | "replaced" | "skipped")``.

    Raises:
        ExportRefused: the folder holds something that is not this sweep's export.
    """
    root = Path(logdir).resolve() / run_folder(data.name)
    if _check_target(root, data):
        return root, "skipped"
    existed = root.exists()
    now = time.time()
    tmp = root.parent / f".{root.name}.lrrt-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    hparams = _hparam_values(data)
    _write_run(tmp, [_experiment_event(data, hparams, now)])
    for trial in data.trials:
        _write_run(tmp / run_folder(trial.name), _trial_events(trial, hparams[trial.name], now))
    (tmp / MARKER).write_text(json.dumps({"sweep": data.name, "fingerprint": data.fingerprint, "digest": data.digest,
                                          "lrrt_version": data.version, "out_dir": str(data.out_dir),
                                          "trials": len(data.trials), "missing": list(data.missing),
                                          "failed": list(data.failed)}, indent=1), encoding="utf-8")
    _swap_in(tmp, root)
    return root, "replaced" if existed else "written"


def _swap_in(tmp: Path, root: Path) -> None:
    """Put ``tmp`` where ``root`` is: the old folder is moved aside first, removed last."""
    old = root.parent / f".{root.name}.lrrt-{os.getpid()}.old"
    if root.exists():
        os.replace(root, old)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)
