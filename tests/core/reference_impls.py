"""Reference implementations of the peers' LR-finder rules, for tests only (pure numpy).

Each function is a line-for-line numpy translation of the peer's code, kept recognisable so a
reader can diff it against the source; torch calls are replaced by their numpy equivalents
(``tensor`` -> ``np.asarray``, ``torch.isnan`` -> ``np.isnan``, ``torch.lerp`` ->
:func:`torch_lerp`). The training loops are simulated on a given sequence of per-step raw
losses (what the model would produce at each step), keeping the order in which each peer
records a step and decides to stop.

Sources (read verbatim, not from memory):

* fastai, ``fastai/callback/schedule.py`` at commit 0a049e8a90b86d70860f68072698245a1ee787ca
  (fastai 2.x: ``LRFinder``, ``valley``, ``slide``, ``minimum``, ``steep``, ``Learner.lr_find``
  with the NaN cut); ``fastai/learner.py`` (``Recorder.after_batch``: ``self.losses.append(
  self.smooth_loss.value)``; ``AvgSmoothLoss``: ``self.val = torch.lerp(to_detach(
  learn.loss.mean()), self.val, self.beta)``, ``value = self.val / (1 - self.beta**self.count)``).
  Callback order: ``TrainEvalCallback`` (order -10) increments ``train_iter``, then
  ``Recorder`` (50) records, then ``LRFinder`` (``ParamScheduler``, 60) decides to stop.
* surmenok/keras-lr-finder, ``keras_lr_finder/lr_finder.py``: ``on_batch_end`` at commit
  4813b0a64212b0530412b5dc9b089d6116065659 (records lr and loss, then
  ``if batch > 5 and (math.isnan(loss) or loss > self.best_loss * 4): stop``);
  ``get_derivatives`` and ``get_best_lr`` as on master (``np.argmin`` — the commit above
  still has the broken ``np.argmax(...)[0]``, fixed later; the seed article's
  ``get_best_lr(sma=20)`` needs the fixed one).

Not imported by the package; ``tests/core/test_ports.py`` compares ``lrrt_core.suggest`` with it.
"""

from __future__ import annotations

import math

import numpy as np

from lrrt_core.curve import Curve

# --------------------------------------------------------------------------- fastai


def torch_lerp(start, end, weight):
    """``torch.lerp(start, end, weight)`` as torch computes it (ATen ``lerp``, CPU and CUDA)."""
    diff = end - start
    return start + weight * diff if abs(weight) < 0.5 else end - diff * (1 - weight)


def fastai_lr_find_record(raw_losses, lrs, num_it, beta=0.98, stop_div=True):
    """``Learner.lr_find``'s fit loop with ``LRFinder(num_it=num_it, stop_div=stop_div)``.

    Returns ``(recorder.lrs, recorder.losses)``: the smoothed loss of each step run. ``lrs[i]``
    is the rate of step ``i`` (fastai's own schedule is ``SchedExp`` at ``train_iter/num_it``;
    the rule under test does not depend on it, so both sides get the same rates).
    """
    recorder_lrs, recorder_losses = [], []
    count, val = 0, 0.0  # AvgSmoothLoss.reset: self.count,self.val = 0,tensor(0.)
    best_loss = float("inf")  # LRFinder.before_fit
    train_iter = 0
    for lr, loss in zip(lrs, raw_losses):
        # AvgSmoothLoss.accumulate
        count += 1
        val = torch_lerp(loss, val, beta)
        smooth_loss = val / (1 - beta**count)
        # TrainEvalCallback.after_batch (order -10)
        train_iter += 1
        # Recorder.after_batch (order 50)
        recorder_lrs.append(lr)
        recorder_losses.append(smooth_loss)
        # LRFinder.after_batch (order 60)
        if smooth_loss < best_loss:
            best_loss = smooth_loss
        if smooth_loss > 4 * best_loss and stop_div:
            break  # raise CancelFitException()
        if train_iter >= num_it:
            break  # raise CancelFitException()
    return recorder_lrs, recorder_losses


def fastai_lr_find(recorder_lrs, recorder_losses, num_it, suggest_func):
    """The suggestion part of ``Learner.lr_find``: window, NaN cut, ``func(lrs, losses, num_it)``."""
    lrs, losses = np.asarray(recorder_lrs[num_it // 10 : -5]), np.asarray(recorder_losses[num_it // 10 : -5])
    nan_idxs = np.nonzero(np.isnan(losses.reshape(-1)))[0]
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs = lrs[:drop_idx]
        losses = losses[:drop_idx]
    return suggest_func(lrs, losses, num_it)


def fastai_valley(lrs, losses, num_it):
    "Suggests a learning rate from the longest valley and returns its index"
    n = len(losses)
    max_start, max_end = 0, 0

    # find the longest valley
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]

    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)

    return float(lrs[idx]), (float(lrs[idx]), losses[idx])


def fastai_minimum(lrs, losses, num_it):
    "Suggests a learning rate one-tenth the minumum before divergance and returns its index"
    lr_min = lrs[losses.argmin()].item()
    loss_idx = losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr_min))]
    return lr_min / 10, (lr_min, loss_idx)


def fastai_steep(lrs, losses, num_it):
    "Suggests a learning rate when the slope is the steepest and returns its index"
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    lr_steep = lrs[grads.argmin()].item()
    loss_idx = losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr_steep))]
    return lr_steep, (lr_steep, loss_idx)


# --------------------------------------------------------------------------- keras-lr-finder


class KerasLRFinder:
    """keras-lr-finder's ``LRFinder`` record and rule, on given per-step losses (one epoch)."""

    def __init__(self):
        self.losses = []
        self.lrs = []
        self.best_loss = 1e9

    def on_batch_end(self, batch, lr, loss):
        """Returns True when the callback sets ``model.stop_training``."""
        # Log the learning rate
        self.lrs.append(lr)

        # Log the loss
        self.losses.append(loss)

        # Check whether the loss got too large or NaN
        if batch > 5 and (math.isnan(loss) or loss > self.best_loss * 4):
            return True  # self.model.stop_training = True

        if loss < self.best_loss:
            self.best_loss = loss
        return False

    def find(self, raw_losses, lrs):
        for batch, (lr, loss) in enumerate(zip(lrs, raw_losses)):
            if self.on_batch_end(batch, lr, loss):
                break
        return self

    def get_derivatives(self, sma):
        assert sma >= 1
        derivatives = [0] * sma
        for i in range(sma, len(self.lrs)):
            derivatives.append((self.losses[i] - self.losses[i - sma]) / sma)
        return derivatives

    def get_best_lr(self, sma, n_skip_beginning=10, n_skip_end=5):
        derivatives = self.get_derivatives(sma)
        best_der_idx = np.argmin(derivatives[n_skip_beginning:-n_skip_end])
        return self.lrs[n_skip_beginning:-n_skip_end][best_der_idx]


# --------------------------------------------------------------------------- lrrt's own record


def lrrt_record(raw_losses, lrs, smoothing=0.98, diverge_threshold=4.0):
    """The Curve ``lrrt_core.finder.range_test`` records for these per-step losses.

    Mirrors range_test's loop: a non-finite loss stops the test and is not stored (its text
    goes to ``nonfinite_loss``); the step that trips the smoothed-loss rule is stored, then
    the test stops.
    """
    beta, thr = float(smoothing), diverge_threshold
    losses = []
    stop_reason, diverged_lr, nonfinite_loss = "completed", None, None
    avg, beta_pow, best = 0.0, 1.0, math.inf
    for lr, value in zip(lrs, raw_losses):
        value = float(value)
        if not math.isfinite(value):
            stop_reason, diverged_lr, nonfinite_loss = "nonfinite", lr, str(value)
            break
        losses.append(value)
        avg = beta * avg + (1.0 - beta) * value
        beta_pow *= beta
        smoothed = avg / (1.0 - beta_pow)
        if thr is not None and 0.0 < best < math.inf and smoothed > thr * best:
            stop_reason, diverged_lr = "diverged", lr
            break
        if smoothed < best:
            best = smoothed
    n = len(losses)
    return Curve(
        lrs=np.asarray(lrs, dtype=np.float64)[:n],
        losses=np.asarray(losses, dtype=np.float64),
        stop_reason=stop_reason,
        diverged_lr=diverged_lr,
        steps_planned=len(lrs),
        params={"smoothing": beta, "diverge_threshold": thr, "steps": len(lrs)},
        nonfinite_loss=nonfinite_loss,
    )
