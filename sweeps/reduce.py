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
    ``error, attempts, steps, min_loss, lr_at_min_loss``, one column per registered
    suggestion method (``minimum_lr, minimum_div10_lr, steepest_lr, valley_lr, sma_lr,
    centered_min_div3_lr, centered_min_opt_lr``, ...: :data:`lrrt_core.suggest.METHODS`),
    ``suggested_lr, diverged_lr, stop_reason, wall_s, node, gpu_ids`` (``"0,1"`` or ``""``).
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
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sweeps import ranking as ranking_mod
from sweeps import store
from sweeps.reduce_rows import (DEFAULT_RANK_BY, check_rank_by, failure, identities, planned_trials, trial_columns,
                                trial_row)
from sweeps.reduce_tables import (CURVE_COLUMNS, RANKING_COLUMNS, axis_column, curves_table, fit_lr_scaling,
                                  rank_configs, trials_table)
from sweeps.store import Manifest, SweepDir, TrialRecord
from sweeps.verification import VERIFY_DIR, reduce_verification

logger = logging.getLogger(__name__)

__all__ = [
    "Reduction",
    "reduce_dir",
    "fit_lr_scaling",
    "reduce_records",
    "SweepRecords",
    "DEFAULT_RANK_BY",
    "trial_columns",
    "CURVE_COLUMNS",
    "RANKING_COLUMNS",
]


@dataclasses.dataclass
class Reduction:
    """A sweep's records reduced to tables: everything the report needs, computed once.

    Attributes:
        out_dir: the sweep directory that was read.
        manifest: the parsed ``sweep.json`` (``None`` if the directory has none; then the
            trial list comes from the records alone and nothing can be called missing).
        trials: one row per trial (columns: :func:`trial_columns` with the axis columns
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
    rank_by = check_rank_by(manifest.rank_by if rank_by is None and manifest else rank_by)
    idents, axes = identities(planned_trials(manifest, src.records), src.records)
    axis_cols = [axis_column(a) for a in axes]
    rows, curve_frames, missing, failed = [], [], [], []
    for ident in idents:
        row, curve = trial_row(ident, src.records.get(ident["trial_id"]), src.corrupt, axes, axis_cols, rank_by)
        rows.append(row)
        if row["status"] == "missing":
            missing.append(ident["name"])
        elif row["status"] == "failed":
            failed.append(failure(ident, row))
        if curve is not None:
            curve_frames.append((ident, curve.to_frame()))
    trials = trials_table(rows, axis_cols)
    curves = curves_table(curve_frames, axes, axis_cols)
    groups = ranking_mod.loss_scale_axes(trials, curves, axis_cols)
    ranked = rank_configs(trials, axis_cols, list(groups))
    ranking, verification = reduce_verification(manifest, src.verify_records, ranked, axis_cols)
    return Reduction(out_dir=src.out_dir, manifest=manifest, trials=trials, curves=curves, ranking=ranking,
                     scaling=fit_lr_scaling(ranking), missing=missing, failed=failed, corrupt=src.corrupt,
                     axes=axis_cols, rank_by=rank_by, verification=verification, rank_groups=groups)


