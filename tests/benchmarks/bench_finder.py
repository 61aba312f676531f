"""Benchmark: the range-test loop against the article's fit+callback approach and a bare loop.

On the ``digits_cnn`` workload, for batch sizes 32 and 256, ``--steps`` steps (300) with no
divergence stop, time:

* ``finder``  -- :func:`lrrt_core.finder.range_test` (ladder, exact loss, EMA, snapshot
  and restore of weights and optimizer state included) on a model compiled with a float
  learning rate (the Python API's usual case), as it runs by default: 16 steps per compiled
  call (:mod:`lrrt_core.execution`), the rate of each step fed in the graph;
* ``finder_sched`` -- the same with the optimizer compiled with the matching
  :class:`lrrt_core.keras_ladder.LadderSchedule` (how ``run_workload``, i.e. ``lrrt
  find`` and every sweep trial, runs);
* ``finder_k1`` -- ``steps_per_call=1``: one ``train_on_batch`` per step (the finder
  before fused execution; the path the torch backend takes);
* ``fit_cb``  -- the seed article's approach (keras-lr-finder) ported to Keras 3:
  ``model.fit`` with a callback that sets the learning rate before each batch and records
  ``logs["loss"]`` after it (which is the running mean -- wrong, but that is the approach);
* ``bare_tob`` -- the floor with the same Keras step: ``train_on_batch`` in a loop, no
  learning-rate changes, nothing recorded;
* ``bare_tf``  -- a hand-written ``tf.function`` train step (GradientTape + optimizer.apply),
  no recording: the TensorFlow-only floor (with ``KERAS_BACKEND=jax``: Keras's stateless
  train step under ``jax.jit``, called step after step, one host read at the end).

Each is warmed up once (tracing), then run ``--repeats`` times, interleaved; the median
wall time is reported, with the ratios finder/bare and finder/fit -- as ratios of the
medians and, the figure to quote, as the median of the per-repeat (paired) ratios, which
cancels the slow drifts in speed this shared machine shows.

Run::

    python tests/benchmarks/bench_finder.py [--steps 300] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

START_LR, END_LR = 1e-6, 1e-2  # Adam stays finite over the whole ladder: every method runs all steps


def _model(seed: int = 0):
    from lrrt_core.optimizers import make_optimizer
    from lrrt_core.workloads import get_workload

    wl = get_workload("digits_cnn")(seed=seed)
    wl.model.compile(optimizer=make_optimizer("adam", START_LR), loss=wl.loss)
    return wl


def _batches(x, y, bs):
    n = len(x) // bs
    return [(x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]) for i in range(n)]


def _bare_compiled(bs: int, steps: int):
    """The floor of a hand-written compiled step on this backend, nothing recorded: a
    ``tf.function`` (GradientTape + optimizer.apply) on TensorFlow; on JAX the stateless
    Keras step under ``jax.jit`` called step after step (one host read at the end)."""
    import keras

    wl_d = _model()
    model_d, opt_d = wl_d.model, wl_d.model.optimizer
    batches_d = _batches(wl_d.x, wl_d.y, bs)
    nb = len(batches_d)
    if keras.backend.backend() == "jax":
        import jax

        model_d.train_on_batch(*batches_d[0])  # builds the metrics and optimizer state
        step = jax.jit(model_d.train_step)

        def bare_jax():
            state = tuple([v.value for v in vs] for vs in (model_d.trainable_variables, model_d.non_trainable_variables,
                                                            opt_d.variables, model_d.metrics_variables))
            for i in range(steps):
                logs, state = step(state, batches_d[i % nb])
            jax.block_until_ready(logs)

        return bare_jax
    import tensorflow as tf

    loss_fn = keras.losses.get(wl_d.loss)

    @tf.function
    def tf_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(yb, model_d(xb, training=True)))
            if model_d.losses:
                loss += tf.add_n(model_d.losses)
        grads = tape.gradient(loss, model_d.trainable_variables)
        opt_d.apply(grads, model_d.trainable_variables)
        return loss

    def bare_tf():
        for i in range(steps):
            xb, yb = batches_d[i % nb]
            tf_step(xb, yb)

    return bare_tf


def make_runners(bs: int, steps: int):
    """Return ``{name: run()}``; each ``run`` does ``steps`` training steps on its own model."""
    import keras

    from lrrt_core.finder import range_test
    from lrrt_core.ladders import ladder

    lrs = ladder("exp", START_LR, END_LR, steps)

    wl_a = _model()

    def finder():
        c = range_test(wl_a.model, wl_a.x, wl_a.y, start_lr=START_LR, end_lr=END_LR, steps=steps,
                       batch_size=bs, diverge_threshold=None)
        assert c.steps_run == steps, c.stop_reason

    wl_s = _model()
    from lrrt_core.keras_ladder import ladder_schedule

    wl_s.model.optimizer.learning_rate = ladder_schedule("exp", START_LR, END_LR, steps)

    def finder_sched():
        c = range_test(wl_s.model, wl_s.x, wl_s.y, start_lr=START_LR, end_lr=END_LR, steps=steps,
                       batch_size=bs, diverge_threshold=None)
        assert c.steps_run == steps, c.stop_reason

    wl_k = _model()

    def finder_k1():
        c = range_test(wl_k.model, wl_k.x, wl_k.y, start_lr=START_LR, end_lr=END_LR, steps=steps,
                       batch_size=bs, diverge_threshold=None, steps_per_call=1)
        assert c.steps_run == steps, c.stop_reason

    wl_b = _model()

    class ArticleCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.lrs, self.losses, self.step = [], [], 0

        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(lrs[min(self.step, steps - 1)])

        def on_train_batch_end(self, batch, logs=None):
            self.lrs.append(lrs[min(self.step, steps - 1)])
            self.losses.append(logs["loss"])
            self.step += 1
            if self.step >= steps:
                self.model.stop_training = True

    per_epoch = math.ceil(len(wl_b.x) / bs)

    def fit_cb():
        cb = ArticleCallback()
        wl_b.model.fit(wl_b.x, wl_b.y, batch_size=bs, epochs=math.ceil(steps / per_epoch), callbacks=[cb],
                       verbose=0)
        assert cb.step == steps, cb.step

    wl_c = _model()
    batches_c = _batches(wl_c.x, wl_c.y, bs)

    def bare_tob():
        tob = wl_c.model.train_on_batch
        nb = len(batches_c)
        for i in range(steps):
            xb, yb = batches_c[i % nb]
            tob(xb, yb)

    bare_tf = _bare_compiled(bs, steps)
    return {"finder": finder, "finder_sched": finder_sched, "finder_k1": finder_k1, "fit_cb": fit_cb,
            "bare_tob": bare_tob, "bare_tf": bare_tf}


def bench(batch_sizes=(32, 256), steps: int = 300, repeats: int = 5) -> list[dict]:
    rows = []
    for bs in batch_sizes:
        runners = make_runners(bs, steps)
        for run in runners.values():  # warm-up: trace the train functions once
            run()
        times = {name: [] for name in runners}
        for _ in range(repeats):
            for name, run in runners.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        best = {name: min(ts) for name, ts in times.items()}
        # Paired: each repeat runs every method back to back, so the ratio within a repeat
        # cancels slow drifts of the machine's speed; the median of those ratios is the figure.
        paired = {f"paired {a}/{b}": statistics.median(x / y for x, y in zip(times[a], times[b]))
                  for a in ("finder", "finder_sched", "finder_k1") for b in ("bare_tob", "bare_tf", "fit_cb")}
        rows.append(
            {
                "batch_size": bs,
                "steps": steps,
                "repeats": repeats,
                **{f"{k}_s": v for k, v in med.items()},
                "finder/bare_tob": med["finder"] / med["bare_tob"],
                "finder/bare_tf": med["finder"] / med["bare_tf"],
                "finder/fit_cb": med["finder"] / med["fit_cb"],
                **{f"{k}_min_s": v for k, v in best.items()},
                "min finder/bare_tob": best["finder"] / best["bare_tob"],
                "min finder/fit_cb": best["finder"] / best["fit_cb"],
                **paired,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| batch | steps | finder s | fit+callback s | bare train_on_batch s | bare tf.function s "
        "| finder/bare_tob | finder/bare_tf | finder/fit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['steps']} | {r['finder_s']:.3f} | {r['fit_cb_s']:.3f} | {r['bare_tob_s']:.3f} "
            f"| {r['bare_tf_s']:.3f} | {r['finder/bare_tob']:.3f} | {r['finder/bare_tf']:.3f} "
            f"| {r['finder/fit_cb']:.3f} |"
        )
    lines.append("")
    lines.append("median of the per-repeat ratios (paired; the figure to quote):")
    lines.append("")
    lines.append("| batch | finder | / bare_tob | / bare_tf | / fit |")
    lines.append("|---:|---|---:|---:|---:|")
    for r in rows:
        for f, label in (("finder", "fused, float rate fed per step"), ("finder_sched", "fused, LadderSchedule (run_workload)"),
                         ("finder_k1", "one step per call (steps_per_call=1)")):
            lines.append(f"| {r['batch_size']} | {label} | {r[f'paired {f}/bare_tob']:.3f} | "
                         f"{r[f'paired {f}/bare_tf']:.3f} | {r[f'paired {f}/fit_cb']:.3f} |")
    lines.append("")
    lines.append("best of the repeats (less sensitive to other load on the machine):")
    lines.append("")
    lines.append("| batch | finder s | fit+callback s | bare train_on_batch s | bare tf.function s | finder/bare_tob | finder/fit |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['finder_min_s']:.3f} | {r['fit_cb_min_s']:.3f} | {r['bare_tob_min_s']:.3f} "
            f"| {r['bare_tf_min_s']:.3f} | {r['min finder/bare_tob']:.3f} | {r['min finder/fit_cb']:.3f} |"
        )
    return "\n".join(lines)


def trial_costs(trials: int = 4, steps: int = 120, batch_size: int = 64) -> dict:
    """Wall time of consecutive ``run_workload`` calls (a sweep worker's trials: a fresh model
    per seed), each compiling its own step (``share_compiled=False``) or reusing the first
    one's (the default). TensorFlow is imported before either series."""
    from lrrt_core import execution
    from lrrt_core.runner import run_workload

    kw = dict(optimizer="adam", batch_size=batch_size, start_lr=START_LR, end_lr=END_LR, steps=steps,
              diverge_threshold=None)
    run_workload("digits_cnn", seed=99, steps_per_call=1, **kw)  # imports, data set cache
    gc.freeze()  # as a sweep worker does (sweeps.trainable): clear_session's collection stays cheap
    out = {}
    for share in (False, True):
        execution._BY_ARCHITECTURE.clear()
        times = []
        for seed in range(trials):
            t0 = time.perf_counter()
            run_workload("digits_cnn", seed=seed, share_compiled=share, **kw)
            times.append(time.perf_counter() - t0)
        out["shared" if share else "fresh"] = times
    return out


def chunk_sizes(ks=(1, 4, 8, 16, 32, 64), batch_size: int = 32, steps: int = 200, repeats: int = 5) -> list[dict]:
    """A range test that diverges (digits ConvNet, Adam, 1e-6 -> 1e3, the stop rule on) at
    ``k`` steps per compiled call: wall time relative to ``k = 1`` (paired, median over
    interleaved repeats), the steps kept, and the steps computed and dropped (those after
    the stop in its chunk)."""
    import math as _math

    from lrrt_core.finder import range_test

    wls = {k: _model() for k in ks}

    def run(k):
        wl = wls[k]
        return range_test(wl.model, wl.x, wl.y, start_lr=1e-6, end_lr=1e3, steps=steps, batch_size=batch_size,
                          steps_per_call=k)

    curves = {k: run(k) for k in ks}  # warm-up (tracing)
    times = {k: [] for k in ks}
    for _ in range(repeats):
        for k in ks:
            t0 = time.perf_counter()
            run(k)
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k in ks:
        kept = curves[k].steps_run
        computed = min(_math.ceil(kept / k) * k, _math.ceil(steps / k) * k) if curves[k].stop_reason != "completed" else _math.ceil(steps / k) * k
        rows.append({"k": k, "steps_kept": kept, "steps_dropped": computed - kept,
                     "median_s": statistics.median(times[k]),
                     "vs_k1": statistics.median(a / b for a, b in zip(times[k], times[ks[0]]))})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    rows = bench(tuple(args.batch_sizes), args.steps, args.repeats)
    print(table(rows))
    print("\nsteps per compiled call, a test that diverges (200 planned steps, batch 32):\n")
    print("| k | steps kept | steps dropped | median s | time / k=1 (paired) |\n|---:|---:|---:|---:|---:|")
    for r in chunk_sizes(repeats=max(3, args.repeats // 2)):
        print(f"| {r['k']} | {r['steps_kept']} | {r['steps_dropped']} | {r['median_s']:.3f} | {r['vs_k1']:.3f} |")
    costs = trial_costs()
    print("\ncost per trial (run_workload, digits_cnn, 120 steps, batch 64), first and later trials:\n")
    print("| compiled step | first s | later s (median) |\n|---|---:|---:|")
    for name, ts in costs.items():
        print(f"| {name} | {ts[0]:.2f} | {statistics.median(ts[1:]):.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
