"""The Python API, for notebooks and scripts: ``sweep``, ``load``, ``find`` and ``SweepResult`` (interface only).

It mirrors the ``lrrt`` command and shares its code: :func:`sweep` is ``lrrt sweep``
(:func:`sweeps.run.run_sweep`: same output directory, persistence, resume and refusals),
:func:`load` reads a finished or partial sweep directory like ``lrrt report`` but writes
nothing and needs no Ray, and :func:`find` is ``lrrt find``. The workload may be a
built-in name, ``"module:function"`` (looked up in the current directory too) or a builder
callable — also one defined in the notebook itself, which Ray ships to its workers by
value (see :func:`sweeps.naming.builder_ref` for how the sweep names it so reruns resume).

Bad input raises :class:`~sweeps.errors.InvalidInput` (``.key`` says which setting) before
anything is written; failed trials do not raise: the result counts them.

Example (a notebook)::

    from sweeps import sweep

    def build(seed=0, **axes):            # returns an lrrt_core.workloads.Workload
        ...

    result = sweep({"name": "mine", "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32]}},
                   workload=build, out="runs/mine")
    result                                 # the ranking table and the loss-vs-rate plot
    result.ranking, result.recommendations["adam"].suggested_lr

Ray enters only through ``sweeps.launch``, imported when a sweep really launches trials.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from lrrt_core.settings import RangeTest, describe, settings_from
from sweeps.errors import InvalidInput, UsageError
from sweeps.naming import builder_ref
from sweeps.spec import SweepSpec, read_spec_file, spec_from_dict

__all__ = ["sweep", "verify", "load", "find", "SweepResult", "InvalidInput"]



# --------------------------------------------------------------------------- the result


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A sweep's tables, report files and recommendations (what ``lrrt report`` shows).

    Attributes:
        reduction: the ``sweeps.reduce.Reduction`` behind everything below.
        launched: trials run by the :func:`sweep` call that made this (0 for :func:`load`).
        skipped: finished trials kept from an earlier run instead of being run again.
        exit_code: what ``lrrt sweep`` / ``lrrt report`` would exit with (0 all ok, 1 some
            failed or missing, 130 interrupted).
    """

    reduction: Any
    launched: int = 0
    skipped: int = 0
    exit_code: int = 0

    # ---- tables and counts
    @property
    def out_dir(self) -> Path:
        return Path(self.reduction.out_dir)

    @property
    def name(self) -> str:
        return self.reduction.name

    @property
    def ranking(self):
        """One row per configuration over its seeds, by rank (``ranking.csv``)."""
        return self.reduction.ranking

    @property
    def trials(self):
        """One row per planned trial, with status ok / failed / missing (``trials.csv``)."""
        return self.reduction.trials

    @property
    def curves(self):
        """Every ok trial's curve, long format (``curves.parquet``)."""
        return self.reduction.curves

    @property
    def n_ok(self) -> int:
        return self.reduction.n_ok

    @property
    def n_failed(self) -> int:
        return self.reduction.n_failed

    @property
    def n_missing(self) -> int:
        return self.reduction.n_missing

    @property
    def ok(self) -> bool:
        """True when every planned range test and verification training finished and none
        failed (``exit_code`` 0)."""
        from sweeps.run import EXIT_OK, exit_code

        return exit_code(self.reduction) == EXIT_OK

    # ---- report files
    def _file(self, name: str) -> Path | None:
        path = self.out_dir / name
        return path if path.is_file() else None

    @property
    def report_html(self) -> Path | None:
        """``report.html`` (self-contained), or ``None`` when no report was written yet."""
        return self._file("report.html")

    @property
    def report_md(self) -> Path | None:
        return self._file("report.md")

    @property
    def plots(self) -> dict[str, Path]:
        """``{stem: path}`` of the report's PNGs that exist, every figure the report draws
        (``loss_vs_lr``, ``loss_change``, ``lr_scaling``, ``min_loss_heatmap``, ``axis_effects``,
        ``verification``), in report order."""
        from sweeps.report.sections import CAPTIONS  # every figure, in drawing order

        return {stem: p for stem in CAPTIONS if (p := self.out_dir / "plots" / f"{stem}.png").is_file()}

    # ---- what the report computes
    @functools.cached_property
    def report_info(self):
        """The report as data (``sweeps.report.ReportInfo``): bands, recommendations, sections."""
        from sweeps.report import build_report

        return build_report(self.reduction)

    @property
    def recommendations(self) -> dict[str, Any]:
        """``{optimizer label: sweeps.report.Recommendation}``: best configuration, rate, falling range.

        After verification each also carries the verified answer beside the range test's:
        ``verified_config``, ``verified_lr`` (the candidate that trained best), ``verified_rank``,
        ``verified_range_lr`` (the range test's rate for that configuration) and ``lr_change``;
        ``.lr`` is the rate to train with (verified when there is one, ``.lr_source`` says which)."""
        return {rec.optimizer: rec for rec in self.report_info.recommendations}

    def figure(self, kind: str = "loss_vs_lr"):
        """A report figure as a matplotlib ``Figure`` (pyplot-free; ``None`` when no trial is ok).

        ``kind``: ``loss_vs_lr`` (smoothed loss vs learning rate, mean over seeds with band;
        the default), ``loss_change``, ``lr_scaling``, ``min_loss_heatmap``, ``axis_effects``
        (per-axis effects) or ``verification`` (held-out metric vs candidate rate; ``None``
        before verification).
        """
        from sweeps.report import FIGURES

        if kind not in FIGURES:
            raise ValueError(f"kind must be one of {', '.join(FIGURES)}, got {kind!r}")
        return FIGURES[kind](self.report_info)

    def export(self, tensorboard: str | os.PathLike | None = None, mlflow: str | bool | None = None, *,
               experiment: str | None = None):
        """Export this sweep to TensorBoard and/or MLflow: ``lrrt export DIR`` (``docs/export.md``).

        Args:
            tensorboard: a TensorBoard log directory (the sweep goes in ``<it>/<name>``).
            mlflow: an MLflow tracking URI, or ``True`` for MLflow's own default.
            experiment: the MLflow experiment (default: the sweep's name).

        Returns:
            ``sweeps.export.ExportSummary``: per tracker written / replaced / skipped (unchanged),
            and the trials not exported (missing, failed).

        Raises:
            sweeps.export.TrackerError: a tracker could not take it (``.summary`` says what the
                others got); InvalidInput: no tracker named, a log folder of another sweep.
        """
        from sweeps.export import TrackerError, export_result

        summary = export_result(self, tensorboard=tensorboard, mlflow=mlflow, experiment=experiment)
        if summary.errors:
            err = TrackerError("; ".join(summary.errors))
            err.summary = summary
            raise err
        return summary

    def __repr__(self) -> str:
        return f"SweepResult({self.name!r}: {self.reduction.summary_line()}; {self.out_dir})"

    def _repr_html_(self) -> str:
        """The summary line, the recommendations (after verification: the verified rate beside the
        range test's), the ranking table and the loss-vs-rate plot (an embedded PNG)."""
        from sweeps.report import render_notebook

        return render_notebook(self.report_info)


# --------------------------------------------------------------------------- sweep


def _spec_data(config: str | os.PathLike | Mapping | SweepSpec) -> tuple[Any, str | Path]:
    """The sweep as plain data (not validated yet) plus its source name, from a path, a mapping or a spec."""
    if isinstance(config, SweepSpec):
        return config.model_dump(mode="json", exclude={"source"}), config.source or "<dict>"
    if isinstance(config, Mapping):
        return dict(config), "<dict>"
    if isinstance(config, (str, os.PathLike)):
        return read_spec_file(config), Path(config)  # validated with the workload in place
    raise InvalidInput(f"config: expected a sweep file path, a dict or a SweepSpec, got {type(config).__name__}",
                       key="config")


def resolve_spec(config, workload: str | Callable[..., Any] | None = None) -> tuple[SweepSpec, Callable | None]:
    """The validated spec of ``config`` with ``workload`` (if given) in place of its own.

    Returns ``(spec, builder)``: ``builder`` is the callable to ship to the workers, or
    ``None`` when the workload is named (a built-in or an importable ``module:function``).
    """
    if workload is None and isinstance(config, SweepSpec):
        return config, None
    data, source = _spec_data(config)
    builder = None
    if callable(workload):
        ref = builder_ref(workload)
        builder = None if "@" not in ref else workload  # an importable function is imported by name
        workload = ref
    if workload is not None and isinstance(data, dict):  # else spec_from_dict says what the file is
        data = {**data, "workload": workload}
    return spec_from_dict(data, source=source, builder=builder), builder


def sweep(
    config: str | os.PathLike | Mapping | SweepSpec,
    *,
    workload: str | Callable[..., Any] | None = None,
    out: str | os.PathLike | None = None,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    fresh: bool = False,
    quiet: bool = False,
    rank_by: str | None = None,
) -> SweepResult:
    """Run (or resume) a sweep and return its result: ``lrrt sweep`` from Python.

    Args:
        config: a sweep file path, a dict in the sweep-file format, or a ``SweepSpec``.
        workload: replaces the config's ``workload``: a built-in name, ``"module:function"``
            (the current directory is searched too), or a builder callable
            ``build(seed=0, **axes) -> Workload``, which may be defined in the notebook.
        out: output directory (default ``runs/<name>``). Calling again with the same
            ``out`` resumes: finished trials are kept, the others run.
        address: a Ray cluster to join (``"auto"``, ``host:port``); default ``RAY_ADDRESS``
            or a new local Ray.
        cpus_per_trial, gpus_per_trial, max_concurrent: override the config's resources.
        fresh: discard the results already in ``out``.
        quiet: no progress line.
        rank_by: the suggestion behind ``suggested_lr`` (default: the config's).

    Returns:
        :class:`SweepResult`; ``exit_code``/``n_failed``/``n_missing`` say whether all went well.

    Raises:
        InvalidInput: invalid config or options, ``out`` holding another sweep, a busy
            ``out``, an unreachable cluster, a builder Ray cannot serialize (``.key`` names
            the setting). Nothing is written then.
    """
    from sweeps.launch import RayOptions
    from sweeps.run import run_sweep

    spec, builder = resolve_spec(config, workload)
    if any(v is not None for v in (cpus_per_trial, gpus_per_trial, max_concurrent)):
        spec = spec.with_resources(cpus_per_trial, gpus_per_trial, max_concurrent)
    run = run_sweep(spec, out=out, builder=builder, ray=RayOptions(address=address, quiet=quiet), fresh=fresh,
                    rank_by=rank_by)
    return SweepResult(run.reduction, launched=run.launched, skipped=run.skipped, exit_code=run.exit_code)


def verify(
    out_dir: str | os.PathLike,
    *,
    workload: Callable[..., Any] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    candidates: list[float] | None = None,
    top: int | None = None,
    metric: str | None = None,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    quiet: bool = False,
    rank_by: str | None = None,
) -> SweepResult:
    """Add (or complete) the verification stage of a finished sweep, like ``lrrt verify DIR``.

    Short real trainings of every configuration (or the ``top`` ones) at ``candidates`` x
    its recommended rate; settings default to the sweep file's ``verify:`` section. A sweep
    run with a builder callable (a notebook's) needs the same callable as ``workload``. The
    result's ``ranking`` gains ``verified_lr``, ``verified_rank``...; failed trainings do not
    raise (``n_failed`` / ``exit_code`` say so).

    Raises:
        InvalidInput: not a sweep directory, no finished range test, bad settings.
    """
    from sweeps.launch import RayOptions
    from sweeps.run import run_verify

    run = run_verify(out_dir, verify={"epochs": epochs, "steps": steps, "candidates": candidates, "top": top,
                                      "metric": metric},
                     cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent,
                     ray=RayOptions(address=address, quiet=quiet), builder=workload, rank_by=rank_by)
    return SweepResult(run.reduction, launched=run.launched, skipped=run.skipped, exit_code=run.exit_code)


# --------------------------------------------------------------------------- load


def load(out_dir: str | os.PathLike, *, rank_by: str | None = None) -> SweepResult:
    """Open a finished, running or interrupted sweep directory; no Ray, nothing written.

    The tables are those ``lrrt report DIR`` writes (planned trials without a record are
    ``missing``); the report files are whatever the directory holds.

    Raises:
        InvalidInput: ``out_dir`` is not a sweep output directory (``key == "out_dir"``).
    """
    from sweeps.reduce import reduce_dir
    from lrrt_core.suggest import method_name
    from sweeps.run import check_rank_by, exit_code, read_manifest_or_fail

    out = Path(out_dir).resolve()
    if not out.is_dir() or read_manifest_or_fail(out, str(out_dir)) is None:
        raise UsageError(f"out_dir: {out_dir}: not an lrrt sweep output directory (no sweep.json)", key="out_dir")
    check_rank_by(rank_by, "rank_by")
    red = reduce_dir(out, rank_by=method_name(rank_by))
    return SweepResult(red, exit_code=exit_code(red))  # the code `lrrt report` exits with


# --------------------------------------------------------------------------- find


def find(
    workload: str | Callable[..., Any] = "digits_cnn",
    *,
    backend: str | None = None,
    optimizer: str = "adam",
    optimizer_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    axes: Mapping[str, Any] | None = None,
    workload_args: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    settings: RangeTest | None = None,
    **range_test: Any,
):
    """One range test on this machine, no Ray: ``lrrt find`` from Python.

    Args:
        workload: a built-in name, ``"module:function"`` (the current directory is searched
            too) or a builder callable ``build(seed=0, **axes) -> Workload``.
        backend: the Keras backend (``tensorflow``, ``jax``, ``torch``), set before Keras is
            imported; ``None``: whatever Keras runs on (``KERAS_BACKEND``, else tensorflow).
            Keras cannot switch backends in a running process: naming another one than an
            already imported Keras runs on raises (restart the kernel). ``curve.params["backend"]``
            says which one ran.
        out: also write ``curve.csv``, ``curve.parquet`` and ``curve.png`` there.
        settings: the range test's ``lrrt_core.settings.RangeTest`` (default: ``RangeTest()``).
        **range_test: any of its settings by name, over ``settings``:

{settings}

        other arguments: as ``lrrt_core.runner.run_workload``.

    Returns:
        the ``lrrt_core.Curve`` (``.to_frame()``; ``lrrt_core.suggest_all(curve)`` for the rates).

    Raises:
        ValueError: unknown workload or optimizer, bad bounds (the message says what to change);
            ``TypeError`` for a keyword that is not a setting;
            ``InvalidInput`` (a ``ValueError``) for a backend that is not installed or not the
            one this process's Keras already runs on.
    """
    rt = find_settings(settings, range_test)  # a bad setting fails before Keras loads
    if backend is not None:
        from sweeps.backends import use_in_process

        use_in_process(backend)
    from lrrt_core.runner import run_workload, write_curve

    curve = run_workload(workload, optimizer=optimizer, optimizer_kwargs=optimizer_kwargs, batch_size=batch_size,
                         seed=seed, axes=axes, workload_args=workload_args, settings=rt)
    if out is not None:
        write_curve(curve, out, "curve")
    return curve


find.__doc__ = find.__doc__.replace("{settings}", describe(" " * 12))


def find_settings(settings: RangeTest | None = None, range_test: Mapping[str, Any] | None = None) -> RangeTest:
    """The :class:`lrrt_core.settings.RangeTest` :func:`find` runs with: ``settings`` (default
    ``RangeTest()``) with the keywords ``range_test`` over it; checked before anything is built.

    Raises:
        TypeError: a keyword that is not a setting. ValueError: a setting out of its range.
    """
    return settings_from(settings, dict(range_test or {}))
