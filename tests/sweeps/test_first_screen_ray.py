"""What users read first, on real sweeps run as a user runs them (issue 21): the installed
``lrrt`` script from a temporary folder, a real local Ray, real Keras training, the report in
headless Chromium at 1400x900. Screenshots are kept next to each report
(``report-first-screen.png``) for a human to look at."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from lrrt_core.plot import fmt_lr
from sweeps.api import load
from sweeps.report import FIGURES
from tests.sweeps.conftest import REPO, run_installed_lrrt
from tests.sweeps.test_first_screen import _drawn_outside, first_screen

pytestmark = [pytest.mark.ray, pytest.mark.tf]


def _figures_inside(out) -> dict:
    result = load(out)
    figures = {kind: fig for kind in FIGURES if (fig := result.figure(kind)) is not None}
    return figures, {kind: bad for kind, fig in figures.items() if (bad := _drawn_outside(fig))}


def test_verified_quickstart_leads_with_the_verified_rate(tmp_path):
    """README's quickstart sweep, then ``lrrt verify`` (the top 4, one epoch each)."""
    sweep = run_installed_lrrt("sweep", str(REPO / "sweeps/configs/quickstart.yaml"), "--out", "qs", "-q",
                               cwd=tmp_path, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    verify = run_installed_lrrt("verify", "qs", "--top", "4", "--epochs", "1", cwd=tmp_path, timeout=900)
    assert verify.returncode == 0, verify.stderr[-3000:]
    out = tmp_path / "qs"
    ranking = pd.read_csv(out / "ranking.csv")
    best = ranking.sort_values("verified_rank").iloc[0]
    assert best["verified_rank"] == 1
    # lrrt verify's printout: the verified ranking first, the range test's after it.
    text = verify.stdout
    assert text.index("verified by short training") < text.index("range-test ranking")
    first_row = text.split("verified by short training")[1].splitlines()[2].split()
    assert first_row[:2] == ["1", str(best["config"])]
    # recipes.json: verified order, both ranks.
    recipes = json.loads((out / "recipes.json").read_text())["recipes"]
    assert [r["verified_rank"] for r in recipes[:4]] == [1, 2, 3, 4]
    assert recipes[0]["config"] == best["config"] and recipes[0]["rank"] == int(best["rank"])
    assert recipes[0]["lr"] == pytest.approx(best["verified_lr"]) and recipes[0]["lr_source"] == "verified"
    # the report's first screen holds the verified rate of the best verified configuration.
    seen = first_screen(out / "report.html", tmp_path, [fmt_lr(best["verified_lr"]), "Verified by short real"],
                        out / "report-first-screen.png")
    assert all(0 < bottom <= min(900, seen["height"]) for bottom in seen["where"].values()), seen
    assert seen["loaded"] == len(seen["alts"]) == 6 and "verification" in seen["alts"], seen
    rec = load(out).recommendations[str(best["optimizer"])]
    assert rec.verified_config == best["config"] and rec.lr == pytest.approx(best["verified_lr"])
    figures, outside = _figures_inside(out)
    assert len(figures) == 6 and outside == {}


def test_one_batch_size_sweep_has_figures_that_fit_and_no_lr_scaling(tmp_path):
    """README's folder example's shape (two optimizers, one batch size) on the digits workload."""
    spec = {"name": "one_bs", "workload": "digits_cnn", "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32]},
            "range_test": {"start_lr": 1.0e-4, "end_lr": 10.0, "steps": 60}}
    (tmp_path / "one_bs.yaml").write_text(yaml.safe_dump(spec))
    proc = run_installed_lrrt("sweep", "one_bs.yaml", "--out", "one_bs", "-q", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "one_bs"
    assert not (out / "plots" / "lr_scaling.png").exists()
    best = pd.read_csv(out / "ranking.csv").sort_values("rank").iloc[0]
    seen = first_screen(out / "report.html", tmp_path, ["Recommendations", str(best["config"])],
                        out / "report-first-screen.png")
    assert all(0 < bottom <= min(900, seen["height"]) for bottom in seen["where"].values()), seen
    assert "lr scaling" not in seen["alts"] and seen["loaded"] == len(seen["alts"]) == 4, seen
    figures, outside = _figures_inside(out)
    assert "lr_scaling" not in figures and len(figures) == 4 and outside == {}
