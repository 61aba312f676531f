"""What a sweep exports to a tracker, computed once from its stored records (computing only).

:func:`export_data` reads a sweep directory the way ``lrrt report`` does (``sweeps.load``:
the records reduced to the same tables as ``trials.csv``, ``curves.parquet`` and
``ranking.csv``; no Ray, nothing written) and returns an :class:`ExportData`: per finished
trial its hyper-parameters, its summary values and its curve; per configuration its
parameters and its ``ranking.csv`` values; the report files there are; what is missing. The
TensorBoard and MLflow writers (``sweeps.export.tensorboard``, ``sweeps.export.mlflow_runs``)
only render it (STYLE.md #1, #16).

Which values are exported is read from the tables, not from a list kept here: every trial
column ending in ``_lr`` (one per suggestion method, plus ``suggested_lr`` and
``diverged_lr``), ``min_loss`` and ``steps``; every numeric column of ``ranking.csv`` that is
not an axis. An empty cell (a method without an answer, a configuration not verified) is
not exported: trackers have no "empty", and NaN would read as a value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweeps.spec import InvalidInput

__all__ = ["ExportRefused", "TrackerError", "TrialExport", "ConfigExport", "ExportData", "export_data",
           "ARTIFACTS", "EXPORT_FORMAT", "CURVE_SERIES"]

#: bump when what is exported changes, so an older export is replaced, not skipped.
EXPORT_FORMAT = 1
#: the per-step series of a curve, as ``curves.parquet`` names them.
CURVE_SERIES = ("loss", "smoothed_loss", "lr")
#: the sweep's files a tracker keeps beside the values (those the directory has), in this order.
ARTIFACTS = ("sweep.json", "report.html", "report.md", "recipes.json", "trials.csv", "ranking.csv", "verify.csv")
_TRIAL_VALUES = ("min_loss", "steps")
_NOT_RANKING_METRICS = ("config", "optimizer", "batch_size", "rank_group")


class ExportRefused(InvalidInput):
    """The target holds something this export must not replace (another sweep's export)."""


class TrackerError(RuntimeError):
    """A tracker could not take the export (unreachable, refused the write, not installed)."""


@dataclasses.dataclass(frozen=True)
class TrialExport:
    """One finished range test (a row of ``trials.csv`` with status ok, and its curve).

    Attributes:
        hparams: the configuration's axes: optimizer (its label), batch_size, seed, extra axes.
        values: ``min_loss``, ``steps`` and every ``*_lr`` of the row that is not empty.
        config_values: the row of ``ranking.csv`` of its configuration (:attr:`ConfigExport.values`).
        step, loss, smoothed_loss, lr: the curve, step by step (``curves.parquet``).
    """

    trial_id: str
    name: str
    config: str
    hparams: dict[str, Any]
    values: dict[str, float]
    config_values: dict[str, float]
    step: np.ndarray
    loss: np.ndarray
    smoothed_loss: np.ndarray
    lr: np.ndarray

    def series(self) -> dict[str, np.ndarray]:
        """``{loss, smoothed_loss, lr}``: the per-step series."""
        return {k: getattr(self, k) for k in CURVE_SERIES}


@dataclasses.dataclass(frozen=True)
class ConfigExport:
    """One configuration with a finished trial (a row of ``ranking.csv``).

    Attributes:
        params: its axes but the seed (optimizer, batch_size, extra axes) and its seeds.
        values: every numeric column of its ``ranking.csv`` row that is not empty
            (counts, loss, rates, rank, verified rate, loss and metric, verified rank).
        trials: its finished trials, by seed.
    """

    config: str
    params: dict[str, Any]
    values: dict[str, float]
    trials: tuple[TrialExport, ...]


@dataclasses.dataclass(frozen=True)
class ExportData:
    """A sweep as the trackers get it.

    Attributes:
        name, fingerprint, version: the sweep's name and fingerprint, lrrt's version.
        out_dir: the sweep directory read.
        rank_by: the suggestion behind ``suggested_lr``.
        hparam_names: the axes, in column order (optimizer, batch_size, seed, extra axes).
        trials: the finished trials; configs: the configurations with one.
        missing, failed: names of the planned trials with no result yet / that failed.
        spec: the sweep's spec (from ``sweep.json``); source: the sweep file, when still there.
        artifacts: ``{name in the tracker: path}`` of the files to keep beside the values.
        absent: the report files this directory lacks (``lrrt report DIR`` writes them).
        verify_metric: the held-out metric behind ``verified_metric`` (``None``: no verification).
        digest: a hash of all of the above: an unchanged sweep is not exported twice.
    """

    name: str
    fingerprint: str
    version: str
    out_dir: Path
    rank_by: str
    hparam_names: tuple[str, ...]
    trials: tuple[TrialExport, ...]
    configs: tuple[ConfigExport, ...]
    missing: tuple[str, ...]
    failed: tuple[str, ...]
    spec: dict[str, Any]
    source: Path | None
    artifacts: dict[str, Path]
    absent: tuple[str, ...]
    verify_metric: str | None
    digest: str


def _plain(value: Any) -> Any:
    """A table cell as a plain Python value (``numpy.int64`` -> ``int``...)."""
    return value.item() if hasattr(value, "item") else value


def _present(value: Any) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def _numbers(row: pd.Series, names) -> dict[str, float]:
    """``{name: float}`` of the cells of ``row`` in ``names`` that hold a number."""
    out = {}
    for name in names:
        value = _plain(row.get(name))
        if isinstance(value, (bool, int, float)) and _present(value):
            out[name] = float(value)
    return out


def _trial_value_names(trials: pd.DataFrame) -> list[str]:
    return [*_TRIAL_VALUES, *(c for c in trials.columns if c.endswith("_lr"))]


def _ranking_metric_names(ranking: pd.DataFrame, axes: list[str]) -> list[str]:
    skip = {*_NOT_RANKING_METRICS, *axes}
    return [c for c in ranking.columns if c not in skip and (pd.api.types.is_numeric_dtype(ranking[c])
                                                              or pd.api.types.is_bool_dtype(ranking[c]))]


def _trial(row: pd.Series, curve: pd.DataFrame, hparam_names, value_names, config_values) -> TrialExport:
    return TrialExport(
        trial_id=str(row["trial_id"]), name=str(row["name"]), config=str(row["config"]),
        hparams={k: _plain(row[k]) for k in hparam_names if _present(_plain(row[k]))},
        values=_numbers(row, value_names), config_values=config_values,
        step=curve["step"].to_numpy(np.int64), loss=curve["loss"].to_numpy(np.float64),
        smoothed_loss=curve["smoothed_loss"].to_numpy(np.float64), lr=curve["lr"].to_numpy(np.float64))


def _artifacts(out: Path, source: Path | None) -> tuple[dict[str, Path], tuple[str, ...]]:
    found = {name: out / name for name in ARTIFACTS if (out / name).is_file()}
    if source is not None:
        found[f"sweep_file/{source.name}"] = source
    for png in sorted((out / "plots").glob("*.png")):
        found[f"plots/{png.name}"] = png
    absent = tuple(n for n in ("report.html", "recipes.json", "trials.csv", "ranking.csv") if n not in found)
    return found, absent


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes() + ",".join(frame.columns).encode()


def export_data(result) -> ExportData:
    """The :class:`ExportData` of a loaded sweep: a ``SweepResult`` (``sweeps.load(DIR)``) or its
    ``sweeps.reduce.Reduction``."""
    from lrrt_core import __version__

    red = getattr(result, "reduction", result)
    manifest = red.manifest
    trials, ranking, curves = red.trials, red.ranking, red.curves
    hparam_names = ("optimizer", "batch_size", "seed", *red.axes)
    value_names = _trial_value_names(trials)
    config_values = {str(r["config"]): _numbers(r, _ranking_metric_names(ranking, red.axes))
                     for _, r in ranking.iterrows()}
    by_trial = dict(tuple(curves.groupby("trial", sort=False))) if len(curves) else {}
    ok = trials[trials["status"] == "ok"]
    exported = tuple(_trial(row, by_trial[row["trial_id"]], hparam_names, value_names,
                            config_values.get(str(row["config"]), {}))
                     for _, row in ok.iterrows() if row["trial_id"] in by_trial)
    with_trials = {t.config for t in exported}
    configs = tuple(_config(r, exported, config_values[str(r["config"])], red.axes)
                    for _, r in ranking.iterrows() if str(r["config"]) in with_trials)
    source = Path(manifest.source) if manifest is not None and manifest.source else None
    source = source if source is not None and source.is_file() else None
    artifacts, absent = _artifacts(Path(red.out_dir), source)
    verify = red.verification
    digest = _digest([str(EXPORT_FORMAT).encode(), __version__.encode(), red.rank_by.encode(),
                      *(_frame_bytes(f) for f in (trials, ranking, curves)),
                      *(name.encode() + p.read_bytes() for name, p in artifacts.items())])
    return ExportData(
        name=red.name, fingerprint=str(manifest.fingerprint if manifest else ""), version=__version__,
        out_dir=Path(red.out_dir), rank_by=red.rank_by, hparam_names=hparam_names, trials=exported, configs=configs,
        missing=tuple(red.missing), failed=tuple(str(f["name"]) for f in red.failed),
        spec=dict(manifest.spec) if manifest else {}, source=source, artifacts=artifacts, absent=absent,
        verify_metric=verify.metric if verify is not None and verify.ran else None, digest=digest)


def _config(row: pd.Series, trials: tuple[TrialExport, ...], values: dict[str, float], axes: list[str]) -> ConfigExport:
    mine = tuple(sorted((t for t in trials if t.config == row["config"]), key=lambda t: t.hparams.get("seed", 0)))
    params = {k: _plain(row[k]) for k in ("optimizer", "batch_size", *axes) if k in row and _present(_plain(row[k]))}
    params["seeds"] = ", ".join(str(t.hparams.get("seed")) for t in mine)
    return ConfigExport(config=str(row["config"]), params=params, values=values, trials=mine)
