"""How a range test's steps run on the backend: one per call, or ``k`` per compiled call.

The range test's loop (:func:`lrrt_core.finder.range_test`) asks an executor for the exact
training loss of steps ``start .. start+count-1`` and applies the stop rule to them on the
host. Three executors give the same losses:

* :class:`PerStep` -- one ``model.train_on_batch`` per step (any backend; the reference).
* :class:`TFChunks` -- TensorFlow: one ``tf.function`` runs ``k`` steps in a graph loop.
  Each step assigns its rate to the learning-rate variable (unless the optimizer's
  :class:`~lrrt_core.ladder_schedule.LadderSchedule` computes it), resets the metrics and
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

import logging
from typing import Any, Sequence

import numpy as np

from lrrt_core.sources import ArraySource

log = logging.getLogger(__name__)

#: steps per compiled call when the range test is not told (``steps_per_call=None``).
DEFAULT_STEPS_PER_CALL = 16
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
        try:
            for b in batches[1:]:
                keras.tree.assert_same_structure(batches[0], b)
                if [np.shape(a) for a in keras.tree.flatten(b)] != [np.shape(a) for a in keras.tree.flatten(batches[0])]:
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
    """What both fused executors share: the feed, the padded rates, the per-step fallback."""

    def __init__(self, model, source, lrs, lr_var, val, k: int) -> None:
        self.model, self.lr_var, self.val, self.k = model, lr_var, val, k
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.per_step = PerStep(model, source, lrs, lr_var, val)
        self.feed = _Feed(source, k, self._to_device)

    def run(self, start: int, count: int) -> list[float]:
        lrs = _pad_lrs(self.lrs, start, count, self.k)
        if self.feed.staged is not None:
            out = self._run(("idx", self.feed.indices(count)), lrs)
        else:
            stacked, batches = self.feed.batches(count)
            if stacked is None:
                self._before_per_step()
                return self.per_step.run_batches(start, batches)
            out = self._run(("batch", stacked), lrs)
        out = np.asarray(out)[:count]
        if self.val is None:
            return [float(v) for v in out]
        return [_val_losses(row, self.val) for row in out]

    def _before_per_step(self) -> None:
        """Make the model's variables current before a chunk runs per step."""

    def _to_device(self, tree):  # pragma: no cover - overridden
        raise NotImplementedError

    def _run(self, data, lrs):  # pragma: no cover - overridden
        raise NotImplementedError


class TFChunks(_Chunks):
    """``k`` steps per ``tf.function`` call (TensorFlow backend)."""

    def __init__(self, model, source, lrs, lr_var, val, k: int) -> None:
        import tensorflow as tf

        self._tf = tf
        super().__init__(model, source, lrs, lr_var, val, k)
        self._val = [(tf.constant(xv), tf.constant(yv)) for xv, yv, _ in val] if val is not None else None
        self._fns = {}

    def _to_device(self, tree):
        import keras

        return keras.tree.map_structure(lambda a: None if a is None else self._tf.constant(a), tree)

    def _function(self, kind: str):
        if kind in self._fns:
            return self._fns[kind]
        tf, model, lr_var, val = self._tf, self.model, self.lr_var, self._val
        import keras

        def batch_at(data, i):
            if kind == "idx":
                arrays, idx = data
                x, y = keras.tree.map_structure(lambda a: None if a is None else tf.gather(a, idx[i]), arrays)
                return x, y, None
            return keras.tree.map_structure(lambda a: None if a is None else a[i], data)

        def chunk(data, lrs):
            k = tf.shape(lrs)[0]
            out = tf.TensorArray(tf.float32, size=k)
            for i in tf.range(k):
                if lr_var is not None:
                    lr_var.assign(tf.cast(lrs[i], lr_var.dtype))
                model.reset_metrics()
                logs = model.train_step(batch_at(data, i))
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

        fn = tf.function(chunk, jit_compile=bool(getattr(model, "jit_compile", False)))
        self._fns[kind] = fn
        return fn

    def _run(self, data, lrs):
        kind, payload = data
        args = (self.feed.staged, payload) if kind == "idx" else payload
        return self._function(kind)(args, lrs).numpy()


class JaxChunks(_Chunks):
    """``k`` steps of the stateless JAX train step per host read (JAX backend)."""

    def __init__(self, model, source, lrs, lr_var, val, k: int) -> None:
        import jax

        self._jax = jax
        super().__init__(model, source, lrs, lr_var, val, k)
        opt = model.optimizer
        self._lr_index = None
        if lr_var is not None:
            self._lr_index = next(i for i, v in enumerate(opt.variables) if v is lr_var)
        model.reset_metrics()
        self._metrics0 = [v.value for v in model.metrics_variables]
        self._val = [(jax.numpy.asarray(xv), jax.numpy.asarray(yv)) for xv, yv, _ in val] if val is not None else None
        self.scan = jax.default_backend() != "cpu"
        self._fns = {}

    def _to_device(self, tree):
        import keras

        return keras.tree.map_structure(lambda a: None if a is None else self._jax.numpy.asarray(a), tree)

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
        jnp, model, lr_index = self._jax.numpy, self.model, self._lr_index
        import keras

        def step(state, metrics0, val, data, i, lr):
            tv, ntv, ov = state
            if lr_index is not None:
                ov = list(ov)
                ov[lr_index] = lr.astype(ov[lr_index].dtype)
            if kind == "idx":
                arrays, idx = data
                x, y = keras.tree.map_structure(lambda a: None if a is None else jnp.take(a, idx[i], axis=0), arrays)
                batch = (x, y, None)
            else:
                batch = keras.tree.map_structure(lambda a: None if a is None else a[i], data)
            logs, (tv, ntv, ov, _) = model.train_step((tv, ntv, ov, metrics0), batch)
            if val is None:
                loss = logs["loss"].astype("float32")
            else:
                loss = jnp.stack([model.test_step((tv, ntv, metrics0), (xv, yv, None))[0]["loss"].astype("float32")
                                  for xv, yv in val])
            return (tv, ntv, ov), loss

        return step

    def _function(self, kind: str):
        if kind in self._fns:
            return self._fns[kind]
        jax, step = self._jax, self._step(kind)
        if self.scan:
            def chunk(state, metrics0, val, data, lrs):
                def body(state, inp):
                    i, lr = inp
                    return step(state, metrics0, val, data, i, lr)
                return jax.lax.scan(body, state, (jax.numpy.arange(lrs.shape[0]), lrs))
            fn = jax.jit(chunk)
        else:
            one = jax.jit(step)

            def fn(state, metrics0, val, data, lrs):
                losses = []
                for i in range(len(lrs)):
                    state, loss = one(state, metrics0, val, data, np.int32(i), lrs[i])
                    losses.append(loss)
                return state, losses
        self._fns[kind] = fn
        return fn

    def _run(self, data, lrs):
        kind, payload = data
        args = (self.feed.staged, payload) if kind == "idx" else payload
        state, losses = self._function(kind)(self._state(), self._metrics0, self._val, args, lrs)
        self._sync(state)
        return np.asarray(self._jax.device_get(losses))

    def _before_per_step(self) -> None:
        pass  # the variables are synced after every chunk


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


def make_executor(model, source, lrs, lr_var, val, steps_per_call: int | None):
    """The executor for this model and backend: fused with ``k`` steps per call where the
    backend allows it (``steps_per_call`` ``None``: :data:`DEFAULT_STEPS_PER_CALL`; ``1``:
    per step), else :class:`PerStep`."""
    import keras

    k = DEFAULT_STEPS_PER_CALL if steps_per_call is None else int(steps_per_call)
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
    return cls(model, source, lrs, lr_var, val, k)


__all__ = ["DEFAULT_STEPS_PER_CALL", "STAGE_BYTES", "PerStep", "TFChunks", "JaxChunks", "make_executor",
           "fused_support"]
