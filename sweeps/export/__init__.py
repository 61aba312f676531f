"""A sweep's curves and recommendations in TensorBoard and MLflow: ``lrrt export DIR``.

One computed object, two renderers (STYLE.md #1, #16): :func:`~sweeps.export.data.export_data`
reads the sweep directory's records (``sweeps.load``: no Ray, nothing written there; a copied
folder, a partial sweep) into an ``ExportData``; ``sweeps.export.tensorboard`` writes it as
event files (scalars and the HParams plugin's table), ``sweeps.export.mlflow_runs`` as a
parent run with one child run per configuration. ``docs/export.md`` says what goes where.

Re-exporting the same folder never duplicates: an unchanged sweep is skipped, a changed one
(more trials finished, verification added, the report rebuilt) replaces the earlier export.

Example:
    >>> import sweeps
    >>> summary = sweeps.load("runs/quickstart").export(tensorboard="runs/tb", mlflow=True)  # doctest: +SKIP
    >>> print("\\n".join(summary.lines()))                                                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable

from sweeps.export.data import ExportData, ExportRefused, TrackerError, export_data

logger = logging.getLogger(__name__)

__all__ = ["export", "export_result", "export_configured", "ExportSummary", "TargetOutcome", "ExportData",
           "ExportRefused", "TrackerError", "export_data"]


@dataclasses.dataclass(frozen=True)
class TargetOutcome:
    """What one tracker got: ``action`` is ``written``, ``replaced``, ``skipped`` (unchanged
    since the last export) or ``failed`` (``detail`` says why); ``where``: the TensorBoard
    folder or the MLflow tracking URI; ``run_id``: MLflow's parent run."""

    tracker: str
    where: str
    action: str
    detail: str = ""
    run_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ExportSummary:
    """The outcome of one export: per tracker, and what the sweep could not give.

    Attributes:
        name: the sweep. trials: finished trials exported; configs: configurations exported.
        missing, failed: trials without a result yet / that failed (not exported).
        absent: report files the folder lacks (``lrrt report DIR`` writes them).
        targets: one :class:`TargetOutcome` per tracker asked for.
    """

    name: str
    trials: int
    configs: int
    missing: tuple[str, ...]
    failed: tuple[str, ...]
    absent: tuple[str, ...]
    targets: tuple[TargetOutcome, ...]

    @property
    def errors(self) -> list[str]:
        return [t.detail for t in self.targets if t.action == "failed"]

    @property
    def complete(self) -> bool:
        """Every tracker took the export and every planned trial was in it."""
        return not self.errors and not self.missing and not self.failed

    @staticmethod
    def is_failure(line: str) -> bool:
        """Whether a line of :meth:`lines` says a tracker failed (the CLI sends it to stderr)."""
        return line.startswith(("tensorboard: FAILED: ", "mlflow: FAILED: "))

    def lines(self) -> list[str]:
        """What ``lrrt export`` prints: one line per tracker, then what was left out."""
        out = []
        for t in self.targets:
            if t.action == "failed":
                out.append(f"{t.tracker}: FAILED: {t.detail.removeprefix(t.tracker + ': ')}")
            elif t.action == "skipped":
                out.append(f"{t.tracker}: {t.where}: unchanged since the last export, skipped")
            else:
                run = f" (parent run {t.run_id})" if t.run_id else ""
                verb = "replaced the earlier export with" if t.action == "replaced" else "exported"
                out.append(f"{t.tracker}: {t.where}{run}: {verb} {self.trials} trials of {self.configs} configurations")
        if self.missing:
            out.append(f"not exported, no result yet ({len(self.missing)}): {_names(self.missing)}")
        if self.failed:
            out.append(f"not exported, failed ({len(self.failed)}): {_names(self.failed)}")
        if self.absent:
            out.append(f"not in this folder (lrrt report DIR writes them): {', '.join(self.absent)}")
        return out


def _names(names: tuple[str, ...], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _tensorboard(data: ExportData, logdir) -> TargetOutcome:
    from sweeps.export.tensorboard import write_tensorboard

    try:
        root, action = write_tensorboard(data, logdir)
    except ImportError:
        return TargetOutcome("tensorboard", str(logdir), "failed", 'tensorboard: not installed; '
                             'pip install "lrrt[tensorboard]"')
    except OSError as err:
        return TargetOutcome("tensorboard", str(logdir), "failed", f"tensorboard: cannot write {logdir} ({err})")
    return TargetOutcome("tensorboard", str(root), action)


def _mlflow(data: ExportData, uri: str | None, experiment: str | None) -> TargetOutcome:
    from sweeps.export.mlflow_runs import write_mlflow

    try:
        used, run_id, action = write_mlflow(data, uri, experiment)
    except TrackerError as err:
        return TargetOutcome("mlflow", str(uri or "MLflow's default"), "failed", str(err))
    except OSError as err:  # an artifact that cannot be stored, a connection lost mid-way
        return TargetOutcome("mlflow", str(uri or "MLflow's default"), "failed", f"mlflow: {err}")
    return TargetOutcome("mlflow", used, action, run_id=run_id)


def _check_targets(tensorboard, mlflow) -> None:
    if tensorboard is None and mlflow in (None, False):
        raise ExportRefused("export: name a tracker: --tensorboard LOGDIR and/or --mlflow [URI]", key="tensorboard")


def export_result(result, *, tensorboard: str | os.PathLike | None = None, mlflow: str | bool | None = None,
                  experiment: str | None = None) -> ExportSummary:
    """Export a loaded sweep (a ``SweepResult`` or its ``Reduction``) to the trackers named; never
    raises for a tracker.

    Args:
        tensorboard: a TensorBoard log directory.
        mlflow: a tracking URI, ``True`` for MLflow's own default, ``None``/``False``: none.
        experiment: the MLflow experiment (default: the sweep's name).

    Returns:
        :class:`ExportSummary`; a tracker that failed is in ``errors``.

    Raises:
        ExportRefused: (an ``InvalidInput``) no tracker named, or a TensorBoard folder of
            another sweep.
    """
    _check_targets(tensorboard, mlflow)
    data = export_data(result)
    targets = []
    if tensorboard is not None:
        targets.append(_tensorboard(data, tensorboard))
    if mlflow not in (None, False):
        targets.append(_mlflow(data, None if mlflow is True else str(mlflow), experiment))
    return ExportSummary(name=data.name, trials=len(data.trials), configs=len(data.configs), missing=data.missing,
                         failed=data.failed, absent=data.absent, targets=tuple(targets))


def export(out_dir: str | os.PathLike, *, tensorboard: str | os.PathLike | None = None,
           mlflow: str | bool | None = None, experiment: str | None = None,
           rank_by: str | None = None) -> ExportSummary:
    """``lrrt export DIR``: reduce the sweep in ``out_dir`` as ``lrrt report`` reads it (no Ray,
    nothing written there) and export it (:func:`export_result`)."""
    _check_targets(tensorboard, mlflow)
    return export_result(_reduced(out_dir, rank_by), tensorboard=tensorboard, mlflow=mlflow, experiment=experiment)


def _reduced(out_dir: str | os.PathLike, rank_by: str | None = None):
    """The ``Reduction`` of the sweep in ``out_dir`` (what ``sweeps.load`` holds; read here from
    the store and the reducer, so that ``run`` -> ``export`` never leads back to ``api``)."""
    from pathlib import Path

    from lrrt_core.suggest import method_name
    from sweeps.reduce import reduce_dir
    from sweeps.store import SweepDir

    out = Path(out_dir).resolve()
    try:
        manifest = SweepDir(out).read_manifest() if out.is_dir() else None
    except (OSError, ValueError) as err:
        raise ExportRefused(f"out_dir: {out / 'sweep.json'} is damaged ({err})", key="out_dir") from None
    if manifest is None:
        raise ExportRefused(f"out_dir: {out_dir}: not an lrrt sweep output directory (no sweep.json)", key="out_dir")
    return reduce_dir(out, rank_by=method_name(rank_by))


def export_configured(out_dir: str | os.PathLike, say: Callable[[str], None], reduction=None) -> ExportSummary | None:
    """The sweep file's ``report: {export: ...}``, run once the report is written (``reduction``:
    the report's ``Reduction``, reused; else the directory is loaded again).

    Nothing here may cost a result: every problem (a tracker unreachable, a folder refused,
    a damaged directory) becomes one ``lrrt: warning:`` line through ``say`` that names the
    command to export again. Returns the summary, or ``None`` when the file asks for none.
    """
    from sweeps.store import SweepDir

    try:
        manifest = SweepDir(out_dir).read_manifest()
    except (OSError, ValueError) as err:
        say(f"lrrt: warning: export (report.export): cannot read {out_dir}/sweep.json ({err})")
        return None
    settings = ((manifest.spec if manifest else {}).get("report") or {}).get("export")
    if not settings:
        return None
    again = f"export again with: lrrt export {out_dir}" + _flags(settings)
    try:
        summary = export_result(_reduced(out_dir) if reduction is None else reduction, tensorboard=settings.get("tensorboard"), mlflow=settings.get("mlflow"),
                                experiment=settings.get("experiment"))
    except Exception as err:  # noqa: BLE001 -- the report is written; an export problem must not end the run
        logger.debug("export failed", exc_info=True)
        say(f"lrrt: warning: export (report.export) failed: {err}; the report is written; {again}")
        return None
    for line in summary.lines():
        say(f"lrrt: warning: export: {line}" if summary.is_failure(line) else f"lrrt: export: {line}")
    if summary.errors:
        say(f"lrrt: warning: the report is written and the results are safe in {out_dir}; {again}")
    return summary


def _flags(settings: dict) -> str:
    flags = ""
    if settings.get("tensorboard"):
        flags += f" --tensorboard {settings['tensorboard']}"
    if settings.get("mlflow") is True:
        flags += " --mlflow"
    elif settings.get("mlflow"):
        flags += f" --mlflow {settings['mlflow']}"
    if settings.get("experiment"):
        flags += f" --experiment {settings['experiment']}"
    return flags

