"""The LightningModule (loss, metrics, optimiser) around a plain :class:`nvmxbar.core.networks.Net`, the
per-epoch log line, and the evaluation of a trained network on one split."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from ..core.networks import Net
from ..data.datamodule import NpzDataModule
from ..settings import Recipe

log = logging.getLogger(__name__)


class Classifier(L.LightningModule):
    """Cross-entropy, plus (``teacher``) knowledge distillation: loss = (1 - alpha) CE + alpha T^2 KL(teacher_T ||
    student_T), T = ``distill["temperature"]`` (Hinton et al. 2015). The teacher is frozen, in eval mode, and
    kept out of the module's parameters and checkpoints."""

    def __init__(self, net: Net, recipe: Recipe, teacher: Net | None = None):
        super().__init__()
        self.net, self.lr, self.weight_decay = net, recipe.lr, recipe.weight_decay
        self.label_smoothing, self.distill = recipe.label_smoothing, recipe.distill
        if (teacher is None) != (recipe.distill is None):
            raise ValueError("distillation needs both a teacher network and recipe.distill (alpha > 0)")
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # a list: not a submodule

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        if stage == "train" and self._teacher:
            t, alpha = self.distill.temperature, self.distill.alpha
            with torch.no_grad():
                soft = F.softmax(self._teacher[0].to(x.device)(x) / t, dim=1)
            kd = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="batchmean") * t * t
            self.log("train_kd", kd, on_step=False, on_epoch=True)
            loss = (1.0 - alpha) * loss + alpha * kd
        acc = (logits.argmax(1) == y).float().mean()
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "train")
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.net.project_polarity()  # unipolar: latent weights stay on their group's side of zero

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_train_epoch_end(self):
        q = self.net.quant
        if q is not None:  # the shared full-scales (per layer: L<i>.*), per epoch (MLflow plots them)
            quants = [("", q)] if not q.per_layer else [(f"L{i}.", qi) for i, qi in enumerate(q.layers)]
            scales = {}
            for pre, qi in quants:
                scales[f"{pre}weight_fullscale"] = qi.weight_fullscale.detach()
                scales[f"{pre}act_fullscale"] = qi.act_fullscale.detach()
                scales[f"{pre}adc_fullscale"] = qi.adc_fullscale.detach()
            self.log_dict(scales, on_step=False, on_epoch=True)

    def on_fit_start(self):
        # Uniform scaling: calibrate the shared full-scales on the first training batch (once; a resumed
        # run restores them from the checkpoint).
        if self.net.quant is not None and not bool(self.net.quant.calibrated):
            x, _ = self.trainer.datamodule.first_batch()
            self.net.calibrate(self.trainer.datamodule.normalise(x.to(self.device)))

    def configure_optimizers(self):
        def is_scale(name: str) -> bool:  # the full-scales (shared or per layer): no weight decay
            return ".quant." in f".{name}" and name.endswith((".scales", ".log2_ratio"))

        scales = [p for n, p in self.named_parameters() if is_scale(n)]
        rest = [p for n, p in self.named_parameters() if not is_scale(n)]
        groups = [{"params": rest, "weight_decay": self.weight_decay}]
        if scales and scales[0].requires_grad:
            groups.append({"params": scales, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EpochLog(L.Callback):
    """One log line per epoch (readable in the job's Snakemake log), after the epoch's validation."""

    def __init__(self, epochs: int, prefix: str = ""):
        self.epochs, self.prefix, self.t0 = epochs, prefix, time.time()

    def on_train_epoch_end(self, trainer, pl_module):
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        shown = "  ".join(f"{k} {m[k]:.4f}" for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in m)
        log.info(
            "%sepoch %d/%d  %s  (%.0f s)",
            self.prefix,
            trainer.current_epoch + 1,
            self.epochs,
            shown,
            time.time() - self.t0,
        )


@torch.no_grad()
def evaluate(net: Net, dm: NpzDataModule, split: str) -> dict[str, Any]:
    net.eval()
    preds, ys = [], []
    for x, y in dm.batches(split, 1024):
        preds.append(net(dm.normalise(x)).argmax(1))
        ys.append(y)
    p, y = torch.cat(preds).numpy(), torch.cat(ys).numpy()
    k = len(dm.class_names)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y, p), 1)
    per_class = {name: float(conf[i, i] / max(conf[i].sum(), 1)) for i, name in enumerate(dm.class_names)}
    return {"accuracy": float((p == y).mean()), "per_class": per_class, "confusion": conf.tolist(), "n": int(len(y))}
