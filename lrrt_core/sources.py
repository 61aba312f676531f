"""Where a range test's batches come from: NumPy arrays or a dataset/generator.

:class:`ArraySource` cuts arrays into batches (seeded reshuffle every epoch) and can hand
out the batches' row indices instead of the rows (the fused loop gathers them on the
device, :mod:`lrrt_core.execution`); :class:`IterSource` reads a ``tf.data.Dataset``, a
``PyDataset``, a list of batches, a factory or a generator, cycling it when it can.
:func:`make_source` picks one. Pure NumPy: nothing here imports Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unpack(batch: Any) -> tuple[Any, Any, Any]:
    """``(x, y)`` / ``(x, y, sample_weight)`` / ``x`` -> ``(x, y, sw)`` (Keras's convention)."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        if len(batch) == 1:
            return batch[0], None, None
    return batch, None, None


def num_samples(x: Any) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()), np.empty(0))
    elif isinstance(x, (list, tuple)):
        x = x[0] if x else np.empty(0)
    return int(np.shape(x)[0]) if np.ndim(x) else 0


def take(x: Any, idx: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: np.asarray(v)[idx] for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(np.asarray(v)[idx] for v in x)
    return np.asarray(x)[idx]


class ArraySource:
    """NumPy arrays cut into ``batch_size`` batches; reshuffled (seeded) every epoch.

    The last incomplete batch of an epoch is dropped (one batch of all samples when there
    are fewer than ``batch_size``): a tiny last batch gives a noisy loss point and, on the
    TensorFlow backend, a retrace of the train step for the new shape.
    """

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, seed: int) -> None:
        n = num_samples(x)
        if n == 0:
            raise ValueError("x is empty (0 samples); pass at least one batch of training data")
        if y is not None and num_samples(y) != n:
            raise ValueError(f"x has {n} samples but y has {num_samples(y)}; they must match")
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

    def _rows(self, i: int) -> Any:
        """Batch ``i`` of this epoch: a slice (unshuffled) or its indices in the drawn order."""
        bs = self.bs
        return slice(i * bs, (i + 1) * bs) if self._order is None else self._order[i * bs:(i + 1) * bs]

    def _batch(self, i: int) -> tuple[Any, Any, Any]:
        idx = self._rows(i)
        return take(self.x, idx), take(self.y, idx), None

    def _advance(self) -> int:
        """The position of the next batch (a new epoch when this one is used up)."""
        if self._pos >= self.batches_per_epoch:
            self._epoch()
        self._pos += 1
        return self._pos - 1

    def peek(self) -> tuple[Any, Any, Any]:
        return self._batch(self._pos if self._pos < self.batches_per_epoch else 0)

    def indices(self, count: int) -> np.ndarray:
        """The row indices of the next ``count`` batches, ``(count, batch_size)``, advancing
        exactly as ``count`` calls would (so the rows are those the calls would gather)."""
        rows = [self._rows(self._advance()) for _ in range(count)]
        rows = [np.arange(r.start, r.stop) if isinstance(r, slice) else r for r in rows]
        return np.stack(rows)

    def __call__(self) -> tuple[Any, Any, Any]:
        return self._batch(self._advance())


class IterSource:
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
            return unpack(b)
        try:
            return unpack(next(self._it))
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
                return unpack(next(self._it))
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


def is_array_like(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return True
    if isinstance(x, dict):
        return bool(x) and all(isinstance(v, np.ndarray) for v in x.values())
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(v, np.ndarray) for v in x)
    return False


def make_source(x: Any, y: Any, batch_size: int, shuffle: bool, seed: int):
    if x is None:
        raise ValueError("x is None; pass training data (arrays, a tf.data.Dataset or a generator)")
    if y is not None and not is_array_like(x) and (hasattr(x, "element_spec") or hasattr(x, "__next__")
                                                     or callable(x)):
        raise ValueError("y must be None when x is a dataset, generator or function that yields (x, y) batches")
    if is_array_like(x) or y is not None:
        if not is_array_like(x):
            x = np.asarray(x)
        src = ArraySource(x, None if y is None else y, batch_size, shuffle, seed)
        return src, src.bs
    return IterSource(x), None


__all__ = ["ArraySource", "IterSource", "make_source", "unpack", "num_samples", "take", "is_array_like"]
