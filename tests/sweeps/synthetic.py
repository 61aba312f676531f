"""Hand-made sweep directories with known answers (no Ray, no TensorFlow).

Every curve is ``loss[i] = offset + SHAPE[i]`` on a ladder ``lrs = scale * BASE_LRS``:
the same shape in step space for every trial. Because the bias-corrected EMA is linear and
keeps constants, the smoothed loss is ``offset + ema(SHAPE)``, so

* ``min_loss = offset + min(ema(SHAPE))`` (exactly known per trial), and
* every suggestion lands on the same step index for every trial, hence
  ``suggested_lr = scale * BASE_LRS[k]`` — exactly proportional to ``scale``.

Choosing ``scale = c * batch_size**p`` makes the fitted lr-vs-batch-size slope exactly ``p``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from lrrt_core.curve import Curve, ema
from sweeps import store

N_STEPS = 120
BASE_LRS = 1e-5 * (1e1 / 1e-5) ** (np.arange(N_STEPS) / (N_STEPS - 1))  # 1e-5 .. 10


def _shape() -> np.ndarray:
    i = np.arange(N_STEPS, dtype=np.float64)
    fall = 2.3 - 1.8 * (1 + np.tanh((i - 55) / 9.0)) / 2  # steepest near step 55
    rise = 0.004 * np.maximum(0.0, i - 85) ** 2  # blows up after step 85
    noise = 0.03 * np.random.default_rng(0).standard_normal(N_STEPS)
    return fall + rise + noise


SHAPE = _shape()
MIN_SMOOTHED = float(np.min(ema(SHAPE)))


def trial_id(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:12]


def make_curve(offset: float, scale: float, steps: int = N_STEPS) -> Curve:
    lrs = scale * BASE_LRS[:steps]
    return Curve(
        lrs=lrs,
        losses=offset + SHAPE[:steps],
        stop_reason="completed",
        steps_planned=N_STEPS,
        wall_s=1.5,
        params={"start_lr": float(lrs[0]), "end_lr": float(scale * BASE_LRS[-1]), "steps": N_STEPS,
                "ladder": "exp", "loss": "train", "diverge_threshold": 4.0, "smoothing": 0.98},
    )


def trial_entry(optimizer: str, batch_size: int, seed: int, axes: dict[str, Any] | None = None,
                name_prefix: str = "") -> dict[str, Any]:
    axes = dict(axes or {})
    config = f"{name_prefix}{optimizer}-bs{batch_size}" + "".join(f"-{k}{v}" for k, v in axes.items())
    name = f"{config}-s{seed}"
    params = {"optimizer": optimizer, "optimizer_name": optimizer.split("_")[0],
              "optimizer_kwargs": {}, "batch_size": batch_size, "seed": seed, "axes": axes}
    return {"trial_id": trial_id(name), "name": name, "config": config, "params": params}


def ok_record(entry: dict[str, Any], offset: float, scale: float, **extra: Any) -> dict[str, Any]:
    rec = {**entry, "status": "ok", "error": None, "attempts": 1, "node": "10.0.0.1",
           "gpu_ids": [0, 1], "wall_s": 2.0, "curve": make_curve(offset, scale).to_dict()}
    rec.update(extra)
    return rec


def failed_record(entry: dict[str, Any], error: str) -> dict[str, Any]:
    return {**entry, "status": "failed", "error": error, "attempts": 3, "node": "10.0.0.2",
            "gpu_ids": [], "wall_s": 0.5, "curve": None}


def write_sweep(out_dir: Path, name: str, entries: list[dict[str, Any]], records: list[dict[str, Any]]) -> Path:
    store.write_manifest(out_dir, {"name": name, "spec": {"name": name}, "fingerprint": "f" * 12,
                                   "trials": entries})
    for rec in records:
        store.write_record(out_dir, rec)
    return Path(out_dir)


# The standard sweep: 2 optimizers x 3 batch sizes x 2 seeds.
# sgd:  scale = 1e-3 * bs      (slope 1.0);  adam: scale = 1e-3 * bs**0.5 (slope 0.5).
# Seed 0 uses 2x the scale, seed 1 half of it: geometric mean = scale, gsd = 2**sqrt(2).
# Offsets (the min loss shift) per config, seeds get +/- 0.05.
OPTIMIZERS = {"sgd": 1.0, "adam": 0.5}
BATCH_SIZES = (32, 128, 512)
OFFSETS = {("sgd", 32): 0.30, ("sgd", 128): 0.20, ("sgd", 512): 0.40,
           ("adam", 32): 0.10, ("adam", 128): 0.20, ("adam", 512): 0.50}
SEED_OFFSET = {0: -0.05, 1: +0.05}
SEED_SCALE = {0: 2.0, 1: 0.5}


def base_scale(optimizer: str, batch_size: int) -> float:
    return 1e-3 * batch_size ** OPTIMIZERS[optimizer]


def standard_sweep(out_dir: Path, name: str = "demo sweep", *, skip: set[str] = frozenset(),
                   fail: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Write the standard sweep; trial names in ``skip`` get no record, those in ``fail`` fail.

    Returns ``{trial name: manifest entry}``.
    """
    fail = dict(fail or {})
    entries, records = [], []
    for opt in OPTIMIZERS:
        for bs in BATCH_SIZES:
            for seed in (0, 1):
                e = trial_entry(opt, bs, seed)
                entries.append(e)
                if e["name"] in skip:
                    continue
                if e["name"] in fail:
                    records.append(failed_record(e, fail[e["name"]]))
                    continue
                records.append(ok_record(e, OFFSETS[(opt, bs)] + SEED_OFFSET[seed],
                                         base_scale(opt, bs) * SEED_SCALE[seed]))
    write_sweep(out_dir, name, entries, records)
    return {e["name"]: e for e in entries}
