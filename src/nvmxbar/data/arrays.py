"""Prepared splits as the network sees them: a fixed subset of a split, scaled and normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def subset_index(total: int, n: int | None) -> np.ndarray:
    """Indices of ``n`` of ``total`` samples: all of them, or a fixed pseudo-random draw (seed 0) in split
    order. Not the first n: prepared CIFAR-10 splits are ordered by class, so their first n are one class."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).permutation(total)[:n])


def network_inputs(data_npz: str | Path, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples (all if None; else :func:`subset_index`) of a prepared split as the network sees them
    (uint8 images scaled and normalised with the train statistics stored in the npz), and their labels."""
    with np.load(data_npz, allow_pickle=False) as d:
        idx = subset_index(len(d[f"y_{split}"]), n)
        x, y = torch.from_numpy(d[f"x_{split}"][idx]), torch.from_numpy(d[f"y_{split}"][idx]).long()
        if x.dtype == torch.uint8:
            mean = torch.tensor(d["norm_mean"]).reshape(1, -1, *[1] * (x.ndim - 2))
            x = (x.float() / 255.0 - mean) / torch.tensor(d["norm_std"]).reshape(mean.shape)
    return x.float(), y
