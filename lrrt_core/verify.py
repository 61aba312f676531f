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
        val_loss: held-out loss after training (NaN when it was not finite).
        metrics: held-out metrics after training (``{"accuracy": 0.94}``), as measured —
            also after a training that diverged, where they mean nothing.
        train_loss: the training loss of the last epoch (Keras's epoch mean).
        steps: optimizer steps run.
        diverged: the training failed by :func:`training_verdict`'s rules: a non-finite loss
            (training stopped there), a loss that blew up, a collapse to chance, or a held-out
            loss no better than the untrained model's. Such a training is the worst candidate under every metric.
        wall_s: wall time of training and evaluation.
        initial_val_loss: the held-out loss of the model before training (NaN: not measured).
        chance_loss: the held-out loss of the best prediction that ignores the input
            (:func:`chance_loss`; NaN for a loss it does not know).
        diverged_reason: why ``diverged`` (``""`` when the training trained).
    """

    lr: float
    val_loss: float
    metrics: dict[str, float]
    train_loss: float
    steps: int
    diverged: bool
    wall_s: float
    initial_val_loss: float = math.nan
    chance_loss: float = math.nan
    diverged_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def candidate_rates(lr: float, factors: Sequence[float] = DEFAULT_CANDIDATES) -> list[float]:
    """The rates ``lr * f`` for each factor, in the given order (``lr`` must be > 0)."""
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"a recommendation must be a finite rate > 0, got {lr!r}")
    return [float(lr) * float(f) for f in factors]


#: a training *blew up* when its last epoch's mean training loss, or its held-out loss, exceeds
#: this multiple of the untrained model's held-out loss (the range test's own ``diverge_threshold`` default, 4).
BLOWUP_FACTOR = 4.0
#: a training *collapsed to chance* when its held-out loss is within this fraction of the loss
#: of the best input-free prediction (:func:`chance_loss`).
CHANCE_MARGIN = 0.01
#: Keras's clipping of predicted probabilities in its cross-entropies.
_EPS = 1e-7
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


def training_verdict(train_losses: Sequence[float], val_loss: float, initial_val_loss: float = math.nan,
                     chance: float = math.nan) -> str:
    """Why a finished fixed-rate training counts as diverged; ``""`` when it trained.

    A short training can fail without a NaN: its loss climbs to a huge finite value, or it
    collapses to predicting the label prior, and still reports a normal-looking accuracy
    (0.34 on digits). Rules, in order:

    * ``"non-finite loss"`` — a training loss (any epoch) or the held-out loss is NaN/inf;
    * ``"loss blew up"`` — the last epoch's training loss or the held-out loss >
      :data:`BLOWUP_FACTOR` x the untrained model's held-out loss (``initial_val_loss``);
    * ``"collapsed to chance"`` — the held-out loss is within :data:`CHANCE_MARGIN` of
      ``chance`` (:func:`chance_loss`: the model predicts the label prior). Two-sided: a
      training that learns slowly from an untrained loss above chance is not caught on its
      way down — unless it ends inside that 1 % band;
    * ``"no better than untrained"`` — the held-out loss is not below the untrained model's.

    A NaN ``initial_val_loss`` / ``chance`` skips the rules that need it.

    Example:
        >>> training_verdict([2.3, 0.4], 0.5, initial_val_loss=2.3, chance=2.3)
        ''
        >>> training_verdict([2.3, 12.0], 1.9, initial_val_loss=2.3)
        'loss blew up'
    """
    losses = [float(v) for v in train_losses]
    if not losses or not all(math.isfinite(v) for v in losses) or not math.isfinite(val_loss):
        return "non-finite loss"
    if math.isfinite(initial_val_loss) and initial_val_loss > 0 \
            and max(losses[-1], val_loss) > BLOWUP_FACTOR * initial_val_loss:
        return "loss blew up"
    if math.isfinite(chance) and abs(val_loss - chance) <= CHANCE_MARGIN * abs(chance):
        return "collapsed to chance"
    if math.isfinite(initial_val_loss) and val_loss >= initial_val_loss:
        return "no better than untrained"
    return ""


def chance_loss(loss: Any, y: Any, y_val: Any) -> float:
    """The held-out loss of the best prediction that ignores the input, learnt from ``y``.

    The class frequencies of ``y`` for the cross-entropies (Keras's 1e-7 clipping), the mean
    of ``y`` for ``mean_squared_error``, the median for ``mean_absolute_error``; NaN for any
    other loss (a custom one: its prediction format is unknown). A training that ends there
    collapsed to predicting the label prior.

    Args:
        loss: what the model was compiled with (a name such as ``"mse"``, a Keras loss
            function or ``keras.losses.Loss``).
        y, y_val: training and held-out targets.
    """
    name = _ALIASES.get(loss, loss) if isinstance(loss, str) else getattr(getattr(loss, "fn", loss), "__name__", "")
    y, y_val = np.asarray(y, dtype=np.float64), np.asarray(y_val, dtype=np.float64)
    if name == "sparse_categorical_crossentropy":
        labels, held = y.astype(int).ravel(), y_val.astype(int).ravel()
        p = np.bincount(labels, minlength=int(max(labels.max(), held.max())) + 1) / labels.size
        return float(-np.mean(np.log(np.clip(p[held], _EPS, 1.0))))
    if name == "categorical_crossentropy":
        p = np.clip(y.reshape(len(y), -1).mean(axis=0), _EPS, 1.0)
        return float(-np.mean(np.sum(y_val.reshape(len(y_val), -1) * np.log(p), axis=1)))
    if name == "binary_crossentropy":
        p = np.clip(y.mean(axis=0), _EPS, 1.0 - _EPS)
        return float(-np.mean(y_val * np.log(p) + (1.0 - y_val) * np.log(1.0 - p)))
    if name == "mean_squared_error":
        return float(np.mean((y_val - y.mean(axis=0)) ** 2))
    if name == "mean_absolute_error":
        return float(np.mean(np.abs(y_val - np.median(y, axis=0))))
    return math.nan


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
        (``keras.callbacks.TerminateOnNaN``); it, and one that blew up or collapsed to chance
        (:func:`training_verdict`, against the untrained model's held-out loss,
        measured first, and :func:`chance_loss`), is marked ``diverged``. The held-out
        metrics are recorded as measured (a diverged one still looks normal: 0.34 accuracy).
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
        initial = float(model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)["loss"])
        model.optimizer.learning_rate = float(lr)
        it0 = int(model.optimizer.iterations.numpy())
        keras.utils.set_random_seed(int(seed))
        hist = model.fit(x, y, batch_size=batch_size, epochs=int(epochs), shuffle=steps is None, verbose=0,
                         callbacks=[keras.callbacks.TerminateOnNaN()])
        train_losses = [float(v) for v in hist.history.get("loss", [math.nan])]
        ran = int(model.optimizer.iterations.numpy()) - it0
        scores = model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)
    finally:
        if saved is not None:
            _restore(saved)
    val_loss, chance = float(scores.pop("loss")), chance_loss(getattr(model, "loss", None), y, y_val)
    reason = training_verdict(train_losses, val_loss, initial, chance)
    return TrainResult(lr=float(lr), val_loss=val_loss if math.isfinite(val_loss) else math.nan,
                       metrics={k: float(v) for k, v in scores.items()}, train_loss=train_losses[-1], steps=ran,
                       diverged=bool(reason), wall_s=time.perf_counter() - t0, initial_val_loss=initial,
                       chance_loss=chance, diverged_reason=reason)


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


__all__ = ["DEFAULT_CANDIDATES", "BLOWUP_FACTOR", "CHANCE_MARGIN", "TrainResult", "candidate_rates",
           "training_verdict", "chance_loss", "train_fixed", "verify_workload"]
