"""The keras-lr-finder drop-in used as the seed article uses keras-lr-finder: in a notebook and a script.

The article's code with its one import changed (``from lrrt_core import LRFinder``), on the
bundled 8x8 digits instead of MNIST (no download; ``padding="same"`` so the ConvNet fits
8x8 images) and 3 epochs. In a real Jupyter kernel with ``%matplotlib inline`` both plotting
cells must show an image (keras-lr-finder draws with pyplot and calls ``plt.show()``); run
as a script on Agg, ``plt.savefig`` after each plot must save the drawn figure, not a blank one.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.notebooks import errors, execute, kernel_env, mime

pytestmark = pytest.mark.tf

ARTICLE = [
    """\
import matplotlib.pyplot as plt
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Dense, Flatten, Conv2D, MaxPooling2D
from tensorflow.keras.losses import sparse_categorical_crossentropy
from tensorflow.keras.optimizers import SGD
from sklearn.datasets import load_digits
from lrrt_core import LRFinder  # the article: from keras_lr_finder import LRFinder

start_lr = 1e-4
end_lr = 1e0
no_epochs = 3
batch_size = 64
moving_average = 20
no_classes = 10
loss_function = sparse_categorical_crossentropy

digits = load_digits()
input_train = (digits.images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
target_train = digits.target
""",
    """\
model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), activation="relu", padding="same", input_shape=(8, 8, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(256, activation="relu"))
model.add(Dense(no_classes, activation="softmax"))
model.compile(loss=loss_function, optimizer=SGD(), metrics=["accuracy"])
lr_finder = LRFinder(model)
outputs = lr_finder.find(input_train, target_train, start_lr=start_lr, end_lr=end_lr,
                         batch_size=batch_size, epochs=no_epochs)
""",
    "lr_finder.plot_loss(n_skip_beginning=20, n_skip_end=5)",
    "lr_finder.plot_loss_change(sma=moving_average, n_skip_beginning=20, n_skip_end=5, y_lim=(-0.01, 0.01))",
]


def test_article_in_a_notebook_kernel_shows_both_plots(tmp_path):
    nb = execute(["%matplotlib inline", *ARTICLE], tmp_path)
    assert not errors(nb)
    for cell in nb.cells[3:5]:
        assert mime(cell, "image/png"), f"no image for {cell.source!r}: {cell.outputs}"
        assert not any("<Axes" in text for text in mime(cell, "text/plain")), cell.outputs


def _drawn(png_path) -> float:
    """Share of pixels that are not white: 0 for a blank page."""
    from matplotlib.image import imread

    rgb = imread(png_path)[..., :3]
    return float(np.mean(np.any(rgb < 0.95, axis=-1)))


def test_article_as_a_script_saves_the_drawn_figures(tmp_path):
    script = "\n".join([ARTICLE[0], ARTICLE[1],
                        ARTICLE[2], 'plt.savefig("loss.png")', "plt.close()",
                        ARTICLE[3], 'plt.savefig("loss_change.png")'])
    env = dict(kernel_env(), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("loss.png", "loss_change.png"):
        assert _drawn(tmp_path / name) > 0.02, f"{name} is blank"
