"""Benchmark: a sweep on local Ray versus the same range tests one after another.

8 trials (digits_cnn, 300 steps each, no divergence stop so every trial does the same work):

* article -- the seed article's script in one Python process, its one import changed to
             lrrt's ``LRFinder``: per test compile, ``LRFinder.find``, keep the curve; then
             its two figures with all tests overlaid (the issue's baseline);
* loop    -- a stricter floor: ``lrrt_core.runner.run_workload`` per test in one process
             and nothing else (no figures);
* sweep   -- ``lrrt sweep`` on a local Ray with the machine's CPUs, 1 CPU per trial; its
             report (4 figures, tables, HTML) is included.

All are timed as whole commands from a cold start (imports, Ray start-up, report writing
included), interleaved, ``--repeat`` times; medians are reported. Prints the ratios
(target: sweep <= 0.75x the article's loop on 2 CPUs) and the per-trial fixed overhead
inside the sweep (trainable wall time minus the range test's own time: model build,
compile and tracing, plus the TensorFlow import when the worker did not preload it).

Run: ``.venv/bin/python tests/benchmarks/bench_sweep.py [--steps 300] [--repeat 3]`` (about
45 s per round on 2 cores; ``--steps 3000`` shows where the fixed cost stops mattering).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "bench-sweep",
    "workload": "digits_cnn",
    "grid": {"optimizer": ["sgd", "momentum", "adam", "rmsprop"], "batch_size": [32, 128], "seed": [0]},
    "range_test": {"start_lr": 1e-6, "end_lr": 1.0, "steps": 300, "diverge_threshold": None},
    "resources": {"cpus_per_trial": 1},
    "retries": 0,
}

LOOP = """
import json, sys, time
t0 = time.perf_counter()
from lrrt_core.runner import run_workload
spec = json.loads(sys.argv[1])
rt = spec["range_test"]
walls = []
for opt in spec["grid"]["optimizer"]:
    for bs in spec["grid"]["batch_size"]:
        c = run_workload(spec["workload"], optimizer=opt, batch_size=bs, seed=0, **rt)
        assert c.steps_run == rt["steps"], c.steps_run
        walls.append(c.wall_s)
print(json.dumps({"finder_s": walls, "total_s": time.perf_counter() - t0}))
"""

# The seed article's script, with its one import changed to lrrt's keras-lr-finder facade:
# for each test compile the model with the optimizer, LRFinder.find, keep lrs and losses;
# then its two figures (loss, and the loss change smoothed over 20 values) with every
# test on one axes -- written to PNG instead of shown.
ARTICLE = """
import json, os, sys, tempfile, time
t0 = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from lrrt_core import LRFinder
from lrrt_core.optimizers import make_optimizer
from lrrt_core.workloads import get_workload
spec = json.loads(sys.argv[1])
rt = spec["range_test"]
tests, walls = [], []
for opt in spec["grid"]["optimizer"]:
    for bs in spec["grid"]["batch_size"]:
        wl = get_workload(spec["workload"])(seed=0)
        wl.model.compile(optimizer=make_optimizer(opt, rt["start_lr"]), loss=wl.loss)
        finder = LRFinder(wl.model)
        c = finder.find(wl.x, wl.y, rt["start_lr"], rt["end_lr"], batch_size=bs, steps=rt["steps"],
                        diverge_threshold=rt["diverge_threshold"])
        assert c.steps_run == rt["steps"], c.steps_run
        walls.append(c.wall_s)
        losses = np.asarray(finder.losses)
        change = np.convolve(np.diff(losses, prepend=losses[0]), np.ones(20) / 20, mode="same")
        tests.append((f"{opt}-bs{bs}", finder.lrs, losses, change))
out = tempfile.mkdtemp()
for name, idx in (("loss", 2), ("loss_change", 3)):
    fig = plt.figure()
    for t in tests:
        plt.plot(t[1], t[idx], label=t[0])
    plt.xscale("log"); plt.xlabel("learning rate (log scale)"); plt.ylabel(name); plt.legend()
    fig.savefig(os.path.join(out, name + ".png")); plt.close(fig)
print(json.dumps({"finder_s": walls, "total_s": time.perf_counter() - t0}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("RAY_ADDRESS", None)
    return env


def run_loop(script: str = LOOP) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, json.dumps(SPEC)], cwd=REPO, env=_env(),
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def run_sweep(tmp: Path) -> tuple[float, float, list[dict]]:
    """Wall time of ``lrrt sweep`` (report included), of ``lrrt report`` alone, and the records."""
    spec_path = tmp / "bench.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    out = tmp / "out"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweeps.cli", "sweep", str(spec_path), "--out", str(out), "-q", "--fresh"],
                   cwd=REPO, env=_env(), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweeps.cli", "report", str(out), "-q"],
                   cwd=REPO, env=_env(), check=True, capture_output=True, text=True)
    report = time.perf_counter() - t1
    records = [json.loads(p.read_text()) for p in (out / "trials").glob("*.json")]
    n = len(SPEC["grid"]["optimizer"]) * len(SPEC["grid"]["batch_size"])
    assert len(records) == n and all(r["status"] == "ok" for r in records), records
    return wall, report, records


def main(argv: list[str] | None = None) -> dict:
    import argparse
    import statistics

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="steps per range test (300 as in the issue)")
    p.add_argument("--repeat", type=int, default=3,
                   help="loop/sweep pairs; medians are reported (this machine's timings vary by 10-20%%)")
    args = p.parse_args(argv)
    SPEC["range_test"]["steps"] = args.steps
    loops, articles, sweeps, reports, loop_finder, records = [], [], [], [], [], []
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory() as tmp:
            loop_wall, loop = run_loop(LOOP)
            article_wall, _ = run_loop(ARTICLE)
            sweep_wall, report_wall, records = run_sweep(Path(tmp))
        loops.append(loop_wall)
        articles.append(article_wall)
        sweeps.append(sweep_wall)
        reports.append(report_wall)
        loop_finder.append(sum(loop["finder_s"]))
    med = statistics.median
    loop_wall, article_wall, sweep_wall, report_wall = med(loops), med(articles), med(sweeps), med(reports)
    overhead = [r["wall_s"] - r["curve"]["wall_s"] for r in records]  # of the last sweep
    finder = [r["curve"]["wall_s"] for r in records]
    result = {
        "cpus": os.cpu_count(),
        "steps": args.steps,
        "repeat": len(loops),
        "article_s": round(article_wall, 2),
        "loop_s": round(loop_wall, 2),
        "loop_finder_sum_s": round(med(loop_finder), 2),
        "sweep_s": round(sweep_wall, 2),
        "ratio_sweep_over_article": round(sweep_wall / article_wall, 3),
        "ratio_sweep_over_loop": round(sweep_wall / loop_wall, 3),
        "ratio_per_pair_article": [round(s_ / a_, 3) for s_, a_ in zip(sweeps, articles)],
        "ratio_per_pair_loop": [round(s_ / l_, 3) for s_, l_ in zip(sweeps, loops)],
        "report_s": round(report_wall, 2),
        "ratio_without_report_over_loop": round((sweep_wall - report_wall) / loop_wall, 3),
        "sweep_finder_sum_s": round(sum(finder), 2),
        "per_trial_overhead_mean_s": round(sum(overhead) / len(overhead), 2),
        "per_trial_overhead_max_s": round(max(overhead), 2),
        "per_trial_overhead_min_s": round(min(overhead), 2),
    }
    print(f"8 range tests, digits_cnn, {args.steps} steps, {result['cpus']} CPUs, median of {len(loops)} runs each")
    print(f"  article (its script, LRFinder per test, two overlaid plots): {article_wall:6.1f} s")
    print(f"  loop    (run_workload per test, nothing else):               {loop_wall:6.1f} s   "
          f"(range tests alone {med(loop_finder):.1f} s)")
    print(f"  sweep   (lrrt sweep on local Ray, report included):           {sweep_wall:6.1f} s   "
          f"(range tests alone {sum(finder):.1f} s, last run)")
    print(f"  sweep / article: {result['ratio_sweep_over_article']:.2f} (target <= 0.75; per run "
          f"{', '.join(f'{r:.2f}' for r in result['ratio_per_pair_article'])})")
    print(f"  sweep / loop:    {result['ratio_sweep_over_loop']:.2f} (per run "
          f"{', '.join(f'{r:.2f}' for r in result['ratio_per_pair_loop'])}); without the report "
          f"({report_wall:.1f} s of plots and tables): {result['ratio_without_report_over_loop']:.2f}")
    print(f"  per-trial fixed overhead in the sweep: mean {result['per_trial_overhead_mean_s']:.2f} s, "
          f"min {result['per_trial_overhead_min_s']:.2f} s, max {result['per_trial_overhead_max_s']:.2f} s "
          "(model build, compile, first-step tracing; TensorFlow is preloaded into the workers)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
