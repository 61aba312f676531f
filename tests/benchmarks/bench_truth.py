"""Ground truth for the suggestions, over several model families: do the recommended rates train well?

For every family of :data:`tests.benchmarks.families.FAMILIES` (a ConvNet, an MLP with
BatchNorm/Dropout, an MSE regression, an embedding + 1-D conv sequence model, a residual
LayerNorm MLP) and every configuration (optimizer x batch size) and seed, this benchmark

1. runs the range tests exactly as a sweep runs them (:func:`lrrt_core.runner.run_workload`,
   RangeTest's defaults: 1e-6 -> 10), with a sample budget (``--samples``, every batch
   size sees the same data) and with the sweep's default fixed step count (``--steps``);
2. trains every configuration for ``--epochs`` epochs at each rate of a log grid of fixed
   rates (:func:`lrrt_core.verify.train_fixed`, real ``model.fit``) and scores the held-out
   data (accuracy, or R^2 for the regression): the ground truth. Per configuration the *best*
   rate maximises the score averaged over seeds; the *good range* is the span of grid rates
   within ``--tolerance`` of that best score, widened by half a grid step;
3. scores suggestion *rules* — every method of :data:`lrrt_core.suggest.METHODS`, and the
   family "the rate at the minimum of the centred smoothed loss divided by d", with its own
   divisor for plain SGD — by |log10(suggested / best)| and whether the rate lies in the good
   range; the accuracy (R^2) at a rate is read off the truth curve (interpolated in log rate);
4. chooses the rule **leave-one-family-out**: for each family, the rule with the smallest
   worst-family median error on the *other* families (ties: more configurations in range)
   is judged on the held-out family — the figures README reports. The rule chosen on all
   families is the one lrrt ships (:data:`lrrt_core.suggest.DEFAULT_METHOD`);
5. runs the verification stage as a sweep does (short trainings, ``--verify-epochs``, at
   1/3, 1, 3 x each fold's chosen rule's rate; best mean held-out score over seeds, as
   ``verify.metric: auto`` picks, a training that blew up the worst) and scores the verified
   rates the same way; with ``--history`` every training records its held-out figures after
   each epoch, and verification settings (horizon, metric, extension) are compared per
   family from the same trainings (``_horizon_study``);
6. per family, the Spearman correlation of the report's ranking (mean minimum smoothed loss)
   with the truth's ranking (best score), beside the truth's own seed-to-seed Spearman.

Everything trained is cached in ``--cache`` (JSON; one entry per family, configuration and
seed, written after each), so a re-analysis re-runs in seconds and an interrupted run goes on
where it stopped. ``--jobs N`` trains in N processes (one CPU each). Run::

    python tests/benchmarks/bench_truth.py --cache runs/bench_truth.json --jobs 2 [--json out.json]

About 3-6 minutes per family on this 2-core machine with ``--jobs 2`` (TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.families import FAMILIES  # noqa: E402

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
BATCH_SIZES = (32, 128)
SEEDS = (0, 1, 2)
#: the range-test settings measured (``lrrt_core.settings.RangeTest``'s defaults, pinned by
#: tests/sweeps/test_range_test_settings.py).
RANGE = dict(start_lr=1e-6, end_lr=10.0, ladder="exp", loss="train", diverge_threshold=4.0, smoothing=0.98)
#: candidate divisors of the rate at the centred minimum.
DIVISORS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)
#: optimizers whose rate is a plain gradient step (no momentum, no adaptive scaling).
PLAIN_SGD = ("sgd",)
#: the floor of a held-out score (a diverged training scores this, never NaN).
SCORE_FLOOR = {"accuracy": 0.0, "r2": -1.0}


def rate_grid(lo: float = -5.0, hi: float = 0.5, step: float = 0.25) -> list[float]:
    return [float(10 ** e) for e in np.arange(lo, hi + 1e-9, step)]


def ckey(opt: str, bs: int) -> str:
    return f"{opt}-bs{bs}"


def ukey(family: str, opt: str, bs: int, seed: int) -> str:
    return f"{family}|{ckey(opt, bs)}-s{seed}"


def tkey(lr: float, epochs: int) -> str:
    return f"{lr:.9g}:{epochs}"


# --------------------------------------------------------------------------- measuring (worker processes)


def _init_worker(backend: str) -> None:
    """One CPU per process, GPUs hidden, Keras on ``backend`` (before Keras is imported)."""
    os.environ.update(KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                      JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1",
                      XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        torch.set_num_threads(1)


def _train_all(workload: str, score: str, opt: str, bs: int, seed: int, trainings,
               history: bool = False) -> dict[str, dict]:
    """Train one compiled model from the same start at every ``(lr, epochs)``."""
    import keras

    from lrrt_core.optimizers import make_optimizer
    from lrrt_core.verify import train_fixed
    from lrrt_core.workloads import get_workload

    wl = get_workload(workload)(seed=seed)
    wl.model.compile(optimizer=make_optimizer(opt, 1e-3), loss=wl.loss, metrics=list(wl.eval_metrics))
    out = {}
    for lr, epochs in trainings:
        if history:
            out[tkey(lr, epochs)] = _train_history(wl, score, lr, bs, epochs, seed)
            continue
        r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=lr, batch_size=bs, epochs=epochs,
                        seed=seed, restore=True)
        s = r.metrics.get(score, math.nan)
        out[tkey(lr, epochs)] = {"lr": lr, "epochs": epochs, "val_loss": r.val_loss, "score": s,
                                 "diverged": bool(r.diverged or not math.isfinite(s))}
    keras.backend.clear_session()
    return out


def _train_history(wl, score: str, lr: float, bs: int, epochs: int, seed: int) -> dict:
    """``train_fixed`` with the held-out loss and score after every epoch (constant rate, so
    epoch ``e`` of this training is an ``e``-epoch training); the verdict per epoch by
    :func:`lrrt_core.verify.training_verdict`. The final epoch's figures as the plain record."""
    import keras

    from lrrt_core.finder import _ensure_built, _restore, _snapshot
    from lrrt_core.verify import chance_loss, training_verdict

    model = wl.model
    _ensure_built(model, (wl.x[:bs], wl.y[:bs], None))
    saved = _snapshot(list(model.variables) + list(model.optimizer.variables))
    try:
        initial = float(model.evaluate(wl.x_val, wl.y_val, batch_size=1024, verbose=0, return_dict=True)["loss"])
        model.optimizer.learning_rate = float(lr)
        keras.utils.set_random_seed(int(seed))
        h = model.fit(wl.x, wl.y, batch_size=bs, epochs=int(epochs), shuffle=True, verbose=0,
                      validation_data=(wl.x_val, wl.y_val), validation_batch_size=1024,
                      callbacks=[keras.callbacks.TerminateOnNaN()]).history
    finally:
        _restore(saved)
    chance = chance_loss(getattr(model, "loss", None), wl.y, wl.y_val)
    train, vloss, vscore = h.get("loss", []), h.get("val_loss", []), h.get(f"val_{score}", [])
    hist = {"val_loss": [], "score": [], "diverged": []}
    for e in range(int(epochs)):  # an epoch TerminateOnNaN cut off: non-finite, diverged
        tl = [float(v) for v in train[:e + 1]] if e < len(train) else [math.nan]
        vl = float(vloss[e]) if e < len(vloss) else math.nan
        sc = float(vscore[e]) if e < len(vscore) else math.nan
        bad = bool(training_verdict(tl, vl, initial, chance)) or not math.isfinite(sc)
        hist["val_loss"].append(vl if math.isfinite(vl) else math.nan)
        hist["score"].append(sc)
        hist["diverged"].append(bad)
    return {"lr": lr, "epochs": epochs, "val_loss": hist["val_loss"][-1], "score": hist["score"][-1],
            "diverged": hist["diverged"][-1], "history": hist}


def measure(unit: dict) -> tuple[str, dict]:
    """A worker's job: the missing range tests and trainings of one (family, configuration, seed)."""
    from lrrt_core.runner import run_workload

    t0 = time.perf_counter()
    curves = {}
    for name, steps in unit["range_tests"]:
        curves[name] = run_workload(unit["workload"], optimizer=unit["opt"], batch_size=unit["bs"],
                                    seed=unit["seed"], steps=steps, **RANGE).to_dict()
    train = _train_all(unit["workload"], unit["score"], unit["opt"], unit["bs"], unit["seed"], unit["train"],
                       unit.get("history", False)) if unit["train"] else {}
    return unit["key"], {"curves": curves, "train": train, "wall_s": time.perf_counter() - t0}


class Cache:
    """``{unit key: {"curves": {budget: curve dict}, "train": {"lr:epochs": result}}}`` in one JSON file."""

    def __init__(self, path: str | None, backend: str) -> None:
        self.path = Path(path) if path else None
        data = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}
        if data and data.get("backend", backend) != backend:
            raise SystemExit(f"{path} holds {data['backend']} results; use another --cache for {backend}")
        self.backend = backend
        self.units: dict[str, dict] = data.get("units", {})

    def unit(self, k: str) -> dict:
        return self.units.setdefault(k, {"curves": {}, "train": {}})

    def merge(self, k: str, result: dict) -> None:
        u = self.unit(k)
        u["curves"].update(result["curves"])
        u["train"].update(result["train"])
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        from lrrt_core.atomic import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"backend": self.backend, "units": self.units}))


def run_units(cache: Cache, units: list[dict], jobs: int, backend: str) -> None:
    """Measure ``units`` (skipping empty ones) in ``jobs`` processes, merging each into the cache."""
    units = [u for u in units if u["range_tests"] or u["train"]]
    if not units:
        return
    print(f"measuring {len(units)} units in {jobs} process(es) on {backend}", file=sys.stderr, flush=True)
    if jobs <= 1:
        _init_worker(backend)
        results: Iterable = map(measure, units)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(jobs, initializer=_init_worker, initargs=(backend,))
        results = pool.imap_unordered(measure, units)
    for i, (k, result) in enumerate(results, 1):
        cache.merge(k, result)
        print(f"  [{i}/{len(units)}] {k} {result['wall_s']:.1f} s", file=sys.stderr, flush=True)
    if jobs > 1:
        pool.close()
        pool.join()


def plan_units(cache: Cache, families, configs, seeds, budgets: dict[str, Any], wanted,
               history: bool = False) -> list[dict]:
    """One unit per (family, configuration, seed) with what the cache still lacks.

    ``wanted(family, opt, bs, seed)`` lists the ``(lr, epochs)`` trainings needed; ``history``:
    record the held-out figures after every epoch (:func:`_train_history`)."""
    units = []
    for fam in families:
        workload, score = FAMILIES[fam]
        for opt, bs in configs:
            for seed in seeds:
                k = ukey(fam, opt, bs, seed)
                have = cache.units.get(k, {"curves": {}, "train": {}})
                tests = [(n, steps_of(b, bs)) for n, b in budgets.items() if n not in have["curves"]]
                train = [t for t in wanted(fam, opt, bs, seed) if tkey(*t) not in have["train"]]
                units.append({"key": k, "workload": workload, "score": score, "opt": opt, "bs": bs, "seed": seed,
                              "range_tests": tests, "train": train, "history": history})
    return units


def steps_of(budget: dict, bs: int) -> int:
    return budget["steps"] if "steps" in budget else max(2, budget["samples"] // bs)


# --------------------------------------------------------------------------- rules


def centred_min_lr(curve) -> float:
    """The rate at the minimum of the centred smoothed loss (``centered_min_div3``'s index)."""
    from lrrt_core.suggest import centered_min_div3

    s = centered_min_div3(curve)
    return float(curve.lrs[s.index]) if s.ok else math.nan


def rules() -> dict[str, Any]:
    """``{rule name: fn(curve, optimizer) -> lr}``: the registry's methods and the centred-minimum family."""
    from lrrt_core.suggest import METHODS, get_method

    out: dict[str, Any] = {}
    for m in METHODS:
        out[m] = (lambda fn: lambda c, opt: (lambda s: float(s.lr) if s.ok else math.nan)(fn(c)))(get_method(m))
    for d in DIVISORS:
        for d_sgd in DIVISORS:
            name = f"cmin/{d:g}" + ("" if d_sgd == d else f",sgd/{d_sgd:g}")
            out[name] = (lambda d, ds: lambda c, opt: centred_min_lr(c) / (ds if opt in PLAIN_SGD else d))(d, d_sgd)
    return out


def gmean(values) -> float:
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    return float(math.exp(statistics.fmean(math.log(x) for x in v))) if v else math.nan


# --------------------------------------------------------------------------- scoring


def truth_table(cache: Cache, fam: str, configs, seeds, rates, epochs: int, tolerance: float) -> dict[str, dict]:
    """Per configuration: mean score per rate, best rate and score, good range (log10 bounds)."""
    floor = SCORE_FLOOR[FAMILIES[fam][1]]
    half = (math.log10(rates[1]) - math.log10(rates[0])) / 2
    out = {}
    for opt, bs in configs:
        sc = np.array([[_score(cache.units[ukey(fam, opt, bs, s)]["train"][tkey(lr, epochs)], floor) for s in seeds]
                       for lr in rates])
        mean = sc.mean(axis=1)
        ib = int(np.argmax(mean))
        good = np.flatnonzero(mean >= mean[ib] - tolerance)
        out[ckey(opt, bs)] = {"opt": opt, "mean": mean.tolist(), "log_rates": np.log10(rates).tolist(),
                              "best_lr": rates[ib], "best": float(mean[ib]),
                              "good_lo": math.log10(rates[good.min()]) - half,
                              "good_hi": math.log10(rates[good.max()]) + half,
                              "per_seed_best": [float(sc[:, j].max()) for j in range(len(seeds))]}
    return out


def _score(r: dict, floor: float) -> float:
    s = r["score"]
    return floor if r["diverged"] or not math.isfinite(s) else max(float(s), floor)


def score_config(t: dict, lr: float) -> dict[str, float]:
    """|log10(lr / best)|, in the good range, and the truth's (interpolated) score at ``lr``."""
    if not (math.isfinite(lr) and lr > 0):
        return {"err": math.inf, "signed": math.nan, "inside": False, "score": min(t["mean"])}
    x = math.log10(lr)
    return {"err": abs(x - math.log10(t["best_lr"])), "signed": x - math.log10(t["best_lr"]),
            "inside": t["good_lo"] <= x <= t["good_hi"], "score": float(np.interp(x, t["log_rates"], t["mean"]))}


def summary(scored: list[dict]) -> dict[str, Any]:
    errs = [s["err"] for s in scored]
    return {"median": statistics.median(errs) if errs else math.nan, "inside": sum(s["inside"] for s in scored),
            "n": len(scored), "score": statistics.fmean(s["score"] for s in scored) if scored else math.nan,
            "signed": statistics.median([s["signed"] for s in scored if math.isfinite(s["signed"])] or [math.nan])}


def rule_rates(cache: Cache, fam: str, configs, seeds, budget: str, fn) -> dict[str, float]:
    from lrrt_core.curve import Curve

    return {ckey(o, b): gmean(fn(Curve.from_dict(cache.units[ukey(fam, o, b, s)]["curves"][budget]), o) for s in seeds)
            for o, b in configs}


def evaluate(rates_by: dict[str, dict[str, float]], tables: dict[str, dict], fams) -> dict[str, list[dict]]:
    """``{family: [score_config per (budget, configuration)]}`` of one rule."""
    return {f: [score_config(tables[f][c], lr) for (fam, _b), by in rates_by.items() if fam == f for c, lr in by.items()]
            for f in fams}


def choose(per_rule: dict[str, dict[str, list[dict]]], fams) -> str:
    """The rule whose worst family (of ``fams``) has the smallest median error; ties: more in range."""
    def cost(rule):
        s = [summary(per_rule[rule][f]) for f in fams]
        return (max(x["median"] for x in s), -sum(x["inside"] for x in s), rule)

    return min(per_rule, key=cost)


# --------------------------------------------------------------------------- verification


def verify_trainings(lr: float, factors, epochs: int) -> list[tuple[float, int]]:
    """The verification trainings of a recommendation: ``(lr * f, epochs)`` per factor (none for no rate)."""
    return [(lr * f, epochs) for f in factors] if math.isfinite(lr) else []


def verified_rate(cache: Cache, fam: str, opt: str, bs: int, seeds, lr: float, factors, epochs: int) -> float:
    """The sweep's verification (``metric: auto``): the candidate with the best mean held-out score
    (the family's accuracy or R^2); a blown-up training is the worst."""
    best, best_score = math.nan, -math.inf
    for f in factors:
        cand = lr * f
        runs = [cache.units[ukey(fam, opt, bs, s)]["train"][tkey(cand, epochs)] for s in seeds]
        if any(r["diverged"] or not math.isfinite(r["score"]) for r in runs):
            continue
        score = statistics.fmean(r["score"] for r in runs)
        if score > best_score:
            best, best_score = cand, score
    return best


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def ranking_agreement(cache: Cache, fam: str, configs, seeds, budget: str, table: dict) -> dict[str, float]:
    from lrrt_core.curve import Curve
    from lrrt_core.suggest import summarize

    rt = [-statistics.fmean(summarize(Curve.from_dict(cache.units[ukey(fam, o, b, s)]["curves"][budget]))["min_loss"]
                            for s in seeds) for o, b in configs]
    truth = [table[ckey(o, b)]["best"] for o, b in configs]
    noise = spearman([table[ckey(o, b)]["per_seed_best"][0] for o, b in configs],
                     [table[ckey(o, b)]["per_seed_best"][-1] for o, b in configs])
    return {"range_test": spearman(rt, truth), "truth_seed_to_seed": noise}


# --------------------------------------------------------------------------- main


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=list(BATCH_SIZES))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--epochs", type=int, default=8, help="ground-truth training budget")
    p.add_argument("--verify-epochs", type=int, default=2, help="verification training budget (the sweep's default)")
    p.add_argument("--samples", type=int, default=8192, help="sample-budget range test (steps = samples / batch)")
    p.add_argument("--steps", type=int, default=200, help="fixed-step range test (RangeTest's default)")
    p.add_argument("--rate-lo", type=float, default=-5.0, help="log10 of the smallest ground-truth rate")
    p.add_argument("--rate-step", type=float, default=0.25, help="decades between ground-truth rates")
    p.add_argument("--tolerance", type=float, default=0.01, help="a score within this of the best is 'good'")
    p.add_argument("--no-verify", action="store_true", help="skip the verification stage")
    p.add_argument("--history", action="store_true",
                   help="record held-out figures per epoch (truth and verification candidates) and study "
                        "verification horizons and metrics (_horizon_study); needs a cache made with it")
    p.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax", "torch"))
    p.add_argument("--jobs", type=int, default=1, help="training processes (one CPU each)")
    p.add_argument("--cache", default=None, help="JSON file caching range tests and trainings")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    t0 = time.perf_counter()
    fams, seeds = args.families, args.seeds
    configs = [(o, b) for o in args.optimizers for b in args.batch_sizes]
    rates = rate_grid(lo=args.rate_lo, step=args.rate_step)
    budgets = {"samples": {"samples": args.samples}, "steps": {"steps": args.steps}}
    cache = Cache(args.cache, args.backend)
    truth_set = [(lr, args.epochs) for lr in rates]
    cache.history_epochs = args.epochs
    run_units(cache, plan_units(cache, fams, configs, seeds, budgets, lambda *a: truth_set, history=args.history),
              args.jobs, args.backend)

    tables = {f: truth_table(cache, f, configs, seeds, rates, args.epochs, args.tolerance) for f in fams}
    all_rules = rules()
    rates_of = {r: {(f, b): rule_rates(cache, f, configs, seeds, b, fn) for f in fams for b in budgets}
                for r, fn in all_rules.items()}
    per_rule = {r: evaluate(rates_of[r], tables, fams) for r in all_rules}
    result: dict[str, Any] = {"families": fams, "configs": len(configs), "seeds": seeds, "epochs": args.epochs,
                              "backend": args.backend, "chosen_on_all": choose(per_rule, fams), "folds": {}}
    for held in fams:
        rule = choose(per_rule, [f for f in fams if f != held]) if len(fams) > 1 else result["chosen_on_all"]
        result["folds"][held] = {"rule": rule, **_fold(per_rule[rule][held], tables[held])}
    from lrrt_core.suggest import DEFAULT_METHOD

    result["shipped"] = {f: summary(per_rule[DEFAULT_METHOD][f]) for f in fams} if DEFAULT_METHOD in per_rule else {}
    result["rules"] = {r: {f: summary(per_rule[r][f]) for f in fams} for r in all_rules}
    result["ranking"] = {f: {b: ranking_agreement(cache, f, configs, seeds, b, tables[f]) for b in budgets} for f in fams}
    if not args.no_verify:
        result["verified"] = _verification(cache, args, fams, configs, seeds, budgets, rates_of, tables, result)
    if args.history:
        result["horizons"] = _horizon_study(cache, args, fams, configs, seeds, budgets, rates_of, tables, result)
    result["truth"] = tables
    result["wall_s"] = time.perf_counter() - t0
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return result


def _fold(scored: list[dict], table: dict) -> dict[str, Any]:
    """A held-out family's figures: overall and per optimizer."""
    by_opt: dict[str, list[dict]] = {}
    for s, cfg in zip(scored, list(table) * (len(scored) // max(1, len(table)))):
        by_opt.setdefault(table[cfg]["opt"], []).append(s)
    return {**summary(scored), "by_optimizer": {o: summary(v) for o, v in by_opt.items()}}


def _verification(cache, args, fams, configs, seeds, budgets, rates_of, tables, result) -> dict[str, Any]:
    """Verify each fold's chosen rule on its held-out family, as a sweep would; score the verified rates."""
    factors = (1 / 3, 1.0, 3.0)

    def wanted(fam, opt, bs, seed):
        rule = result["folds"][fam]["rule"]
        return [t for b in budgets for t in
                verify_trainings(rates_of[rule][(fam, b)][ckey(opt, bs)], factors, args.verify_epochs)]

    run_units(cache, plan_units(cache, fams, configs, seeds, budgets, wanted), args.jobs, args.backend)
    out = {}
    for fam in fams:
        rule = result["folds"][fam]["rule"]
        scored = [score_config(tables[fam][ckey(o, b)],
                               verified_rate(cache, fam, o, b, seeds, rates_of[rule][(fam, bud)][ckey(o, b)],
                                             factors, args.verify_epochs))
                  for bud in budgets for o, b in configs]
        out[fam] = _fold(scored, tables[fam])
    return out


HORIZON_FACTORS = tuple(3.0 ** k for k in range(-2, 3))  # 1/9 .. 9: the default candidates and one step past each edge


def _horizon_study(cache, args, fams, configs, seeds, budgets, rates_of, tables, result) -> dict[str, Any]:
    """``--history``: verification settings judged per family against the truth.

    Every configuration trains ``--epochs`` epochs at 3^k x its fold rule's rate (k = -2..2),
    recording the held-out loss and score after each epoch, so a verification of any horizon
    of at most ``--epochs`` epochs, picking by either metric, with or without one extension
    round past the edge, is read off the same trainings. Also the truth's own short-horizon
    bias: the best grid rate after E epochs against the best after ``--epochs``."""
    def wanted(fam, opt, bs, seed):
        rule = result["folds"][fam]["rule"]
        return [(lr * f, args.epochs) for b in budgets for lr in [rates_of[rule][(fam, b)][ckey(opt, bs)]]
                if math.isfinite(lr) for f in HORIZON_FACTORS]

    run_units(cache, plan_units(cache, fams, configs, seeds, budgets, wanted, history=True), args.jobs, args.backend)
    horizons = sorted({e for e in (1, 2, 3, 4, 6, args.epochs) if e <= args.epochs})
    out: dict[str, Any] = {"settings": {}, "truth_bias": {}}
    for e in horizons:
        for metric in ("val_loss", "score"):
            for extend in (False, True):
                name = f"{e}ep/{metric}" + ("/extend" if extend else "")
                out["settings"][name] = {}
                for fam in fams:
                    rule = result["folds"][fam]["rule"]
                    scored = [score_config(tables[fam][ckey(o, b)], _pick(cache, fam, o, b, seeds,
                                                                         rates_of[rule][(fam, bud)][ckey(o, b)],
                                                                         e, metric, extend))
                              for bud in budgets for o, b in configs]
                    out["settings"][name][fam] = summary(scored)
        out["truth_bias"][e] = {fam: _truth_shift(cache, fam, configs, seeds, tables[fam], e) for fam in fams}
    return out


def _at(run: dict, epoch: int) -> tuple[float, float, bool]:
    h = run["history"]
    return h["val_loss"][epoch - 1], h["score"][epoch - 1], h["diverged"][epoch - 1]


def _pick(cache, fam, opt, bs, seeds, lr, epoch, metric, extend) -> float:
    """The verified rate: among 1/3, 1, 3 x ``lr`` the best mean ``metric`` after ``epoch`` epochs
    (a diverged training on any seed: never picked); ``extend``: one more factor past the edge
    the best sits at, as the sweep's ``verify.extend`` does."""
    if not math.isfinite(lr):
        return math.nan

    def value(f):
        runs = [_at(cache.units[ukey(fam, opt, bs, s)]["train"][tkey(lr * f, cache.history_epochs)], epoch)
                for s in seeds]
        if any(d or not math.isfinite(v) for v, _sc, d in runs):
            return math.inf
        m = statistics.fmean(v if metric == "val_loss" else -sc for v, sc, _d in runs)
        return m if math.isfinite(m) else math.inf

    fs = list(HORIZON_FACTORS[1:4])
    vals = {f: value(f) for f in fs}
    best = min(fs, key=lambda f: vals[f])
    if not math.isfinite(vals[best]):
        return math.nan
    if extend and best in (fs[0], fs[-1]):
        nxt = HORIZON_FACTORS[0] if best == fs[0] else HORIZON_FACTORS[-1]
        if value(nxt) < vals[best]:
            best = nxt
    return lr * best


def _truth_shift(cache, fam, configs, seeds, table, epoch) -> dict[str, float]:
    """Median signed decades from the best grid rate after ``epoch`` epochs to the truth's best."""
    floor = SCORE_FLOOR[FAMILIES[fam][1]]
    shifts = []
    for opt, bs in configs:
        t = table[ckey(opt, bs)]
        rates = [10 ** x for x in t["log_rates"]]
        mean = [statistics.fmean(max(floor, sc) if not d and math.isfinite(sc) else floor
                                 for _v, sc, d in (_at(cache.units[ukey(fam, opt, bs, s)]["train"]
                                                       [tkey(lr, cache.history_epochs)], epoch) for s in seeds))
                for lr in rates]
        shifts.append(math.log10(rates[int(np.argmax(mean))]) - math.log10(t["best_lr"]))
    return {"median": statistics.median(shifts), "mean": statistics.fmean(shifts)}


def _line(name: str, s: dict) -> str:
    return (f"  {name:<24} median |dec| {s['median']:5.2f} (signed {s['signed']:+5.2f})  in good range "
            f"{s['inside']:>2}/{s['n']:<2}  score at rate {s['score']:.3f}")


def report(result: dict) -> None:
    print(f"ground truth: {len(result['families'])} families x {result['configs']} configurations x seeds "
          f"{result['seeds']}, {result['epochs']} epochs at fixed rates ({result['backend']})")
    print(f"rule chosen on all families: {result['chosen_on_all']}")
    print("\nleave-one-family-out (rule chosen on the other families, judged on this one):")
    for fam, f in result["folds"].items():
        print(_line(f"{fam} [{f['rule']}]", f))
        for opt, s in f["by_optimizer"].items():
            print("    " + _line(opt, s).strip())
        if "verified" in result:
            print("    " + _line("verified", result["verified"][fam]).strip())
        rk = result["ranking"][fam]
        print("    ranking Spearman (range test vs truth): " + ", ".join(
            f"{b} {r['range_test']:.2f}" for b, r in rk.items()) + f"; truth seed-to-seed {rk['samples']['truth_seed_to_seed']:.2f}")
    if result["shipped"]:
        print("\nshipped default (lrrt_core.suggest.DEFAULT_METHOD) per family:")
        for fam, s in result["shipped"].items():
            print(_line(fam, s))
    if "horizons" in result:
        h = result["horizons"]
        print("\nverification settings (the fold rule's rate; 1/3, 1, 3 x; per family median |dec|, in range):")
        for name, per in h["settings"].items():
            print(f"  {name:<22} " + "  ".join(f"{f} {v['median']:.2f} {v['inside']}/{v['n']}" for f, v in per.items()))
        print("truth's best rate after E epochs vs after all (median signed decades):")
        for e, per in h["truth_bias"].items():
            print(f"  {e} ep: " + "  ".join(f"{f} {v['median']:+.2f}" for f, v in per.items()))
    print(f"\nwall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
