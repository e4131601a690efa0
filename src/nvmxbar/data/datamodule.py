"""The Lightning DataModule over a prepared results/data/<dataset>.npz, and batch augmentation.

A split lives in memory as two tensors, on the trainer's device (a GPU holds CIFAR-10's 150 MB of uint8 images
once; they become float only a batch at a time). A batch is one index into them (:class:`TensorBatches`), and
the augmentation draws every image's crop and flip at once on that device: no per-sample Python work, no
collate, no worker processes, no host-to-device copy per step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

FIT_ON = ("train", "train+val")  # train.<dataset>.fit_on: what the optimiser sees


class TensorBatches:
    """Batches of in-memory tensors (same first dimension), for Lightning's loops or a plain ``for``.

    ``shuffle``: every pass (epoch) a new permutation drawn from ``generator``, the last batch may be short
    (drop_last False). A pass that runs to its end (a plain ``for``) makes the draws of ``DataLoader(TensorDataset(
    *tensors), batch_size, shuffle=True, generator=generator)``, the DataLoader's trailing unused permutation
    included. Lightning's loop stops after ``len(self)`` batches without exhausting the iterator, so under it that
    trailing draw never happens and, from the second epoch on, the order is not a DataLoader's; it is deterministic
    all the same, and a resumed training restores the generator (nvmxbar.training.resume)."""

    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ):
        if len({len(t) for t in tensors}) != 1:
            raise ValueError(f"tensors of different lengths: {[len(t) for t in tensors]}")
        if shuffle and generator is None:
            raise ValueError("shuffled batches need a seeded torch.Generator")
        self.tensors, self.batch_size, self.shuffle, self.generator = tensors, int(batch_size), shuffle, generator
        self.n = len(tensors[0])

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            # the generator's draws of the DataLoader this replaces: the iterator's base seed, the sampler's
            # permutation, and, when the pass runs to its end, a second, unused, permutation (see the class)
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
            order = torch.randperm(self.n, generator=self.generator)
            order = order.to(self.tensors[0].device)  # the draws stay on the CPU generator: same order anywhere
            for i in range(0, self.n, self.batch_size):
                idx = order[i : i + self.batch_size]
                yield tuple(t[idx] for t in self.tensors)
            torch.randperm(self.n, generator=self.generator)
        else:
            for i in range(0, self.n, self.batch_size):
                yield tuple(t[i : i + self.batch_size] for t in self.tensors)


class NpzDataModule(L.LightningDataModule):
    """Batches from a prepared results/data/<dataset>.npz. uint8 images are scaled and normalised per
    channel (train statistics stored in the npz) after the batch reaches the device."""

    def __init__(self, path: str | Path, batch_size: int, augment: bool = False, seed: int = 0, fit_on: str = "train"):
        super().__init__()
        self.path, self.batch_size, self.augment, self.seed = Path(path), batch_size, augment, seed
        self.fit_on = fit_on  # "train" or "train+val" (checked by train() before any work starts)
        self._tensors: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._shuffle: torch.Generator | None = None  # the generator of the fit's training batches
        self._resumed_shuffle: torch.Tensor | None = None  # its state in the checkpoint a fit resumes from
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

    def tensors(self, split: str, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of ``split`` ("train", "val", "test" or "train+val") on ``device``: on the CPU they
        share the npz's memory (train+val: concatenated once); on another device they are copied there once."""
        device = torch.device(device)
        key = (split, str(device))
        if key not in self._tensors:
            if device.type != "cpu":
                self._tensors[key] = tuple(t.to(device) for t in self.tensors(split))
            elif split == "train+val":
                tr, va = self.tensors("train"), self.tensors("val")
                self._tensors[key] = (torch.cat([tr[0], va[0]]), torch.cat([tr[1], va[1]]))
            else:
                x = torch.from_numpy(self.arrays[f"x_{split}"])
                self._tensors[key] = (x, torch.from_numpy(self.arrays[f"y_{split}"]).long())
        return self._tensors[key]

    @property
    def device(self) -> torch.device:
        """The trainer's device (where the splits are held while it trains), the CPU without one."""
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def batches(self, split: str, batch_size: int, device: torch.device | str = "cpu") -> TensorBatches:
        """``split`` in order, ``batch_size`` at a time (evaluation)."""
        return TensorBatches(self.tensors(split, device), batch_size)

    def shuffled(self, generator: torch.Generator) -> TensorBatches:
        """The training batches (``fit_on``), a new permutation from ``generator`` every pass."""
        # fit_on train+val: the validation windows train too (they are then not held out)
        return TensorBatches(self.tensors(self.fit_on, self.device), self.batch_size, shuffle=True, generator=generator)

    def first_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first training batch of a fit from scratch (the quantizer's calibration), drawn from a generator
        of its own: the fit's shuffle generator is not advanced."""
        return next(iter(self.shuffled(torch.Generator().manual_seed(self.seed))))

    def train_dataloader(self) -> TensorBatches:
        """The fit's batches: shuffled by a generator seeded with ``seed``, or, in a fit resumed from a checkpoint,
        continued from the state the checkpoint saved (:meth:`state_dict`)."""
        self._shuffle = torch.Generator()
        if self._resumed_shuffle is not None:
            self._shuffle.set_state(self._resumed_shuffle)
        else:
            self._shuffle.manual_seed(self.seed)
        return self.shuffled(self._shuffle)

    def setup(self, stage: str) -> None:
        if stage == "fit":  # Lightning calls it before it restores a checkpoint: a fit without one starts anew
            self._resumed_shuffle = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Saved in every checkpoint (Lightning writes them at an epoch's end, when the epoch's permutation has
        been drawn and the next one not yet): the shuffle generator's state, from which the next epoch draws."""
        return {"shuffle": self._shuffle.get_state()} if self._shuffle is not None else {}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Called by Lightning when a fit resumes, before it asks for :meth:`train_dataloader`."""
        if "shuffle" not in state_dict:
            raise ValueError(f"the checkpoint's {type(self).__qualname__} state has no 'shuffle' generator state")
        self._resumed_shuffle = state_dict["shuffle"]

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val", max(self.batch_size, 512), self.device)

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test", max(self.batch_size, 512), self.device)

    def teardown(self, stage: str) -> None:
        """Free the device copies (the CPU ones share the npz's memory)."""
        self._tensors = {k: v for k, v in self._tensors.items() if k[1] == "cpu"}

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


PAD = 4  # pixels of zero padding around an image before its random crop


def augment(x: torch.Tensor) -> torch.Tensor:
    """Images (N,C,H,W): a random crop of each image with 4-pixel zero padding (its own offset, up to 4 pixels
    either way) and a horizontal flip of half of them, drawn for the whole batch at once on its device.
    Windows (N,C,T): random amplitude scale (0.9-1.1 per window) and circular time shift (up to 1/8)."""
    n = x.shape[0]
    if x.ndim == 4:
        h, w = x.shape[2:]
        padded = F.pad(x, (PAD, PAD, PAD, PAD))
        dy, dx = torch.randint(0, 2 * PAD + 1, (2, n), device=x.device)
        flip = torch.rand(n, device=x.device) < 0.5
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
        cols = dx[:, None] + torch.arange(w, device=x.device)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, chan, rows, cols]
    scale = 0.9 + 0.2 * torch.rand(n, 1, 1, device=x.device)
    shift = int(torch.randint(-x.shape[-1] // 8, x.shape[-1] // 8 + 1, (1,)))
    return torch.roll(x * scale, shift, dims=-1)
