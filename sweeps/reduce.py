"""Reduce a sweep's trial records into tables: trials, curves, ranking (computing only).

One kind of job: records in, :class:`Reduction` out. :func:`reduce_records` is pure (a
:class:`SweepRecords` in, nothing read or written); :func:`reduce_dir` is the short
composition read (:class:`~sweeps.store.SweepDir`) -> reduce. Writing the tables and the
report is ``sweeps.report.write_outputs``. The reducer reads only files (``DIR/sweep.json``
and ``DIR/trials/*.json``, written by :mod:`sweeps.store`), so it runs without Ray, on a
laptop, on a copied directory (``ray rsync-down``), and on a sweep that is still running or was interrupted: trials
planned in the manifest without a record yet are reported as ``missing``.

Raw first, derive later (STYLE.md #3): the summary scalars are recomputed here from the
raw stored curves with :func:`lrrt_core.suggest.summarize`, never trusted from whatever
the trial reported while running, so changing a heuristic and running ``lrrt report DIR``
again updates every number.

The tables (written atomically by ``sweeps.report.write_outputs``):

``trials.csv``
    one row per planned trial: ``trial_id, name, config, optimizer, batch_size, seed``,
    one column per extra grid axis, ``status`` (``ok`` | ``failed`` | ``missing``),
    ``error, attempts, steps, min_loss, lr_at_min_loss, steepest_lr, valley_lr,
    suggested_lr, diverged_lr, stop_reason, wall_s, node, gpu_ids`` (``"0,1"`` or ``""``).
``curves.parquet``
    long format, one row per step of every ok trial: ``trial, name, config, optimizer,
    batch_size, seed``, axis columns, ``step, lr, loss, smoothed_loss``.
``ranking.csv``
    one row per configuration (every grid value except the seed) aggregated over its
    seeds: ``config, optimizer, batch_size``, axis columns, ``n_ok, n_failed, n_missing,
    min_loss_mean, min_loss_std, suggested_lr_gmean, suggested_lr_gsd,
    steepest_lr_gmean, valley_lr_gmean, lr_at_min_loss_gmean, rank``.

Ranking rule:
    1. ascending mean (over ok seeds) of the minimum smoothed loss;
    2. ties (equal to 12 significant digits) broken by the *larger* geometric-mean
       suggested learning rate (the ``rank_by`` method, steepest descent by default): at
       equal loss, the configuration that tolerates a larger learning rate trains faster;
    3. then by config name, so the order is deterministic.
    Configurations without any ok seed get the last ranks (a rank is always assigned, so
    ``rank`` is exactly 1..n), ordered by name; their aggregates are NaN.

Spread statistics: ``min_loss_std`` is the sample standard deviation (ddof=1; NaN with
a single ok seed). ``*_gmean`` is the geometric mean ``exp(mean(log x))`` over the seeds
with a finite positive value; ``suggested_lr_gsd`` the geometric standard deviation
factor ``exp(std(log x, ddof=1))`` (1.0 = all seeds agree; "×/÷ gsd" is the 1-sigma
band; NaN with one value).

Example:
    >>> red = reduce_dir("runs/quickstart")                     # doctest: +SKIP
    >>> red.ranking[["config", "min_loss_mean", "rank"]]          # doctest: +SKIP
    >>> sweeps.report.write_outputs(red)                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrrt_core.curve import Curve
from lrrt_core.suggest import DEFAULT_METHOD
from sweeps import store
from sweeps.store import Manifest, SweepDir, TrialEntry, TrialRecord
from sweeps import ranking as ranking_mod
from sweeps.verification import RANKING_COLUMNS as VERIFIED_COLUMNS
from sweeps.verification import VERIFY_DIR, reduce_verification

logger = logging.getLogger(__name__)

__all__ = [
    "Reduction",
    "reduce_dir",
    "fit_lr_scaling",
    "reduce_records",
    "SweepRecords",
    "DEFAULT_RANK_BY",
    "TRIAL_COLUMNS",
    "CURVE_COLUMNS",
    "RANKING_COLUMNS",
]

DEFAULT_RANK_BY = DEFAULT_METHOD

# Base columns; the extra grid axes are inserted after ``seed`` / ``batch_size``.
_TRIAL_ID_COLUMNS = ["trial_id", "name", "config", "optimizer", "batch_size", "seed"]
_SCALARS = [
    "steps",
    "min_loss",
    "lr_at_min_loss",
    "steepest_lr",
    "valley_lr",
    "minimum_div10_lr",
    "sma_lr",
    "centered_min_div3_lr",
    "centered_min_opt_lr",
    "suggested_lr",
    "diverged_lr",
    "stop_reason",
]
TRIAL_COLUMNS = _TRIAL_ID_COLUMNS + ["status", "error", "attempts"] + _SCALARS + ["wall_s", "node", "gpu_ids"]
_CURVE_ID_COLUMNS = ["trial", "name", "config", "optimizer", "batch_size", "seed"]
CURVE_COLUMNS = _CURVE_ID_COLUMNS + ["step", "lr", "loss", "smoothed_loss"]
_RANK_ID_COLUMNS = ["config", "optimizer", "batch_size"]
_RANK_STATS = [
    "n_ok",
    "n_failed",
    "n_missing",
    "min_loss_mean",
    "min_loss_std",
    "suggested_lr_gmean",
    "suggested_lr_gsd",
    "steepest_lr_gmean",
    "valley_lr_gmean",
    "lr_at_min_loss_gmean",
    "rank",
    "rank_group",
]
RANKING_COLUMNS = _RANK_ID_COLUMNS + _RANK_STATS + VERIFIED_COLUMNS
_RESERVED = set(TRIAL_COLUMNS) | set(CURVE_COLUMNS) | set(RANKING_COLUMNS) | {"status"}

STATUSES = ("ok", "failed", "missing")


@dataclasses.dataclass
class Reduction:
    """A sweep's records reduced to tables: everything the report needs, computed once.

    Attributes:
        out_dir: the sweep directory that was read.
        manifest: the parsed ``sweep.json`` (``None`` if the directory has none; then the
            trial list comes from the records alone and nothing can be called missing).
        trials: one row per trial (columns: :data:`TRIAL_COLUMNS` with the axis columns
            after ``seed``).
        curves: long table of every ok trial's curve (:data:`CURVE_COLUMNS` + axes).
        ranking: one row per configuration, sorted by ``rank``.
        scaling: :func:`fit_lr_scaling` of ``ranking``.
        missing: names of planned trials without a (readable) record.
        failed: ``[{trial_id, name, config, error, attempts}]`` of failed trials.
        corrupt: ``{file stem: reason}`` for unreadable record files (also in ``missing``).
        axes: names of the extra grid axes, as they appear in the column names.
        rank_by: the suggestion method behind ``suggested_lr``.
        rank_groups: ``{axis column: ratio}`` of the axes that change the loss's scale
            (:func:`sweeps.ranking.loss_scale_axes`); ranks are given within their values.
        verification: the verification stage (``sweeps.verification.VerifyReduction``);
            its ``verified_*`` columns are in ``ranking`` (NaN where none ran).
    """

    out_dir: Path
    manifest: Manifest | None
    trials: pd.DataFrame
    curves: pd.DataFrame
    ranking: pd.DataFrame
    scaling: pd.DataFrame
    missing: list[str]
    failed: list[dict[str, Any]]
    corrupt: dict[str, str]
    axes: list[str]
    rank_by: str
    verification: Any = None
    rank_groups: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The sweep name from the manifest (else the directory name)."""
        if self.manifest and self.manifest.name:
            return str(self.manifest.name)
        return self.out_dir.name

    @property
    def n_trials(self) -> int:
        return int(len(self.trials))

    @property
    def n_ok(self) -> int:
        return int((self.trials["status"] == "ok").sum()) if len(self.trials) else 0

    @property
    def n_failed(self) -> int:
        return int((self.trials["status"] == "failed").sum()) if len(self.trials) else 0

    @property
    def n_missing(self) -> int:
        return int((self.trials["status"] == "missing").sum()) if len(self.trials) else 0

    @property
    def complete(self) -> bool:
        """True when every planned trial has a record and none failed."""
        return self.n_failed == 0 and self.n_missing == 0

    def status_counts(self) -> dict[str, int]:
        """``{ok, failed, missing}`` over every range test and every planned verification
        training: what the exit code is decided on."""
        counts = {"ok": self.n_ok, "failed": self.n_failed, "missing": self.n_missing}
        if self.verification is not None and self.verification.ran:
            counts = {k: n + self.verification.counts()[k] for k, n in counts.items()}
        return counts

    def summary_line(self) -> str:
        """``"12 trials: 10 ok, 1 failed, 1 missing"`` (plain text, not escaped)."""
        return f"{self.n_trials} trials: {self.n_ok} ok, {self.n_failed} failed, {self.n_missing} missing"


# --------------------------------------------------------------------------- helpers
def _summarize(curve: Curve, rank_by: str) -> dict[str, Any]:
    """The summary scalars of one curve (thin call into ``lrrt_core.suggest``)."""
    from lrrt_core import suggest

    return suggest.summarize(curve, rank_by=rank_by)


def _check_rank_by(rank_by: str | None) -> str:
    rank_by = DEFAULT_RANK_BY if rank_by is None else str(rank_by)
    try:
        from lrrt_core.suggest import METHODS
    except ImportError:  # pragma: no cover - suggest is part of the package
        return rank_by
    if rank_by not in METHODS:
        raise ValueError(f"rank_by must be one of {sorted(METHODS)}, got {rank_by!r}")
    return rank_by


def _gpu_ids_str(value: Any) -> str:
    """``[0, 1]`` / ``"0,1"`` / ``None`` -> ``"0,1"`` / ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _float(value: Any) -> float:
    """``None``/unparseable -> NaN, else ``float(value)``."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _gmean(values: pd.Series) -> float:
    """Geometric mean over the finite positive values; NaN if there are none."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.mean(np.log(x)))) if x.size else math.nan


def _gsd(values: pd.Series) -> float:
    """Geometric standard deviation factor exp(std(log x, ddof=1)); NaN below two values."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.std(np.log(x), ddof=1))) if x.size >= 2 else math.nan


def _axis_column(axis: str) -> str:
    """Column name for an extra grid axis (prefixed ``axis_`` if it clashes)."""
    return f"axis_{axis}" if axis in _RESERVED else axis


def _normalise_axis_column(series: pd.Series) -> pd.Series:
    """Keep a numeric axis numeric; anything mixed becomes text (parquet needs one type)."""
    vals = [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pd.to_numeric(series, errors="coerce")
    if vals and all(isinstance(v, bool) for v in vals):
        return series
    return series.map(lambda v: None if v is None else (v if isinstance(v, str) else _jsonish(v)))


def _jsonish(value: Any) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return str(value)


def _planned_trials(manifest: Manifest | None, records: dict[str, TrialRecord]) -> list[TrialEntry]:
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


def _identity(t: TrialEntry, record: TrialRecord | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- reduce
def reduce_dir(out_dir: str | os.PathLike, rank_by: str | None = None) -> Reduction:
    """Read a sweep directory and reduce it into trials, curves and ranking tables.

    Args:
        out_dir: the sweep output directory (``DIR/sweep.json`` + ``DIR/trials/*.json``).
            It may belong to a sweep that is still running or was interrupted.
        rank_by: suggestion method whose learning rate becomes ``suggested_lr`` and breaks
            ranking ties (one of :data:`lrrt_core.suggest.METHODS`; default: the sweep
            file's ``report.rank_by``, else :data:`DEFAULT_RANK_BY`).

    Returns:
        a :class:`Reduction`. Nothing is written.

    Raises:
        FileNotFoundError: if ``out_dir`` holds neither a manifest nor any trial record.
        ValueError: for an unknown ``rank_by`` or an unreadable manifest.
    """
    records = SweepRecords.read(SweepDir(out_dir))
    return reduce_records(records, rank_by=rank_by)


@dataclasses.dataclass(frozen=True)
class SweepRecords:
    """What a sweep directory holds, read once: the reducer's whole input.

    Attributes:
        out_dir: the directory. manifest: its manifest (``None``: none).
        records: ``{trial_id: TrialRecord}`` of the range tests. corrupt: ``{file stem:
            reason}`` of unreadable record files. verify_records: the verification records.
    """

    out_dir: Path
    manifest: Manifest | None
    records: dict[str, TrialRecord]
    corrupt: dict[str, str] = dataclasses.field(default_factory=dict)
    verify_records: dict[str, TrialRecord] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, sdir: SweepDir) -> "SweepRecords":
        """Read ``sdir``'s manifest and records.

        Raises:
            FileNotFoundError: neither a manifest nor any record.
        """
        manifest = sdir.read_manifest()
        records, corrupt = sdir.scan()
        if manifest is None and not records:
            raise FileNotFoundError(f"{sdir.path}: no {store.MANIFEST_NAME} and no trial records: not a sweep directory")
        if manifest is None:
            logger.warning("%s: no %s; reducing the %d record(s) found", sdir.path, store.MANIFEST_NAME, len(records))
        verify = sdir.records(VERIFY_DIR) if manifest is not None and manifest.verify_trials else {}
        return cls(sdir.path, manifest, records, corrupt, verify)


def reduce_records(src: SweepRecords, rank_by: str | None = None) -> Reduction:
    """The reduction of a sweep's records (pure: reads and writes nothing).

    Steps: the planned trials and their identities; one row (and an ok trial's curve) per
    trial; the trials and curves tables; the ranking over seeds with the verification
    columns; the lr-vs-batch-size fit.
    """
    manifest = src.manifest
    rank_by = _check_rank_by(manifest.rank_by if rank_by is None and manifest else rank_by)
    idents, axes = _identities(_planned_trials(manifest, src.records), src.records)
    axis_cols = [_axis_column(a) for a in axes]
    rows, curve_frames, missing, failed = [], [], [], []
    for ident in idents:
        row, curve = _trial_row(ident, src.records.get(ident["trial_id"]), src.corrupt, axes, axis_cols, rank_by)
        rows.append(row)
        if row["status"] == "missing":
            missing.append(ident["name"])
        elif row["status"] == "failed":
            failed.append(_failure(ident, row))
        if curve is not None:
            curve_frames.append((ident, curve.to_frame()))
    trials = _trials_table(rows, axis_cols)
    curves = _curves_table(curve_frames, axes, axis_cols)
    groups = ranking_mod.loss_scale_axes(trials, curves, axis_cols)
    ranking, verification = reduce_verification(manifest, src.verify_records, _rank(trials, axis_cols, list(groups)),
                                                axis_cols)
    return Reduction(out_dir=src.out_dir, manifest=manifest, trials=trials, curves=curves, ranking=ranking,
                     scaling=fit_lr_scaling(ranking), missing=missing, failed=failed, corrupt=src.corrupt,
                     axes=axis_cols, rank_by=rank_by, verification=verification, rank_groups=groups)


def _identities(planned: list[TrialEntry], records: dict[str, TrialRecord]) -> tuple[list[dict], list[str]]:
    """Each planned trial's identity, and the extra axis names in order of first appearance."""
    axes: list[str] = []
    idents = []
    for t in planned:
        ident = _identity(t, records.get(str(t.trial_id)))
        idents.append(ident)
        axes += [a for a in ident["axes"] if a not in axes]
    return idents, axes


def _trial_row(ident: dict, rec: TrialRecord | None, corrupt: dict[str, str], axes: list[str], axis_cols: list[str],
               rank_by: str) -> tuple[dict[str, Any], Curve | None]:
    """One row of ``trials.csv`` (status ok / failed / missing) and the trial's curve if ok."""
    tid = ident["trial_id"]
    row: dict[str, Any] = {k: ident[k] for k in _TRIAL_ID_COLUMNS}
    for a, col in zip(axes, axis_cols):
        row[col] = ident["axes"].get(a)
    row.update({k: math.nan for k in _SCALARS})
    row.update(stop_reason=None, error="", attempts=math.nan, wall_s=math.nan, node="", gpu_ids="")
    if rec is None:
        row["status"] = "missing"
        if tid in corrupt:
            row["error"] = f"corrupt record: {corrupt[tid]}"
        return row, None
    row["attempts"] = _float(rec.attempts)
    row["node"] = "" if rec.node is None else str(rec.node)
    row["gpu_ids"] = _gpu_ids_str(rec.gpu_ids)
    row["wall_s"] = _float(rec.wall_s)
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
            summary = _summarize(curve, rank_by)
        except Exception as exc:  # a bad record must not stop the whole report
            logger.warning("trial %s (%s): cannot reduce its curve: %s", ident["name"], ident["trial_id"], exc)
            return "failed", f"reducer: {exc}", None
        for k in _SCALARS:
            if k in summary:
                row[k] = summary[k]
        if math.isnan(row["wall_s"]):
            row["wall_s"] = float(curve.wall_s)
    elif status != "failed":
        logger.warning("trial %s: unknown status %r, counted as failed", ident["trial_id"], status)
        error = error or f"unknown status {status!r}"
        status = "failed"
    return status, error, curve


def _failure(ident: dict, row: dict[str, Any]) -> dict[str, Any]:
    """An entry of :attr:`Reduction.failed`."""
    return {
        "trial_id": ident["trial_id"],
        "name": ident["name"],
        "config": ident["config"],
        "error": row["error"] or "(no error message recorded)",
        "attempts": None if math.isnan(row["attempts"]) else int(row["attempts"]),
    }


def _trials_table(rows: list[dict[str, Any]], axis_cols: list[str]) -> pd.DataFrame:
    trial_columns = _TRIAL_ID_COLUMNS + axis_cols + [c for c in TRIAL_COLUMNS if c not in _TRIAL_ID_COLUMNS]
    trials = pd.DataFrame(rows, columns=trial_columns)
    for col in axis_cols:
        trials[col] = _normalise_axis_column(trials[col])
    for col in ("steps", "attempts"):
        trials[col] = pd.to_numeric(trials[col], errors="coerce").astype("Int64")
    for col in ("batch_size", "seed"):
        trials[col] = _maybe_int(trials[col])
    return trials


def _curves_table(curve_frames: list[tuple[dict, pd.DataFrame]], axes: list[str], axis_cols: list[str]) -> pd.DataFrame:
    """Every ok curve in long form, the trial's identity columns in front (one concat,
    identity columns repeated per step with numpy: no per-trial column inserts)."""
    curve_columns = _CURVE_ID_COLUMNS + axis_cols + ["step", "lr", "loss", "smoothed_loss"]
    if curve_frames:
        curves = pd.concat([cf for _, cf in curve_frames], ignore_index=True)
        lengths = [len(cf) for _, cf in curve_frames]
        idents = [ident for ident, _ in curve_frames]
        ident_cols = {"trial": [i["trial_id"] for i in idents], **{k: [i[k] for i in idents] for k in _CURVE_ID_COLUMNS[1:]}}
        for a, col in zip(axes, axis_cols):
            ident_cols[col] = [i["axes"].get(a) for i in idents]
        for k, values in ident_cols.items():
            curves[k] = np.repeat(_object_array(values), lengths)
        curves = curves[curve_columns]
    else:
        curves = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("lr", "loss", "smoothed_loss") else "object")
                               for c in curve_columns})
    for col in axis_cols:
        curves[col] = _normalise_axis_column(curves[col])
    for col in ("batch_size", "seed"):
        curves[col] = _maybe_int(curves[col])
    return curves


def _object_array(values: list) -> np.ndarray:
    """A 1-D object array of ``values`` as they are (a list-valued axis stays one cell)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _maybe_int(series: pd.Series) -> pd.Series:
    """Integer-valued columns (batch size, seed) as nullable Int64; else left alone."""
    num = pd.to_numeric(series, errors="coerce")
    finite = num.dropna()
    if len(finite) == series.notna().sum() and (finite == finite.round()).all():
        return num.astype("Int64")
    return series


def _aggregate_seeds(trials: pd.DataFrame, axis_cols: list[str]) -> pd.DataFrame:
    """Per configuration (first-appearance order): identity of its first trial, status counts,
    loss mean / sd over ok seeds and geometric means / sd of the rates — one group-by each."""
    keys = trials["config"]
    first = trials.drop_duplicates("config").set_index("config")[["optimizer", "batch_size", *axis_cols]]
    status = pd.crosstab(keys, trials["status"]).reindex(columns=list(STATUSES), fill_value=0)
    ok = trials[trials["status"] == "ok"]
    g_loss = ok["min_loss"].astype(float).groupby(ok["config"], sort=False)
    out = first.assign(n_ok=status["ok"], n_failed=status["failed"], n_missing=status["missing"],
                       min_loss_mean=g_loss.mean(), min_loss_std=g_loss.std(ddof=1))
    for col in ("suggested_lr", "steepest_lr", "valley_lr", "lr_at_min_loss"):
        x = pd.to_numeric(ok[col], errors="coerce").astype(float)
        logs = np.log(x.where(np.isfinite(x) & (x > 0)))
        g = logs.groupby(ok["config"], sort=False)
        out[f"{col}_gmean"] = np.exp(g.mean())
        if col == "suggested_lr":
            out["suggested_lr_gsd"] = np.exp(g.std(ddof=1))
    for col in ("n_ok", "n_failed", "n_missing"):
        out[col] = out[col].fillna(0).astype(int)
    return out.rename_axis("config").reset_index()


def _rank(trials: pd.DataFrame, axis_cols: list[str], group_cols: list[str] = ()) -> pd.DataFrame:
    """Aggregate trials over seeds per configuration and rank them (:func:`sweeps.ranking.rank`)."""
    columns = _RANK_ID_COLUMNS + axis_cols + _RANK_STATS
    if trials.empty:
        return pd.DataFrame(columns=columns)
    return ranking_mod.rank(_aggregate_seeds(trials, axis_cols), list(group_cols))[columns]


# --------------------------------------------------------------------------- scaling fit
def fit_lr_scaling(ranking: pd.DataFrame, lr_column: str = "suggested_lr_gmean") -> pd.DataFrame:
    """Fit ``log10(lr) = slope * log10(batch_size) + intercept`` per optimizer.

    The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD") predicts
    slope ≈ 1 for SGD (double the batch, double the learning rate); for Adam a square-root
    rule, slope ≈ 0.5, is often reported. Least squares on the log-log points
    (``numpy.polyfit`` of degree 1). Rows with the same optimizer but different extra
    axis values are fitted separately (one series per optimizer × axes).

    Args:
        ranking: the ranking table (:attr:`Reduction.ranking`).
        lr_column: which learning-rate column to fit.

    Returns:
        DataFrame with ``optimizer``, the axis columns, ``n_batch_sizes``, ``slope``,
        ``intercept``, ``r2`` — one row per series that has finite positive learning
        rates at two or more distinct batch sizes.

    Example:
        >>> r = pd.DataFrame({"optimizer": ["sgd"] * 3, "batch_size": [32, 64, 128],
        ...                   "suggested_lr_gmean": [0.01, 0.02, 0.04]})
        >>> fit_lr_scaling(r)[["optimizer", "slope"]].round(6).values.tolist()
        [['sgd', 1.0]]
    """
    axis_cols = [c for c in ranking.columns if c not in set(RANKING_COLUMNS)]
    columns = ["optimizer"] + axis_cols + ["n_batch_sizes", "slope", "intercept", "r2"]
    if ranking.empty or lr_column not in ranking:
        return pd.DataFrame(columns=columns)
    keys = ["optimizer"] + axis_cols
    out = []
    for key, g in ranking.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        bs = pd.to_numeric(g["batch_size"], errors="coerce").to_numpy(dtype=np.float64)
        lr = pd.to_numeric(g[lr_column], errors="coerce").to_numpy(dtype=np.float64)
        good = np.isfinite(bs) & (bs > 0) & np.isfinite(lr) & (lr > 0)
        x, y = np.log10(bs[good]), np.log10(lr[good])
        if np.unique(x).size < 2:
            continue
        slope, intercept = np.polyfit(x, y, 1)
        resid = y - (slope * x + intercept)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
        row = dict(zip(keys, key))
        row.update(n_batch_sizes=int(np.unique(x).size), slope=float(slope), intercept=float(intercept), r2=r2)
        out.append(row)
    return pd.DataFrame(out, columns=columns)
