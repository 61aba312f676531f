"""Short real trainings at fixed learning rates: the check of a range test's suggestion.

A range test *suggests* a learning rate; whether it trains well is a claim about
training. :func:`train_fixed` trains a compiled model at one constant rate for a budget
of epochs or steps and evaluates it on held-out data; :func:`verify_workload` does that
for a named workload and optimizer (the unit of work of a sweep's verification trial,
and of ``tests/benchmarks/bench_truth.py``'s ground truth). :func:`candidate_rates`
spreads the candidates around a recommendation.

Example:
    >>> from lrrt_core.verify import verify_workload
    >>> r = verify_workload("digits_cnn", optimizer="adam", batch_size=64, lr=3e-3,
    ...                     epochs=2)                                       # doctest: +SKIP
    >>> r.val_loss, r.metrics                                               # doctest: +SKIP
    (0.21, {'accuracy': 0.94})
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lrrt_core.optimizers import check_optimizer, make_optimizer
from lrrt_core.workloads import get_workload

#: multiples of the recommended rate tried by default (about half a decade either side).
DEFAULT_CANDIDATES = (1 / 3, 1.0, 3.0)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of one fixed-rate training.

    Attributes:
        lr: the constant learning rate trained with.
        val_loss: held-out loss after training (NaN when training diverged).
        metrics: held-out metrics after training (``{"accuracy": 0.94}``; chance level or
            NaN when training diverged).
        train_loss: the training loss of the last epoch (Keras's epoch mean).
        steps: optimizer steps run.
        diverged: the training loss became NaN/inf (training stopped there).
        wall_s: wall time of training and evaluation.
    """

    lr: float
    val_loss: float
    metrics: dict[str, float]
    train_loss: float
    steps: int
    diverged: bool
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def candidate_rates(lr: float, factors: Sequence[float] = DEFAULT_CANDIDATES) -> list[float]:
    """The rates ``lr * f`` for each factor, in the given order (``lr`` must be > 0)."""
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"a recommendation must be a finite rate > 0, got {lr!r}")
    return [float(lr) * float(f) for f in factors]


def train_fixed(
    model: Any,
    x: Any,
    y: Any,
    x_val: Any,
    y_val: Any,
    *,
    lr: float,
    batch_size: int,
    epochs: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    restore: bool = False,
) -> TrainResult:
    """Train a compiled model at the constant rate ``lr``; evaluate on ``(x_val, y_val)``.

    Args:
        model: a compiled Keras model whose optimizer has a float learning rate.
        x, y: training arrays; x_val, y_val: held-out arrays.
        lr: the constant learning rate.
        batch_size: training batch size.
        epochs: whole passes over the data (shuffled each epoch) — or
        steps: optimizer steps (the data cycled, shuffled each pass). Exactly one of the two.
        seed: seeds the shuffling.
        restore: put weights and optimizer state back afterwards, so the same compiled
            model trains again from the same start at another rate (no retracing).

    Returns:
        :class:`TrainResult`. A training whose loss becomes NaN/inf stops there
        (``keras.callbacks.TerminateOnNaN``) and is marked ``diverged``.
    """
    import keras

    from lrrt_core.finder import _ensure_built, _restore, _snapshot

    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs or steps for a verification training")
    if steps is not None:  # exactly `steps` batches: the data cycled in fresh shuffles, one fit epoch
        x, y = _cycled(x, y, int(steps) * int(batch_size), seed)
        epochs = 1
    saved = None
    if restore:
        _ensure_built(model, (x[:batch_size], y[:batch_size], None))
        saved = _snapshot(list(model.variables) + list(model.optimizer.variables))
    t0 = time.perf_counter()
    try:
        model.optimizer.learning_rate = float(lr)
        it0 = int(model.optimizer.iterations.numpy())
        keras.utils.set_random_seed(int(seed))
        hist = model.fit(x, y, batch_size=batch_size, epochs=int(epochs), shuffle=steps is None, verbose=0,
                         callbacks=[keras.callbacks.TerminateOnNaN()])
        train_losses = hist.history.get("loss", [math.nan])
        train_loss = float(train_losses[-1])
        ran = int(model.optimizer.iterations.numpy()) - it0
        diverged = not math.isfinite(train_loss)
        scores = model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)
    finally:
        if saved is not None:
            _restore(saved)
    val_loss = float(scores.pop("loss"))
    if diverged or not math.isfinite(val_loss):
        diverged, val_loss = True, math.nan
    return TrainResult(lr=float(lr), val_loss=val_loss, metrics={k: float(v) for k, v in scores.items()},
                       train_loss=train_loss, steps=ran, diverged=diverged, wall_s=time.perf_counter() - t0)


def _cycled(x: Any, y: Any, n: int, seed: int) -> tuple[Any, Any]:
    """``n`` samples of ``(x, y)``: successive seeded permutations of the data, concatenated."""
    rng = np.random.default_rng(seed)
    reps = -(-n // len(x))
    idx = np.concatenate([rng.permutation(len(x)) for _ in range(reps)])[:n]
    return x[idx], y[idx]


def verify_workload(
    workload: str | Callable[..., Any],
    *,
    optimizer: str,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    batch_size: int,
    lr: float,
    seed: int = 0,
    axes: Mapping[str, Any] | None = None,
    workload_args: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
) -> TrainResult:
    """Build a workload from its seed, compile it with ``optimizer`` at ``lr``, train, evaluate.

    The model is compiled with the workload's ``metrics`` plus its ``eval_metrics`` (e.g.
    accuracy), so ``TrainResult.metrics`` holds the held-out metrics users care about.

    Args: as :func:`lrrt_core.runner.run_workload`, plus ``lr`` and the ``epochs``/``steps``
        budget of :func:`train_fixed`.
    """
    optimizer_kwargs = dict(optimizer_kwargs or {})
    check_optimizer(optimizer, optimizer_kwargs)
    builder = get_workload(workload)
    import keras

    wl = builder(seed=int(seed), **{**dict(workload_args or {}), **dict(axes or {})})
    try:
        metrics = list(wl.metrics) + [m for m in getattr(wl, "eval_metrics", ()) if m not in wl.metrics]
        wl.model.compile(optimizer=make_optimizer(optimizer, float(lr), **optimizer_kwargs), loss=wl.loss,
                         metrics=metrics or None)
        return train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=lr, batch_size=batch_size,
                           epochs=epochs, steps=steps, seed=seed)
    finally:
        del wl
        keras.backend.clear_session()


__all__ = ["DEFAULT_CANDIDATES", "TrainResult", "candidate_rates", "train_fixed", "verify_workload"]
