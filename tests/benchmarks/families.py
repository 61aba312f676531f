"""Model families of the truth benchmark: workloads that differ in kind, on data made here.

Each builder is an lrrt workload (``builder(seed=0, **axes) -> Workload``): an uncompiled
Keras model and seeded data that needs no download. The families differ in what moves the
best learning rate: convolutions, normalisation and dropout, a regression loss on unscaled
targets, embeddings, residual connections with LayerNorm.

``FAMILIES`` maps a family name to ``(workload reference, held-out score)``: the score is
the key of ``TrainResult.metrics`` that the truth maximises (``accuracy``, or ``r2`` for the
regression). Run one by name like any user workload::

    lrrt find --workload tests.benchmarks.families:residual_ln --optimizer sgd --batch-size 32
"""

from __future__ import annotations

import numpy as np

from lrrt_core.workloads import Workload, _split

FAMILIES: dict[str, tuple[str, str]] = {
    "digits_cnn": ("digits_cnn", "accuracy"),
    "mlp_bn": ("tests.benchmarks.families:mlp_bn", "accuracy"),
    "regression": ("tests.benchmarks.families:regression", "r2"),
    "sequence": ("tests.benchmarks.families:sequence", "accuracy"),
    "residual_ln": ("tests.benchmarks.families:residual_ln", "accuracy"),
}


def _classifier(model, x, y, seed: int, val_fraction: float = 0.2) -> Workload:
    x, y, x_val, y_val = _split(x, y.astype(np.int32), val_fraction, seed)
    return Workload(model=model, loss="sparse_categorical_crossentropy", x=x, y=y, x_val=x_val, y_val=y_val,
                    eval_metrics=("accuracy",))


def mlp_bn(seed: int = 0, width: int = 128, dropout: float = 0.2) -> Workload:
    """An MLP with BatchNorm and Dropout on scikit-learn's 8x8 digits (flattened)."""
    import keras
    from sklearn.datasets import load_digits

    d = load_digits()
    keras.utils.set_random_seed(int(seed))
    layers = [keras.Input((64,))]
    for w in (width, width // 2):
        layers += [keras.layers.Dense(w), keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
                   keras.layers.Dropout(dropout)]
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    return _classifier(model, (d.data / 16.0).astype(np.float32), d.target, seed)


def regression(seed: int = 0, width: int = 64) -> Workload:
    """An MLP regression with MSE on Friedman's #1 problem (targets left in their own units, mean ~14)."""
    import keras
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=1234)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = y.astype(np.float32)[:, None]
    keras.utils.set_random_seed(int(seed))
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(width, activation="relu"), keras.layers.Dense(1)])
    idx = np.random.default_rng(seed).permutation(len(x))
    tr, va = idx[:1600], idx[1600:]
    return Workload(model=model, loss="mse", x=x[tr], y=y[tr], x_val=x[va], y_val=y[va],
                    eval_metrics=(keras.metrics.R2Score(name="r2"),))


def _sequences(n: int, length: int, vocab: int, classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences whose class is the group (of 4 tokens) that occurs most often."""
    groups = rng.permutation(np.arange(1, vocab))[: classes * 4].reshape(classes, 4)
    labels = rng.integers(0, classes, n)
    tokens = rng.integers(1, vocab, (n, length))
    for i, c in enumerate(labels):  # plant 3-6 extra tokens of the class's group
        pos = rng.choice(length, rng.integers(3, 7), replace=False)
        tokens[i, pos] = rng.choice(groups[c], pos.size)
    counts = np.stack([np.isin(tokens, g).sum(1) for g in groups], 1)
    return tokens.astype(np.int32), np.argmax(counts + 1e-3 * rng.random(counts.shape), 1)


def sequence(seed: int = 0, dim: int = 16, filters: int = 32) -> Workload:
    """Embedding -> Conv1D -> global average pooling -> softmax on synthetic token sequences."""
    import keras

    x, y = _sequences(2000, 40, 64, 4, np.random.default_rng(99))
    keras.utils.set_random_seed(int(seed))
    model = keras.Sequential([keras.Input((40,), dtype="int32"), keras.layers.Embedding(64, dim),
                              keras.layers.Conv1D(filters, 5, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(4, activation="softmax")])
    return _classifier(model, x, y, seed)


def residual_ln(seed: int = 0, width: int = 64, blocks: int = 3) -> Workload:
    """A residual MLP (pre-LayerNorm blocks) on a 6-class synthetic classification set."""
    import keras
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2400, n_features=20, n_informative=12, n_redundant=4, n_classes=6,
                               n_clusters_per_class=2, class_sep=1.2, random_state=7)
    keras.utils.set_random_seed(int(seed))
    inp = keras.Input((20,))
    h = keras.layers.Dense(width)(inp)
    for _ in range(blocks):
        r = keras.layers.LayerNormalization()(h)
        r = keras.layers.Dense(width, activation="relu")(r)
        h = keras.layers.Add()([h, keras.layers.Dense(width)(r)])
    out = keras.layers.Dense(6, activation="softmax")(keras.layers.LayerNormalization()(h))
    return _classifier(keras.Model(inp, out), x.astype(np.float32), y, seed)
