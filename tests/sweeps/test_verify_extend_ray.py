"""Verification rounds beyond the candidate grid's edge, end to end on a real Ray (the session's shared head)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.sweeps.conftest import run_lrrt, tiny_spec

pytestmark = [pytest.mark.ray, pytest.mark.tf]


def test_a_grid_far_below_the_best_rate_is_extended_twice_and_resumes(tmp_path, write_spec, ray_env):
    """Candidates 0.01 and 0.03 x the recommendation: the best is the highest every round, so
    the launcher plans 0.09 x, then 0.27 x (two extension rounds, far below the range test's
    loss minimum, which caps them), writes each plan into sweep.json, and warns that the rate
    is still at the edge. Run again: every training is kept, none re-run."""
    spec = write_spec(tiny_spec(
        name="edge", grid={"optimizer": ["adam"], "batch_size": [32], "seed": [0, 1]},
        verify={"steps": 20, "candidates": [0.01, 0.03]},
    ))
    out = tmp_path / "out"
    proc = run_lrrt("sweep", spec, "--out", out, env=ray_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("2 more trainings beyond the candidate grid's edge") == 2, proc.stderr[-3000:]
    assert "warning: adam-bs32: the verified rate" in proc.stderr
    assert "is the highest candidate tried (2 extension rounds did not leave the edge)" in proc.stderr
    verify = pd.read_csv(out / "verify.csv")
    assert sorted(verify["factor"].round(6).unique()) == [0.01, 0.03, 0.09, 0.27]
    assert len(verify) == 8 and (verify["status"] == "ok").all() and (verify["steps"] == 20).all()
    assert not verify["diverged"].any()
    manifest = json.loads((out / "sweep.json").read_text())
    planned = {t["trial_id"] for t in manifest["verify_trials"]}
    assert planned == set(verify["trial_id"]) and len(planned) == 8
    assert {t["name"] for t in manifest["verify_trials"]} >= {"adam-bs32-s0-x0.27", "adam-bs32-s1-x0.09"}
    ranking = pd.read_csv(out / "ranking.csv").iloc[0]
    assert ranking["verified_lr"] == pytest.approx(0.27 * ranking["suggested_lr_gmean"])
    assert bool(ranking["verified_at_edge"]) and 0.27 * ranking["suggested_lr_gmean"] < ranking["lr_at_min_loss_gmean"]
    assert "2 extension rounds did not leave the edge" in (out / "report.md").read_text()
    before = {p.name: p.read_text() for p in (out / "verify").glob("*.json")}

    again = run_lrrt("sweep", spec, "--out", out, env=ray_env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.name: p.read_text() for p in (out / "verify").glob("*.json")} == before  # nothing re-run
    assert json.loads((out / "sweep.json").read_text())["verify_trials"] == manifest["verify_trials"]
