"""How the report's cost grows with the grid: ``lrrt report`` on 12 .. 6000 trials.

For each size, writes a :func:`tests.sweeps.scale.scale_sweep` directory (2 optimizers x 3
batch sizes x W widths x 2 seeds, 120-step curves), then runs :func:`sweeps.report.rebuild`
(what ``lrrt report DIR`` runs) in a fresh interpreter and prints its wall time (the whole
process, imports included, as a user waits for it, and the rebuild alone), the peak
resident memory of that process (``ru_maxrss``) and the size of ``report.html``, with the
growth per trial between consecutive sizes. Run::

    python tests/benchmarks/bench_report.py [--trials 12 120 1200 6000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Peak memory: VmHWM of the child (its own address space; ``ru_maxrss`` would also count the
# parent's size at fork, which Linux carries across exec).
_CHILD = """
import json, re, sys, time
t0 = time.perf_counter()
from sweeps import report
t1 = time.perf_counter()
report.rebuild(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "rebuild_s": t2 - t1,
                  "peak_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024}))
"""


def measure(out_dir: Path) -> dict:
    """Run ``rebuild(out_dir)`` in a fresh interpreter; wall, peak memory, report size."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out_dir)], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r.update(wall_s=wall, html_mb=(out_dir / "report.html").stat().st_size / 2**20)
    return r


def run(trials: list[int], work: Path) -> list[dict]:
    from tests.sweeps.scale import scale_sweep

    rows = []
    for n in trials:
        n_widths = max(1, n // 12)
        d = scale_sweep(work / f"t{n}", n_widths)
        r = measure(d)
        r.update(trials=12 * n_widths, configs=6 * n_widths)
        rows.append(r)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| trials | configurations | wall (process) | rebuild | peak memory | report.html | ms per added trial |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    prev = None
    for r in rows:
        growth = "" if prev is None else f"{1000 * (r['wall_s'] - prev['wall_s']) / (r['trials'] - prev['trials']):.2f}"
        lines.append(f"| {r['trials']} | {r['configs']} | {r['wall_s']:.1f} s | {r['rebuild_s']:.1f} s | "
                     f"{r['peak_mb']:.0f} MB | {r['html_mb']:.2f} MB | {growth} |")
        prev = r
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[12, 120, 1200, 6000])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.trials, Path(tmp))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
