"""The progress line: Tune's running count, changes written once they hold, an ETA that settles
from finished trials (pure, on a hand-driven clock); and in a real 2-concurrent-trial sweep run
by the installed ``lrrt`` script, a line that says "2 running"."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest
import yaml

from sweeps.progress import Progress, fmt_clock
from tests.sweeps.conftest import REPO, installed_lrrt, reaped, tiny_spec, user_env, wait_until


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress(total=4, steps=100, **kw):
    clock, out = Clock(), io.StringIO()
    return Progress(total, steps, stream=out, clock=clock, min_interval=2.0, settle=0.5, **kw), clock, out


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_running_count_is_tunes_and_the_gap_between_trials_is_not_a_line():
    p, clock, out = _progress()
    p.started("a")
    clock.now = 0.1
    p.started("b")
    p.observe(2)
    clock.now = 3.0
    p.observe(2)  # held 2.9 s: written
    assert _lines(out)[-1].startswith("[lrrt] 0/4 done (0 failed), 2 running")
    clock.now = 6.0
    p.finished("a", ok=True)  # a's worker is free: for a moment only b runs
    p.observe(1)
    clock.now = 6.05
    p.started("c")  # the next trial starts on a's worker 50 ms later
    p.observe(2)
    clock.now = 6.7
    p.observe(2)
    assert [ln for ln in _lines(out) if "1 running" in ln] == []  # the 50 ms gap was never written
    assert _lines(out)[-1].startswith("[lrrt] 1/4 done (0 failed), 2 running")
    # Tune's own count wins over the start/end tally (a trial Tune no longer runs).
    clock.now = 9.0
    p.observe(1)
    clock.now = 9.6
    p.observe(1)
    assert _lines(out)[-1].startswith("[lrrt] 1/4 done (0 failed), 1 running")


def test_a_log_gets_one_line_per_change_at_most_every_interval_and_the_final_counts():
    p, clock, out = _progress(total=2)
    p.started("a")
    p.observe(1)
    for t in range(1, 20):
        clock.now = float(t)
        p.stepped("a", t)  # steps alone are no change of state
        p.observe(1)
    assert len(_lines(out)) == 1
    clock.now = 20.0
    p.finished("a", ok=False)
    p.close()  # the final state is written even when it came too soon
    assert _lines(out)[-1].startswith("[lrrt] 1/2 done (1 failed), 0 running")


def test_eta_settles_from_finished_trials_not_from_start_up():
    p, clock, out = _progress(total=6, steps=100)
    clock.now = 60.0  # a minute of Ray start-up and imports before the first trial starts
    p.started("a")
    p.started("b")
    p.observe(2)
    clock.now = 61.0
    p.stepped("a", 10)
    assert p.eta_s() is None  # too early to say: nothing finished, nothing a quarter done
    assert "ETA --:--" in p.line()
    clock.now = 62.0
    p.stepped("a", 50)  # half done in 2 s: a trial takes about 4 s
    assert p.eta_s() == pytest.approx(max(2.0, (4 * 4 + 2 + 2) / 2))
    clock.now = 66.0
    p.finished("a", ok=True)  # took 6 s
    p.finished("b", ok=True)  # took 6 s
    p.started("c")
    p.started("d")
    # 2 running with 6 s left each, 2 waiting x 6 s, on the 2 lanes seen: 12 s. The old estimate
    # (elapsed since the sweep began x work left / work done) said 66 x 4/2 = 132 s here.
    assert p.eta_s() == pytest.approx(12.0)
    clock.now = 69.0
    assert p.eta_s() == pytest.approx((2 * 6 + 3 + 3) / 2)
    clock.now = 72.0
    p.finished("c", ok=True)
    p.finished("d", ok=True)
    p.started("e")
    clock.now = 74.0
    assert p.eta_s() == pytest.approx(max(4.0, (6 + 4) / 2))  # median of 6, 6, 6, 6 s
    assert fmt_clock(p.eta_s()) == "00:05"


def test_a_retried_trial_starts_over():
    p, clock, out = _progress(total=1, steps=100)
    p.started("a")
    clock.now = 10.0
    p.stepped("a", 80)
    p.retried("a")
    assert p.retries == 1 and p.running["a"] == (10.0, 0)
    assert "1 retried" in p.line()


# --------------------------------------------------------------------------- a real sweep


@pytest.mark.ray
@pytest.mark.tf
def test_two_concurrent_trials_show_2_running_in_the_installed_scripts_progress_line(tmp_path):
    """Two trials on 2 CPUs meet (each waits until both have started) and then wait at a gate
    that the test opens only once the progress line has said "2 running". Run as a user would:
    the installed ``lrrt`` script in a folder holding the sweep file and its workload."""
    script = installed_lrrt()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "tests" / "sweeps" / "faulty.py", work / "twotrials.py")
    gate = tmp_path / "gate-open"
    spec = tiny_spec(name="two", workload="twotrials:build",
                     grid={"optimizer": ["sgd"], "batch_size": [32], "seed": [0, 1]},
                     workload_args={"meet_dir": str(tmp_path / "meet"), "meet_n": 2, "meet_s": 240,
                                    "gate": "held", "gate_file": str(gate), "gate_s": 300},
                     resources={"cpus_per_trial": 1, "max_concurrent": 2})
    (work / "two.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    err_log = tmp_path / "sweep.stderr"
    with open(err_log, "w") as err:
        proc = subprocess.Popen([str(script), "sweep", "two.yaml", "--out", "out"], cwd=work,
                                env=user_env(), stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)
    with reaped(proc):
        wait_until(lambda: re.search(r"^\[lrrt\] range tests 0/2 done \(0 failed\), 2 running", err_log.read_text(),
                                     re.M), 300, f"a '2 running' line in {err_log}", proc)
        gate.write_text("go")
        stdout, _ = proc.communicate(timeout=300)
    stderr = err_log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("[lrrt] ")]
    assert len(list((tmp_path / "meet").glob("start-*"))) == 2  # they did run at once
    assert lines[-1].startswith("[lrrt] range tests 2/2 done (0 failed), 0 running"), lines
    assert "2 trials: 2 ok, 0 failed, 0 missing" in stdout
