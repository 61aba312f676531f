"""Render an :class:`~sweeps.export.data.ExportData` as MLflow runs (drawing only).

In the experiment (default: the sweep's name):

* one **parent run** per sweep, named after it: the sweep's settings as params
  (``workload``, ``backend``, ``range_test.*``, ``grid.*``, ``rank_by``, ``verify.*``), the
  counts ``trials_ok`` / ``trials_failed`` / ``trials_missing`` as metrics, and as artifacts
  the sweep file (when it is still where it was run from), the manifest ``sweep.json``,
  ``report.html``, ``report.md``, ``recipes.json``, ``trials.csv``, ``ranking.csv``,
  ``verify.csv`` and ``plots/*.png``;
* one **child run** per configuration with a finished trial (``mlflow.parentRunId``), named
  after it (tag ``lrrt.config``): its axes and seeds as params; its ``ranking.csv`` values as metrics (suggested rates, loss, rank,
  verified rate, held-out loss and metric, verified rank); per seed ``seed<k>/loss``,
  ``seed<k>/smoothed_loss`` and ``seed<k>/lr`` as step metrics (the curve) and
  ``seed<k>/<value>`` for ``min_loss``, ``steps`` and every ``*_lr`` of ``trials.csv``.

Every run carries the tags ``lrrt.fingerprint``, ``lrrt.version``, ``lrrt.sweep`` and
``lrrt.role`` (``sweep`` or ``configuration``); the parent also ``lrrt.digest``, set last,
so an export cut short is never taken for a finished one.

Re-export: a parent run of the same fingerprint whose digest is the current one means
nothing changed: skipped. Otherwise the earlier parent and its children are deleted
(MLflow's own deletion: ``mlflow gc`` purges them) and the sweep is exported again.
MLflow enters here only, through ``mlflow.tracking.MlflowClient`` (``mlflow-skinny`` is
enough).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any
from urllib.parse import urlparse

from sweeps.export.data import ConfigExport, ExportData, TrackerError

__all__ = ["write_mlflow", "check_reachable", "sweep_params", "BATCH", "FIRST_METRICS"]

#: a child run's metrics logged first (MLflow's charts start with the first): the answer, then the rest.
FIRST_METRICS = ("min_loss_mean", "suggested_lr_gmean", "rank", "verified_lr", "verified_metric", "verified_rank")
#: MLflow's REST limit of metrics per ``log_batch`` call.
BATCH = 1000
_SPEC_PARAMS = ("workload", "workload_args", "backend", "grid", "range_test", "verify")


def check_reachable(uri: str | None, timeout: float = 5.0) -> None:
    """Fail fast (``TrackerError``) when an ``http(s)://`` tracking server does not answer.

    MLflow's client retries a refused connection for minutes; one TCP connect says at once
    whether anyone listens. Other URIs (a local store, ``databricks``) are left to the client.
    """
    if not uri or urlparse(uri).scheme not in ("http", "https"):
        return
    url = urlparse(uri)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise TrackerError(f"mlflow: cannot reach the tracking server {uri} ({err})") from None


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    elif value is not None:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)


def sweep_params(data: ExportData) -> dict[str, str]:
    """The parent run's params: the sweep's settings, flattened (``range_test.end_lr``...)."""
    out: dict[str, str] = {}
    for key in _SPEC_PARAMS:
        _flat(key, data.spec.get(key), out)
    out["rank_by"] = data.rank_by
    if data.verify_metric:
        out["verify.metric"] = data.verify_metric
    return {k: v[:6000] for k, v in out.items()}


def _tags(data: ExportData, role: str, **extra: str) -> dict[str, str]:
    return {"lrrt.fingerprint": data.fingerprint, "lrrt.version": data.version, "lrrt.sweep": data.name,
            "lrrt.role": role, **extra}


def _config_metrics(config: ConfigExport, timestamp: int):
    """Every metric of a child run: its ranking values, each seed's summary and curve."""
    from mlflow.entities import Metric

    first = [k for k in FIRST_METRICS if k in config.values]
    metrics = [Metric(k, config.values[k], timestamp, 0) for k in (*first, *(k for k in config.values if k not in first))]
    for t in config.trials:
        seed = f"seed{t.hparams.get('seed', 0)}"
        metrics += [Metric(f"{seed}/{k}", v, timestamp, 0) for k, v in t.values.items()]
        for name, values in t.series().items():
            metrics += [Metric(f"{seed}/{name}", float(v), timestamp, int(s)) for s, v in zip(t.step, values)]
    return metrics


def _log(client, run_id: str, metrics=(), params: dict[str, Any] | None = None) -> None:
    """``log_batch`` in as few calls as MLflow's limits allow (100 params, 1000 values a call)."""
    from mlflow.entities import Param

    params = [Param(k, str(v)) for k, v in (params or {}).items()]
    metrics = list(metrics)
    while params or metrics:
        now_params, params = params[:100], params[100:]
        room = BATCH - len(now_params)
        now_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=now_metrics, params=now_params)


def _experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id if exp is not None else client.create_experiment(name)


def _earlier(client, exp_id: str, data: ExportData) -> list:
    return client.search_runs([exp_id], filter_string=f"tags.`lrrt.fingerprint` = '{data.fingerprint}' "
                                                      "and tags.`lrrt.role` = 'sweep'")


def _delete_export(client, exp_id: str, parent) -> None:
    for child in client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"):
        client.delete_run(child.info.run_id)
    client.delete_run(parent.info.run_id)


def _export_runs(client, exp_id: str, data: ExportData) -> str:
    timestamp = int(time.time() * 1000)
    parent = client.create_run(exp_id, run_name=data.name, tags=_tags(data, "sweep", **{
        "lrrt.out_dir": str(data.out_dir), "lrrt.missing": ", ".join(data.missing)[:5000],
        "lrrt.failed": ", ".join(data.failed)[:5000]}))
    pid = parent.info.run_id
    from mlflow.entities import Metric

    counts = {"trials_ok": len(data.trials), "trials_failed": len(data.failed), "trials_missing": len(data.missing)}
    _log(client, pid, [Metric(k, float(v), timestamp, 0) for k, v in counts.items()], sweep_params(data))
    for name, path in data.artifacts.items():
        folder = name.rpartition("/")[0] or None
        client.log_artifact(pid, str(path), folder)
    for config in data.configs:
        child = client.create_run(exp_id, run_name=config.config, tags=_tags(
            data, "configuration", **{"mlflow.parentRunId": pid, "lrrt.config": config.config}))
        _log(client, child.info.run_id, _config_metrics(config, timestamp), config.params)
        client.set_terminated(child.info.run_id)
    client.set_tag(pid, "lrrt.digest", data.digest)
    client.set_terminated(pid)
    return pid


def write_mlflow(data: ExportData, uri: str | None = None, experiment: str | None = None) -> tuple[str, str, str]:
    """Export (or replace, or skip) the sweep's runs to the MLflow tracking ``uri``.

    Args:
        uri: a tracking URI; ``None``: MLflow's own default (``MLFLOW_TRACKING_URI``, else
            its local default store).
        experiment: the experiment's name (default: the sweep's name).

    Returns:
        ``(the tracking URI used, the parent run's id, "written" | "replaced" | "skipped")``.

    Raises:
        TrackerError: MLflow is not installed, or the server is unreachable or refused a write.
    """
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackerError('mlflow: not installed; pip install "lrrt[mlflow]"') from None
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    used = client.tracking_uri if hasattr(client, "tracking_uri") else str(uri)
    try:
        with _quiet_client():
            exp_id = _experiment(client, experiment or data.name)
            earlier = _earlier(client, exp_id, data)
            same = [r for r in earlier if r.data.tags.get("lrrt.digest") == data.digest]
            if same:
                return used, same[0].info.run_id, "skipped"
            for run in earlier:
                _delete_export(client, exp_id, run)
            return used, _export_runs(client, exp_id, data), "replaced" if earlier else "written"
    except MlflowException as err:
        raise TrackerError(f"mlflow ({used}): {err}") from None


@contextlib.contextmanager
def _quiet_client():
    """MLflow's client prints a "View run" line per run it ends on a server; ``lrrt export``
    prints one summary instead (the variable is MLflow's own switch, restored after)."""
    name = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
