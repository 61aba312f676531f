"""One range test of a named workload with a named optimizer: the unit of work of a sweep.

:func:`run_workload` is the single code path behind ``lrrt find`` and the Ray Tune
trainable: build the workload from its seed, compile it with the optimizer under test,
run :func:`lrrt_core.finder.range_test`, free the model, return the curve.
:func:`write_curve` persists a curve as CSV, Parquet and a PNG plot, atomically.

Example:
    >>> from lrrt_core.runner import run_workload, write_curve
    >>> curve = run_workload("digits_cnn", optimizer="adam", batch_size=64,
    ...                      start_lr=1e-6, end_lr=10, steps=200)          # doctest: +SKIP
    >>> write_curve(curve, "runs/find", "curve")                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from lrrt_core.atomic import atomic_write_frame
from lrrt_core.curve import Curve
from lrrt_core.suggest import DEFAULT_METHOD
from lrrt_core.optimizers import check_optimizer, make_optimizer
from lrrt_core.settings import RangeTest, settings_from
from lrrt_core.workloads import get_workload

log = logging.getLogger(__name__)


def run_workload(
    workload: str | Callable[..., Any],
    *,
    optimizer: str,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    batch_size: int,
    seed: int = 0,
    axes: Mapping[str, Any] | None = None,
    workload_args: Mapping[str, Any] | None = None,
    settings: RangeTest | None = None,
    on_step: Callable[[int, float, float], Any] | None = None,
    report_every: int = 10,
    share_compiled: bool = True,
    **overrides: Any,
) -> Curve:
    """Build, compile and range-test one workload; return its curve.

    Args:
        workload: a built-in name (``"digits_cnn"``), ``"package.module:function"``, or a
            builder callable (see :mod:`lrrt_core.workloads`).
        optimizer: a key of :data:`lrrt_core.optimizers.OPTIMIZERS`.
        optimizer_kwargs: optimizer hyper-parameters (not ``learning_rate``).
        batch_size: batch size of the range test.
        seed: seeds the workload (weights, data split) and the shuffling.
        axes: extra grid axes (``{"width": 32}``), passed to the builder as keywords.
        workload_args: fixed builder keywords from the sweep file (``axes`` win on clashes).
        settings: the test's :class:`~lrrt_core.settings.RangeTest`; ``**overrides`` set
            any of its fields by name (``start_lr=1e-6, steps=200``).
        on_step, report_every: as :func:`lrrt_core.finder.range_test`.
        share_compiled: the model built here is dropped after the test, so by default its
            compiled step is kept for the next test of the same architecture in this process
            (a sweep worker's next trial), which then starts without recompiling
            (:func:`lrrt_core.execution.program_for`); ``False`` compiles afresh.

    Returns:
        The :class:`~lrrt_core.curve.Curve`; ``params`` also records ``optimizer``,
        ``optimizer_kwargs``, ``workload``, ``workload_args``, ``axes`` and ``backend`` (the
        Keras backend it ran on: ``tensorflow``, ``jax`` or ``torch``).

    Raises:
        ValueError: unknown workload or optimizer, bad arguments (messages say what to change).
    """
    optimizer_kwargs = dict(optimizer_kwargs or {})
    check_optimizer(optimizer, optimizer_kwargs)  # fail before building anything
    rt = settings_from(settings, overrides)
    builder = get_workload(workload)
    kwargs = {**dict(workload_args or {}), **dict(axes or {})}

    import keras

    from lrrt_core.finder import range_test

    wl = builder(seed=int(seed), **kwargs)
    model = wl.model
    try:
        opt = make_optimizer(optimizer, rt.start_lr, **optimizer_kwargs)
        model.compile(optimizer=opt, loss=wl.loss, metrics=list(wl.metrics) or None)
        _compute_ladder_in_graph(model, opt, wl, rt, batch_size)
        curve = range_test(
            model, wl.x, wl.y, rt, batch_size=batch_size, seed=seed,
            val_data=(wl.x_val, wl.y_val) if rt.loss == "val" else None,
            on_step=on_step, report_every=report_every, share_compiled=share_compiled,
        )
    finally:
        del model, wl
        keras.backend.clear_session()
    name = workload if isinstance(workload, str) else callable_name(workload)
    curve.params.update(
        optimizer=str(optimizer).lower(),
        optimizer_kwargs=optimizer_kwargs,
        workload=name,
        workload_args=dict(workload_args or {}),
        axes=dict(axes or {}),
        backend=keras.backend.backend(),
    )
    return curve


def _compute_ladder_in_graph(model, opt, wl, rt: RangeTest, batch_size: int) -> None:
    """Give the fresh optimizer the range test's ladder as its schedule (see
    :mod:`lrrt_core.keras_ladder`): each step's rate is then looked up inside the compiled
    step instead of assigned from Python between steps. Left as it is (a float rate, assigned
    per step) when ``compile`` wrapped the optimizer (a ``LossScaleOptimizer`` under
    ``mixed_float16``) or the settings are invalid (the range test then says why)."""
    from lrrt_core.finder import planned_steps
    from lrrt_core.keras_ladder import ladder_schedule

    if model.optimizer is not opt:
        return
    try:
        n = planned_steps(wl.x, wl.y, steps=rt.steps, epochs=rt.epochs, batch_size=batch_size)
        if n is not None:
            opt.learning_rate = ladder_schedule(rt.ladder, rt.start_lr, rt.end_lr, n)
    except (TypeError, ValueError):
        return


def callable_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a builder; a callable object without them is named by its type."""
    kind = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(kind, '__module__', '?')}:{getattr(kind, '__qualname__', type(fn).__name__)}"


def write_curve(curve: Curve, out_dir: str | os.PathLike[str], stem: str = "curve") -> dict[str, Path]:
    """Write ``curve`` as ``<stem>.csv``, ``<stem>.parquet`` and ``<stem>.png`` in ``out_dir``.

    Each file is written atomically (:mod:`lrrt_core.atomic`: temporary file in the same
    folder, then ``os.replace``). The tables have columns step, lr, loss, smoothed_loss
    (:meth:`Curve.to_frame`); the PNG is :func:`lrrt_core.plot.plot_curve` with the
    default suggestion (:data:`lrrt_core.suggest.DEFAULT_METHOD`) marked.

    Returns:
        ``{"csv": Path, "parquet": Path, "png": Path}`` (``png`` missing if plotting failed;
        the failure is logged).
    """
    out = Path(out_dir)
    frame = curve.to_frame()
    paths = {
        "csv": atomic_write_frame(frame, out / f"{stem}.csv", index=False),
        "parquet": atomic_write_frame(frame, out / f"{stem}.parquet", index=False),
    }
    try:
        from lrrt_core import plot

        ax = plot.plot_curve(curve, suggestion=DEFAULT_METHOD)  # a pyplot-free Figure: nothing to close
        paths["png"] = plot.save_figure(ax, out / f"{stem}.png")
    except Exception:  # a plot must never lose the curve data
        log.exception("could not plot the curve to %s", out / f"{stem}.png")
    return paths


__all__ = ["run_workload", "write_curve", "callable_name"]
