"""The learning-rate range test: a Keras 3 training loop that records one loss per step.

:func:`range_test` trains a compiled Keras model for ``steps`` batches while the learning
rate climbs a ladder from ``start_lr`` to ``end_lr`` (exponential by default), records the
**exact loss of every batch**, stops when training blows up, and puts the model and its
optimizer back exactly as they were. :class:`lrrt_core.lr_finder.LRFinder` wraps it in the interface of
keras-lr-finder (surmenok/keras_lr_finder), so code written for that package (such as the
seed article's) runs with one import changed.

How the loop works (and why):

* Steps run ``k`` at a time in one compiled call (:mod:`lrrt_core.execution`; 16 by
  default on TensorFlow and JAX): each step sets its rate in the graph (or the optimizer's
  :class:`~lrrt_core.keras_ladder.LadderSchedule` computes it from ``iterations``),
  resets the metrics and runs the model's own ``train_step`` -- what ``train_on_batch``
  runs -- so each recorded loss is **the exact loss of that batch** (weights before the
  update, training-mode forward pass, regularization losses included as Keras reports
  ``loss``), not the running mean ``model.fit`` hands to ``on_train_batch_end``
  (tensorflow#58098), which shifts suggestions about a decade to the right. One host read
  per chunk: on a GPU, one call per step leaves the device idle most of the time.
* The stop rule (:class:`lrrt_core.curve.StopRule`: NaN/inf, or the bias-corrected EMA
  over ``diverge_threshold`` x its best) runs on the host over each chunk's losses in
  order, and cuts the curve at exactly the step where a one-step-at-a-time loop would have
  stopped; the chunk's later steps are dropped (at most ``k - 1`` wasted steps).
* ``steps_per_call=1`` -- and the torch backend, eager or distributed models -- run one
  ``model.train_on_batch`` per step, which gives the same curve.
* Array data (up to :data:`lrrt_core.execution.STAGE_BYTES`) is copied to the device once;
  each step gathers its batch's rows there, in the order the seeded shuffle drew them.
* The model and its optimizer are snapshotted before and restored after, exactly.

Modules: :mod:`lrrt_core.sources` (where batches come from), :mod:`lrrt_core.execution`
(how steps run), :mod:`lrrt_core.lr_finder` (keras-lr-finder's interface); this module
holds the checks, the snapshot and the loop.

References:
    Smith, L. N. (2015/2017). Cyclical Learning Rates for Training Neural Networks
    (the "LR range test"). arXiv:1506.01186.
    Smith, L. N. (2018). A disciplined approach to neural network hyper-parameters.
    arXiv:1803.09820 (validation loss in the range test).
    fastai ``lr_find`` / Lightning ``LRFinder``: bias-corrected EMA (beta=0.98) and the
    "4x the best smoothed loss" stop rule.
    surmenok/keras_lr_finder: the ``LRFinder`` interface.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Iterable

import numpy as np

from lrrt_core.curve import Curve, StopRule
from lrrt_core.execution import make_executor
from lrrt_core.sources import is_array_like, make_source, num_samples, take
from lrrt_core.settings import RangeTest, settings_from
from lrrt_core.ladders import ladder as make_ladder

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------- state


_FLOAT_LR_HINT = (
    "compile with a float learning rate, e.g. optimizer=keras.optimizers.Adam(learning_rate=1e-3), "
    "or with lrrt_core.keras_ladder.ladder_schedule(ladder, start_lr, end_lr, steps) matching the range test"
)


def _lr_control(optimizer: Any, kind: str, start_lr: float, end_lr: float, steps: int):
    """How step ``i``'s rate reaches the optimizer.

    Returns the optimizer's learning-rate variable (the loop assigns each rate to it before
    the step), or ``None`` when the optimizer computes this very ladder itself from its
    ``iterations`` (a :class:`~lrrt_core.keras_ladder.LadderSchedule`; nothing to do
    between steps). Any other schedule, a mismatched ladder or a used optimizer is a
    ``ValueError`` saying what to change.
    """
    import keras

    inner = getattr(optimizer, "inner_optimizer", None)  # LossScaleOptimizer
    opt = inner if inner is not None else optimizer
    lr = getattr(opt, "learning_rate", None)
    if isinstance(lr, keras.Variable):
        return lr
    try:
        config = opt.get_config().get("learning_rate")
    except Exception:  # an optimizer or schedule that cannot describe itself
        config = None
    if not (isinstance(config, dict) and config.get("registered_name") == "lrrt>LadderSchedule"):
        raise ValueError(
            "the model's optimizer was built with a learning-rate schedule (or a callable), so the range "
            f"test cannot set the rate of each step; {_FLOAT_LR_HINT}"
        )
    if inner is not None:
        raise ValueError(
            "a LadderSchedule cannot drive a LossScaleOptimizer (mixed_float16): steps it skips would shift "
            "the ladder; compile with a float learning rate instead"
        )
    have = config.get("config", {})
    have = (have.get("kind"), have.get("start_lr"), have.get("end_lr"), have.get("steps"))
    want = (kind, float(start_lr), float(end_lr), int(steps))
    if have != want:
        raise ValueError(
            f"the optimizer's LadderSchedule is (ladder, start_lr, end_lr, steps) = {have} but the range test "
            f"asks for {want}; build the schedule with the range test's settings"
        )
    if int(opt.iterations.numpy()) != 0:
        raise ValueError(
            f"the optimizer's LadderSchedule starts at iteration 0 but the optimizer is at iteration "
            f"{int(opt.iterations.numpy())}; compile the model with a fresh optimizer"
        )
    return None


def _snapshot(variables: Iterable[Any]) -> list[tuple[Any, np.ndarray]]:
    # np.array(..., copy=True): on the torch backend v.numpy() may share memory with the tensor.
    return [(v, np.array(v.numpy(), copy=True)) for v in variables]


def _restore(snapshot: list[tuple[Any, np.ndarray]]) -> None:
    for v, value in snapshot:
        v.assign(value)


def _ensure_built(model: Any, first_batch: tuple[Any, Any, Any]) -> None:
    """Create the model's weights and the optimizer's slots so that both can be snapshotted."""
    if not model.built:
        # An inference-mode call builds the layers without touching BatchNorm statistics or
        # consuming dropout seeds.
        model(first_batch[0], training=False)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


# --------------------------------------------------------------------------- range test


def _check_model(model: Any) -> None:
    if model is None or not hasattr(model, "train_on_batch"):
        raise ValueError(f"model must be a compiled keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "the model is not compiled; call model.compile(optimizer=..., loss=...) before the range test "
            "(the range test trains with the model's own optimizer and loss)"
        )


def _val_chunks(val_data: Any, batch_size: int) -> list[tuple[Any, Any, int]]:
    if not isinstance(val_data, (tuple, list)) or len(val_data) != 2:
        raise ValueError("loss='val' needs val_data=(x_val, y_val), a fixed held-out set")
    xv, yv = val_data
    n = num_samples(xv)
    if n == 0:
        raise ValueError("val_data is empty; pass a non-empty held-out set (x_val, y_val)")
    if num_samples(yv) != n:
        raise ValueError(f"val_data has {n} inputs but {num_samples(yv)} targets; they must match")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"val_batch_size must be an integer >= 1, got {batch_size!r}")
    bs = int(batch_size)
    return [
        (take(xv, slice(i, i + bs)), take(yv, slice(i, i + bs)), min(bs, n - i)) for i in range(0, n, bs)
    ]


def planned_steps(x: Any, y: Any = None, *, steps: int | None = None, epochs: int | None = None,
                  batch_size: int = 64) -> int | None:
    """The number of steps :func:`range_test` will plan for these arguments, without reading data.

    Known for array data (and whenever ``steps`` is given); ``None`` for a dataset or
    generator with ``epochs`` (its length is found by reading it). Used to build a
    :class:`~lrrt_core.keras_ladder.LadderSchedule` before compiling.
    """
    rt = RangeTest(steps=steps, epochs=epochs)
    if epochs is None:
        return rt.steps_for(None)
    if not (is_array_like(x) or y is not None):
        return None
    n = num_samples(x)
    if n == 0 or isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        return None  # range_test itself reports the bad input
    return rt.steps_for(n // min(int(batch_size), n))


def range_test(
    model: Any,
    x: Any,
    y: Any = None,
    settings: RangeTest | None = None,
    *,
    batch_size: int = 64,
    val_data: tuple[Any, Any] | None = None,
    val_batch_size: int = 1024,
    seed: int = 0,
    shuffle: bool = True,
    on_step: Callable[[int, float, float], Any] | None = None,
    report_every: int = 10,
    share_compiled: bool = False,
    **overrides: Any,
) -> Curve:
    """Run a learning-rate range test on a compiled Keras model.

    Step ``i`` sets the optimizer's learning rate to ``ladder[i]`` (``start_lr`` ...
    ``end_lr``), trains on one batch and records the loss of that batch. The test stops
    early when the loss is NaN/inf (that step is cut; its value, "nan" or "inf", is kept as
    ``curve.nonfinite_loss``) or when the bias-corrected EMA of the
    loss exceeds ``diverge_threshold`` x its best value so far (that step is kept). Weights,
    non-trainable state (BatchNorm statistics, dropout seeds) and the optimizer's variables
    (``iterations``, slots such as Adam's moments, the learning rate) are restored exactly
    afterwards, also when the test raises.

    Args:
        model: a compiled Keras 3 model. Its optimizer has a float learning rate (assigned
            before each step), or a :class:`~lrrt_core.keras_ladder.LadderSchedule` of
            this very ladder and ``iterations == 0`` (it computes each rate itself).
        x: training inputs as NumPy arrays (with ``y``); or, with ``y=None``, a batched
            ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a list of ``(x, y)`` batches, a
            zero-argument function returning a fresh iterable, or a generator yielding
            ``(x, y)`` batches. Data shorter than ``steps`` is cycled; a one-shot generator
            cannot be cycled and raises ``ValueError`` when it runs out.
        y: training targets for array ``x``.
        settings: the test's :class:`~lrrt_core.settings.RangeTest` (bounds, steps or
            epochs, ladder, loss, divergence rule, smoothing, steps per call); defaults
            ``RangeTest()``: 1e-6 -> 10 over 200 steps, exponential, the 4x rule (the
            defaults the default suggestion was chosen with; until issue 23, 1e-7 over 100 steps).
        batch_size: batch size for array data (ignored for batched data). The last
            incomplete batch of each epoch is dropped.
        val_data: ``(x_val, y_val)`` arrays for ``loss="val"`` (Smith 2018's held-out loss).
        val_batch_size: chunk size for evaluating ``val_data``.
        seed: seeds the shuffling of array data.
        shuffle: shuffle array data each epoch.
        on_step: ``on_step(step, lr, loss)`` called every ``report_every`` steps and on the
            last step run (progress reporting, e.g. ``ray.tune.report``).
        report_every: steps between ``on_step`` calls.
        **overrides: any :class:`~lrrt_core.settings.RangeTest` field by name
            (``start_lr=1e-5, steps=200, diverge_threshold=None``), applied over
            ``settings``: the keyword call style. ``steps_per_call`` (``None``:
            :data:`~lrrt_core.execution.DEFAULT_STEPS_PER_CALL` on TensorFlow and JAX; 1:
            one ``train_on_batch`` per step, always so on torch) does not change the curve:
            the stop rule runs on the host over each chunk's losses and cuts at the same step.
        share_compiled: the model is yours to drop after the test (``run_workload`` builds
            one per test): its compiled steps may then be kept for, and reused by, later
            models of the same architecture, which start without recompiling. Leave it
            ``False`` for a model you keep using.

    Returns:
        :class:`lrrt_core.curve.Curve` with the raw ``lrs`` and ``losses`` of the steps run,
        ``stop_reason``, ``diverged_lr``, ``steps_planned``, ``wall_s`` and ``params``
        (every :class:`~lrrt_core.settings.RangeTest` setting, :meth:`RangeTest.params
        <lrrt_core.settings.RangeTest.params>`, with the planned ``steps``; seed, batch_size --
        ``None`` for batched data).

    Raises:
        ValueError: bad bounds, ``steps < 2``, an uncompiled model, empty data, an
            optimizer built with a learning-rate schedule other than a matching
            ``LadderSchedule``; the message says what to change.

    Example:
        >>> model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")   # doctest: +SKIP
        >>> curve = range_test(model, x, y, start_lr=1e-5, end_lr=1, steps=200)  # doctest: +SKIP
        >>> curve.to_frame().head()                                            # doctest: +SKIP
    """
    _check_model(model)
    rt = settings_from(settings, overrides)
    _check_run(seed, report_every)
    val = _val_chunks(val_data, val_batch_size) if rt.loss == "val" else None

    source, used_batch_size = make_source(x, y, batch_size, shuffle, seed)
    steps = rt.steps_for(source.batches_per_epoch)
    lrs = make_ladder(rt.ladder, float(rt.start_lr), float(rt.end_lr), steps)
    lr_var = _lr_control(model.optimizer, rt.ladder, rt.start_lr, rt.end_lr, steps)

    _ensure_built(model, source.peek())
    saved = _snapshot(list(model.variables) + list(model.optimizer.variables))
    log.info("range test: %d steps, lr %.3g -> %.3g (%s), loss=%s", steps, rt.start_lr, rt.end_lr, rt.ladder, rt.loss)
    try:
        executor = make_executor(model, source, lrs.tolist(), lr_var, val, rt.steps_per_call, share_compiled)
        run = _loop(executor, lrs.tolist(), StopRule(float(rt.smoothing), rt.threshold), on_step, report_every)
    finally:
        _restore(saved)
    n = len(run.losses)
    log.info("range test done: %d/%d steps, stop=%s, %.2f s", n, steps, run.stop_reason, run.wall_s)
    return Curve(
        lrs=lrs[:n],
        losses=np.asarray(run.losses, dtype=np.float64),
        stop_reason=run.stop_reason,
        diverged_lr=None if run.diverged_lr is None else float(run.diverged_lr),
        steps_planned=steps,
        wall_s=run.wall_s,
        nonfinite_loss=run.nonfinite_loss,
        params={**rt.params(steps), "seed": int(seed), "batch_size": used_batch_size,
                **_optimizer_identity(model.optimizer)},
    )


def _optimizer_identity(opt: Any) -> dict[str, Any]:
    """The optimizer's Keras class and momentum (``None`` where it has none): what
    :func:`lrrt_core.suggest.plain_sgd` reads to pick the default suggestion's divisor."""
    opt = getattr(opt, "inner_optimizer", opt)  # a LossScaleOptimizer wraps the real one
    momentum = getattr(opt, "momentum", None)
    return {"optimizer_class": type(opt).__name__,
            "momentum": float(momentum) if isinstance(momentum, (int, float)) else None}


def _check_run(seed, report_every) -> None:
    """Refuse a bad seed or progress cadence (the settings check themselves: :class:`RangeTest`)."""
    if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
        raise ValueError(f"report_every must be an integer >= 1, got {report_every!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")


@dataclasses.dataclass
class _Run:
    """What the step loop produced: raw losses of the steps kept, why it stopped, its wall time."""

    losses: list[float]
    stop_reason: str
    diverged_lr: float | None
    nonfinite_loss: str | None
    wall_s: float


def _loop(executor, lr_list: list[float], rule: StopRule, on_step, report_every: int) -> _Run:
    """Run the ladder ``executor.k`` steps at a time (:mod:`lrrt_core.execution`) and apply
    the stop rule to each step's loss in order, on the host: the curve is cut at exactly the
    step where a one-step-at-a-time loop would have stopped, and the rest of that chunk is
    dropped. ``on_step`` sees every ``report_every``-th kept step and the last one."""
    losses: list[float] = []
    stop_reason, diverged_lr, nonfinite_loss = "completed", None, None
    n, k = len(lr_list), executor.k
    t0 = time.perf_counter()
    start = 0
    while start < n and stop_reason == "completed":
        for i, value in enumerate(executor.run(start, min(k, n - start)), start):
            verdict = rule.update(value)
            if verdict == "nonfinite":
                stop_reason, diverged_lr, nonfinite_loss = verdict, lr_list[i], str(value)
                break
            losses.append(value)
            if on_step is not None and (i + 1) % report_every == 0:
                on_step(i, lr_list[i], value)
            if verdict == "diverged":
                stop_reason, diverged_lr = verdict, lr_list[i]
                break
        start += k
    wall = time.perf_counter() - t0
    kept = len(losses)
    if on_step is not None and kept and kept % report_every != 0:  # the last step run, if not reported yet
        on_step(kept - 1, lr_list[kept - 1], losses[-1])
    return _Run(losses, stop_reason, diverged_lr, nonfinite_loss, wall)


__all__ = ["range_test", "planned_steps"]
