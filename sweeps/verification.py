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
import math
from typing import Any

import numpy as np
import pandas as pd

from lrrt_core.verify import candidate_rates
from sweeps.naming import short_hash
from sweeps.spec import SweepSpec
from sweeps.spec_sections import VerifySpec
from sweeps.store import Manifest, TrialEntry, TrialRecord

VERIFY_DIR = "verify"
#: ranking.csv columns this stage adds.
RANKING_COLUMNS = ["verified_lr", "verified_val_loss", "verified_metric", "verified_rank", "verified_at_edge"]
_ROW_COLUMNS = ["trial_id", "name", "config", "optimizer", "batch_size", "seed", "factor", "lr",
                "status", "error", "val_loss", "train_loss", "diverged", "diverged_reason", "steps", "wall_s",
                "node", "gpu_ids"]
#: extra verification rounds for a best candidate at the edge of the candidate grid, by default
#: (``verify.extend``): each adds one more factor step beyond that edge (never above the range
#: test's divergence point).
MAX_EXTENSION_ROUNDS = VerifySpec.model_fields["extend"].default


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
    return short_hash(["verify", fingerprint, params, budget])


def plan(spec: SweepSpec, trials, ranking: pd.DataFrame, verify: VerifySpec | None = None,
         results: pd.DataFrame | None = None, caps: dict[str, float] | None = None) -> list[VerifyTrial]:
    """The verification trials for a reduced sweep: the candidate grid, plus the extensions
    that the ``results`` so far call for.

    A configuration whose best candidate (:func:`best_candidates`) is the lowest or highest
    rate tried gets one more candidate one factor step beyond it (the step between the grid's
    two outermost factors on that side), at most :data:`MAX_EXTENSION_ROUNDS` steps beyond
    the grid (``verify.extend``, default :data:`MAX_EXTENSION_ROUNDS`), and never above ``caps[config]`` (the range test's divergence point,
    :func:`divergence_caps`). The launcher calls this again after each round until it adds
    nothing; ids are deterministic, so a resumed run plans the same trials.

    Args:
        spec: the sweep (its fingerprint names the trials).
        trials: the range-test trials (``sweeps.grid.expand(spec)``): configurations and seeds.
        ranking: the range-test ranking (``Reduction.ranking``): ``rank`` and the
            recommendation ``suggested_lr_gmean`` per configuration.
        verify: the settings (default: ``spec.verify``).
        results: ``verify.csv`` rows (:func:`rows`) of the trials planned so far; ``None``: the grid only.
        caps: the highest rate an extension may have, per configuration (none: no upward extension).

    Returns:
        Trials in ranking order, then seed, then candidate order (a configuration's extensions
        after its grid). A
        configuration without a recommendation (no ok range test, or no suggestion) gets none.
    """
    verify = verify or spec.verify
    if verify is None:
        return []
    ranked = ranking.sort_values("rank")
    if verify.top is not None:
        ranked = ranked.head(verify.top)
    recommended = {str(r.config): float(r.suggested_lr_gmean) for r in ranked.itertuples()}
    recommended = {c: lr for c, lr in recommended.items() if math.isfinite(lr) and lr > 0}
    factors = {c: list(verify.candidates) for c in recommended}
    if results is not None:
        for config, more in extensions(results, verify, recommended, caps or {}).items():
            factors[config] += more
    by_config: dict[str, list] = {}
    for t in trials:
        by_config.setdefault(t.config, []).append(t)
    out, fingerprint = [], spec.fingerprint()
    for config, lr in recommended.items():
        for t in by_config.get(config, []):
            out += [_trial(fingerprint, verify, t, f, rate)
                    for f, rate in zip(factors[config], candidate_rates(lr, factors[config]))]
    return out


def _trial(fingerprint: str, verify: VerifySpec, t, factor: float, rate: float) -> VerifyTrial:
    """The verification trial of range-test trial ``t`` at ``rate`` (``factor`` x the recommendation)."""
    vt = VerifyTrial("", f"{t.name}-x{factor:.3g}", t.config, t.optimizer, t.optimizer_name,
                     dict(t.optimizer_kwargs), t.batch_size, t.seed, dict(t.axes), float(factor), rate)
    return dataclasses.replace(vt, trial_id=_verify_id(fingerprint, vt.params(), verify))


def extension_factors(candidates, rounds: int = MAX_EXTENSION_ROUNDS) -> tuple[list[float], list[float]]:
    """The factors beyond a candidate grid, nearest first: ``(below, above)``, each ``rounds``
    long (empty for a grid of one)."""
    f = sorted(float(c) for c in candidates)
    if len(f) < 2:
        return [], []
    down, up = f[1] / f[0], f[-1] / f[-2]
    n = range(1, rounds + 1)
    return [f[0] / down ** i for i in n], [f[-1] * up ** i for i in n]


#: what ``verify.metric: auto`` looks for in the names of the metrics the trainings report
#: (the first that matches picks the verified rate; none: ``val_loss``). Scores only, higher
#: is better: an error metric (``mae``) is never picked by ``auto``.
AUTO_METRICS = ("accuracy", "auc", "r2", "f1", "precision", "recall")
#: a metric whose name contains one of these is minimised (Keras's losses and error metrics:
#: ``val_loss``, ``mae``, ``mean_squared_error``, ``kl_divergence``, ...); every other is maximised
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "msle", "hinge", "crossentropy", "logcosh",
                   "divergence", "poisson")


def resolved_metric(verify: VerifySpec, results: pd.DataFrame) -> tuple[str, bool]:
    """The held-out metric that picks the verified rate, and whether higher is better.

    ``verify.metric`` as given, or for ``auto`` the first metric column of ``results`` (the
    verification rows, in the order the trainings reported them) whose name contains one of
    :data:`AUTO_METRICS`, else ``val_loss``. Chosen by the truth benchmark: picking by the
    held-out score rather than the loss verified better on every family held out from the
    choice (tests/benchmarks/bench_truth.py ``--history``; docs/which-learning-rate.md).
    Losses and error metrics (:data:`LOWER_IS_BETTER`) are minimised, every other metric maximised.
    """
    name = verify.metric
    if name == "auto":
        cols = list(results.columns)  # rows(): the fixed columns and axes, then what the trainings reported
        reported = cols[cols.index(_ROW_COLUMNS[-1]) + 1:] if _ROW_COLUMNS[-1] in cols \
            else [c for c in cols if c not in _ROW_COLUMNS]
        name = next((c for c in reported if any(k in c.lower() for k in AUTO_METRICS)
                     and pd.to_numeric(results[c], errors="coerce").notna().any()), "val_loss")
    return name, not any(k in name.lower() for k in LOWER_IS_BETTER)


def extensions(results: pd.DataFrame, verify: VerifySpec, recommended: dict[str, float],
               caps: dict[str, float]) -> dict[str, list[float]]:
    """``{config: extension factors}``: the extension steps each configuration took so far,
    plus the next one where its best candidate is at the edge of what trained (and every
    planned training of it finished), if there is one and — upwards — its rate is at most
    ``caps[config]`` (no cap: no upward extension)."""
    below, above = extension_factors(verify.candidates, verify.extend)
    done = results[~results["config"].isin(results.loc[results["status"] == "missing", "config"])]
    metric, higher = resolved_metric(verify, results)
    best = best_candidates(per_candidate(done, metric, higher), higher)
    tried = results.groupby("config")["factor"].agg(set).to_dict()
    out: dict[str, list[float]] = {}
    for config, lr in recommended.items():
        seen = tried.get(config, set())
        out[config] = [f for f in below + above if f in seen]  # the extensions run so far
        edge = best.at[config, "edge"] if config in best.index else ""
        side = {"low": below, "high": above}.get(edge, [])
        nxt = next((f for f in side if f not in seen), None)
        if nxt is not None and (edge == "low" or lr * nxt <= caps.get(config, -math.inf)):
            out[config].append(nxt)
    return out


def divergence_caps(trials: pd.DataFrame) -> dict[str, float]:
    """The highest rate a verification candidate may have, per configuration: the lowest rate
    at which one of its ok range tests diverged (``diverged_lr``); where none diverged, the
    highest rate at a seed's smoothed-loss minimum (``lr_at_min_loss``); NaN if neither.

    Args:
        trials: ``trials.csv`` (``Reduction.trials``).
    """
    ok = trials[trials["status"] == "ok"]
    out = {}
    for config, g in ok.groupby("config", sort=False):
        div = pd.to_numeric(g["diverged_lr"], errors="coerce").astype(float)
        at_min = pd.to_numeric(g["lr_at_min_loss"], errors="coerce").astype(float)
        div, at_min = div[np.isfinite(div) & (div > 0)], at_min[np.isfinite(at_min) & (at_min > 0)]
        out[str(config)] = float(div.min()) if len(div) else float(at_min.max()) if len(at_min) else math.nan
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
               **_divergence(rec.status, res), "steps": res.get("steps"),
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


def _divergence(status: str, result: dict[str, Any]) -> dict[str, Any]:
    """``diverged`` and ``diverged_reason`` of a record: its own verdict, or a non-finite loss
    (a record written before the verdict rules, or by hand)."""
    if status != "ok":
        return {"diverged": False, "diverged_reason": ""}
    reason = str(result.get("diverged_reason") or "")
    finite = all(math.isfinite(_num(result.get(k))) for k in ("val_loss", "train_loss"))
    if not reason and (bool(result.get("diverged", False)) or not finite):
        reason = "non-finite loss" if not finite else "diverged"
    return {"diverged": bool(reason), "diverged_reason": reason}


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def per_candidate(verify_rows: pd.DataFrame, metric: str, higher_is_better: bool) -> pd.DataFrame:
    """Mean over seeds per (configuration, candidate):
    ``config, factor, lr, val_loss, metric, n_ok, n_diverged``.

    A diverged training (``diverged``, or any non-finite loss or metric) scores the worst
    possible value under every metric (``val_loss`` inf, a maximised metric -inf) — whatever
    accuracy it reported. The mean over seeds then makes a candidate with one diverged seed
    lose to every candidate whose seeds all trained.
    """
    ok = verify_rows[verify_rows["status"] == "ok"].copy()
    if ok.empty or metric not in ok:
        return pd.DataFrame(columns=["config", "factor", "lr", "val_loss", "metric", "n_ok", "n_diverged"])
    worst = -math.inf if higher_is_better else math.inf
    values = {c: ok[c].astype(float) for c in ("val_loss", "train_loss", metric)}
    bad = ok["diverged"].astype(bool) | ~np.all([np.isfinite(v) for v in values.values()], axis=0)
    ok["val_loss"] = values["val_loss"].where(~bad, math.inf)
    ok["metric"] = values[metric].where(~bad, worst)
    ok["bad"] = bad.astype(int)
    g = ok.groupby(["config", "factor"], sort=False)
    return g.agg(lr=("lr", "first"), val_loss=("val_loss", "mean"), metric=("metric", "mean"),
                 n_ok=("status", "size"), n_diverged=("bad", "sum")).reset_index()


def best_candidates(cands: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """The best candidate per configuration (ties — frequent in accuracy over a small held-out
    set —: the lower mean held-out loss, then the lower factor), indexed by config, with
    ``edge``: ``"low"`` / ``"high"`` when it is the lowest / highest of two or more candidates
    (diverged ones included), else ``""``. A configuration whose every candidate diverged has none."""
    cols = [*cands.columns, "edge"]
    if cands.empty:
        return pd.DataFrame(columns=cols).set_index("config")
    sign = -1.0 if higher_is_better else 1.0
    ranked = cands.assign(key=sign * cands["metric"]).sort_values(["config", "key", "val_loss", "factor"], kind="stable")
    best = ranked.groupby("config", sort=False).head(1).set_index("config")
    best = best[np.isfinite(best["metric"].astype(float))]
    span = cands.groupby("config")["factor"].agg(["min", "max", "nunique"])
    span = span.reindex(best.index)
    many = span["nunique"] >= 2
    best["edge"] = np.where(many & (best["factor"] == span["min"]), "low",
                            np.where(many & (best["factor"] == span["max"]), "high", ""))
    return best.drop(columns="key")


def verified_columns(ranking: pd.DataFrame, cands: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """``ranking`` with :data:`RANKING_COLUMNS`: the best candidate per configuration
    (:func:`best_candidates`), its rank, and ``verified_at_edge`` (empty where not verified).
    A configuration whose every candidate diverged is not verified."""
    ranking = ranking.copy()
    for col in RANKING_COLUMNS:
        ranking[col] = math.nan
    best = best_candidates(cands, higher_is_better)
    config = ranking["config"].astype(str)
    for col, src in (("verified_lr", "lr"), ("verified_val_loss", "val_loss"), ("verified_metric", "metric")):
        ranking[col] = config.map(best[src]).astype(float)
    ranking["verified_at_edge"] = config.map(best["edge"] != "").astype("boolean")
    sign = -1.0 if higher_is_better else 1.0
    ranking["verified_rank"] = (sign * ranking["verified_metric"]).rank(method="first").astype("Int64")
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
        factors: the candidate grid (``verify.candidates``), before any extension.
        extend: the extension rounds allowed (``verify.extend``).
    """

    rows: pd.DataFrame
    candidates: pd.DataFrame
    metric: str
    higher_is_better: bool
    agreement: float
    factors: tuple[float, ...] = ()
    extend: int = MAX_EXTENSION_ROUNDS

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
    metric, higher = resolved_metric(settings, table)
    cands = per_candidate(table, metric, higher)
    ranking = verified_columns(ranking, cands, higher)
    return ranking, VerifyReduction(table, cands, metric, higher, rank_agreement(ranking),
                                    tuple(settings.candidates), settings.extend)


def edge_notes_of(results: pd.DataFrame | None, verify: VerifySpec, ranking: pd.DataFrame,
                  trials: pd.DataFrame) -> list[str]:
    """:func:`edge_notes` straight from ``verify.csv`` rows and the range-test ``ranking`` and ``trials``."""
    if results is None or results.empty:
        return []
    metric, higher = resolved_metric(verify, results)
    cands = per_candidate(results, metric, higher)
    ranking = verified_columns(ranking, cands, higher)
    v = VerifyReduction(results, cands, metric, higher, math.nan, tuple(verify.candidates), verify.extend)
    return edge_notes(ranking, v, trials)


def edge_notes(ranking: pd.DataFrame, verification: VerifyReduction, trials: pd.DataFrame) -> list[str]:
    """One warning per configuration whose verified rate is still at the edge of the
    candidates it tried (``verified_at_edge``), saying why no further candidate ran."""
    at_edge = ranking[ranking["verified_at_edge"].fillna(False).astype(bool)]
    if at_edge.empty:
        return []
    best = best_candidates(verification.candidates, verification.higher_is_better)
    below, above = extension_factors(verification.factors, verification.extend)
    caps = divergence_caps(trials)
    tried = verification.rows.groupby("config")["factor"].agg(set).to_dict()
    out = []
    for r in at_edge.itertuples():
        config, lr = str(r.config), float(r.verified_lr)
        high = best.at[config, "edge"] == "high"
        nxt = next((f for f in (above if high else below) if f not in tried.get(config, set())), None)
        cap = caps.get(config, math.nan)
        if nxt is None:
            why = (f"{verification.extend} extension rounds did not leave the edge" if verification.extend
                   else "extension is off: verify.extend is 0")
        elif high and not float(r.suggested_lr_gmean) * nxt <= cap:
            why = f"a higher candidate ({float(r.suggested_lr_gmean) * nxt:.3g}) would pass the range test's divergence point ({cap:.3g})"
        else:
            why = "its extension round has not run yet"
        out.append(f"{config}: the verified rate {lr:.3g} is the {'highest' if high else 'lowest'} candidate tried "
                   f"({why}); the best rate may lie {'above' if high else 'below'} it: widen verify.candidates.")
    return out


__all__ = ["VerifyReduction", "reduce_verification", "VERIFY_DIR", "RANKING_COLUMNS", "VerifyTrial", "plan",
           "verify_config", "manifest_entries", "rows", "per_candidate", "verified_columns", "rank_agreement"]
