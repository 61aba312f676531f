"""A user's own model: a module in the current folder (installed ``lrrt``), the Python API, ``load``.

The folder example and the notebook cells are README.md's own (``readme_example``), run as
a user would: the installed console script from a temporary folder without ``PYTHONPATH``,
and a real Jupyter kernel (``nbclient`` + ``ipykernel``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from sweeps.cli import main
from tests.sweeps.conftest import readme_example, run_installed_lrrt, user_env


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "trials").glob("*.json")}


# --------------------------------------------------------------------------- folder + installed lrrt


@pytest.mark.ray
@pytest.mark.tf
def test_folder_example_with_the_installed_command_and_a_stale_ray_address_file(tmp_path):
    """README's folder example, the installed ``lrrt``: validate, sweep, find all exit 0.

    A private Ray temp dir holds a ``ray_current_cluster`` file pointing at a dead port (what
    a killed ``ray start --head`` leaves): the local sweep must start its own Ray anyway.
    """
    (tmp_path / "my_model.py").write_text(readme_example("my_model.py"))
    (tmp_path / "my_sweep.yaml").write_text(readme_example("my_sweep.yaml"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="lrrt-ray-", dir="/tmp"))  # short: Ray's socket paths
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
        env = user_env(RAY_TMPDIR=str(ray_tmp))
        commands = [shlex.split(line) for line in readme_example("commands").splitlines() if line.strip()]
        assert [c[:2] for c in commands] == [["lrrt", "validate"], ["lrrt", "sweep"], ["lrrt", "find"]]
        procs = [run_installed_lrrt(*cmd[1:], cwd=tmp_path, env=env) for cmd in commands]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    validate, sweep, find = procs
    assert validate.returncode == 0, validate.stderr
    assert "adam-bs32-s0" in validate.stdout and "my_model:build" in validate.stdout
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "runs/my_model/trials.csv")
    assert len(trials) == 2 and (trials["status"] == "ok").all(), trials[["name", "status", "error"]]
    assert find.returncode == 0, find.stderr[-3000:]
    assert "steepest" in find.stdout
    assert (tmp_path / "runs/find-my_model.build-adam-bs32/curve.csv").is_file()


# --------------------------------------------------------------------------- naming builders


def test_builder_names_are_stable_and_follow_the_source():
    from sweeps.api import resolve_spec
    from sweeps.naming import builder_ref
    from tests.sweeps.faulty import build as module_build

    def build(seed=0):
        return seed

    first, again = builder_ref(build), builder_ref(build)
    assert first == again and first.startswith(f"{__name__}:test_builder_names_are_stable_and_follow_the_source.<locals>.build@")

    def build(seed=0):  # noqa: F811 - same name, other code: another sweep
        return seed + 1

    assert builder_ref(build) != first
    config = {"name": "n", "grid": {"optimizer": ["sgd"], "batch_size": [8]}}
    spec, shipped = resolve_spec(config, build)
    assert shipped is build and spec.workload == builder_ref(build)
    assert resolve_spec(config, build)[0].fingerprint() == spec.fingerprint()
    # An importable module function is named as a sweep file would name it, and imported by name.
    named, none = resolve_spec(config, module_build)
    assert named.workload == "tests.sweeps.faulty:build" and none is None
    assert named.fingerprint() == resolve_spec(config, "tests.sweeps.faulty:build")[0].fingerprint()


def test_invalid_input_raises_one_type_naming_the_key(tmp_path):
    from sweeps import InvalidInput, sweep

    config = {"name": "n", "workload": "tests.sweeps.faulty:build", "grid": {"optimizer": ["sgd"], "batch_size": [8]}}
    with pytest.raises(InvalidInput) as info:
        sweep({**config, "range_test": {"start_lr": 1.0, "end_lr": 0.1}}, out=tmp_path / "a")
    assert info.value.key == "range_test.end_lr"
    with pytest.raises(InvalidInput) as info:
        sweep(config, workload="no_such_module_here:build", out=tmp_path / "b")
    assert info.value.key == "workload"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput) as info:
        sweep(config, out=tmp_path / "c")
    assert info.value.key == "out"
    with pytest.raises(InvalidInput) as info:
        sweep(config, out=tmp_path / "d", rank_by="best")
    assert info.value.key == "rank_by"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "d").exists()


def test_a_builder_that_cannot_be_pickled_is_refused_naming_it(tmp_path):
    from sweeps import InvalidInput, sweep

    lock = threading.Lock()

    def locked_build(seed=0):
        with lock:
            return seed

    config = {"name": "n", "grid": {"optimizer": ["sgd"], "batch_size": [8]}}
    with pytest.raises(InvalidInput) as info:
        sweep(config, workload=locked_build, out=tmp_path / "o")
    assert info.value.key == "workload" and "locked_build" in str(info.value)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- load


def test_load_on_a_partial_directory_gives_the_tables_of_lrrt_report(tmp_path, capsys):
    from sweeps import load
    from tests.sweeps.synthetic import standard_sweep

    out = tmp_path / "s"
    standard_sweep(out)
    next(iter(sorted((out / "trials").glob("*.json")))).unlink()  # one trial never finished
    result = load(out)
    assert not list(out.glob("*.csv")), "load writes nothing"
    assert main(["report", str(out), "-q"]) == 1
    assert result.n_missing == 1 and result.exit_code == 1
    assert result.trials.to_csv(index=False) == (out / "trials.csv").read_text()
    assert result.ranking.to_csv(index=False) == (out / "ranking.csv").read_text()
    pd.testing.assert_frame_equal(result.curves.reset_index(drop=True), pd.read_parquet(out / "curves.parquet"))
    html = load(out)._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html and "Partial results" in html
    assert set(result.recommendations) == set(result.ranking["optimizer"])
    assert result.report_html == out / "report.html" and "loss_vs_lr" in load(out).plots


# --------------------------------------------------------------------------- notebook


@pytest.mark.ray
@pytest.mark.tf
def test_notebook_example_runs_shows_the_result_and_resumes(tmp_path):
    """README's notebook cells in a real kernel: builder cell, sweep cell, result cell; then
    the sweep cell again in the same kernel, which must resume (no trial re-run)."""
    from tests.notebooks import errors, execute, mime

    cells = [readme_example("notebook builder"), readme_example("notebook sweep"), readme_example("notebook show")]
    check = "print(result.launched, result.skipped, result.n_ok, result.exit_code)"
    nb = execute([*cells, check, cells[1], check], tmp_path)
    assert not errors(nb)
    html = "".join(mime(nb.cells[2], "text/html"))
    assert "<table" in html and "adam-bs32" in html and "data:image/png;base64," in html
    printed = ["".join(o.get("text", "") for o in c.outputs if o.get("name") == "stdout").split() for c in nb.cells]
    assert printed[3] == ["2", "0", "2", "0"]  # first run: both trials launched, ok
    assert printed[5] == ["0", "2", "2", "0"]  # the cell again: both kept, none launched
    out = tmp_path / "runs/notebook"
    records = _records(out)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    assert all(r["attempts"] == 1 for r in records.values())
    assert json.loads((out / "sweep.json").read_text())["spec"]["workload"].startswith("__main__:build@")
    # Progress is one updating output, not a line per update; no Tune tables, no Ray log lines.
    displays = [o for o in nb.cells[1].outputs if o["output_type"] == "display_data"]
    assert len(displays) == 1 and displays[0]["data"]["text/plain"].startswith("[lrrt] range tests 2/2 done"), displays
    stderr = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.get("name") == "stderr")
    assert stderr.count("\n") == 1 and stderr.startswith("lrrt: sweep 'notebook'"), stderr


def test_a_sweep_file_without_workload_takes_the_builder_given(tmp_path):
    from sweeps.api import resolve_spec
    from sweeps.spec import SpecError

    path = tmp_path / "grid.yaml"
    path.write_text("name: g\ngrid: {optimizer: [sgd], batch_size: [8]}\n")

    def build(seed=0):
        return seed

    spec, shipped = resolve_spec(path, build)
    assert shipped is build and spec.source == path
    assert spec.workload.startswith(f"{__name__}:") and "@" in spec.workload
    with pytest.raises(SpecError) as info:
        resolve_spec(path)
    assert info.value.key == "workload" and str(path) in str(info.value)


def test_the_api_imports_neither_ray_nor_tensorflow():
    from tests.core.test_imports import loaded_after

    loaded = loaded_after("from sweeps import sweep, load, find, SweepResult, InvalidInput")
    assert loaded.isdisjoint({"ray", "tensorflow", "keras", "matplotlib"}), loaded
