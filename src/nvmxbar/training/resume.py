"""What a killed training needs to continue bitwise as if it had not been killed: every random stream it draws
from, saved in each checkpoint and restored before the resumed fit's first draw, and checkpoints that are
either whole or absent.

The streams: the datamodule's shuffle generator (:meth:`nvmxbar.data.datamodule.NpzDataModule.state_dict`) and
the global ones here, torch's CPU generator (dropout and the training noise of the quantizer on the CPU, the
window augmentation), CUDA's (the same on a GPU, and the image augmentation, drawn on the device), numpy's and
Python's ``random``. The optimiser, the one-cycle schedule and the loops' progress are Lightning's own part of
the checkpoint."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from .. import files

log = logging.getLogger(__name__)


def rng_states() -> dict[str, Any]:
    """The global generators' states, as tensors and plain values (a checkpoint loads with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    keys = torch.from_numpy(keys.astype(np.int64))
    numpy_state = {"kind": kind, "keys": keys, "pos": pos, "gauss": (has_gauss, gauss)}
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": numpy_state,
        "python": random.getstate(),
    }
    if torch.cuda.is_initialized():  # CUDA in use (querying it otherwise would start it)
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], *n["gauss"]))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        for i, s in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)


class RandomStreams(L.Callback):
    """Saves :func:`rng_states` in every checkpoint, at the moment Lightning writes it (the end of an epoch), and
    restores them in a resumed fit at ``on_train_start``: after everything the resume itself runs (restoring
    the modules, ``on_fit_start``, the dataloader's creation) and before the first batch draws from them."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.state_key not in checkpoint.get("callbacks", {}):
            log.warning(
                "the checkpoint has no random-generator states (written by an older nvmxbar): the resumed "
                "training continues, but not bitwise as the uninterrupted one would have"
            )

    def on_train_start(self, trainer, pl_module) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint beside its path, flushes it to the disk and renames it into place: a job killed
    while writing leaves the previous last.ckpt, never a half-written one. (Lightning's own writer stages the
    file in the system's temporary folder and moves it, a copy, not a rename, when that folder is on another
    file system, as it often is on a cluster's nodes.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
