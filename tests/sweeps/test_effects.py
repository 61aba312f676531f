"""Per-axis effects (``sweeps.effects``) on the standard sweep's known answers, with failed
configurations, single-valued axes and non-finite values. No Ray, no TensorFlow, no figures.

Standard sweep (``tests.sweeps.synthetic``): a configuration's mean min loss is
``MIN_SMOOTHED + OFFSETS[config]`` (seeds at -/+0.05), its recommended rate
``base_scale(config) * BASE`` (seeds at 2x and 0.5x), ``BASE`` the ladder's rate at the step
every suggestion lands on.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sweeps.effects import EFFECT_COLUMNS, axis_effects
from sweeps.reduce import reduce_dir
from tests.sweeps import synthetic as S

MIN = S.MIN_SMOOTHED


def _gmean(xs):
    return float(np.exp(np.mean(np.log(xs))))


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    d = tmp_path_factory.mktemp("std")
    S.standard_sweep(d)
    return reduce_dir(d)


def _base(red) -> float:
    return float(red.ranking.set_index("config").loc["sgd-bs32", "suggested_lr_gmean"]) / S.base_scale("sgd", 32)


def _table(effects, axis):
    return {e.axis: e for e in effects}[axis].table


def test_standard_sweep_by_hand(standard):
    effects = axis_effects(standard)
    base = _base(standard)
    assert [e.axis for e in effects] == ["optimizer", "batch_size", "seed"]
    assert all(list(e.table.columns) == EFFECT_COLUMNS for e in effects)
    opt = _table(effects, "optimizer")
    assert opt["value"].tolist() == ["adam", "sgd"] and opt["n"].tolist() == [3, 3]
    np.testing.assert_allclose(opt["loss_mean"], [MIN + (0.1 + 0.2 + 0.5) / 3, MIN + (0.3 + 0.2 + 0.4) / 3], atol=1e-12)
    np.testing.assert_allclose(opt["loss_best"], [MIN + 0.1, MIN + 0.2], atol=1e-12)
    assert opt["best_config"].tolist() == ["adam-bs32", "sgd-bs128"]
    np.testing.assert_allclose(opt["lr_gmean"], [base * _gmean([S.base_scale(o, b) for b in S.BATCH_SIZES])
                                                 for o in ("adam", "sgd")], rtol=1e-9)
    np.testing.assert_allclose(opt["lr_best"], [base * S.base_scale("adam", 32), base * S.base_scale("sgd", 128)],
                               rtol=1e-9)
    assert effects[0].effect == pytest.approx(0.9 / 3 - 0.8 / 3, abs=1e-12)
    bs = _table(effects, "batch_size")
    assert bs["value"].tolist() == [32, 128, 512] and bs["n"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(bs["loss_mean"], [MIN + 0.2, MIN + 0.2, MIN + 0.45], atol=1e-12)
    np.testing.assert_allclose(bs["loss_best"], [MIN + 0.1, MIN + 0.2, MIN + 0.4], atol=1e-12)
    assert bs["best_config"].tolist()[::2] == ["adam-bs32", "sgd-bs512"]  # bs128 is a tie (0.2 both)
    assert effects[1].effect == pytest.approx(0.25, abs=1e-12)


def test_seed_effect_from_the_ok_trials(standard):
    seed = _table(axis_effects(standard), "seed")
    base, mean = _base(standard), sum(S.OFFSETS.values()) / 6
    assert seed["value"].tolist() == [0, 1] and seed["n"].tolist() == [6, 6]
    np.testing.assert_allclose(seed["loss_mean"], [MIN + mean - 0.05, MIN + mean + 0.05], atol=1e-12)
    np.testing.assert_allclose(seed["loss_best"], [MIN + 0.05, MIN + 0.15], atol=1e-12)
    assert seed["best_config"].tolist() == ["adam-bs32", "adam-bs32"]
    gm = _gmean([S.base_scale(o, b) for o in S.OPTIMIZERS for b in S.BATCH_SIZES])
    np.testing.assert_allclose(seed["lr_gmean"], [base * gm * 2, base * gm / 2], rtol=1e-9)
    np.testing.assert_allclose(seed["lr_best"], [base * S.base_scale("adam", 32) * 2,
                                                 base * S.base_scale("adam", 32) / 2], rtol=1e-9)
    assert axis_effects(standard)[-1].effect == pytest.approx(0.1, abs=1e-12)


def test_failed_configurations_and_trials_do_not_count(tmp_path):
    S.standard_sweep(tmp_path, fail={"adam-bs32-s0": "x", "adam-bs32-s1": "x", "sgd-bs512-s1": "x"})
    effects = axis_effects(reduce_dir(tmp_path))
    opt = _table(effects, "optimizer").set_index("value")
    assert opt["n"].tolist() == [2, 3]  # adam-bs32 has no ok seed
    assert opt.loc["adam", "loss_mean"] == pytest.approx(MIN + 0.35, abs=1e-12)
    assert opt.loc["adam", "best_config"] == "adam-bs128"
    # sgd-bs512's mean is its one ok seed: 0.40 - 0.05
    assert opt.loc["sgd", "loss_mean"] == pytest.approx(MIN + (0.3 + 0.2 + 0.35) / 3, abs=1e-12)
    bs = _table(effects, "batch_size").set_index("value")
    assert bs["n"].tolist() == [1, 2, 2] and bs.loc[32, "best_config"] == "sgd-bs32"
    seed = _table(effects, "seed").set_index("value")
    assert seed["n"].tolist() == [5, 4]
    assert seed.loc[1, "loss_best"] == pytest.approx(MIN + 0.25, abs=1e-12)  # adam-bs128 / sgd-bs128, seed 1


def test_axes_with_one_value_are_left_out_and_extra_axes_come_before_the_seed(tmp_path):
    entries = [S.trial_entry(o, 32, 0, axes={"width": w, "depth": 2}) for o in ("sgd", "adam") for w in (8, 16)]
    recs = [S.ok_record(e, 0.1 * i, 1e-3) for i, e in enumerate(entries)]
    S.write_sweep(tmp_path, "one", entries, recs)
    effects = axis_effects(reduce_dir(tmp_path))
    assert [e.axis for e in effects] == ["optimizer", "width"]  # one batch size, one depth, one seed
    width = _table(effects, "width")
    assert width["value"].tolist() == [8, 16] and width["n"].tolist() == [2, 2]
    np.testing.assert_allclose(width["loss_mean"], [MIN + 0.1, MIN + 0.2], atol=1e-12)  # (0+0.2)/2, (0.1+0.3)/2
    assert effects[1].effect == pytest.approx(0.1, abs=1e-12)


def _with(red, **columns):
    """``red`` with ranking cells replaced: ``config=(column, value)``."""
    ranking = red.ranking.copy().set_index("config")
    for config, (column, value) in columns.items():
        ranking.loc[config.replace("_", "-"), column] = value
    return dataclasses.replace(red, ranking=ranking.reset_index())


def test_non_finite_losses_and_rates_are_left_out(standard):
    base = _base(standard)
    red = _with(standard, adam_bs32=("min_loss_mean", math.inf), sgd_bs32=("suggested_lr_gmean", 0.0))
    red = _with(red, sgd_bs128=("suggested_lr_gmean", math.nan), sgd_bs512=("suggested_lr_gmean", -1.0))
    effects = axis_effects(red)
    bs = _table(effects, "batch_size").set_index("value")
    assert bs.loc[32, "n"] == 1 and bs.loc[32, "loss_mean"] == pytest.approx(MIN + 0.3, abs=1e-12)
    opt = _table(effects, "optimizer").set_index("value")
    assert opt.loc["adam", "n"] == 2 and opt.loc["adam", "best_config"] == "adam-bs128"
    assert math.isnan(opt.loc["sgd", "lr_gmean"])  # 0, NaN and a negative rate: no rate left
    assert opt.loc["adam", "lr_gmean"] == pytest.approx(base * _gmean([S.base_scale("adam", b) for b in (128, 512)]),
                                                        rel=1e-9)


def test_an_axis_left_with_one_finite_value_has_no_effect(standard):
    red = standard
    for b in S.BATCH_SIZES:
        red = _with(red, **{f"adam_bs{b}": ("min_loss_mean", math.nan)})
    opt = {e.axis: e for e in axis_effects(red)}["optimizer"]
    assert opt.table["value"].tolist() == ["sgd"] and math.isnan(opt.effect)


def test_nothing_to_compare(standard, tmp_path):
    assert axis_effects(dataclasses.replace(standard, ranking=standard.ranking.iloc[:0])) == []
    S.standard_sweep(tmp_path, skip={e for e in S.standard_sweep(tmp_path / "names")})
    assert axis_effects(reduce_dir(tmp_path)) == []  # no ok trial at all


def test_a_null_axis_value_is_a_value_of_its_own(tmp_path):
    """``axes: {wd: [null, 0.01]}``: the configurations without weight decay are a row (None),
    not dropped with the whole axis."""
    entries = [S.trial_entry(o, 32, s, axes={"wd": w}) for o in ("sgd", "adam") for w in (None, 0.01) for s in (0, 1)]
    offsets = {("sgd", None): 0.1, ("sgd", 0.01): 0.3, ("adam", None): 0.2, ("adam", 0.01): 0.6}
    recs = [S.ok_record(e, offsets[(e["params"]["optimizer"], e["params"]["axes"]["wd"])], 1e-3) for e in entries]
    S.write_sweep(tmp_path, "null", entries, recs)
    effects = {e.axis: e for e in axis_effects(reduce_dir(tmp_path))}
    assert list(effects) == ["optimizer", "wd", "seed"]
    wd = effects["wd"].table
    assert wd["value"].tolist() == [0.01, None] and wd["n"].tolist() == [2, 2]
    np.testing.assert_allclose(wd["loss_mean"], [MIN + 0.45, MIN + 0.15], atol=1e-12)
    assert wd["best_config"].tolist() == ["sgd-bs32-wd0.01", "sgd-bs32-wdNone"]
    assert effects["wd"].effect == pytest.approx(0.3, abs=1e-12)
