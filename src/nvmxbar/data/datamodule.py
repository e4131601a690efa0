"""The Lightning DataModule over a prepared results/data/<dataset>.npz, and batch augmentation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

FIT_ON = ("train", "train+val")  # train.<dataset>.fit_on: what the optimiser sees


class NpzDataModule(L.LightningDataModule):
    """Batches from a prepared results/data/<dataset>.npz. uint8 images are scaled and normalised per
    channel (train statistics stored in the npz) after the batch reaches the device."""

    def __init__(self, path: str | Path, batch_size: int, augment: bool = False, seed: int = 0, fit_on: str = "train"):
        super().__init__()
        self.path, self.batch_size, self.augment, self.seed = Path(path), batch_size, augment, seed
        self.fit_on = fit_on  # "train" or "train+val" (checked by train() before any work starts)
        with np.load(self.path, allow_pickle=False) as d:
            self.arrays = {k: d[k] for k in d.files}
        self.class_names = [str(c) for c in self.arrays["class_names"]]
        self.is_image = self.arrays["x_train"].dtype == np.uint8
        c = self.arrays["x_train"].shape[1]
        self.mean = (
            torch.tensor(self.arrays["norm_mean"], dtype=torch.float32).reshape(
                1, c, *[1] * (self.arrays["x_train"].ndim - 2)
            )
            if self.is_image
            else None
        )
        self.std = (
            torch.tensor(self.arrays["norm_std"], dtype=torch.float32).reshape(self.mean.shape)
            if self.is_image
            else None
        )

    @property
    def in_shape(self) -> list[int]:
        return list(self.arrays["x_train"].shape[1:])

    def _ds(self, split: str) -> TensorDataset:
        return TensorDataset(
            torch.from_numpy(self.arrays[f"x_{split}"]), torch.from_numpy(self.arrays[f"y_{split}"]).long()
        )

    def train_dataloader(self):
        g = torch.Generator().manual_seed(self.seed)
        ds = self._ds("train")
        if self.fit_on == "train+val":  # the validation windows train too (they are then not held out)
            ds = torch.utils.data.ConcatDataset([ds, self._ds("val")])
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, generator=g, drop_last=False)

    def val_dataloader(self):
        return DataLoader(self._ds("val"), batch_size=max(self.batch_size, 512))

    def test_dataloader(self):
        return DataLoader(self._ds("test"), batch_size=max(self.batch_size, 512))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_image:
            return x.float()
        return (x.float() / 255.0 - self.mean.to(x.device)) / self.std.to(x.device)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = self.normalise(x)
        if self.augment and self.trainer is not None and self.trainer.training:
            x = augment(x)
        return x, y


def augment(x: torch.Tensor) -> torch.Tensor:
    """Images (N,C,H,W): random crop with 4-pixel zero padding and horizontal flip.
    Windows (N,C,T): random amplitude scale (0.9-1.1 per window) and circular time shift (up to 1/8)."""
    n = x.shape[0]
    if x.ndim == 4:
        h, w = x.shape[2:]
        padded = F.pad(x, (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2,))
        x = padded[:, :, dy : dy + h, dx : dx + w]
        flip = torch.rand(n, device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(3), x)
    scale = 0.9 + 0.2 * torch.rand(n, 1, 1, device=x.device)
    shift = int(torch.randint(-x.shape[-1] // 8, x.shape[-1] // 8 + 1, (1,)))
    return torch.roll(x * scale, shift, dims=-1)
