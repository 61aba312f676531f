"""How a range test's steps run on the backend: one per call, or ``k`` per compiled call.

The range test's loop (:func:`lrrt_core.finder.range_test`) asks an executor for the exact
training loss of steps ``start .. start+count-1`` and applies the stop rule to them on the
host. Three executors give the same losses:

* :class:`PerStep` -- one ``model.train_on_batch`` per step (any backend; the reference).
* :class:`TFChunks` -- TensorFlow: one ``tf.function`` runs ``k`` steps in a graph loop.
  Each step assigns its rate to the learning-rate variable (unless the optimizer's
  :class:`~lrrt_core.keras_ladder.LadderSchedule` computes it), resets the metrics and
  calls the model's own ``train_step`` -- the step ``fit`` and ``train_on_batch`` run --
  and writes that batch's loss into a ``TensorArray``; one host read per chunk.
* :class:`JaxChunks` -- JAX: the stateless ``model.train_step(state, batch)`` under
  ``jax.jit``; on an accelerator ``k`` steps are one ``jax.lax.scan``, on the CPU ``k``
  asynchronously dispatched calls of the jitted step (XLA:CPU runs a ``while`` loop's body
  about 4x slower than the same step compiled alone: 2.8 against 0.6 ms a step measured
  on the digits CNN; a fully unrolled scan is fast but compiles 3x longer). One host read
  per chunk; the model's variables take the new state after each chunk.

Array data that fits (:data:`STAGE_BYTES`) is copied to the device once and each step
gathers its batch by the row indices :class:`~lrrt_core.sources.ArraySource` draws
(the same rows, in the same order, as the per-step path); other data is read on the host
and ``k`` batches are stacked per chunk (a chunk whose batches differ in shape runs per
step). The last chunk is padded to ``k`` (same program); the loop drops what it does not
keep, and the range test restores the model afterwards anyway. The torch backend, eager
models and distributed models run per step.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any, Sequence

import numpy as np

from lrrt_core.sources import ArraySource

log = logging.getLogger(__name__)

#: steps per compiled call when the range test is not told (``steps_per_call=None``), on a
#: CPU and on an accelerator. On this project's CPU every k >= 8 ran a 200-step test in
#: half the time of k = 1 (``tests/benchmarks/bench_finder.py``); on an H200, k = 32 took
#: half the time of k = 8 at batch 32 (``../shared/gpu``). A test that stops early drops
#: the rest of its last chunk: at most k - 1 steps.
DEFAULT_STEPS_PER_CALL = 16
DEFAULT_STEPS_PER_CALL_ACCELERATOR = 32
#: array data up to this size (x, y together) is copied to the device once.
STAGE_BYTES = 1 << 30


def _nbytes(tree: Any) -> int:
    import keras

    return sum(int(np.asarray(a).nbytes) for a in keras.tree.flatten(tree) if a is not None)


def _val_losses(chunk_losses: Sequence[float], val) -> float:
    """The held-out loss of one step from its per-chunk mean losses (weighted by chunk size),
    summed in float64 in the same order as :class:`PerStep` does."""
    total = 0.0
    for loss, (_, _, nv) in zip(chunk_losses, val):
        total += nv * float(loss)
    return total / sum(nv for _, _, nv in val)


class Program:
    """What a fused executor compiles, kept for the next range test of the same step.

    ``model`` is the model whose step runs: the range test's own model, or, for a model
    lrrt built itself (``share_compiled=True``), the first model of the same architecture
    (:func:`architecture_key`). ``fns`` holds the compiled chunk functions by data kind.
    Compiling a chunk (tracing ``train_step``; XLA on JAX) costs a second or more, as much
    as a short range test on a GPU; a sweep's trials of one architecture differ only in
    weights, data and rates, which the functions take as arguments.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.fns: dict[Any, Any] = {}


_BY_ARCHITECTURE: "collections.OrderedDict[str, Program]" = collections.OrderedDict()
#: programs kept for models lrrt built (one worker rarely sees more architectures at once).
ARCHITECTURES_KEPT = 4


def _strip(config: Any) -> Any:
    """A config without what does not change the compiled step: seeds (their state is a
    variable), names, and a float learning rate (fed as data)."""
    if isinstance(config, dict):
        return {k: _strip(v) for k, v in config.items() if k not in ("seed", "name")}
    if isinstance(config, list):
        return [_strip(v) for v in config]
    return config


def architecture_key(model) -> str | None:
    """A key equal for two compiled models whose train steps are the same program given
    the same variables, or ``None`` when that cannot be told from the configs (a subclassed
    model, or a layer from outside Keras whose ``get_config`` may not say all it does)."""
    import keras

    if not isinstance(model, (keras.Sequential, keras.Model)) or type(model).__name__ not in ("Sequential", "Functional"):
        return None
    layers = list(model._flatten_layers(include_self=False))
    if any(not type(layer).__module__.startswith("keras.") for layer in layers):
        return None
    try:
        compiled = dict(model.get_compile_config() or {})
        optimizer = dict(compiled.get("optimizer") or {})
        if isinstance(optimizer.get("config"), dict) and isinstance(optimizer["config"].get("learning_rate"), (int, float)):
            optimizer["config"] = {**optimizer["config"], "learning_rate": None}
        compiled["optimizer"] = optimizer
        described = {
            "backend": keras.backend.backend(),
            "model": _strip(model.get_config()),
            "compile": _strip(compiled),
            "jit": str(getattr(model, "jit_compile", None)),
            "variables": [(tuple(v.shape), str(v.dtype)) for v in list(model.variables) + list(model.optimizer.variables)],
        }
        return json.dumps(described, sort_keys=True, default=repr)
    except Exception:  # noqa: BLE001 - an undescribable model simply is not shared
        return None


def program_for(model, share: bool) -> Program:
    """The :class:`Program` this model's range test runs: shared by architecture when
    ``share`` and the architecture can be told, else kept with the model itself."""
    key = architecture_key(model) if share else None
    if key is not None:
        program = _BY_ARCHITECTURE.get(key)
        if program is None:
            program = _BY_ARCHITECTURE[key] = Program(model)
            while len(_BY_ARCHITECTURE) > ARCHITECTURES_KEPT:
                _BY_ARCHITECTURE.popitem(last=False)
        _BY_ARCHITECTURE.move_to_end(key)
        return program
    # Kept on the model itself (its compiled functions refer to it, so a cache outside would
    # keep every model alive); object.__setattr__: not a tracked Keras attribute.
    key2 = (id(model.optimizer), id(getattr(model, "_compile_loss", None)))
    kept = getattr(model, "_lrrt_program", None)
    if kept is None or kept[0] != key2:  # none yet, or recompiled: the old functions trained another optimizer
        kept = (key2, Program(model))
        object.__setattr__(model, "_lrrt_program", kept)
    return kept[1]


class PerStep:
    """One ``train_on_batch`` per step; the held-out loss by ``test_on_batch`` per chunk."""

    k = 1

    def __init__(self, model, source, lrs: Sequence[float], lr_var, val) -> None:
        self.model, self.source, self.lrs, self.lr_var, self.val = model, source, list(lrs), lr_var, val

    def run(self, start: int, count: int) -> list[float]:
        return self.run_batches(start, [self.source() for _ in range(count)])

    def run_batches(self, start: int, batches: Sequence[tuple[Any, Any, Any]]) -> list[float]:
        train, test = self.model.train_on_batch, self.model.test_on_batch
        out = []
        for i, (xb, yb, sw) in enumerate(batches, start):
            if self.lr_var is not None:  # else the optimizer's LadderSchedule gives it this rate
                self.lr_var.assign(self.lrs[i])
            logs = train(xb, yb, sample_weight=sw, return_dict=True)
            if self.val is None:
                out.append(float(logs["loss"]))
            else:
                out.append(_val_losses([test(xv, yv, return_dict=True)["loss"] for xv, yv, _ in self.val], self.val))
        return out


class _Feed:
    """The data of ``k`` steps at a time: row indices into arrays staged on the device, or
    ``k`` host batches stacked (``None`` when they cannot be: the chunk then runs per step)."""

    def __init__(self, source, k: int, to_device) -> None:
        self.source, self.k = source, k
        self.staged = None
        if isinstance(source, ArraySource) and _nbytes((source.x, source.y)) <= STAGE_BYTES:
            self.staged = to_device((source.x, source.y))

    def indices(self, count: int) -> np.ndarray:
        rows = self.source.indices(count)
        return np.concatenate([rows, np.repeat(rows[-1:], self.k - count, axis=0)]).astype(np.int32)

    def batches(self, count: int) -> tuple[Any, list]:
        """``(stacked, batches)``: the ``count`` batches stacked and padded to ``k`` (``None``
        if their structures or shapes differ), and the batches themselves."""
        import keras

        batches = [self.source() for _ in range(count)]
        shapes = [np.shape(a) for a in keras.tree.flatten(batches[0])]
        try:
            for b in batches[1:]:
                keras.tree.assert_same_structure(batches[0], b)
                if [np.shape(a) for a in keras.tree.flatten(b)] != shapes:
                    return None, batches
        except (ValueError, TypeError):
            return None, batches
        padded = batches + [batches[-1]] * (self.k - count)
        stack = lambda *leaves: None if leaves[0] is None else np.stack([np.asarray(a) for a in leaves])  # noqa: E731
        return keras.tree.map_structure(stack, *padded), batches


def _pad_lrs(lrs: np.ndarray, start: int, count: int, k: int) -> np.ndarray:
    part = lrs[start:start + count]
    return np.concatenate([part, np.repeat(part[-1:], k - count)]).astype(np.float32)


class _Chunks:
    """What both fused executors share: the feed, the padded rates, the per-step fallback,
    the compiled functions kept in the :class:`Program`."""

    def __init__(self, model, source, lrs, lr_var, val, k: int, program: Program) -> None:
        self.model, self.lr_var, self.val, self.k, self.program = model, lr_var, val, k, program
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.feed = _Feed(source, k, self._to_device)
        self.val_data = None if val is None else [self._to_device((xv, yv)) for xv, yv, _ in val]
        self.per_step = PerStep(model, source, lrs, lr_var, val)

    def run(self, start: int, count: int) -> list[float]:
        lrs = _pad_lrs(self.lrs, start, count, self.k)
        if self.feed.staged is not None:
            out = self._run("idx", (self.feed.staged, self.feed.indices(count)), lrs)
        else:
            stacked, batches = self.feed.batches(count)
            if stacked is None:
                return self.per_step.run_batches(start, batches)
            out = self._run("batch", stacked, lrs)
        out = np.asarray(out)[:count]
        if self.val is None:
            return [float(v) for v in out]
        return [_val_losses(row, self.val) for row in out]

    def _function(self, kind: str):
        key = (kind, self._lr_key(), self.val is None)
        if key not in self.program.fns:
            self.program.fns[key] = self._compile(kind)
        return self.program.fns[key]

    def _to_device(self, tree):  # pragma: no cover - overridden
        raise NotImplementedError

    def _lr_key(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _compile(self, kind: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def _run(self, kind: str, data, lrs):  # pragma: no cover - overridden
        raise NotImplementedError


def _batch_at(kind: str, data, i, gather):
    """Step ``i``'s ``(x, y, sample_weight)`` inside the compiled chunk: rows ``idx[i]``
    gathered from the staged arrays, or entry ``i`` of the stacked batches."""
    import keras

    if kind == "idx":
        arrays, idx = data
        x, y = keras.tree.map_structure(lambda a: None if a is None else gather(a, idx[i]), arrays)
        return x, y, None
    return keras.tree.map_structure(lambda a: None if a is None else a[i], data)


class TFChunks(_Chunks):
    """``k`` steps per ``tf.function`` call (TensorFlow backend).

    The steps run on the program's model; when that is another model of the same
    architecture, this one's weights and optimizer state are copied into it first (this
    model itself is left untouched, as after any range test)."""

    def __init__(self, model, source, lrs, lr_var, val, k: int, program: Program) -> None:
        import tensorflow as tf

        self._tf = tf
        super().__init__(model, source, lrs, lr_var, val, k, program)
        runner = program.model
        self.runner_lr = None
        if lr_var is not None:
            index = next(i for i, v in enumerate(model.optimizer.variables) if v is lr_var)
            self.runner_lr = runner.optimizer.variables[index]
        if runner is not model:
            for dst, src in zip(list(runner.variables) + list(runner.optimizer.variables),
                                list(model.variables) + list(model.optimizer.variables)):
                dst.assign(src.value)
            # a chunk that cannot be stacked runs per step on the model that holds the state
            self.per_step = PerStep(runner, source, lrs, self.runner_lr, val)

    def _to_device(self, tree):
        import keras

        return keras.tree.map_structure(lambda a: None if a is None else self._tf.constant(a), tree)

    def _lr_key(self):
        return self.runner_lr is None

    def _compile(self, kind: str):
        tf, model, lr_var = self._tf, self.program.model, self.runner_lr

        def chunk(data, lrs, val):
            k = tf.shape(lrs)[0]
            out = tf.TensorArray(tf.float32, size=k)
            for i in tf.range(k):
                if lr_var is not None:
                    lr_var.assign(tf.cast(lrs[i], lr_var.dtype))
                model.reset_metrics()
                logs = model.train_step(_batch_at(kind, data, i, tf.gather))
                if val is None:
                    loss = tf.cast(logs["loss"], tf.float32)
                else:
                    losses = []
                    for xv, yv in val:
                        model.reset_metrics()
                        losses.append(tf.cast(model.test_step((xv, yv, None))["loss"], tf.float32))
                    loss = tf.stack(losses)
                out = out.write(i, loss)
            return out.stack()

        return tf.function(chunk, jit_compile=bool(getattr(model, "jit_compile", False)))

    def _run(self, kind: str, data, lrs):
        return self._function(kind)(data, lrs, self.val_data).numpy()


#: How :class:`JaxChunks` runs a chunk: ``None`` (default) picks ``jax.lax.scan`` on an
#: accelerator and k dispatched calls of the jitted step on the CPU; ``True``/``False``
#: force one (the tests run the accelerator's scan on the CPU with it).
JAX_SCAN: bool | None = None


class JaxChunks(_Chunks):
    """``k`` steps of the stateless JAX train step per host read (JAX backend).

    The state (weights, optimizer and metric variables) is this model's, passed in and
    written back after each chunk; the program's model only lends its ``train_step``."""

    def __init__(self, model, source, lrs, lr_var, val, k: int, program: Program) -> None:
        import jax

        self._jax = jax
        super().__init__(model, source, lrs, lr_var, val, k, program)
        self._lr_index = None
        if lr_var is not None:
            self._lr_index = next(i for i, v in enumerate(model.optimizer.variables) if v is lr_var)
        model.reset_metrics()
        self._metrics0 = [v.value for v in model.metrics_variables]
        self.scan = jax.default_backend() != "cpu" if JAX_SCAN is None else JAX_SCAN

    def _to_device(self, tree):
        import keras

        return keras.tree.map_structure(lambda a: None if a is None else self._jax.numpy.asarray(a), tree)

    def _lr_key(self):
        return (self._lr_index, self.scan)

    def _state(self):
        m = self.model
        return ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                [v.value for v in m.optimizer.variables])

    def _sync(self, state) -> None:
        m = self.model
        for refs, values in zip((m.trainable_variables, m.non_trainable_variables, m.optimizer.variables), state):
            for ref, value in zip(refs, values):
                ref.assign(value)

    def _step(self, kind: str):
        """One step as a pure function: ``(state, metrics0, val, data, i, lr) -> (state, loss)``."""
        jnp, model, lr_index = self._jax.numpy, self.program.model, self._lr_index

        def take(a, rows):
            return jnp.take(a, rows, axis=0)

        def step(state, metrics0, val, data, i, lr):
            tv, ntv, ov = state
            if lr_index is not None:
                ov = list(ov)
                ov[lr_index] = lr.astype(ov[lr_index].dtype)
            logs, (tv, ntv, ov, _) = model.train_step((tv, ntv, ov, metrics0), _batch_at(kind, data, i, take))
            if val is None:
                loss = logs["loss"].astype("float32")
            else:
                loss = jnp.stack([model.test_step((tv, ntv, metrics0), (xv, yv, None))[0]["loss"].astype("float32")
                                  for xv, yv in val])
            return (tv, ntv, ov), loss

        return step

    def _compile(self, kind: str):
        jax, step = self._jax, self._step(kind)
        if self.scan:
            def chunk(state, metrics0, val, data, lrs):
                def body(state, inp):
                    i, lr = inp
                    return step(state, metrics0, val, data, i, lr)
                return jax.lax.scan(body, state, (jax.numpy.arange(lrs.shape[0]), lrs))
            return jax.jit(chunk)
        one = jax.jit(step)

        def dispatch(state, metrics0, val, data, lrs):
            losses = []
            for i in range(len(lrs)):
                state, loss = one(state, metrics0, val, data, np.int32(i), lrs[i])
                losses.append(loss)
            return state, losses

        return dispatch

    def _run(self, kind: str, data, lrs):
        state, losses = self._function(kind)(self._state(), self._metrics0, self.val_data, data, lrs)
        self._sync(state)
        return np.asarray(self._jax.device_get(losses))


def fused_support(model) -> str | None:
    """Why ``model`` must run per step (``None``: it can run fused on this backend)."""
    import keras

    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        return f"the {backend} backend runs one step per call"
    if getattr(model, "run_eagerly", False):
        return "the model runs eagerly (run_eagerly=True)"
    if not hasattr(model, "_symbolic_build"):
        return "this Keras version has no symbolic build"
    if backend == "tensorflow":
        strategy = getattr(model, "distribute_strategy", None)
        if strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) != 1:
            return "the model is distributed over several replicas"
    else:
        from keras import distribution

        if distribution.distribution() is not None:
            return "a keras.distribution is set"
        if not getattr(model, "jit_compile", True):
            return "the model is compiled with jit_compile=False"
    return None


def default_steps_per_call() -> int:
    """:data:`DEFAULT_STEPS_PER_CALL`, or :data:`DEFAULT_STEPS_PER_CALL_ACCELERATOR` when the
    backend computes on a GPU/TPU (where a step is cheap and each call's overhead is not)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        on_accelerator = jax.default_backend() != "cpu"
    elif backend == "tensorflow":
        import tensorflow as tf

        on_accelerator = bool(tf.config.list_logical_devices("GPU"))
    else:
        on_accelerator = False
    return steps_per_call_for(on_accelerator)


def steps_per_call_for(on_accelerator: bool) -> int:
    """The default steps per compiled call on a CPU (:data:`DEFAULT_STEPS_PER_CALL`, 16) or on
    a GPU/TPU (:data:`DEFAULT_STEPS_PER_CALL_ACCELERATOR`, 32)."""
    return DEFAULT_STEPS_PER_CALL_ACCELERATOR if on_accelerator else DEFAULT_STEPS_PER_CALL


def make_executor(model, source, lrs, lr_var, val, steps_per_call: int | None, share_compiled: bool = False):
    """The executor for this model and backend: fused with ``k`` steps per call where the
    backend allows it (``steps_per_call`` ``None``: :data:`DEFAULT_STEPS_PER_CALL`; ``1``:
    per step), else :class:`PerStep`. ``share_compiled``: the model is lrrt's own (built for
    this test and dropped after it), so its compiled step may serve, and be served by,
    other models of its architecture (:func:`program_for`)."""
    import keras

    k = default_steps_per_call() if steps_per_call is None else int(steps_per_call)
    k = min(k, len(lrs))
    why = fused_support(model) if k > 1 else "steps_per_call=1"
    if lr_var is not None and keras.backend.backend() == "jax":
        if not any(v is lr_var for v in model.optimizer.variables):
            why = why or "the learning-rate variable is not one of the optimizer's variables"
    if why is not None:
        log.debug("range test runs one step per call: %s", why)
        return PerStep(model, source, lrs, lr_var, val)
    first = source.peek()
    model._symbolic_build(data_batch=first)  # build compile metrics/loss outside the compiled loop
    cls = TFChunks if keras.backend.backend() == "tensorflow" else JaxChunks
    return cls(model, source, lrs, lr_var, val, k, program_for(model, share_compiled))


__all__ = ["DEFAULT_STEPS_PER_CALL", "DEFAULT_STEPS_PER_CALL_ACCELERATOR", "STAGE_BYTES", "PerStep", "TFChunks",
           "JaxChunks", "make_executor", "default_steps_per_call", "steps_per_call_for", "fused_support", "Program", "program_for",
           "architecture_key"]
