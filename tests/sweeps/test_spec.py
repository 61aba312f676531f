"""sweeps.spec: the shipped configs load, and every bad file gives one line naming file and key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import sweeps
from sweeps.spec import RANK_BY, ROOT_KEY, SpecError, SweepSpec, load_spec, spec_from_dict

CONFIGS = Path(sweeps.__file__).parent / "configs"


@pytest.fixture(autouse=True)
def workload_registry(monkeypatch):
    """Use ``lrrt_core.workloads.WORKLOADS`` if it imports; else a stand-in with the built-ins.

    The workloads module is written in parallel; the spec only needs its ``WORKLOADS`` names.
    """
    try:
        import lrrt_core.workloads  # noqa: F401
    except ImportError:
        stub = types.ModuleType("lrrt_core.workloads")
        stub.WORKLOADS = {"digits_cnn": None, "mnist_cnn": None}
        monkeypatch.setitem(sys.modules, "lrrt_core.workloads", stub)
    yield


GOOD = """\
name: demo
workload: digits_cnn
grid:
  optimizer: [sgd, adam]
  batch_size: [32, 64]
"""


def base() -> dict:
    return {"name": "demo", "workload": "digits_cnn", "grid": {"optimizer": ["sgd", "adam"], "batch_size": [32, 64]}}


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    spec = load_spec(path)
    assert isinstance(spec, SweepSpec)
    assert spec.source == path
    assert len(spec.fingerprint()) == 64


def test_quickstart_contents():
    spec = load_spec(CONFIGS / "quickstart.yaml")
    assert spec.workload == "digits_cnn"
    assert [o.label for o in spec.grid.optimizer] == ["sgd", "momentum", "adam", "rmsprop"]
    assert spec.grid.batch_size == [32, 64, 128]
    assert spec.grid.seed == [0]
    assert spec.resources.cpus_per_trial == 1
    # batch sizes compared at an equal sample budget: 240 / 120 / 60 steps
    assert spec.range_test.samples == 7680 and spec.range_test.steps is None
    assert [spec.range_test.steps_for(b) for b in spec.grid.batch_size] == [240, 120, 60]
    assert not spec.fixed_steps_over_batch_sizes and spec.report.rank_by == "centered_min_opt"


def test_shipped_files_comparing_batch_sizes_use_a_sample_budget():
    for path in sorted(CONFIGS.glob("*.yaml")):
        spec = load_spec(path)
        assert not spec.fixed_steps_over_batch_sizes, path.name
    verified = load_spec(CONFIGS / "digits_verified.yaml")
    assert verified.verify is not None and verified.verify.epochs == 2


def test_mnist_article_contents():
    spec = load_spec(CONFIGS / "mnist_article.yaml")
    assert spec.workload == "mnist_cnn"
    assert [o.name for o in spec.grid.optimizer] == ["sgd", "adam"]
    assert spec.grid.batch_size == [250]
    rt = spec.range_test
    assert (rt.start_lr, rt.end_lr, rt.epochs, rt.steps) == (1e-4, 10.0, 5, None)


def test_defaults():
    spec = spec_from_dict(base())
    assert spec.grid.seed == [0]
    assert spec.range_test.steps == 200 and spec.range_test.epochs is None
    assert spec.range_test.ladder == "exp" and spec.range_test.loss == "train"
    assert spec.range_test.diverge_threshold == 4.0 and spec.range_test.smoothing == 0.98
    assert spec.resources.cpus_per_trial == 1 and spec.resources.gpus_per_trial == 0
    assert spec.resources.max_concurrent is None
    assert spec.retries == 1 and spec.report.rank_by == "centered_min_opt"
    assert spec.verify is None and spec.range_test.samples is None
    assert spec.source is None


def test_frozen():
    spec = spec_from_dict(base())
    with pytest.raises(Exception):
        spec.name = "other"
    with pytest.raises(Exception):
        spec.range_test.steps = 3


def test_optimizer_entries_and_labels():
    d = base()
    d["grid"]["optimizer"] = [
        "sgd",
        {"name": "adamw", "weight_decay": 0.01},
        {"name": "adamw", "weight_decay": 0.1},
        {"name": "adam", "beta_2": 0.99, "label": "adam-b2"},
    ]
    opts = spec_from_dict(d).grid.optimizer
    assert [o.label for o in opts] == ["sgd", "adamw-weight_decay=0.01", "adamw-weight_decay=0.1", "adam-b2"]
    assert opts[1].kwargs == {"weight_decay": 0.01}
    assert opts[3].name == "adam" and opts[3].kwargs == {"beta_2": 0.99}


def test_yaml_float_without_dot_and_null_threshold(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD + "range_test: {start_lr: 1e-6, end_lr: 1e1, diverge_threshold: null}\n")
    rt = load_spec(p).range_test
    assert rt.start_lr == 1e-6 and rt.end_lr == 10.0 and rt.diverge_threshold is None


def test_round_trip_through_dump():
    d = base()
    d["grid"]["optimizer"] = ["sgd", {"name": "adamw", "weight_decay": 0.01, "label": "wd"}]
    d["grid"]["axes"] = {"width": [16, 32]}
    spec = spec_from_dict(d)
    again = spec_from_dict(spec.model_dump(mode="json", exclude={"source"}))
    assert again == spec and again.fingerprint() == spec.fingerprint()


def test_rank_by_names_match_suggest_methods():
    from lrrt_core import suggest

    assert set(RANK_BY) == set(suggest.METHODS)
    d = base()
    d["report"] = {"rank_by": "sma"}  # keras-lr-finder's name is accepted
    assert spec_from_dict(d).report.rank_by == "sma_rule"


def test_fingerprint_covers_results_not_resources():
    a = spec_from_dict(base())
    assert a.fingerprint() == spec_from_dict(base()).fingerprint()
    for key, value in [("resources", {"cpus_per_trial": 2}), ("retries", 3), ("description", "x"),
                       ("report", {"rank_by": "valley"})]:
        assert spec_from_dict({**base(), key: value}).fingerprint() == a.fingerprint(), key
    for key, value in [("range_test", {"end_lr": 1.0}), ("name", "other"), ("workload", "mnist_cnn"),
                       ("workload_args", {"width": 8})]:
        assert spec_from_dict({**base(), key: value}).fingerprint() != a.fingerprint(), key


def test_with_resources():
    spec = spec_from_dict(base())
    new = spec.with_resources(cpus_per_trial=0.5, gpus_per_trial=1, max_concurrent=4)
    assert (new.resources.cpus_per_trial, new.resources.gpus_per_trial, new.resources.max_concurrent) == (0.5, 1, 4)
    assert spec.resources.cpus_per_trial == 1  # original untouched
    assert new.fingerprint() == spec.fingerprint()
    assert spec.with_resources().resources == spec.resources
    with pytest.raises(SpecError) as err:
        spec.with_resources(gpus_per_trial=-1)
    assert err.value.key == "resources.gpus_per_trial"
    with pytest.raises(SpecError) as err:
        spec.with_resources(gpus_per_trial=1.5)
    assert err.value.key == "resources.gpus_per_trial"


def test_user_workload_ref(tmp_path):
    d = base()
    d["workload"] = "json.decoder:JSONDecoder"  # an importable module, not imported by the check
    assert spec_from_dict(d).workload == "json.decoder:JSONDecoder"
    d["workload"] = "no_such_pkg_lrrt.mod:build"
    with pytest.raises(SpecError) as err:
        spec_from_dict(d)
    assert err.value.key == "workload" and "not found" in err.value.message


def test_import_is_light():
    code = (
        "import sys, sweeps.spec, sweeps.grid; "
        "bad = [m for m in ('ray', 'tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- bad files

BAD = [
    # (id, yaml text, expected key, a word the message must contain)
    ("unknown-top-key", GOOD + "optimiser: [sgd]\n", "optimiser", "unknown key"),
    ("diverge-inf", GOOD + "range_test: {diverge_threshold: .inf}\n", "range_test.diverge_threshold", "finite"),
    ("source-key-in-file", GOOD + "source: x.yaml\n", "source", "unknown key"),
    ("unknown-range-test-key", GOOD + "range_test: {start: 1.0e-5}\n", "range_test.start", "unknown key"),
    ("unknown-resources-key", GOOD + "resources: {gpus: 1}\n", "resources.gpus", "unknown key"),
    ("unknown-grid-key", GOOD + "  seeds: 3\n", "grid.seeds", "unknown key"),
    ("missing-name", GOOD.replace("name: demo\n", ""), "name", "missing"),
    ("missing-grid", "name: x\nworkload: digits_cnn\n", "grid", "missing"),
    ("batch-not-int", GOOD.replace("[32, 64]", "[32, abc]"), "grid.batch_size[1]", "integer"),
    ("batch-float", GOOD.replace("[32, 64]", "[32, 64.5]"), "grid.batch_size[1]", "integer"),
    ("batch-zero", GOOD.replace("[32, 64]", "[32, 0]"), "grid.batch_size[1]", "positive"),
    ("batch-dup", GOOD.replace("[32, 64]", "[32, 64, 32]"), "grid.batch_size[2]", "duplicate"),
    ("batch-not-list", GOOD.replace("[32, 64]", "32"), "grid.batch_size", "list"),
    ("empty-optimizers", GOOD.replace("[sgd, adam]", "[]"), "grid.optimizer", "empty"),
    ("empty-batch", GOOD.replace("[32, 64]", "[]"), "grid.batch_size", "empty"),
    ("empty-axis", GOOD + "  axes: {width: []}\n", "grid.axes.width", "at least one"),
    ("axis-dup", GOOD + "  axes: {width: [16, 32, 16]}\n", "grid.axes.width[2]", "duplicate"),
    ("axis-not-list", GOOD + "  axes: {width: 16}\n", "grid.axes.width", "list"),
    ("axis-bad-value", GOOD + "  axes: {width: [{a: 1}]}\n", "grid.axes.width[0]", "number"),
    ("axis-bad-name", GOOD + "  axes: {my-width: [1]}\n", "grid.axes.my-width", "identifier"),
    ("reserved-axis", GOOD + "  axes: {seed: [1, 2]}\n", "grid.axes.seed", "reserved"),
    ("axis-in-workload-args", GOOD + "  axes: {width: [8]}\nworkload_args: {width: 4}\n",
     "grid.axes.width", "workload_args"),
    ("seed-negative", GOOD + "  seed: [0, -1]\n", "grid.seed[1]", ">= 0"),
    ("seed-count", GOOD + "  seed: 3\n", "grid.seed", "list"),
    ("start-lr-zero", GOOD + "range_test: {start_lr: 0}\n", "range_test.start_lr", "> 0"),
    ("start-lr-text", GOOD + "range_test: {start_lr: tiny}\n", "range_test.start_lr", "number"),
    ("start-lr-bool", GOOD + "range_test: {start_lr: true}\n", "range_test.start_lr", "number"),
    ("end-below-start", GOOD + "range_test: {start_lr: 1.0e-3, end_lr: 1.0e-4}\n", "range_test.end_lr",
     "greater than start_lr"),
    ("end-equals-start", GOOD + "range_test: {start_lr: 0.1, end_lr: 0.1}\n", "range_test.end_lr",
     "greater than start_lr"),
    ("steps-one", GOOD + "range_test: {steps: 1}\n", "range_test.steps", ">= 2"),
    ("steps-and-epochs", GOOD + "range_test: {steps: 100, epochs: 1}\n", "range_test.epochs", "not both"),
    ("epochs-zero", GOOD + "range_test: {epochs: 0}\n", "range_test.epochs", ">= 1"),
    ("bad-ladder", GOOD + "range_test: {ladder: log}\n", "range_test.ladder", "'exp'"),
    ("bad-loss", GOOD + "range_test: {loss: test}\n", "range_test.loss", "'val'"),
    ("diverge-below-one", GOOD + "range_test: {diverge_threshold: 0.5}\n", "range_test.diverge_threshold", "> 1"),
    ("smoothing-one", GOOD + "range_test: {smoothing: 1.0}\n", "range_test.smoothing", "< 1"),
    ("unknown-optimizer", GOOD.replace("[sgd, adam]", "[sgd, adma]"), "grid.optimizer[1]", "unknown optimizer"),
    ("unknown-optimizer-mapping", GOOD.replace("[sgd, adam]", "[sgd, {name: adma}]"), "grid.optimizer[1].name",
     "unknown optimizer"),
    ("optimizer-mapping-no-name", GOOD.replace("[sgd, adam]", "[{weight_decay: 0.1}]"), "grid.optimizer[0].name",
     "needs 'name'"),
    ("unknown-optimizer-kwarg",
     GOOD.replace("[sgd, adam]", "[sgd, momentum, {name: adamw, weight_decy: 0.01}]"),
     "grid.optimizer[2].weight_decy", "weight_decay"),
    ("optimizer-learning-rate", GOOD.replace("[sgd, adam]", "[{name: sgd, learning_rate: 0.1}]"),
     "grid.optimizer[0].learning_rate", "range test"),
    ("duplicate-optimizer", GOOD.replace("[sgd, adam]", "[sgd, adam, sgd]"), "grid.optimizer[2].label", "unique"),
    ("duplicate-labels",
     GOOD.replace("[sgd, adam]", "[{name: adam, label: a}, {name: adamw, weight_decay: 0.1, label: a}]"),
     "grid.optimizer[1].label", "duplicate"),
    ("unknown-workload", GOOD.replace("digits_cnn", "digits_rnn"), "workload", "unknown workload"),
    ("malformed-workload-ref", GOOD.replace("digits_cnn", "mypkg:models:build"), "workload", "package.module:function"),
    ("malformed-workload-ref2", GOOD.replace("digits_cnn", "my-pkg:build"), "workload", "malformed"),
    ("bad-rank-by", GOOD + "report: {rank_by: best}\n", "report.rank_by", "steepest"),
    ("negative-retries", GOOD + "retries: -1\n", "retries", ">= 0"),
    ("gpus-negative", GOOD + "resources: {gpus_per_trial: -1}\n", "resources.gpus_per_trial", ">= 0"),
    ("gpus-fraction-above-one", GOOD + "resources: {gpus_per_trial: 1.5}\n", "resources.gpus_per_trial", "whole"),
    ("cpus-zero", GOOD + "resources: {cpus_per_trial: 0}\n", "resources.cpus_per_trial", "> 0"),
    ("max-concurrent-zero", GOOD + "resources: {max_concurrent: 0}\n", "resources.max_concurrent", ">= 1"),
    ("range-test-not-mapping", GOOD + "range_test: fast\n", "range_test", "mapping"),
    ("yaml-syntax", GOOD + "range_test: {start_lr: [1\n", ROOT_KEY, "YAML syntax error"),
    ("not-a-mapping", "- name: demo\n- workload: digits_cnn\n", ROOT_KEY, "mapping"),
    ("empty-file", "", ROOT_KEY, "mapping"),
]


@pytest.mark.parametrize("text,key,word", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file(tmp_path, text, key, word):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert err.key == key, str(err)
    assert err.file == str(path)
    assert word in err.message, str(err)
    line = str(err)
    assert line == f"{path}: {key}: {err.message}"
    assert "\n" not in line and "pydantic" not in line and "Input should" not in line


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == ROOT_KEY and str(path) in str(info.value) and "no such file" in str(info.value)


def test_spec_error_is_value_error():
    assert issubclass(SpecError, ValueError)
    err = SpecError("f.yaml", "grid.seed", "bad\nthing")
    assert str(err) == "f.yaml: grid.seed: bad thing"
    assert (err.file, err.key, err.message) == ("f.yaml", "grid.seed", "bad thing")


def test_dict_errors_name_dict():
    d = base()
    d["retries"] = "many"
    with pytest.raises(SpecError, match=r"^<dict>: retries: expected an integer"):
        spec_from_dict(d)


def test_manifest_dump_round_trips_with_source():
    spec = load_spec(CONFIGS / "quickstart.yaml")
    again = spec_from_dict(spec.model_dump(mode="json"))
    assert again == spec and again.source == spec.source


def test_yaml_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: demo
        workload: digits_cnn
        grid: {optimizer: [sgd
    """))
    with pytest.raises(SpecError, match=r"line \d+, column \d+"):
        load_spec(path)
