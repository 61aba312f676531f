"""Big hand-made sweep directories for the report at cluster scale (no Ray, no TensorFlow).

``scale_sweep(dir, n_widths)`` writes 2 optimizers x 3 batch sizes x ``n_widths`` widths x
2 seeds (``12 * n_widths`` trials, ``6 * n_widths`` configurations) of 120-step curves built
from :mod:`tests.sweeps.synthetic`'s pieces, with per-axis effects that add up, so every
per-axis number can be computed by hand:

* min loss of a trial = ``MIN_SMOOTHED + OPT_LOSS[opt] + BS_LOSS[bs] + width_loss(w) +
  SEED_OFFSET[seed]`` (the seed terms cancel in the mean over seeds);
* suggested lr of a configuration (geometric mean over seeds) =
  ``base_scale(opt, bs) * width_scale(w) * BASE_LRS[k]`` with ``k`` the same step for all.
"""

from __future__ import annotations

from pathlib import Path

from tests.sweeps import synthetic as S

OPT_LOSS = {"sgd": 0.20, "adam": 0.0}
BS_LOSS = {32: 0.10, 128: 0.0, 512: 0.35}


def widths(n_widths: int) -> list[int]:
    """The width axis values: 16, 32, 48, ..."""
    return [16 * (i + 1) for i in range(n_widths)]


def width_loss(w: int) -> float:
    """Loss penalty of a width: wider is better, in steps of 0.001 (best = the widest)."""
    return 0.001 * (1000 - w / 16) / 10


def width_scale(w: int) -> float:
    """Learning-rate factor of a width: the rate falls as 1 / sqrt(width / 16)."""
    return (w / 16) ** -0.5


def config_loss_offset(opt: str, bs: int, w: int) -> float:
    return OPT_LOSS[opt] + BS_LOSS[bs] + width_loss(w)


def scale_sweep(out_dir: Path, n_widths: int, name: str = "scale sweep") -> Path:
    """Write the sweep; returns the directory."""
    entries, records = [], []
    for opt in S.OPTIMIZERS:
        for bs in S.BATCH_SIZES:
            for w in widths(n_widths):
                for seed in (0, 1):
                    e = S.trial_entry(opt, bs, seed, axes={"width": w})
                    entries.append(e)
                    records.append(S.ok_record(e, config_loss_offset(opt, bs, w) + S.SEED_OFFSET[seed],
                                               S.base_scale(opt, bs) * width_scale(w) * S.SEED_SCALE[seed]))
    return S.write_sweep(out_dir, name, entries, records)
