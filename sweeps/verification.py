"""The verification stage's computing: decide its trials, reduce its records. No Ray, no TensorFlow.

A range test *suggests* a learning rate per configuration; verification *checks* it with
short real trainings. :func:`plan` decides the trials from a finished range-test reduction
(for each configuration — or the ``top`` ones — and each of its seeds, one training per
candidate rate ``recommended_lr * c``); :func:`reduce_verification` turns their records
into ``verify.csv`` (one row per training) and the ``verified_*`` columns of
``ranking.csv``; :func:`recipes` gives the training recipe per configuration.

Records live in ``OUT/verify/<id>.json`` (same store, same atomic writes, same resume rule
as range tests). A verification trial's id hashes the sweep fingerprint, the configuration,
the seed, the verification budget and the candidate rate itself, so a recommendation that
changes (a range test re-run) plans new trials and never reuses stale ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from lrrt_core.verify import candidate_rates
from sweeps.spec import SweepSpec, VerifySpec
from sweeps.store import Manifest, TrialEntry, TrialRecord

VERIFY_DIR = "verify"
#: ranking.csv columns this stage adds.
RANKING_COLUMNS = ["verified_lr", "verified_val_loss", "verified_metric", "verified_rank"]
_ROW_COLUMNS = ["trial_id", "name", "config", "optimizer", "batch_size", "seed", "factor", "lr",
                "status", "error", "val_loss", "train_loss", "diverged", "steps", "wall_s", "node", "gpu_ids"]


@dataclasses.dataclass(frozen=True)
class VerifyTrial:
    """One short training at a fixed rate: a configuration's seed at one candidate rate.

    Has the attributes the launcher reads from any trial (``trial_id``, ``name``,
    ``config``, ``optimizer_name``, ``optimizer_kwargs``, ``batch_size``, ``seed``, ``axes``,
    :meth:`params`).
    """

    trial_id: str
    name: str
    config: str
    optimizer: str
    optimizer_name: str
    optimizer_kwargs: dict[str, Any]
    batch_size: int
    seed: int
    axes: dict[str, Any]
    factor: float
    lr: float

    def params(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "optimizer_name": self.optimizer_name,
                "optimizer_kwargs": dict(self.optimizer_kwargs), "batch_size": self.batch_size,
                "seed": self.seed, "axes": dict(self.axes), "factor": self.factor, "lr": self.lr}


def _verify_id(fingerprint: str, params: dict[str, Any], verify: VerifySpec) -> str:
    budget = {"epochs": verify.epochs, "steps": verify.steps}
    text = json.dumps(["verify", fingerprint, params, budget], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def plan(spec: SweepSpec, trials, ranking: pd.DataFrame, verify: VerifySpec | None = None) -> list[VerifyTrial]:
    """The verification trials for a reduced sweep.

    Args:
        spec: the sweep (its fingerprint names the trials).
        trials: the range-test trials (``sweeps.grid.expand(spec)``): configurations and seeds.
        ranking: the range-test ranking (``Reduction.ranking``): ``rank`` and the
            recommendation ``suggested_lr_gmean`` per configuration.
        verify: the settings (default: ``spec.verify``).

    Returns:
        Trials in ranking order, then seed, then candidate order. A configuration without a
        recommendation (no ok range test, or no suggestion) gets none.
    """
    verify = verify or spec.verify
    if verify is None:
        return []
    ranked = ranking.sort_values("rank")
    if verify.top is not None:
        ranked = ranked.head(verify.top)
    recommended = {str(r.config): float(r.suggested_lr_gmean) for r in ranked.itertuples()}
    by_config: dict[str, list] = {}
    for t in trials:
        by_config.setdefault(t.config, []).append(t)
    fingerprint = spec.fingerprint()
    out = []
    for config, lr in recommended.items():
        if not (math.isfinite(lr) and lr > 0):
            continue
        for t in by_config.get(config, []):
            for factor, rate in zip(verify.candidates, candidate_rates(lr, verify.candidates)):
                vt = VerifyTrial("", f"{t.name}-x{factor:.3g}", config, t.optimizer, t.optimizer_name,
                                 dict(t.optimizer_kwargs), t.batch_size, t.seed, dict(t.axes),
                                 float(factor), rate)
                out.append(dataclasses.replace(vt, trial_id=_verify_id(fingerprint, vt.params(), verify)))
    return out


def verify_config(trial: VerifyTrial, spec: SweepSpec, verify: VerifySpec) -> dict[str, Any]:
    """The JSON-able config a verification trial needs on a worker."""
    from sweeps.trainable import common_config

    return {**common_config(trial, spec), "lr": trial.lr, "epochs": verify.epochs, "steps": verify.steps}


# --------------------------------------------------------------------------- reduce


def manifest_entries(planned: list[VerifyTrial]) -> list[dict[str, Any]]:
    """The plan as the manifest stores it (``sweep.json`` key ``verify_trials``)."""
    return [TrialEntry.of(t).to_json() for t in planned]


def rows(entries: list[TrialEntry], records: dict[str, TrialRecord], axis_cols: list[str]) -> pd.DataFrame:
    """``verify.csv``: one row per planned verification trial (``missing`` when no record yet).

    Args:
        entries: the manifest's ``verify_trials``.
        records: ``{trial_id: record}`` from ``OUT/verify/``.
        axis_cols: the ranking's extra axis columns (``axis_`` prefix on a clash).
    """
    out = []
    for e in entries:
        p, rec = e.params, records.get(e.trial_id) or TrialRecord(e.trial_id, status="missing")
        res = rec.payload or {}
        row = {"trial_id": e.trial_id, "name": e.name, "config": e.config, "optimizer": p["optimizer"],
               "batch_size": p["batch_size"], "seed": p["seed"], "factor": p["factor"], "lr": p["lr"],
               "status": rec.status, "error": rec.error or "",
               "val_loss": _num(res.get("val_loss")), "train_loss": _num(res.get("train_loss")),
               "diverged": bool(res.get("diverged", False)), "steps": res.get("steps"),
               "wall_s": _num(rec.wall_s), "node": rec.node or "", "gpu_ids": rec.gpu_ids or ""}
        axes = p.get("axes") or {}
        for a in axis_cols:
            row[a] = axes.get(a, axes.get(a.removeprefix("axis_")))
        for name, value in (res.get("metrics") or {}).items():
            row[name] = _num(value)
        out.append(row)
    lead = _ROW_COLUMNS[:6] + axis_cols
    if not out:
        return pd.DataFrame(columns=lead + _ROW_COLUMNS[6:])
    frame = pd.DataFrame(out)
    return frame[lead + [c for c in frame.columns if c not in lead]]


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def per_candidate(verify_rows: pd.DataFrame, metric: str, higher_is_better: bool) -> pd.DataFrame:
    """Mean over seeds per (configuration, candidate): ``config, factor, lr, val_loss, metric, n_ok``.

    A diverged training scores the worst possible value (``val_loss`` inf, a maximised
    metric its NaN taken as -inf), so a candidate that blows up is never picked.
    """
    ok = verify_rows[verify_rows["status"] == "ok"].copy()
    if ok.empty or metric not in ok:
        return pd.DataFrame(columns=["config", "factor", "lr", "val_loss", "metric", "n_ok"])
    worst = -math.inf if higher_is_better else math.inf
    ok["val_loss"] = ok["val_loss"].where(np.isfinite(ok["val_loss"]), math.inf)
    ok["metric"] = ok[metric].astype(float).where(np.isfinite(ok[metric].astype(float)), worst)
    g = ok.groupby(["config", "factor"], sort=False)
    return g.agg(lr=("lr", "first"), val_loss=("val_loss", "mean"), metric=("metric", "mean"),
                 n_ok=("status", "size")).reset_index()


def verified_columns(ranking: pd.DataFrame, cands: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """``ranking`` with :data:`RANKING_COLUMNS`: the best candidate per configuration and its rank."""
    ranking = ranking.copy()
    for col in RANKING_COLUMNS:
        ranking[col] = math.nan
    if cands.empty:
        ranking["verified_rank"] = ranking["verified_rank"].astype("Int64")
        return ranking
    sign = -1.0 if higher_is_better else 1.0
    best = cands.assign(key=sign * cands["metric"]).sort_values(["config", "key", "factor"]).groupby("config").head(1)
    best = best.set_index("config")
    idx = ranking["config"].map(lambda c: c in best.index)
    ranking.loc[idx, "verified_lr"] = ranking.loc[idx, "config"].map(best["lr"])
    ranking.loc[idx, "verified_val_loss"] = ranking.loc[idx, "config"].map(best["val_loss"])
    ranking.loc[idx, "verified_metric"] = ranking.loc[idx, "config"].map(best["metric"])
    keys = (sign * ranking.loc[idx, "verified_metric"]).rank(method="first")
    ranking["verified_rank"] = pd.Series(keys, index=ranking.index).astype("Int64")
    return ranking


def rank_agreement(ranking: pd.DataFrame) -> float:
    """Spearman correlation of the range-test ``rank`` and ``verified_rank`` (NaN under 3 configurations)."""
    both = ranking.dropna(subset=["verified_rank"])
    if len(both) < 3:
        return math.nan
    a = both["rank"].astype(float).rank()
    b = both["verified_rank"].astype(float).rank()
    return float(np.corrcoef(a, b)[0, 1])


@dataclasses.dataclass
class VerifyReduction:
    """The verification stage of a sweep directory, reduced.

    Attributes:
        rows: ``verify.csv`` (:func:`rows`); empty when verification never ran.
        candidates: mean over seeds per (configuration, candidate) (:func:`per_candidate`).
        metric: the metric that picked the verified rate (``val_loss``, ``accuracy``, ...).
        higher_is_better: how ``metric`` is ordered.
        agreement: Spearman correlation of the range-test and verified rankings.
    """

    rows: pd.DataFrame
    candidates: pd.DataFrame
    metric: str
    higher_is_better: bool
    agreement: float

    @property
    def ran(self) -> bool:
        return not self.rows.empty

    def counts(self) -> dict[str, int]:
        return {s: int((self.rows["status"] == s).sum()) for s in ("ok", "failed", "missing")}


def reduce_verification(manifest: Manifest | None, records: dict[str, TrialRecord], ranking: pd.DataFrame,
                        axis_cols: list[str]) -> tuple[pd.DataFrame, VerifyReduction]:
    """The verification records (``OUT/verify/``) against the manifest's plan; return
    (ranking + verified columns, details)."""
    manifest = manifest or Manifest()
    entries = manifest.verify_trials or []
    settings = VerifySpec.model_validate(manifest.spec.get("verify") or {})
    table = rows(entries, records if entries else {}, axis_cols)
    cands = per_candidate(table, settings.metric, settings.higher_is_better)
    ranking = verified_columns(ranking, cands, settings.higher_is_better)
    return ranking, VerifyReduction(table, cands, settings.metric, settings.higher_is_better, rank_agreement(ranking))


# --------------------------------------------------------------------------- recipes

#: one-cycle peak as a multiple of the constant rate, and its warm-up/annealing defaults
#: (PyTorch ``OneCycleLR``'s div_factor 25 and final_div_factor 1e4; fastai's 25 % warm-up).
ONE_CYCLE_PEAK = 3.0
ONE_CYCLE = {"pct_start": 0.25, "div_factor": 25.0, "final_div_factor": 1e4}
#: triangular CLR: max_lr as a multiple of the constant rate; base_lr = max_lr / 4 (Smith 2015, 3.3).
CLR_PEAK, CLR_RATIO = 3.0, 4.0


def recipes(ranking: pd.DataFrame, method: str) -> list[dict[str, Any]]:
    """A training recipe per configuration, best first: by ``verified_rank`` after
    verification (configurations it did not verify follow, by range-test rank), else by
    ``rank``. Each names both ranks: ``rank`` (the range test's) and ``verified_rank``
    (``None`` where not verified, or not ranked).

    * ``lr`` — the constant rate to train with: the verified rate when verification ran,
      else the range test's recommendation (``method``); ``lr_source`` says which.
    * ``one_cycle`` — ``max_lr = 3 x lr`` with fastai's warm-up and annealing defaults
      (``lrrt_core.schedules.one_cycle`` takes them): a one-cycle schedule tolerates a
      higher peak than a constant rate (Smith 2018, sec. 4.1).
    * ``triangular`` — cyclical learning rates between ``base_lr = max_lr / 4`` and
      ``max_lr = 3 x lr`` (Smith 2015, sec. 3.3: "base_lr 1/3 or 1/4 of max_lr"), a step
      size of 2-10 epochs of iterations (``lrrt_core.schedules.triangular``).
    """
    out = []
    keys = [c for c in ("verified_rank", "rank") if c in ranking]
    for r in ranking.sort_values(keys, na_position="last", kind="mergesort").itertuples():
        verified = getattr(r, "verified_lr", math.nan)
        lr, source = (verified, "verified") if _finite(verified) else (r.suggested_lr_gmean, method)
        if not _finite(lr):
            continue
        peak = float(lr) * CLR_PEAK
        out.append({
            "config": str(r.config), "rank": _rank_or_none(r.rank),
            "verified_rank": _rank_or_none(getattr(r, "verified_rank", None)), "lr": float(lr), "lr_source": source,
            "one_cycle": {"max_lr": float(lr) * ONE_CYCLE_PEAK, **ONE_CYCLE},
            "triangular": {"base_lr": peak / CLR_RATIO, "max_lr": peak, "step_size_epochs": [2, 10]},
        })
    return out


def _rank_or_none(value: Any) -> int | None:
    """A rank as an ``int`` for JSON, ``None`` when empty (NaN, ``pd.NA``)."""
    return int(value) if _finite(value) else None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


__all__ = ["VerifyReduction", "reduce_verification", "VERIFY_DIR", "RANKING_COLUMNS", "VerifyTrial", "plan", "verify_config", "manifest_entries", "rows",
           "per_candidate", "verified_columns", "rank_agreement", "recipes"]
