"""One declaration of the range-test settings (lrrt_core.settings.RangeTest): every surface
gives the same settings object, with the defaults the truth benchmark measured. No TF, no Ray."""

from __future__ import annotations

import inspect

import pytest

from lrrt_core.finder import range_test
from lrrt_core.runner import run_workload
from lrrt_core.settings import DEFAULT_STEPS, FIELDS, RangeTest, SettingError, settings_from
from sweeps import api, cli
from sweeps.spec import SpecError, load_spec

NO_RANGE_TEST = "name: d\nworkload: digits_cnn\ngrid: {optimizer: [adam], batch_size: [32, 64]}\n"


def _file(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def _surfaces(tmp_path, argv: list[str], keywords: dict, section: str) -> dict[str, RangeTest]:
    """The settings each surface runs with for the same request, through the code each one runs."""
    spec = load_spec(_file(tmp_path, NO_RANGE_TEST + section))
    return {
        "range_test": settings_from(None, keywords),  # range_test(model, x, y, **keywords)
        "lrrt find": cli.find_settings(cli.build_parser().parse_args(["find", *argv])),
        "sweeps.find": api.find_settings(None, keywords),
        **{f"sweep file, batch {b}": spec.range_test.settings(b) for b in spec.grid.batch_size},
    }


def test_every_surface_gives_the_same_default_settings(tmp_path):
    got = _surfaces(tmp_path, [], {}, "")
    assert all(rt == RangeTest() for rt in got.values()), got
    assert RangeTest().steps == DEFAULT_STEPS == 200 and RangeTest().start_lr == 1e-6


def test_every_surface_gives_the_same_settings_for_the_same_request(tmp_path):
    keywords = dict(start_lr=1e-5, end_lr=3.0, steps=60, ladder="linear", loss="val", diverge_threshold=None,
                    smoothing=0.9, steps_per_call=4)
    argv = ["--start-lr", "1e-5", "--end-lr", "3", "--steps", "60", "--ladder", "linear", "--loss", "val",
            "--diverge-threshold", "inf", "--smoothing", "0.9", "--steps-per-call", "4"]
    section = ("range_test: {start_lr: 1.0e-5, end_lr: 3, steps: 60, ladder: linear, loss: val, "
               "diverge_threshold: null, smoothing: 0.9, steps_per_call: 4}\n")
    got = _surfaces(tmp_path, argv, keywords, section)
    want = RangeTest(**keywords)
    assert want.steps_per_call == 4
    for surface, rt in got.items():
        # the flag cannot say None: inf (never stops) is the same rule
        assert rt == want or (surface == "lrrt find" and rt.replace(diverge_threshold=None) == want), surface
        assert rt.threshold is None


def test_epochs_replaces_the_default_length_everywhere(tmp_path):
    got = _surfaces(tmp_path, ["--epochs", "2"], {"epochs": 2}, "range_test: {epochs: 2}\n")
    assert all(rt == RangeTest(epochs=2) and rt.steps is None for rt in got.values()), got
    assert RangeTest(epochs=2).replace(steps=30) == RangeTest(steps=30)  # one length, given two ways


def test_no_surface_declares_its_own_defaults():
    """The entry points take the settings whole or as ``**keywords``: none repeats a default."""
    for fn in (range_test, run_workload, api.find):
        params = inspect.signature(fn).parameters
        assert params["settings"].default is None, fn
        assert not set(params) & set(FIELDS), (fn, set(params) & set(FIELDS))
    flags = {a.dest: a for a in cli.build_parser()._subparsers._group_actions[0].choices["find"]._actions}
    for name, field in FIELDS.items():
        assert flags[name].default == field.default and flags[name].help == field.metadata["help"], name


def test_curve_params_record_every_setting():
    rt = RangeTest(epochs=3, steps_per_call=8)
    params = rt.params(steps=90)
    assert list(params) == list(FIELDS) and params["steps"] == 90 and params["epochs"] == 3
    assert RangeTest(diverge_threshold=float("inf")).params(10)["diverge_threshold"] is None


def test_the_defaults_are_the_ones_the_truth_benchmark_measured():
    """``tests/benchmarks/bench_truth.py`` chose the default suggestion on range tests run with
    these settings (and 200 fixed steps, its ``--steps`` default)."""
    from tests.benchmarks import bench_truth

    assert {k: getattr(RangeTest(), k) for k in bench_truth.RANGE} == bench_truth.RANGE
    assert bench_truth.parse([]).steps == RangeTest().steps


@pytest.mark.parametrize("keywords, setting", [
    ({"start_lr": 0}, "start_lr"), ({"end_lr": 1e-9}, "end_lr"), ({"steps": 1}, "steps"), ({"epochs": 0}, "epochs"),
    ({"ladder": "log"}, "ladder"), ({"loss": "test"}, "loss"), ({"diverge_threshold": 0.5}, "diverge_threshold"),
    ({"smoothing": 1.0}, "smoothing"), ({"steps_per_call": 0}, "steps_per_call"),
])
def test_a_bad_setting_is_named_the_same_way_everywhere(tmp_path, keywords, setting):
    with pytest.raises(SettingError) as err:
        RangeTest(**keywords)
    assert err.value.setting == setting
    with pytest.raises(SpecError) as spec_err:
        load_spec(_file(tmp_path, NO_RANGE_TEST + f"range_test: {keywords}\n".replace("'", "")))
    assert spec_err.value.key == f"range_test.{setting}"
    with pytest.raises(TypeError, match="unknown range-test setting"):
        api.find_settings(None, {"start": 1e-5})
