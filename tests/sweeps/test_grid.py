"""sweeps.grid: trial count, order, stable ids, readable unique names, and the validate text."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

import sweeps
from sweeps.grid import Trial, expand, format_grid, trial_id
from sweeps.spec import SpecError, load_spec, spec_from_dict
from tests.sweeps.test_spec import workload_registry  # noqa: F401  (autouse fixture)

CONFIGS = Path(sweeps.__file__).parent / "configs"


def make(**grid):
    g = {"optimizer": ["sgd", "adam"], "batch_size": [32, 128]}
    g.update(grid)
    return {"name": "demo", "workload": "digits_cnn", "grid": g}


def test_count_is_product_of_axes():
    spec = spec_from_dict(make(seed=[0, 1, 2], axes={"width": [16, 32], "dropout": [0.0, 0.1, 0.2]}))
    trials = expand(spec)
    assert len(trials) == 2 * 2 * 3 * 2 * 3
    assert len({t.trial_id for t in trials}) == len(trials)
    assert len({t.name for t in trials}) == len(trials)
    assert len({t.config for t in trials}) == len(trials) // 3


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_expand(path):
    spec = load_spec(path)
    g = spec.grid
    trials = expand(spec)
    assert len(trials) == len(g.optimizer) * len(g.batch_size) * len(g.seed) * math.prod(len(v) for v in g.axes.values())
    assert len({t.name for t in trials}) == len(trials)


def test_quickstart_has_twelve_trials():
    assert len(expand(load_spec(CONFIGS / "quickstart.yaml"))) == 12


def test_order_and_names():
    spec = spec_from_dict(make(seed=[0, 1], axes={"width": [16, 32]}))
    names = [t.name for t in expand(spec)]
    assert names[:5] == [
        "sgd-bs32-width16-s0",
        "sgd-bs32-width16-s1",
        "sgd-bs32-width32-s0",
        "sgd-bs32-width32-s1",
        "sgd-bs128-width16-s0",
    ]
    assert names[-1] == "adam-bs128-width32-s1"


def test_trial_fields_and_params():
    d = make()
    d["grid"]["optimizer"] = [{"name": "adamw", "weight_decay": 0.01, "label": "adamw wd"}]
    t = expand(spec_from_dict(d))[0]
    assert isinstance(t, Trial)
    assert t.name == "adamw_wd-bs32-s0" and t.config == "adamw_wd-bs32"  # sanitized
    assert re.fullmatch(r"[A-Za-z0-9._=-]+", t.name)
    assert (t.optimizer, t.optimizer_name, t.optimizer_kwargs) == ("adamw wd", "adamw", {"weight_decay": 0.01})
    assert (t.batch_size, t.seed, t.axes) == (32, 0, {})
    p = t.params()
    assert set(p) == {"optimizer", "optimizer_name", "optimizer_kwargs", "batch_size", "seed", "axes"}
    assert json.loads(json.dumps(p)) == p
    p["axes"]["x"] = 1
    assert t.axes == {}  # params() hands out copies
    assert re.fullmatch(r"[0-9a-f]{12}", t.trial_id)
    assert t.trial_id == trial_id(spec_from_dict(d).fingerprint(), t.params())
    with pytest.raises(Exception):
        t.seed = 3


def test_float_axis_names():
    spec = spec_from_dict(make(axes={"dropout": [0.0, 0.25], "l2": [1e-05]}))
    assert expand(spec)[0].name == "sgd-bs32-dropout0.0-l21e-05-s0"


def test_ids_are_deterministic_and_spec_dependent():
    a = [t.trial_id for t in expand(spec_from_dict(make()))]
    b = [t.trial_id for t in expand(spec_from_dict(make()))]
    assert a == b
    changed = make()
    changed["range_test"] = {"end_lr": 1.0}
    c = [t.trial_id for t in expand(spec_from_dict(changed))]
    assert set(a).isdisjoint(c)
    # resources, retries, report: same trials, same ids (resume with other --cpus-per-trial)
    same = {**make(), "resources": {"cpus_per_trial": 2}, "retries": 0, "report": {"rank_by": "valley"}}
    assert [t.trial_id for t in expand(spec_from_dict(same))] == a
    # the grid is part of the fingerprint: another batch size makes another sweep
    more = make(batch_size=[32, 128, 256])
    ids_more = {t.name: t.trial_id for t in expand(spec_from_dict(more))}
    assert all(ids_more[t.name] != t.trial_id for t in expand(spec_from_dict(make())))


def test_ids_stable_across_processes():
    """The id must not depend on hash randomization or dict order of this process."""
    import subprocess
    import sys

    code = (
        "import sys, types; m = types.ModuleType('lrrt_core.workloads'); "
        "m.WORKLOADS = {'digits_cnn': None}; sys.modules.setdefault('lrrt_core.workloads', m); "
        "from sweeps.spec import spec_from_dict; from sweeps.grid import expand; "
        f"print(expand(spec_from_dict({make()!r}))[0].trial_id)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == expand(spec_from_dict(make()))[0].trial_id


def test_name_collision_is_a_spec_error():
    d = make(batch_size=[32])
    d["grid"]["optimizer"] = [{"name": "sgd", "label": "a-bs32-xq"}, {"name": "adam", "label": "a"}]
    d["grid"]["axes"] = {"x": ["", "q-bs32-x"]}
    # 'a-bs32-xq' + '-bs32' + '-x' + '' == 'a' + '-bs32' + '-x' + 'q-bs32-x'
    with pytest.raises(SpecError) as err:
        expand(spec_from_dict(d))
    assert err.value.key == "grid" and "named" in err.value.message


def test_format_grid_lists_every_trial_and_totals():
    d = make(seed=[0, 1], axes={"width": [16, 32]})
    d["grid"]["optimizer"] = ["sgd", {"name": "adamw", "weight_decay": 0.01, "label": "adamw-wd"}]
    d["resources"] = {"cpus_per_trial": 1.5, "gpus_per_trial": 0.5, "max_concurrent": 4}
    spec = spec_from_dict(d)
    trials = expand(spec)
    text = format_grid(spec, trials)
    for t in trials:
        assert t.name in text and t.trial_id in text
    n = len(trials)
    assert n == 16
    assert "demo" in text and "digits_cnn" in text
    assert "weight_decay=0.01" in text and "adamw-wd (adamw)" in text
    assert "width=16" in text
    assert f"trials    {n} " in text
    assert "1.5 CPU(s) and 0.5 GPU(s) per trial" in text
    assert f"{1.5 * n:g} CPUs, {0.5 * n:g} GPUs" in text
    assert "max concurrent trials: 4" in text
    assert "200 steps" in text and "exp ladder" in text


def test_format_grid_quickstart():
    spec = load_spec(CONFIGS / "quickstart.yaml")
    text = format_grid(spec, expand(spec))
    assert "trials    12 (12 configurations x 1 seed(s))" in text
    assert "all trials together: 12 CPUs, 0 GPUs" in text
    assert "as many as resources allow" in text
    assert str(spec.source) in text
    assert not text.endswith("\n")
