"""keras-lr-finder's ``LRFinder`` interface on lrrt's range test.

Same methods and parameter names as surmenok/keras_lr_finder, so code written for that
package (such as the seed article's) runs with ``from lrrt_core import LRFinder``; each
``find`` is one :func:`lrrt_core.finder.range_test` (exact per-batch losses, the model and
optimizer restored afterwards, several steps per compiled call).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lrrt_core.curve import Curve
from lrrt_core.finder import range_test

log = logging.getLogger(__name__)


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


__all__ = ["LRFinder"]
