"""One Lightning fit with the recipe of ``train.<dataset>``: checkpoints every epoch (a killed job resumes,
bitwise as if it had not been killed: :mod:`.resume`), then the selected epoch (the last one, or the
best-validation one) loaded back."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from ..core.networks import Net
from ..data.datamodule import NpzDataModule
from ..settings import Recipe, on_gpu
from .module import Classifier, EpochLog
from .resume import AtomicCheckpointIO, RandomStreams


@dataclass
class Fitted:
    net: Net  # the selected epoch's network, on the CPU
    best_epoch: int  # 1-based epoch of the best validation accuracy
    selected_epoch: int  # 1-based epoch exported
    fit_s: float
    device: str = "cpu"  # where it trained: cpu or cuda
    precision: str = "32-true"  # Lightning's precision setting used


def trainer_flags(net: Net, accelerator: str) -> dict:
    """The Trainer's ``precision`` and ``deterministic`` for ``net`` here (and, on a GPU, TF32 set for it).

    bf16 autocast for a float network on a GPU. A quantized network stays float32 without TF32 wherever it
    trains: its weights, DAC inputs and ADC codes are integers times a step, and bf16 (8 significant bits) or
    TF32 (11) would round the partial sums that the ADC converts, moving codes across their thresholds.
    CPU: deterministic, bitwise the same per seed and thread count (tested). GPU: deterministic kernels where
    torch has them, and a warning, not a failed job, where it has none."""
    gpu = on_gpu(accelerator, torch.cuda.is_available())
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = net.quant is None
    return {
        "precision": "bf16-mixed" if gpu and net.quant is None else "32-true",
        "deterministic": "warn" if gpu else True,
    }


def fit(
    net: Net,
    dm: NpzDataModule,
    recipe: Recipe,
    *,
    ckpt_dir: str | Path,
    resume: str | Path | None = None,
    accelerator: str = "auto",
    logger=None,
    teacher: Net | None = None,
    callbacks: list | None = None,
    log_prefix: str = "",
) -> Fitted:
    """Train ``net`` on ``dm`` for ``recipe.epochs`` epochs (one-cycle AdamW), checkpointing into ``ckpt_dir``
    (``resume``: a last.ckpt to continue from). ``logger``: a Lightning logger (MLflow) or None."""
    module = Classifier(net, recipe, teacher=teacher)
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val_acc", mode="max", enable_version_counter=False
    )
    # Its own callback: Lightning's save_last rewrites last.ckpt only in epochs that also improved the best,
    # so a killed run would resume from the best epoch, not from the last one.
    last = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)
    cbs = [best, last, RandomStreams(), EpochLog(recipe.epochs, log_prefix), *(callbacks or [])]
    if logger is not None:
        cbs.append(L.pytorch.callbacks.LearningRateMonitor(logging_interval="epoch"))
    flags = trainer_flags(net, accelerator)
    trainer = L.Trainer(
        max_epochs=recipe.epochs,
        accelerator=accelerator,
        devices=1,
        **flags,
        logger=logger if logger is not None else False,
        callbacks=cbs,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
    )
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    fit_s = time.time() - t0
    path = best.best_model_path if recipe.select == "best_val" else last.best_model_path
    ck = torch.load(path, map_location="cpu", weights_only=False)  # our own checkpoint
    module.load_state_dict(ck["state_dict"])
    best_epoch = int(torch.load(best.best_model_path, map_location="cpu", weights_only=False)["epoch"])
    return Fitted(
        net=module.net.cpu(),
        best_epoch=best_epoch + 1,
        selected_epoch=int(ck["epoch"]) + 1,
        fit_s=fit_s,
        device=trainer.strategy.root_device.type,
        precision=flags["precision"],
    )
