"""The report at cluster scale: per-axis effects against a hand computation, and a
600-configuration sweep that stays quick, small and legible (issue 11)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sweeps import reduce, report
from sweeps.effects import axis_effects
from tests.sweeps import scale as SC
from tests.sweeps import synthetic as S
from tests.sweeps.test_report import CHROMIUM, _chromium
from tests.conftest import missing_tool


def _gmean(xs):
    return float(np.exp(np.mean(np.log(xs))))


# --------------------------------------------------------------------------- per-axis effects
def test_axis_effects_match_a_hand_computation(tmp_path):
    SC.scale_sweep(tmp_path, 3)
    red = reduce.reduce_dir(tmp_path)
    effects = {e.axis: e for e in axis_effects(red)}
    assert list(effects) == ["optimizer", "batch_size", "width", "seed"]
    # Every configuration's suggestion sits on the same ladder step: lr = gmean scale * BASE_LRS[k].
    one = red.ranking.set_index("config").loc["sgd-bs32-width16"]
    base = one["suggested_lr_gmean"] / SC.S.base_scale("sgd", 32)
    opts, sizes, widths = list(S.OPTIMIZERS), list(S.BATCH_SIZES), SC.widths(3)

    def loss(o, b, w):
        return S.MIN_SMOOTHED + SC.config_loss_offset(o, b, w)

    def lr(o, b, w):
        return base * S.base_scale(o, b) * SC.width_scale(w)

    grid = [(o, b, w) for o in opts for b in sizes for w in widths]
    for axis, pos, values in (("optimizer", 0, opts), ("batch_size", 1, sizes), ("width", 2, widths)):
        t = effects[axis].table.set_index("value")
        assert sorted(t.index.tolist(), key=str) == sorted(values, key=str)
        for v in values:
            cells = [c for c in grid if c[pos] == v]
            best = min(cells, key=lambda c: loss(*c))
            assert t.loc[v, "n"] == len(cells)
            assert t.loc[v, "loss_mean"] == pytest.approx(np.mean([loss(*c) for c in cells]), abs=1e-9)
            assert t.loc[v, "loss_best"] == pytest.approx(loss(*best), abs=1e-9)
            assert t.loc[v, "best_config"] == f"{best[0]}-bs{best[1]}-width{best[2]}"
            assert t.loc[v, "lr_gmean"] == pytest.approx(_gmean([lr(*c) for c in cells]), rel=1e-9)
            assert t.loc[v, "lr_best"] == pytest.approx(lr(*best), rel=1e-9)
    # effects: batch size 0.35 - 0 ... mean over bs of its loss; the range of the per-value means
    assert effects["batch_size"].effect == pytest.approx(max(SC.BS_LOSS.values()) - min(SC.BS_LOSS.values()), abs=1e-9)
    assert effects["optimizer"].effect == pytest.approx(0.2, abs=1e-9)
    assert effects["width"].effect == pytest.approx(SC.width_loss(16) - SC.width_loss(48), abs=1e-9)
    # seeds: the loss differs by exactly 0.1 between the two seeds, the rate by 4x
    seed = effects["seed"].table.set_index("value")
    assert seed.loc[1, "loss_mean"] - seed.loc[0, "loss_mean"] == pytest.approx(0.1, abs=1e-9)
    assert seed.loc[0, "lr_gmean"] / seed.loc[1, "lr_gmean"] == pytest.approx(4.0, rel=1e-9)
    assert effects["seed"].effect == pytest.approx(0.1, abs=1e-9)


def test_per_axis_section_in_both_reports(tmp_path):
    """The quickstart-like grid (optimizer x batch size x seed) and one with an extra axis."""
    for sub, make in (("plain", lambda d: S.standard_sweep(d)), ("width", lambda d: SC.scale_sweep(d, 2))):
        d = tmp_path / sub
        d.mkdir()
        make(d)
        reduce.write_outputs(d)
        html, md = (d / "report.html").read_text(), (d / "report.md").read_text()
        assert "<h2>Per-axis effects</h2>" in html and "## Per-axis effects" in md
        assert html.index("<h2>Recommendations</h2>") < html.index("<h2>Per-axis effects</h2>") < html.index("<h2>Plots</h2>")
        for axis in ("optimizer", "batch size", "seed") + (("width",) if sub == "width" else ()):
            assert f"<th>{axis}</th>" in html and f"| {axis} |" in md
    # standard sweep by hand: adam's mean min loss over its 3 batch sizes = MIN + mean(0.1, 0.2, 0.5)
    red = reduce.reduce_dir(tmp_path / "plain")
    t = {e.axis: e for e in axis_effects(red)}["optimizer"].table.set_index("value")
    assert t.loc["adam", "loss_mean"] == pytest.approx(S.MIN_SMOOTHED + np.mean([0.1, 0.2, 0.5]), abs=1e-9)
    assert t.loc["sgd", "best_config"] == "sgd-bs128"
