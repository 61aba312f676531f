"""Ground truth for the suggestions: do the recommended learning rates train well?

On the digits grid (optimizers x batch sizes x seeds), this benchmark

1. runs the range tests exactly as a sweep runs them (:func:`lrrt_core.runner.run_workload`),
   with a fixed step count (``--steps``, as ``quickstart.yaml``) and with a sample budget
   (``--samples``: the same data for every batch size);
2. trains every configuration for ``--epochs`` epochs at each rate of a log grid of fixed
   learning rates (:func:`lrrt_core.verify.train_fixed`, real ``model.fit``) and evaluates
   held-out accuracy: the ground truth. Per configuration, the *best* rate maximises the
   accuracy averaged over seeds; the *good range* is the span of grid rates within
   ``--tolerance`` (1 point) of that best accuracy, widened by half a grid step;
3. for every suggestion method of :data:`lrrt_core.suggest.METHODS`, takes the
   configuration's recommendation (geometric mean over seeds), trains at it and prints the
   median |log10(suggested / best)|, how many configurations land in the good range, and
   the mean accuracy when trained at the suggestion;
4. ranks the configurations as the report does (mean minimum smoothed loss) and as the
   verification stage does (short trainings at the default recommendation x {1/3, 1, 3},
   ``--verify-epochs``), and prints the Spearman correlation of each with the ground-truth
   ranking (and the ground truth's own seed-to-seed agreement, the noise floor); the
   verified rates themselves are scored like a method (row ``verified``).

The expensive part (2) is cached in ``--cache`` (JSON), so changing an analysis re-runs in
seconds. Run::

    python tests/benchmarks/bench_truth.py [--cache runs/bench_truth.json] [--json out.json]
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
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
BATCH_SIZES = (32, 64, 128)
SEEDS = (0, 1)
RANGE = dict(start_lr=1e-5, end_lr=10.0, ladder="exp", loss="train", diverge_threshold=4.0, smoothing=0.98)


def rate_grid(lo: float = -4.0, hi: float = 0.5, step: float = 0.25) -> list[float]:
    return [float(10 ** e) for e in np.arange(lo, hi + 1e-9, step)]


def key(opt: str, bs: int, seed: int | None = None) -> str:
    return f"{opt}-bs{bs}" + ("" if seed is None else f"-s{seed}")


# --------------------------------------------------------------------------- measuring


def range_tests(budget: dict[str, int], grid) -> dict[str, dict]:
    """``{trial key: curve dict}`` for every (optimizer, batch, seed) under ``budget``."""
    from lrrt_core.runner import run_workload

    out = {}
    for opt, bs, seed in grid:
        b = dict(budget)
        if "samples" in b:
            b = {"steps": max(2, b.pop("samples") // bs)}
        curve = run_workload("digits_cnn", optimizer=opt, batch_size=bs, seed=seed, **RANGE, **b)
        out[key(opt, bs, seed)] = curve.to_dict()
    return out


class Trainer:
    """One compiled digits model per (optimizer, batch, seed), trained from the same start at any rate.

    Results are memoised in ``memo`` (kept in the cache file), so a re-analysis trains only
    at rates it has not seen."""

    def __init__(self, epochs: int, memo: dict[str, dict] | None = None) -> None:
        self.epochs = epochs
        self.memo = {} if memo is None else memo
        self._models: dict[str, Any] = {}

    def _get(self, opt: str, bs: int, seed: int):
        k = key(opt, bs, seed)
        if k not in self._models:
            import keras

            from lrrt_core.optimizers import make_optimizer
            from lrrt_core.workloads import get_workload

            if len(self._models) >= 4:  # keep memory flat
                self._models.clear()
                keras.backend.clear_session()
            wl = get_workload("digits_cnn")(seed=seed)
            wl.model.compile(optimizer=make_optimizer(opt, 1e-3), loss=wl.loss, metrics=list(wl.eval_metrics))
            self._models[k] = wl
        return self._models[k]

    def train(self, opt: str, bs: int, seed: int, lr: float, epochs: int | None = None) -> dict[str, float]:
        from lrrt_core.verify import train_fixed

        epochs = epochs or self.epochs
        mk = f"{key(opt, bs, seed)}:{lr:.9g}:{epochs}"
        if mk not in self.memo:
            wl = self._get(opt, bs, seed)
            r = train_fixed(wl.model, wl.x, wl.y, wl.x_val, wl.y_val, lr=lr, batch_size=bs,
                            epochs=epochs, seed=seed, restore=True)
            self.memo[mk] = {"lr": lr, "val_loss": r.val_loss, "accuracy": r.metrics.get("accuracy", math.nan)}
        return self.memo[mk]


def ground_truth(trainer: Trainer, grid, rates) -> dict[str, list[dict]]:
    out = {}
    for opt, bs, seed in grid:
        out[key(opt, bs, seed)] = [trainer.train(opt, bs, seed, lr) for lr in rates]
        print(f"  truth {key(opt, bs, seed)}: best acc "
              f"{max(r['accuracy'] for r in out[key(opt, bs, seed)]):.3f}", file=sys.stderr, flush=True)
    return out


def methods() -> dict[str, Callable]:
    from lrrt_core.suggest import METHODS, get_method

    def wrap(name):
        fn = get_method(name)
        return lambda c: (lambda s: float(s.lr) if s.ok else math.nan)(fn(c))

    return {m: wrap(m) for m in METHODS}


# --------------------------------------------------------------------------- scoring


def gmean(values) -> float:
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    return float(math.exp(statistics.fmean(math.log(x) for x in v))) if v else math.nan


def truth_table(truth: dict, configs, seeds, rates, tolerance: float) -> dict[str, dict]:
    """Per configuration: mean accuracy per rate, best rate and accuracy, good range (log10 bounds)."""
    half = (math.log10(rates[1]) - math.log10(rates[0])) / 2
    out = {}
    for opt, bs in configs:
        acc = np.array([[truth[key(opt, bs, s)][i]["accuracy"] for s in seeds] for i in range(len(rates))])
        acc = np.nan_to_num(acc, nan=0.0)
        mean = acc.mean(axis=1)
        ib = int(np.argmax(mean))
        good = np.flatnonzero(mean >= mean[ib] - tolerance)
        out[key(opt, bs)] = {
            "mean_acc": mean.tolist(), "best_lr": rates[ib], "best_acc": float(mean[ib]),
            "good_lo": math.log10(rates[good.min()]) - half, "good_hi": math.log10(rates[good.max()]) + half,
            "per_seed_best": [float(acc[:, j].max()) for j in range(len(seeds))],
        }
    return out


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def score_rates(name: str, lrs: list[float], table, trainer, configs, seeds) -> dict[str, Any]:
    """Median |log10(lr / best)|, configurations in the good range, mean accuracy trained at ``lrs``."""
    errs, inside, accs = [], 0, []
    for (opt, bs), lr in zip(configs, lrs):
        t = table[key(opt, bs)]
        if not math.isfinite(lr):
            errs.append(math.inf)
            accs.append(0.0)
            continue
        errs.append(abs(math.log10(lr / t["best_lr"])))
        inside += t["good_lo"] <= math.log10(lr) <= t["good_hi"]
        accs.append(statistics.fmean(np.nan_to_num(trainer.train(opt, bs, s, lr)["accuracy"]) for s in seeds))
    return {"method": name, "median_abs_log10": statistics.median(errs), "in_good_range": inside,
            "n": len(configs), "mean_acc_at_suggestion": statistics.fmean(accs)}


def score_methods(curves, table, trainer, configs, seeds) -> list[dict]:
    from lrrt_core.curve import Curve

    return [score_rates(name, [gmean(fn(Curve.from_dict(curves[key(o, b, s)])) for s in seeds) for o, b in configs],
                        table, trainer, configs, seeds)
            for name, fn in methods().items()]


def rank_range_test(curves, configs, seeds) -> list[float]:
    """The report's criterion: mean over seeds of the minimum smoothed loss (lower is better)."""
    from lrrt_core.curve import Curve
    from lrrt_core.suggest import summarize

    return [statistics.fmean(summarize(Curve.from_dict(curves[key(o, b, s)]))["min_loss"] for s in seeds)
            for o, b in configs]


def verified(curves, trainer, configs, seeds, method: str, factors, epochs: int) -> list[dict]:
    """The verification stage's result per configuration: best candidate by held-out val loss."""
    from lrrt_core.curve import Curve
    from lrrt_core.verify import candidate_rates

    fn = methods()[method]
    out = []
    for opt, bs in configs:
        lr = gmean(fn(Curve.from_dict(curves[key(opt, bs, s)])) for s in seeds)
        cands = []
        for cand in candidate_rates(lr, factors) if math.isfinite(lr) else []:
            runs = [trainer.train(opt, bs, s, cand, epochs=epochs) for s in seeds]
            loss = [r["val_loss"] for r in runs]
            cands.append({"lr": cand, "val_loss": statistics.fmean(x if math.isfinite(x) else 1e9 for x in loss),
                          "accuracy": statistics.fmean(np.nan_to_num(r["accuracy"]) for r in runs)})
        best = min(cands, key=lambda c: c["val_loss"]) if cands else {"lr": math.nan, "val_loss": 1e9, "accuracy": 0.0}
        out.append(best)
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=list(BATCH_SIZES))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--epochs", type=int, default=4, help="ground-truth training budget")
    p.add_argument("--verify-epochs", type=int, default=2, help="verification training budget")
    p.add_argument("--steps", type=int, default=120, help="fixed-step range test (quickstart.yaml)")
    p.add_argument("--samples", type=int, default=7680, help="sample-budget range test (steps = samples / batch)")
    p.add_argument("--rate-step", type=float, default=0.25, help="decades between ground-truth rates")
    p.add_argument("--tolerance", type=float, default=0.01, help="accuracy within this of the best is 'good'")
    p.add_argument("--default", default=None, help="the method the report recommends (default: lrrt's)")
    p.add_argument("--cache", default=None, help="JSON file caching range tests and ground truth")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    from lrrt_core.suggest import DEFAULT_METHOD

    default = args.default or DEFAULT_METHOD
    configs = [(o, b) for o in args.optimizers for b in args.batch_sizes]
    grid = [(o, b, s) for o, b in configs for s in args.seeds]
    rates = rate_grid(step=args.rate_step)
    cache: dict[str, Any] = {}
    if args.cache and Path(args.cache).exists():
        cache = json.loads(Path(args.cache).read_text())
    t0 = time.perf_counter()
    trainer = Trainer(args.epochs, cache.setdefault("trainings", {}))
    budgets = {"steps": {"steps": args.steps}, "samples": {"samples": args.samples}}
    for name, budget in budgets.items():
        ck = f"curves:{json.dumps(budget)}"
        if ck not in cache:
            cache[ck] = range_tests(budget, grid)
    tk = f"truth:{args.epochs}:{json.dumps(rates)}"
    if tk not in cache or not all(key(*g) in cache[tk] for g in grid):
        cache[tk] = ground_truth(trainer, grid, rates)
    if args.cache:
        Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
        Path(args.cache).write_text(json.dumps(cache))
    truth = cache[tk]
    table = truth_table(truth, configs, args.seeds, rates, args.tolerance)
    truth_rank = [table[key(o, b)]["best_acc"] for o, b in configs]
    noise = spearman([table[key(o, b)]["per_seed_best"][0] for o, b in configs],
                     [table[key(o, b)]["per_seed_best"][-1] for o, b in configs])
    result: dict[str, Any] = {"configs": len(configs), "seeds": args.seeds, "epochs": args.epochs,
                              "default": default, "truth_seed_agreement": noise, "budgets": {}}
    for name, budget in budgets.items():
        curves = cache[f"curves:{json.dumps(budget)}"]
        rows = score_methods(curves, table, trainer, configs, args.seeds)
        rt_rank = spearman([-x for x in rank_range_test(curves, configs, args.seeds)], truth_rank)
        ver = verified(curves, trainer, configs, args.seeds, default, (1 / 3, 1.0, 3.0), args.verify_epochs)
        rows.append(score_rates("verified", [v["lr"] for v in ver], table, trainer, configs, args.seeds))
        ver_rank = spearman([-v["val_loss"] for v in ver], truth_rank)
        ver_acc_rank = spearman([v["accuracy"] for v in ver], truth_rank)
        result["budgets"][name] = {"budget": budget, "methods": rows, "spearman_range_test": rt_rank,
                                   "spearman_verified_val_loss": ver_rank, "spearman_verified_accuracy": ver_acc_rank}
    result["wall_s"] = time.perf_counter() - t0
    if args.cache:
        Path(args.cache).write_text(json.dumps(cache))
    report(result, table, configs)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def report(result: dict, table: dict, configs) -> None:
    print(f"ground truth: {result['configs']} configurations x seeds {result['seeds']}, {result['epochs']} epochs "
          f"at fixed rates; best accuracies {min(t['best_acc'] for t in table.values()):.3f}.."
          f"{max(t['best_acc'] for t in table.values()):.3f}; seed-to-seed Spearman {result['truth_seed_agreement']:.2f}")
    for o, b in configs:
        t = table[key(o, b)]
        print(f"  {key(o, b):<14} best lr {t['best_lr']:.3g} (acc {t['best_acc']:.3f}), good 10^[{t['good_lo']:.2f}, {t['good_hi']:.2f}]")
    for name, r in result["budgets"].items():
        print(f"\nrange test budget {r['budget']}:")
        print(f"  {'method':<18} {'median|log10|':>13} {'in good':>8} {'acc at sugg.':>12}")
        for m in sorted(r["methods"], key=lambda m: m["median_abs_log10"]):
            mark = "  <- default" if m["method"] == result["default"] else ""
            print(f"  {m['method']:<18} {m['median_abs_log10']:>13.2f} {m['in_good_range']:>5}/{m['n']:<2} "
                  f"{m['mean_acc_at_suggestion']:>12.3f}{mark}")
        print(f"  Spearman with the ground-truth ranking: range test (min loss) {r['spearman_range_test']:.2f}, "
              f"verified (val loss) {r['spearman_verified_val_loss']:.2f}, verified (accuracy) "
              f"{r['spearman_verified_accuracy']:.2f}")
    print(f"\nwall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
