"""The learning-rate range test: a Keras 3 training loop that records one loss per step.

:func:`range_test` trains a compiled Keras model for ``steps`` batches while the learning
rate climbs a ladder from ``start_lr`` to ``end_lr`` (exponential by default), records the
**exact loss of every batch**, stops when training blows up, and puts the model and its
optimizer back exactly as they were. :class:`LRFinder` wraps it in the interface of
keras-lr-finder (surmenok/keras_lr_finder), so code written for that package (such as the
seed article's) runs with one import changed.

How the loop works (and why):

* One ``model.train_on_batch(x, y, return_dict=True)`` per step. In Keras 3 it resets the
  model's metrics before the step on every backend, so ``logs["loss"]`` is the loss of this
  batch (with the weights before the update, training-mode forward pass, regularization
  losses included exactly as Keras reports ``loss``) -- not the running mean since the
  epoch began that ``model.fit`` hands to ``on_train_batch_end`` (tensorflow#58098), which
  shifts suggestions about a decade to the right. ``train_on_batch`` is public,
  backend-neutral API (TensorFlow, JAX, PyTorch) and runs Keras's compiled train step.
* The learning rate of step ``i`` is assigned to the optimizer's learning-rate variable
  before the step (``optimizer.learning_rate.assign(lr)``): no retracing. An optimizer
  compiled with :class:`lrrt_core.ladder_schedule.LadderSchedule` computes the same rate
  from its ``iterations`` inside the compiled step instead, which saves that eager op
  (``run_workload``, hence ``lrrt find`` and every sweep trial, compiles this way).
* Per step the loop does only: (assign the rate,) fetch the batch, train, one float, the
  EMA update and the stop check. ``train_on_batch`` already converts its logs to Python floats,
  so reading the loss adds no host synchronisation of its own.

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
import math
import numbers
import time
from typing import Any, Callable, Iterable

import numpy as np

from lrrt_core.curve import Curve
from lrrt_core.schedule import LADDERS, check_bounds
from lrrt_core.schedule import ladder as make_ladder

log = logging.getLogger(__name__)

DEFAULT_STEPS = 100  # fastai lr_find num_it / Lightning num_training


# --------------------------------------------------------------------------- data sources


def _unpack(batch: Any) -> tuple[Any, Any, Any]:
    """``(x, y)`` / ``(x, y, sample_weight)`` / ``x`` -> ``(x, y, sw)`` (Keras's convention)."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        if len(batch) == 1:
            return batch[0], None, None
    return batch, None, None


def _num_samples(x: Any) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()), np.empty(0))
    elif isinstance(x, (list, tuple)):
        x = x[0] if x else np.empty(0)
    return int(np.shape(x)[0]) if np.ndim(x) else 0


def _take(x: Any, idx: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: np.asarray(v)[idx] for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(np.asarray(v)[idx] for v in x)
    return np.asarray(x)[idx]


class _ArraySource:
    """NumPy arrays cut into ``batch_size`` batches; reshuffled (seeded) every epoch.

    The last incomplete batch of an epoch is dropped (one batch of all samples when there
    are fewer than ``batch_size``): a tiny last batch gives a noisy loss point and, on the
    TensorFlow backend, a retrace of the train step for the new shape.
    """

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, seed: int) -> None:
        n = _num_samples(x)
        if n == 0:
            raise ValueError("x is empty (0 samples); pass at least one batch of training data")
        if y is not None and _num_samples(y) != n:
            raise ValueError(f"x has {n} samples but y has {_num_samples(y)}; they must match")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.x, self.y = x, y
        self.bs = min(int(batch_size), n)
        self.n = n
        self.batches_per_epoch = n // self.bs
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self._order: Any = None
        self._pos = 0
        self._epoch()

    def _epoch(self) -> None:
        # Only the order is drawn; each batch is gathered when asked for, so the data set is
        # never copied whole (a shuffled MNIST copy per trial would double a worker's memory).
        self._order = self.rng.permutation(self.n) if self.shuffle else None
        self._pos = 0

    def _batch(self, i: int) -> tuple[Any, Any, Any]:
        bs = self.bs
        idx = slice(i * bs, (i + 1) * bs) if self._order is None else self._order[i * bs:(i + 1) * bs]
        return _take(self.x, idx), _take(self.y, idx), None

    def peek(self) -> tuple[Any, Any, Any]:
        return self._batch(self._pos if self._pos < self.batches_per_epoch else 0)

    def __call__(self) -> tuple[Any, Any, Any]:
        if self._pos >= self.batches_per_epoch:
            self._epoch()
        b = self._batch(self._pos)
        self._pos += 1
        return b


class _IterSource:
    """Batches from a tf.data.Dataset, a Sequence/PyDataset, a re-iterable, a factory or a generator.

    * indexable with ``len`` (``keras.utils.PyDataset``, a list of batches): batch ``i % len``;
    * re-iterable (``tf.data.Dataset``, a list): a new iterator each time the data runs out;
    * a zero-argument callable: called for a fresh iterable each time the data runs out;
    * a one-shot iterator/generator: cannot be cycled; running out before ``steps`` raises a
      ``ValueError`` (pass fewer steps, a factory ``lambda: gen()``, or a ``tf.data.Dataset``).
    """

    def __init__(self, data: Any) -> None:
        self.data = data
        self.factory = data if callable(data) and not hasattr(data, "__iter__") else None
        self.indexable = (
            self.factory is None
            and hasattr(data, "__getitem__")
            and hasattr(data, "__len__")
            and not hasattr(data, "element_spec")  # tf.data.Dataset: iterate it
            and not isinstance(data, (dict, str, bytes))
        )
        self.batches_per_epoch: int | None = None
        if self.indexable:
            self.batches_per_epoch = len(data)
        elif self.factory is None:
            try:
                self.batches_per_epoch = int(len(data))  # tf.data with known cardinality
            except (TypeError, ValueError):
                self.batches_per_epoch = None
        if self.batches_per_epoch == 0:
            raise ValueError("the data has no batches; pass a non-empty dataset or generator")
        self._it = None if self.indexable else self._fresh()
        self.one_shot = self.factory is None and not self.indexable and self._it is data
        self.count = 0
        self._i = 0
        self._first = self._next_raw(first=True)

    def _fresh(self):
        source = self.factory() if self.factory is not None else self.data
        try:
            return iter(source)
        except TypeError:
            raise ValueError(
                f"cannot read batches from a {type(source).__name__}; pass NumPy arrays (x, y), a batched "
                "tf.data.Dataset, a keras.utils.PyDataset, a list of (x, y) batches or a generator"
            ) from None

    def _next_raw(self, first: bool = False):
        if self.indexable:
            b = self.data[self._i % self.batches_per_epoch]
            self._i += 1
            return _unpack(b)
        try:
            return _unpack(next(self._it))
        except StopIteration:
            if first:
                raise ValueError("the data yielded no batches; pass a non-empty dataset or generator") from None
            if self.one_shot:
                raise ValueError(
                    f"the generator ran out after {self.count} batches and a one-shot generator cannot be "
                    "cycled; pass fewer steps, a tf.data.Dataset, a list of batches, or a zero-argument "
                    "function that returns a fresh generator"
                ) from None
            self._it = self._fresh()
            try:
                return _unpack(next(self._it))
            except StopIteration:
                raise ValueError("the data yielded no batches when iterated again; it cannot be cycled") from None

    def peek(self) -> tuple[Any, Any, Any]:
        return self._first

    def __call__(self) -> tuple[Any, Any, Any]:
        if self._first is not None:
            b, self._first = self._first, None
        else:
            b = self._next_raw()
        self.count += 1
        return b


def _is_array_like(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return True
    if isinstance(x, dict):
        return bool(x) and all(isinstance(v, np.ndarray) for v in x.values())
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(v, np.ndarray) for v in x)
    return False


def _make_source(x: Any, y: Any, batch_size: int, shuffle: bool, seed: int):
    if x is None:
        raise ValueError("x is None; pass training data (arrays, a tf.data.Dataset or a generator)")
    if y is not None and not _is_array_like(x) and (hasattr(x, "element_spec") or hasattr(x, "__next__")
                                                     or callable(x)):
        raise ValueError("y must be None when x is a dataset, generator or function that yields (x, y) batches")
    if _is_array_like(x) or y is not None:
        if not _is_array_like(x):
            x = np.asarray(x)
        src = _ArraySource(x, None if y is None else y, batch_size, shuffle, seed)
        return src, src.bs
    return _IterSource(x), None


# --------------------------------------------------------------------------- state


_FLOAT_LR_HINT = (
    "compile with a float learning rate, e.g. optimizer=keras.optimizers.Adam(learning_rate=1e-3), "
    "or with lrrt_core.ladder_schedule.ladder_schedule(ladder, start_lr, end_lr, steps) matching the range test"
)


def _lr_control(optimizer: Any, kind: str, start_lr: float, end_lr: float, steps: int):
    """How step ``i``'s rate reaches the optimizer.

    Returns the optimizer's learning-rate variable (the loop assigns each rate to it before
    the step), or ``None`` when the optimizer computes this very ladder itself from its
    ``iterations`` (a :class:`~lrrt_core.ladder_schedule.LadderSchedule`; nothing to do
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
    n = _num_samples(xv)
    if n == 0:
        raise ValueError("val_data is empty; pass a non-empty held-out set (x_val, y_val)")
    if _num_samples(yv) != n:
        raise ValueError(f"val_data has {n} inputs but {_num_samples(yv)} targets; they must match")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"val_batch_size must be an integer >= 1, got {batch_size!r}")
    bs = int(batch_size)
    return [
        (_take(xv, slice(i, i + bs)), _take(yv, slice(i, i + bs)), min(bs, n - i)) for i in range(0, n, bs)
    ]


def _resolve_steps(steps: int | None, epochs: int | None, batches_per_epoch: int | None) -> int:
    """``steps``, or ``epochs`` whole epochs of the data, or :data:`DEFAULT_STEPS`."""
    if epochs is None:
        return DEFAULT_STEPS if steps is None else int(steps)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if batches_per_epoch is None:
        raise ValueError("epochs needs data of known length; pass steps=N for a generator or an infinite dataset")
    n = int(epochs) * batches_per_epoch
    if n < 2:
        raise ValueError(
            f"epochs={epochs} gives only {n} step(s) ({batches_per_epoch} batch(es) per epoch); "
            "use more epochs, a smaller batch_size, or pass steps"
        )
    return n


def planned_steps(x: Any, y: Any = None, *, steps: int | None = None, epochs: int | None = None,
                  batch_size: int = 64) -> int | None:
    """The number of steps :func:`range_test` will plan for these arguments, without reading data.

    Known for array data (and whenever ``steps`` is given); ``None`` for a dataset or
    generator with ``epochs`` (its length is found by reading it). Used to build a
    :class:`~lrrt_core.ladder_schedule.LadderSchedule` before compiling.
    """
    if epochs is None:
        return _resolve_steps(steps, None, None)
    if not (_is_array_like(x) or y is not None):
        return None
    n = _num_samples(x)
    if n == 0 or isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        return None  # range_test itself reports the bad input
    return _resolve_steps(None, epochs, n // min(int(batch_size), n))


def range_test(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    ladder: str = "exp",
    loss: str = "train",
    val_data: tuple[Any, Any] | None = None,
    val_batch_size: int = 1024,
    diverge_threshold: float | None = 4.0,
    smoothing: float = 0.98,
    seed: int = 0,
    shuffle: bool = True,
    on_step: Callable[[int, float, float], Any] | None = None,
    report_every: int = 10,
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
            before each step), or a :class:`~lrrt_core.ladder_schedule.LadderSchedule` of
            this very ladder and ``iterations == 0`` (it computes each rate itself).
        x: training inputs as NumPy arrays (with ``y``); or, with ``y=None``, a batched
            ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a list of ``(x, y)`` batches, a
            zero-argument function returning a fresh iterable, or a generator yielding
            ``(x, y)`` batches. Data shorter than ``steps`` is cycled; a one-shot generator
            cannot be cycled and raises ``ValueError`` when it runs out.
        y: training targets for array ``x``.
        start_lr: first learning rate (> 0).
        end_lr: last learning rate (> start_lr).
        steps: number of steps (ladder points, >= 2). Default: ``epochs`` epochs if given,
            else 100 (fastai's default).
        epochs: alternative to ``steps``: ``epochs * batches_per_epoch`` steps (needs data
            whose length is known, or arrays).
        batch_size: batch size for array data (ignored for batched data). The last
            incomplete batch of each epoch is dropped.
        ladder: ``"exp"`` (geometric, Smith's and fastai's choice) or ``"linear"``.
        loss: ``"train"`` (the loss of each training batch) or ``"val"`` (the loss on the
            fixed held-out ``val_data`` after each step, as Smith 2018 describes).
        val_data: ``(x_val, y_val)`` arrays for ``loss="val"``.
        val_batch_size: chunk size for evaluating ``val_data``.
        diverge_threshold: stop when the smoothed loss exceeds this multiple of the best
            smoothed loss (4 as in fastai/Lightning); ``None`` or ``inf`` never stops on it.
            The rule assumes a positive loss (it is not applied while the best is <= 0).
        smoothing: beta of the bias-corrected EMA used by the stop rule (recorded on the
            curve; 0 compares raw losses, keras-lr-finder's rule).
        seed: seeds the shuffling of array data.
        shuffle: shuffle array data each epoch.
        on_step: ``on_step(step, lr, loss)`` called every ``report_every`` steps and on the
            last step run (progress reporting, e.g. ``ray.tune.report``).
        report_every: steps between ``on_step`` calls.

    Returns:
        :class:`lrrt_core.curve.Curve` with the raw ``lrs`` and ``losses`` of the steps run,
        ``stop_reason``, ``diverged_lr``, ``steps_planned``, ``wall_s`` and ``params``
        (start_lr, end_lr, steps, ladder, loss, diverge_threshold, smoothing, seed,
        batch_size -- ``None`` for batched data).

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
    thr = _check_settings(start_lr, end_lr, steps, epochs, ladder, loss, diverge_threshold, smoothing,
                          report_every, seed)
    val = _val_chunks(val_data, val_batch_size) if loss == "val" else None

    source, used_batch_size = _make_source(x, y, batch_size, shuffle, seed)
    steps = _resolve_steps(steps, epochs, source.batches_per_epoch)
    check_bounds(start_lr, end_lr, steps)
    lrs = make_ladder(ladder, float(start_lr), float(end_lr), steps)
    lr_var = _lr_control(model.optimizer, ladder, start_lr, end_lr, steps)

    _ensure_built(model, source.peek())
    saved = _snapshot(list(model.variables) + list(model.optimizer.variables))
    log.info("range test: %d steps, lr %.3g -> %.3g (%s), loss=%s", steps, start_lr, end_lr, ladder, loss)
    try:
        run = _loop(model, source, lrs.tolist(), lr_var, val, float(smoothing), thr, on_step, report_every)
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
        params={
            "start_lr": float(start_lr),
            "end_lr": float(end_lr),
            "steps": steps,
            "ladder": ladder,
            "loss": loss,
            "diverge_threshold": None if thr is None else float(thr),
            "smoothing": float(smoothing),
            "seed": int(seed),
            "batch_size": used_batch_size,
        },
    )


def _check_settings(start_lr, end_lr, steps, epochs, ladder, loss, diverge_threshold, smoothing, report_every,
                    seed) -> float | None:
    """Refuse bad range-test settings (the message says what to change); return the
    divergence threshold in effect (``None`` for none or infinite)."""
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if hasattr(value, "get_config") or callable(value):
            raise ValueError(
                f"{name} must be a float, got a {type(value).__name__} (a learning-rate schedule); "
                "the range test makes its own ladder from start_lr to end_lr"
            )
    if ladder not in LADDERS:
        raise ValueError(f"ladder must be one of {', '.join(LADDERS)}, got {ladder!r}")
    if loss not in ("train", "val"):
        raise ValueError(f"loss must be 'train' or 'val', got {loss!r}")
    if diverge_threshold is not None:
        if isinstance(diverge_threshold, bool) or not isinstance(diverge_threshold, numbers.Real) or not diverge_threshold > 1:
            raise ValueError(f"diverge_threshold must be a number > 1 (or None to disable), got {diverge_threshold!r}")
        if math.isinf(diverge_threshold):
            diverge_threshold = None
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing (EMA beta) must be in [0, 1), got {smoothing!r}")
    if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
        raise ValueError(f"report_every must be an integer >= 1, got {report_every!r}")
    if steps is not None and epochs is not None:
        raise ValueError("give either steps or epochs, not both")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    return diverge_threshold


@dataclasses.dataclass
class _Run:
    """What the step loop produced: raw losses of the steps kept, why it stopped, its wall time."""

    losses: list[float]
    stop_reason: str
    diverged_lr: float | None
    nonfinite_loss: str | None
    wall_s: float


def _loop(model, source, lr_list: list[float], lr_var, val, beta: float, thr: float | None,
          on_step, report_every: int) -> _Run:
    """The per-step loop: set the rate (unless the optimizer's schedule does), train on one
    batch, record its loss (or the held-out loss), apply the stop rule. Nothing else runs
    between steps."""
    train = model.train_on_batch
    test = model.test_on_batch
    losses: list[float] = []
    stop_reason, diverged_lr, nonfinite_loss = "completed", None, None
    avg, beta_pow, best = 0.0, 1.0, math.inf
    n_val = sum(nv for _, _, nv in val) if val is not None else 0
    t0 = time.perf_counter()
    for i, lr in enumerate(lr_list):
        if lr_var is not None:  # else the optimizer's LadderSchedule gives it this rate
            lr_var.assign(lr)
        xb, yb, sw = source()
        logs = train(xb, yb, sample_weight=sw, return_dict=True)
        if val is None:
            value = float(logs["loss"])
        else:
            total = 0.0
            for xv, yv, nv in val:
                total += nv * float(test(xv, yv, return_dict=True)["loss"])
            value = total / n_val
        if not math.isfinite(value):
            stop_reason, diverged_lr, nonfinite_loss = "nonfinite", lr, str(value)
            break
        losses.append(value)
        avg = beta * avg + (1.0 - beta) * value
        beta_pow *= beta
        smoothed = avg / (1.0 - beta_pow)
        if on_step is not None and (i + 1) % report_every == 0:
            on_step(i, lr, value)
        if thr is not None and 0.0 < best < math.inf and smoothed > thr * best:
            stop_reason, diverged_lr = "diverged", lr
            break
        if smoothed < best:
            best = smoothed
    wall = time.perf_counter() - t0
    n = len(losses)
    if on_step is not None and n and n % report_every != 0:  # the last step run, if not reported yet
        on_step(n - 1, lr_list[n - 1], losses[-1])
    return _Run(losses, stop_reason, diverged_lr, nonfinite_loss, wall)


# --------------------------------------------------------------------------- keras-lr-finder facade


class LRFinder:
    """keras-lr-finder's ``LRFinder``, on the exact-loss, non-destructive core.

    Same methods and parameter names as surmenok/keras_lr_finder, so the seed article's
    code runs with ``from lrrt_core import LRFinder``. Differences, all deliberate:

    * ``losses`` are the exact per-batch losses (keras-lr-finder records Keras's running
      mean, tensorflow#58098);
    * the stop rule uses the bias-corrected EMA (``smoothing=0.98``); pass ``smoothing=0``
      for keras-lr-finder's raw "4x best loss" rule -- the value is recorded on the curve and
      is also the default smoothing of the suggestions and plots made from it (pass
      ``beta=`` to those to smooth differently);
    * the optimizer's state is restored too, not only the weights;
    * ``plot_loss`` and ``plot_loss_change`` draw as keras-lr-finder does: on pyplot's
      current figure, then ``plt.show()`` (so a notebook cell shows the image and a script's
      ``plt.savefig`` afterwards saves it), returning ``None``; given ``ax=``, they draw on
      that ``Axes`` instead, leave pyplot alone and return it.

    Example:
        >>> finder = LRFinder(model)                                              # doctest: +SKIP
        >>> finder.find(x_train, y_train, start_lr=1e-4, end_lr=10, batch_size=250, epochs=5)
        >>> finder.plot_loss(n_skip_beginning=20, n_skip_end=5)                   # doctest: +SKIP
        >>> finder.get_best_lr(sma=20)                                            # doctest: +SKIP
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.curve: Curve | None = None

    def _store(self, curve: Curve) -> Curve:
        self.curve = curve
        self.lrs = curve.lrs.tolist()
        self.losses = curve.losses.tolist()
        return curve

    def find(self, x_train, y_train, start_lr, end_lr, batch_size=64, epochs=1, **kw) -> Curve:
        """Range test over ``epochs`` epochs of array data; see :func:`range_test` for ``**kw``.

        keras-lr-finder forwards extra keywords to ``model.fit``; of those, ``verbose`` is
        accepted here and ignored (the range test prints nothing), others raise ``TypeError``.
        """
        kw.pop("verbose", None)
        if "steps" in kw:
            epochs = None
        return self._store(
            range_test(self.model, x_train, y_train, start_lr=start_lr, end_lr=end_lr,
                       batch_size=batch_size, epochs=epochs, **kw)
        )

    def find_generator(self, generator, start_lr, end_lr, epochs=1, steps_per_epoch=None, **kw) -> Curve:
        """Range test on batched data (tf.data.Dataset, PyDataset, generator of ``(x, y)``).

        ``steps_per_epoch`` is needed when the data has no length (a generator), as in
        keras-lr-finder.
        """
        if "steps" not in kw:
            if steps_per_epoch is None:
                try:
                    steps_per_epoch = len(generator)
                except (TypeError, ValueError):
                    raise ValueError(
                        "`steps_per_epoch=None` is only valid for a generator with a length "
                        "(a keras.utils.PyDataset or a tf.data.Dataset of known cardinality); pass steps_per_epoch"
                    ) from None
            kw["steps"] = int(epochs) * int(steps_per_epoch)
        return self._store(range_test(self.model, generator, start_lr=start_lr, end_lr=end_lr, **kw))

    def _need_curve(self) -> Curve:
        if self.curve is None:
            raise ValueError("no range test has run yet; call find() or find_generator() first")
        return self.curve

    def plot_loss(self, n_skip_beginning=10, n_skip_end=5, x_scale="log", ax=None):
        """Loss against learning rate (raw and EMA), skipping points at both ends.

        Without ``ax``: drawn on pyplot's current axes, then ``plt.show()``, like
        keras-lr-finder; returns ``None``. With ``ax``: drawn there and returned.
        """
        from lrrt_core import plot

        return _on_pyplot(ax, lambda target: plot.plot_curve(
            self._need_curve(), target, skip_start=n_skip_beginning, skip_end=n_skip_end, xscale=x_scale))

    def plot_loss_change(self, sma=1, n_skip_beginning=10, n_skip_end=5, y_lim=(-0.01, 0.01), ax=None):
        """The loss change ``(loss[i] - loss[i-sma]) / sma`` against learning rate.

        Shown with pyplot like :meth:`plot_loss` (returns ``None``), or drawn on ``ax`` and returned.
        """
        from lrrt_core import plot

        return _on_pyplot(ax, lambda target: plot.plot_loss_change(
            self._need_curve(), target, sma=sma, skip_start=n_skip_beginning, skip_end=n_skip_end, y_lim=y_lim))

    def get_derivatives(self, sma):
        """keras-lr-finder's list of loss changes over ``sma`` steps (the first ``sma`` are 0)."""
        from lrrt_core import suggest

        change = suggest.loss_change(np.asarray(self.losses, dtype=np.float64), sma)
        return np.nan_to_num(change, nan=0.0).tolist()

    def get_best_lr(self, sma, n_skip_beginning=10, n_skip_end=5):
        """Learning rate of the most negative ``sma``-step loss change (keras-lr-finder's rule).

        Returns ``None`` when the curve gives no suggestion (e.g. the loss never falls);
        the reason is logged.
        """
        from lrrt_core import suggest

        s = suggest.sma_rule(self._need_curve(), sma=sma, skip_start=n_skip_beginning, skip_end=n_skip_end)
        if s.lr is None:
            log.warning("get_best_lr: no suggestion (%s)", s.reason)
        return s.lr


def _on_pyplot(ax, draw):
    """Draw on ``ax`` and return it; without one, draw on pyplot's current axes and show them.

    keras-lr-finder's plots call ``plt.plot`` ... ``plt.show()`` and return nothing: in a
    notebook (``%matplotlib inline``) the cell shows the image, in a script the figure stays
    current for ``plt.savefig``. pyplot enters only here, in the compatibility facade; the
    core's :mod:`lrrt_core.plot` stays pyplot-free.
    """
    if ax is not None:
        return draw(ax)
    import matplotlib.pyplot as plt

    draw(plt.gca())
    plt.show()
    return None


__all__ = ["range_test", "LRFinder", "DEFAULT_STEPS"]
