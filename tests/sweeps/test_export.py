"""``lrrt export`` / ``SweepResult.export`` / ``report: {export: ...}`` (issue 24), read back with
the trackers' own readers and compared value by value with the tables ``lrrt report`` wrote.

No Ray, no TensorFlow training, no mocks: the sweeps are written by hand
(``tests.sweeps.synthetic``; one of them with a verification stage), reduced by ``lrrt
report``; TensorBoard's ``EventAccumulator`` and a real TensorBoard server read the event
files, MLflow's ``MlflowClient`` reads a local SQLite store (MLflow's own default kind) and a
real ``mlflow server``, both servers started here on a free port of localhost.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sweeps
from lrrt_core import __version__
from sweeps.cli import main
from sweeps.export import TrackerError, export
from sweeps.report import rebuild
from sweeps.run import _finish
from sweeps.spec import SpecError, load_spec
from tests.conftest import missing_tool
from tests.sweeps import synthetic as S
from tests.sweeps.conftest import reaped, tiny_spec, wait_until
from tests.sweeps.test_exit_codes import _verified_sweep

@pytest.fixture(scope="module", autouse=True)
def here(tmp_path_factory) -> Path:
    """The module's working directory (MLflow keeps a local store's artifacts in ``./mlruns``).

    No tracker phones home from a test; TensorBoard's reader uses its TF-free file layer (its
    documented ``tensorboard.compat.notf`` switch), so no test here imports TensorFlow."""
    for tool in ("tensorboard", "mlflow", "flask"):  # flask: the mlflow server; all in the test extra
        if importlib.util.find_spec(tool) is None:
            missing_tool(tool, 'pip install -e ".[test]"')  # skips here, fails under CI
    mp = pytest.MonkeyPatch()
    cwd = tmp_path_factory.mktemp("cwd")
    mp.chdir(cwd)
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("DO_NOT_TRACK", "true")
    if "tensorflow" not in sys.modules:
        mp.setitem(sys.modules, "tensorboard.compat.notf", type(sys)("tensorboard.compat.notf"))
    yield cwd
    mp.undo()


@pytest.fixture(scope="module")
def local_store(here) -> str:
    """One local MLflow store (SQLite, MLflow's default kind) for the module: made once."""
    return f"sqlite:///{here / 'mlflow.db'}"


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> Path:
    """12 ok range tests of 6 configurations and 36 verification trainings; the report written."""
    out = tmp_path_factory.mktemp("verified") / "sweep"
    _verified_sweep(out)
    rebuild(out)
    return out


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    """2 optimizers x 1 batch size x 2 widths x 2 seeds: one trial failed, one has no record yet."""
    out = tmp_path_factory.mktemp("partial") / "sweep"
    entries, records = [], []
    for i, (opt, width, seed) in enumerate((o, w, s) for o in ("sgd", "adam") for w in (16, 32) for s in (0, 1)):
        entry = S.trial_entry(opt, 64, seed, {"width": width})
        entries.append(entry)
        if entry["name"] == "adam-bs64-width32-s1":
            continue
        records.append(S.failed_record(entry, "boom") if entry["name"] == "sgd-bs64-width16-s1"
                       else S.ok_record(entry, 0.1 * i, 1e-3 * width * (seed + 1)))
    S.write_sweep(out, "partial sweep", entries, records)
    source = out.parent / "partial.yaml"  # the sweep file it was run from (MLflow keeps a copy)
    source.write_text("name: partial sweep\n# the sweep file\n")
    sweeps.store.write_manifest(out, {**sweeps.store.read_manifest(out), "source": str(source)})
    rebuild(out)
    return out


def _tables(out: Path):
    trials = pd.read_csv(out / "trials.csv")
    return trials, pd.read_parquet(out / "curves.parquet"), pd.read_csv(out / "ranking.csv")


def _numbers(row: pd.Series, names) -> dict[str, float]:
    return {k: float(row[k]) for k in names if pd.notna(row[k])}


def _trial_values(trials: pd.DataFrame, row: pd.Series) -> dict[str, float]:
    return _numbers(row, ["min_loss", "steps", *(c for c in trials.columns if c.endswith("_lr"))])


def _config_values(ranking: pd.DataFrame, config: str, axes=("width",)) -> dict[str, float]:
    row = ranking.set_index("config").loc[config]
    skip = {"optimizer", "batch_size", "rank_group", *axes}
    return {k: float(v) for k, v in row.items() if k not in skip and pd.notna(v)
            and (pd.api.types.is_number(v) or isinstance(v, np.bool_))}


# --------------------------------------------------------------------------- TensorBoard


def _read_run(folder: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    ea = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    ea.Reload()
    return {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in ea.Tensors(tag)]
            for tag in ea.Tags()["tensors"] if not tag.startswith("_hparams_")} | {"_acc": ea}


def _session_hparams(ea) -> dict:
    from tensorboard.plugins.hparams import metadata

    content = ea.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def _f32(values) -> list[float]:
    """The values as TensorBoard keeps a scalar: rounded to float32 (``tf.summary.scalar``'s type)."""
    return [float(v) for v in np.asarray(list(values), dtype=np.float32)]


def _check_tensorboard(root: Path, out: Path, axes=()) -> None:
    """Every run under ``root`` against the tables of ``out`` (as float32, TensorBoard's type): each
    curve step by step, each summary value, each HParams row; and the experiment lists every axis
    and value."""
    from tensorboard.plugins.hparams import metadata

    trials, curves, ranking = _tables(out)
    ok = trials[trials["status"] == "ok"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(ok["name"])
    for _, row in ok.iterrows():
        run = _read_run(root / row["name"])
        assert [len(list((root / row["name"]).glob("events.out.tfevents.*")))] == [1]  # never a second file
        curve = curves[curves["trial"] == row["trial_id"]]
        for tag, col in (("loss/raw", "loss"), ("loss/smoothed", "smoothed_loss"), ("lr", "lr")):
            assert run[tag] == list(zip(curve["step"], _f32(curve[col]))), (row["name"], tag)
        summary = {tag: v[0][1] for tag, v in run.items() if tag not in ("loss/raw", "loss/smoothed", "lr", "_acc")}
        expected = {f"summary/{k}": v for k, v in _trial_values(trials, row).items()} | {
            f"config/{k}": v for k, v in _config_values(ranking, row["config"], axes).items()}
        assert summary == dict(zip(expected, _f32(expected.values()))), row["name"]
        hparams = _session_hparams(run["_acc"])
        assert hparams == {"optimizer": row["optimizer"], "batch_size": float(row["batch_size"]),
                           "seed": float(row["seed"]), **{a: float(row[a]) for a in axes}}
    top = _read_run(root)["_acc"]
    experiment = metadata.parse_experiment_plugin_data(top.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content)
    assert [h.name for h in experiment.hparam_infos] == ["optimizer", "batch_size", "seed", *axes]
    assert sorted(v.number_value for v in experiment.hparam_infos[1].domain_discrete.values) == sorted(
        set(ok["batch_size"].astype(float)))
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"summary/min_loss", "summary/suggested_lr", "config/rank"} <= metric_tags


def test_tensorboard_export_reads_back_equal_to_the_tables_and_reexport_skips(verified, tmp_path):
    summary = sweeps.load(verified).export(tensorboard=tmp_path / "tb")
    assert [t.action for t in summary.targets] == ["written"] and summary.complete
    root = tmp_path / "tb" / "demo_sweep"
    _check_tensorboard(root, verified)
    ranking = pd.read_csv(verified / "ranking.csv")
    assert ranking["verified_lr"].notna().all()  # so the verified values were compared above
    assert {"config/verified_lr", "config/verified_metric", "config/verified_rank"} <= set(_read_run(root / "adam-bs32-s0"))
    files = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))
    again = export(verified, tensorboard=tmp_path / "tb")
    assert [t.action for t in again.targets] == ["skipped"]
    assert sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*")) == files  # untouched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, data: dict | None = None):
    import json
    import urllib.request

    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_a_real_tensorboard_serves_every_curve_and_the_hparams_experiment(verified, tmp_path):
    """TensorBoard itself (its default loader, the Rust data server, which ignores float64
    scalars) serves each run's curve and summary values, and the HParams plugin the axes."""
    export(verified, tensorboard=tmp_path / "tb")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = ["tensorboard", "--logdir", str(tmp_path / "tb"), "--host", "127.0.0.1", "--port", str(port)]
    start = (f"import sys, types; sys.argv = {argv!r}; "  # TensorBoard's TF-free mode: starts in seconds
             "sys.modules['tensorboard.compat.notf'] = types.ModuleType('notf'); "
             "from tensorboard.main import run_main; run_main()")
    trials, curves, _ = _tables(verified)
    ok = trials[trials["status"] == "ok"]
    with reaped(subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)) as server:
        try:
            def loaded() -> bool:
                try:
                    return set(_get_json(f"{url}/data/plugin/scalars/tags")) == {f"demo_sweep/{n}" for n in ok["name"]}
                except OSError:
                    return False

            wait_until(loaded, 60, "TensorBoard to load every run", server)
            for _, row in ok.iterrows():
                run = f"demo_sweep/{row['name']}"
                curve = curves[curves["trial"] == row["trial_id"]]
                served = _get_json(f"{url}/data/plugin/scalars/scalars?run={run}&tag=loss/smoothed")
                assert [(s, v) for _, s, v in served] == list(zip(curve["step"], _f32(curve["smoothed_loss"])))
                served = _get_json(f"{url}/data/plugin/scalars/scalars?run={run}&tag=summary/suggested_lr")
                assert [v for _, _, v in served] == _f32([row["suggested_lr"]])
            experiment = _get_json(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
            assert [h["name"] for h in experiment["hparamInfos"]] == ["batch_size", "optimizer", "seed"]
            assert experiment["metricInfos"][0]["name"]["tag"] == "summary/min_loss"
        finally:
            _stop_group(server)


def test_a_log_folder_of_another_sweep_is_refused_and_left_alone(verified, partial, tmp_path):
    (tmp_path / "tb" / "demo_sweep").mkdir(parents=True)
    (tmp_path / "tb" / "demo_sweep" / "mine.txt").write_text("keep")
    assert main(["export", str(verified), "--tensorboard", str(tmp_path / "tb"), "-q"]) == 2
    assert [p.name for p in (tmp_path / "tb" / "demo_sweep").iterdir()] == ["mine.txt"]
    assert main(["export", str(verified), "-q"]) == 2  # no tracker named


# --------------------------------------------------------------------------- MLflow


def _check_mlflow(uri: str, out: Path, experiment: str, axes=()) -> str:
    """The parent and child runs in ``experiment`` against ``out``'s tables and files; returns
    the parent's id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    trials, curves, ranking = _tables(out)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags["lrrt.role"] == "sweep"]
    assert len(parents) == 1  # never a second export of the same sweep
    parent = parents[0]
    manifest = sweeps.store.SweepDir(out).read_manifest()
    assert parent.data.tags["lrrt.fingerprint"] == manifest.fingerprint
    assert parent.data.tags["lrrt.version"] == __version__
    assert parent.data.metrics == {"trials_ok": float((trials["status"] == "ok").sum()),
                                   "trials_failed": float((trials["status"] == "failed").sum()),
                                   "trials_missing": float((trials["status"] == "missing").sum())}
    files = {name: out / name for name in ("report.html", "recipes.json", "sweep.json", "ranking.csv", "trials.csv",
                                           "plots/loss_vs_lr.png")}
    if manifest.source:
        files[f"sweep_file/{Path(manifest.source).name}"] = Path(manifest.source)
    for name, path in files.items():
        local = client.download_artifacts(parent.info.run_id, name, str(out.parent / f"dl-{experiment}"))
        assert Path(local).read_bytes() == path.read_bytes(), name
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    ok = trials[trials["status"] == "ok"]
    assert sorted(children) == sorted(ok["config"].unique())
    for config, child in children.items():
        rows = ok[ok["config"] == config]
        expected = _config_values(ranking, config, axes)
        for _, row in rows.iterrows():
            seed = f"seed{row['seed']}"
            expected |= {f"{seed}/{k}": v for k, v in _trial_values(trials, row).items()}
            curve = curves[curves["trial"] == row["trial_id"]]
            for col in ("loss", "smoothed_loss", "lr"):
                history = sorted((m.step, m.value) for m in client.get_metric_history(child.info.run_id, f"{seed}/{col}"))
                assert history == list(zip(curve["step"], curve[col])), (config, seed, col)
                expected[f"{seed}/{col}"] = float(curve[col].iloc[-1])
        assert child.data.metrics == expected, config
        first = rows.iloc[0]
        assert child.data.tags["lrrt.config"] == config
        assert child.data.params == {"optimizer": first["optimizer"],
                                     "batch_size": str(first["batch_size"]), "seeds": ", ".join(map(str, rows["seed"])),
                                     **{a: str(first[a]) for a in axes}}
        assert child.data.tags["lrrt.fingerprint"] == manifest.fingerprint
    return parent.info.run_id


def test_mlflow_local_store_reads_back_equal_to_the_tables_and_reexport_skips(verified, local_store):
    summary = sweeps.load(verified).export(mlflow=local_store)
    assert [t.action for t in summary.targets] == ["written"]
    first = _check_mlflow(local_store, verified, "demo sweep")
    assert summary.targets[0].run_id == first
    again = export(verified, mlflow=local_store)
    assert [(t.action, t.run_id) for t in again.targets] == [("skipped", first)]
    _check_mlflow(local_store, verified, "demo sweep")  # still one parent, the same runs


def test_a_partial_sweep_from_a_copied_folder_exports_what_finished_then_the_finished_one_replaces_it(
        partial, local_store, tmp_path, capsys):
    copy = tmp_path / "copied"
    shutil.copytree(partial, copy)
    args = ["export", str(copy), "--tensorboard", str(tmp_path / "tb"), "--mlflow", local_store,
            "--experiment", "lrrt-tests"]
    assert main(args) == 1  # like lrrt report: not every trial is there
    out = capsys.readouterr().out
    assert "exported 6 trials of 4 configurations" in out
    assert "no result yet (1): adam-bs64-width32-s1" in out and "failed (1): sgd-bs64-width16-s1" in out
    _check_tensorboard(tmp_path / "tb" / "partial_sweep", copy, axes=("width",))
    first = _check_mlflow(local_store, copy, "lrrt-tests", axes=("width",))
    # the missing trial finishes; lrrt report rebuilds the tables; the export replaces the earlier one
    S.write_sweep(copy, "partial sweep", sweeps.store.read_manifest(copy)["trials"],
                  [S.ok_record(S.trial_entry("adam", 64, 1, {"width": 32}), 0.7, 0.064)])
    rebuild(copy)
    assert main(args) == 1  # one trial still failed
    out = capsys.readouterr().out
    assert out.count("replaced the earlier export with 7 trials of 4 configurations") == 2 and "no result yet" not in out
    _check_tensorboard(tmp_path / "tb" / "partial_sweep", copy, axes=("width",))
    assert _check_mlflow(local_store, copy, "lrrt-tests", axes=("width",)) != first


def test_an_unreachable_tracker_fails_that_tracker_only(verified, tmp_path, capsys):
    dead = f"http://127.0.0.1:{_free_port()}"  # a port nobody listens on
    code = main(["export", str(verified), "--tensorboard", str(tmp_path / "tb"), "--mlflow", dead])
    captured = capsys.readouterr()
    assert code == 1 and f"lrrt: mlflow: FAILED: cannot reach the tracking server {dead}" in captured.err
    assert "exported 12 trials" in captured.out and (tmp_path / "tb" / "demo_sweep" / "adam-bs32-s0").is_dir()
    with pytest.raises(TrackerError, match="cannot reach") as err:
        sweeps.load(verified).export(mlflow=dead)
    assert err.value.summary.trials == 12


# --------------------------------------------------------------------------- the sweep file's report.export


def test_report_export_in_a_sweep_file_is_validated_with_the_file_and_key_named(write_spec):
    good = write_spec(tiny_spec(report={"export": {"tensorboard": "runs/tb", "mlflow": True}}))
    assert load_spec(good).report.export.mlflow is True
    for export_, key in (({"tensorbord": "x"}, "report.export.tensorbord"), ({}, "report.export"),
                         ({"mlflow": 5}, "report.export.mlflow"), ({"tensorboard": ""}, "report.export.tensorboard")):
        path = write_spec(tiny_spec(report={"export": export_}), name="bad.yaml")
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert str(err.value).startswith(f"{path}: {key}: "), str(err.value)
    assert main(["validate", str(path)]) == 2


def _with_export(out: Path, settings: dict, write_spec) -> None:
    """The sweep's manifest with ``report:`` as ``lrrt sweep`` stores it from a sweep file saying
    ``report: {export: settings}`` (the validated spec's JSON form)."""
    spec = load_spec(write_spec(tiny_spec(report={"export": settings}), name="with_export.yaml"))
    manifest = sweeps.store.read_manifest(out)
    manifest["spec"] = {**manifest["spec"], "report": spec.model_dump(mode="json")["report"]}
    sweeps.store.write_manifest(out, manifest)


def test_a_finished_sweep_exports_as_its_file_says_and_an_unreachable_tracker_is_a_warning(partial, tmp_path,
                                                                                          write_spec):
    out = tmp_path / "sweep"
    shutil.copytree(partial, out)
    dead = f"http://127.0.0.1:{_free_port()}"  # a port nobody listens on
    _with_export(out, {"tensorboard": str(tmp_path / "tb"), "mlflow": dead}, write_spec)
    said: list[str] = []
    report = (out / "report.html").read_bytes()
    run = _finish(out, sweeps.load(out).reduction, 0, 0, 0, said.append)  # where lrrt sweep / verify end
    assert run.exit_code == 1 and (out / "report.html").read_bytes() == report  # the result is untouched
    assert any(line.startswith("lrrt: export: tensorboard:") for line in said)
    assert any(line.startswith(f"lrrt: warning: export: mlflow: FAILED: cannot reach the tracking server {dead}")
               for line in said), said
    assert said[-1].startswith("lrrt: warning: the report is written") and f"--mlflow {dead}" in said[-1]
    _check_tensorboard(tmp_path / "tb" / "partial_sweep", out, axes=("width",))
    said.clear()
    _finish(out, sweeps.load(out).reduction, 0, 0, 1, said.append)  # interrupted: no export yet
    assert not [line for line in said if "export" in line]


# --------------------------------------------------------------------------- a real mlflow server


def _mlflow_server(tmp_path: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "server-artifacts")]
    log = open(tmp_path / "server.log", "wb")
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
                                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job queue: starts faster


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_a_real_mlflow_server_gets_the_same_runs(partial, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with reaped(_mlflow_server(tmp_path, port)) as server:
        try:
            wait_until(lambda: _answers(url), 120, "the mlflow server to answer", server)
            summary = export(partial, mlflow=url)
            assert [t.action for t in summary.targets] == ["written"], summary.lines()
            _check_mlflow(url, partial, "partial sweep", axes=("width",))
            stored = sorted(p.name for p in (tmp_path / "server-artifacts").rglob("*") if p.is_file())
            assert "report.html" in stored and "loss_vs_lr.png" in stored  # uploaded through the server
        finally:
            _stop_group(server)
    assert not _answers(url)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def test_export_values_of_a_method_without_an_answer_are_left_out(verified):
    data = sweeps.export.export_data(sweeps.load(verified))
    for t in data.trials:
        assert all(not math.isnan(v) for v in t.values.values())
        assert "diverged_lr" not in t.values  # the synthetic curves never diverge: an empty cell


def test_exporting_to_tensorboard_imports_neither_tensorflow_nor_ray(verified, tmp_path):
    """tensorboard's own EventFileWriter opens files through tf.io.gfile, which imports TensorFlow
    (seconds) when it is installed: the export writes its records without it."""
    code = (f"import sys, sweeps.export\nsweeps.export.export({str(verified)!r}, tensorboard={str(tmp_path)!r})\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'ray', 'torch', 'jax'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "demo_sweep" / "adam-bs32-s0").is_dir()
