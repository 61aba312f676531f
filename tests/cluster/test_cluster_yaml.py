"""cluster.yaml passes Ray's own offline validation; broken copies fail it.

``prepare_config`` merges the AWS defaults (a top-level ``dict.update``: any top-level key
we leave out comes from Ray's defaults.yaml, including its *nightly wheel* setup command)
and ``validate_config`` checks the result against ``ray/autoscaler/ray-schema.json``
(``additionalProperties: false`` at the top level and in each node type, resources must be
integers). Neither makes a cloud call.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
RAY_VERSION = "2.60.0"


def _load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _check(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _all_commands(cfg: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    cmds = [c for k in keys for c in cfg.get(k, [])]
    for nt in cfg["available_node_types"].values():
        for k in ("initialization_commands", "worker_setup_commands"):
            cmds += nt.get(k, [])
    return cmds


def test_cluster_yaml_passes_ray_validation():
    prepared = _check(_load())
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["max_workers"] == 0
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    gpu_counts = sorted(t["resources"]["GPU"] for t in gpu_types.values())
    assert gpu_counts[0] == 1 and gpu_counts[-1] > 1, "a single- and a multi-GPU group"
    for t in gpu_types.values():
        assert t["min_workers"] == 0 and 0 < t["max_workers"] <= prepared["max_workers"]
        assert all(isinstance(v, int) for v in t["resources"].values())


def test_commands_pin_ray_and_never_use_the_nightly_wheel():
    prepared = _check(_load())
    cmds = _all_commands(prepared)
    text = "\n".join(cmds)
    assert "ray-wheels" not in text and "dev0" not in text and "nightly" not in text.lower()
    installs = [c for c in cmds if "pip install" in c and re.search(r"\bray\[", c)]
    assert installs, "Ray is installed by the setup commands"
    for c in installs:
        assert f"=={RAY_VERSION}" in c, c
    assert any("lrrt" in c and "pip install" in c for c in prepared["setup_commands"]), "project installed on every node"
    assert prepared["docker"] in ({}, None) or re.search(r":\d+\.\d+\.\d+", prepared["docker"]["image"])
    for key, first_word in (("head_start_ray_commands", "--head"), ("worker_start_ray_commands", "--address")):
        start = prepared[key]
        assert re.search(r"\bray stop\b", start[0]), start
        assert any(re.search(r"\bray start\b", c) and first_word in c for c in start[1:]), start


def test_no_credentials_in_file():
    text = CLUSTER_YAML.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)aws_(secret_)?access_key", text)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("fractional_gpu", "0.5 is not of type 'integer'"),
        ("misspelled_top_level_key", "'setup_comands' was unexpected"),
        ("misspelled_node_type_key", "'max_worker' was unexpected"),
        ("missing_head_type", "head_node_type"),
    ],
)
def test_broken_copies_fail_validation(breakage, message):
    cfg = _load()
    types = cfg["available_node_types"]
    gpu_type = next(n for n, t in types.items() if t["resources"].get("GPU", 0) > 0)
    if breakage == "fractional_gpu":
        types[gpu_type]["resources"]["GPU"] = 0.5
    elif breakage == "misspelled_top_level_key":
        cfg["setup_comands"] = cfg.pop("setup_commands")
    elif breakage == "misspelled_node_type_key":
        types[gpu_type]["max_worker"] = types[gpu_type].pop("max_workers")
    elif breakage == "missing_head_type":
        cfg["head_node_type"] = "no_such_type"
    import jsonschema

    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)) as info:
        _check(cfg)
    assert message in str(info.value)
