"""Stage `train`: Lightning training of the float baseline or a uniform-scale quantization-aware network.

DataModule (prepared .npz -> batches), LightningModule (loss, metrics, optimiser) and the plain network
(:mod:`nvmxbar.models`) are kept apart. :func:`train` is the whole stage: resume-aware fit, evaluation of
the selected epoch (the last one, or the best-validation one), model.pt + metrics.json (atomic), and one
MLflow run with params, per-epoch metrics, artifacts and tags.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import models, tracking
from .config import config_hash, train_noise_for

MODEL_FORMAT = "nvmxbar.model/1"
FIT_ON = ("train", "train+val")  # train.<dataset>.fit_on: what the optimiser sees

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU banners and tips in job logs
warnings.filterwarnings("ignore", message=r".*(LeafSpec|does not have many workers|exists and is not empty).*")


# ----------------------------------------------------------------------------------------------- data
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
        self.mean = torch.tensor(self.arrays["norm_mean"], dtype=torch.float32).reshape(1, c, *[1] * (self.arrays["x_train"].ndim - 2)) if self.is_image else None
        self.std = torch.tensor(self.arrays["norm_std"], dtype=torch.float32).reshape(self.mean.shape) if self.is_image else None

    @property
    def in_shape(self) -> list[int]:
        return list(self.arrays["x_train"].shape[1:])

    def _ds(self, split: str) -> TensorDataset:
        return TensorDataset(torch.from_numpy(self.arrays[f"x_{split}"]), torch.from_numpy(self.arrays[f"y_{split}"]).long())

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
        x = padded[:, :, dy:dy + h, dx:dx + w]
        flip = torch.rand(n, device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(3), x)
    scale = 0.9 + 0.2 * torch.rand(n, 1, 1, device=x.device)
    shift = int(torch.randint(-x.shape[-1] // 8, x.shape[-1] // 8 + 1, (1,)))
    return torch.roll(x * scale, shift, dims=-1)


# ---------------------------------------------------------------------------------------------- module
class Classifier(L.LightningModule):
    """Cross-entropy, plus (``teacher``) knowledge distillation: loss = (1 - alpha) CE + alpha T^2 KL(teacher_T ||
    student_T), T = ``distill["temperature"]`` (Hinton et al. 2015). The teacher is frozen, in eval mode, and
    kept out of the module's parameters and checkpoints."""

    def __init__(self, net: models.Net, lr: float, weight_decay: float, label_smoothing: float = 0.0,
                 teacher: models.Net | None = None, distill: dict | None = None):
        super().__init__()
        self.net, self.lr, self.weight_decay, self.label_smoothing = net, lr, weight_decay, label_smoothing
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []  # a list: not a submodule
        self.distill = distill or {}

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if stage == "train" else 0.0)
        if stage == "train" and self._teacher:
            t, alpha = float(self.distill["temperature"]), float(self.distill["alpha"])
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

    def on_fit_start(self):
        # Uniform scaling: calibrate the shared full-scales on the first training batch (once; a resumed
        # run restores them from the checkpoint).
        if self.net.quant is not None and not bool(self.net.quant.calibrated):
            x, _ = next(iter(self.trainer.datamodule.train_dataloader()))
            self.net.calibrate(self.trainer.datamodule.normalise(x.to(self.device)))

    def configure_optimizers(self):
        scales = [p for n, p in self.named_parameters() if n.endswith("quant.scales")]
        rest = [p for n, p in self.named_parameters() if not n.endswith("quant.scales")]
        groups = [{"params": rest, "weight_decay": self.weight_decay}]
        if scales and scales[0].requires_grad:
            groups.append({"params": scales, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EpochReport(L.Callback):
    """One line per epoch on stderr (readable in Snakemake logs) and per-epoch metrics in MLflow."""

    def __init__(self, run_id: str | None, epochs: int):
        self.run_id, self.epochs, self.t0 = run_id, epochs, time.time()

    def on_train_epoch_end(self, trainer, pl_module):  # runs after the epoch's validation
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        epoch = trainer.current_epoch
        m["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        if pl_module.net.quant is not None:
            q = pl_module.net.quant
            m.update(weight_fullscale=q.weight_fullscale.item(), act_fullscale=q.act_fullscale.item(),
                     adc_fullscale=q.adc_fullscale.item())
        if self.run_id:
            import mlflow
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            mlflow.MlflowClient().log_batch(self.run_id, metrics=[Metric(k, v, ts, epoch) for k, v in m.items()])
        shown = "  ".join(f"{k} {m[k]:.4f}" for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in m)
        print(f"[train] epoch {epoch + 1}/{self.epochs}  {shown}  ({time.time() - self.t0:.0f} s)", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- stage
def quant_settings(variant: str, bits: int | None, quant_cfg: dict) -> dict | None:
    """Quantizer kwargs of a variant: None for the float baseline."""
    if variant == "baseline":
        return None
    if variant in ("uniform", "unipolar"):  # unipolar = uniform scaling + the sign groups of the architecture
        q = {"weight_bits": int(bits), "dac_bits": quant_cfg["dac_bits"], "adc_bits": quant_cfg["adc_bits"],
             "weight_fullscale": quant_cfg["weight_fullscale"], "act_fullscale": quant_cfg["act_fullscale"],
             "adc_fullscale": quant_cfg["adc_fullscale"], "learn_scales": quant_cfg["learn_scales"]}
        # only when on: models trained without them keep their hash
        if quant_cfg.get("adc_tile_rows"):
            q["adc_tile_rows"] = quant_cfg["adc_tile_rows"]
        noise = train_noise_for(quant_cfg.get("train_noise", 0.0), variant, bits)
        if noise:
            q["train_noise"] = noise
        return q
    raise ValueError(f"unknown variant '{variant}' (known: baseline, uniform, unipolar)")


@torch.no_grad()
def evaluate(net: models.Net, dm: NpzDataModule, split: str) -> dict[str, Any]:
    net.eval()
    preds, ys = [], []
    for x, y in DataLoader(dm._ds(split), batch_size=1024):
        preds.append(net(dm.normalise(x)).argmax(1))
        ys.append(y)
    p, y = torch.cat(preds).numpy(), torch.cat(ys).numpy()
    k = len(dm.class_names)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y, p), 1)
    per_class = {name: float(conf[i, i] / max(conf[i].sum(), 1)) for i, name in enumerate(dm.class_names)}
    return {"accuracy": float((p == y).mean()), "per_class": per_class, "confusion": conf.tolist(), "n": int(len(y))}


def train(*, data_npz: str | Path, data_json: str | Path, out_model: str | Path, out_metrics: str | Path,
          dataset: str, variant: str, bits: int | None, seed: int, model_cfg: dict, train_cfg: dict,
          quant_cfg: dict, experiment: str | None = None, threads: int = 1, accelerator: str = "auto",
          rule: str = "train", arch_json: str | Path | None = None, extra_tags: dict | None = None,
          run_name: str | None = None, teacher: str | Path | None = None) -> dict[str, Any]:
    """Train one network and write model.pt and metrics.json. Returns the metrics. ``extra_tags`` join the
    MLflow run's tags (``mlflow.parentRunId`` nests it), ``run_name`` replaces its name. A quantized variant
    with ``train_cfg["distill"]["alpha"] > 0`` learns from ``teacher`` (the float baseline's model.pt) too.

    A rerun after a killed job resumes from <out dir>/checkpoints/last.ckpt when the config is unchanged,
    and continues the same MLflow run."""
    t_start = time.time()
    torch.set_num_threads(max(1, threads))
    out_model, out_metrics = Path(out_model), Path(out_metrics)
    ckpt_dir = out_model.parent / "checkpoints"
    state_file = out_model.parent / "checkpoints.json"  # config hash + MLflow run of the checkpoints
    prov = json.loads(Path(data_json).read_text())
    if arch_json:  # unipolar: the architecture (and sign groups) chosen by nas_unipolar replaces config's model
        model_cfg = {**model_cfg, **json.loads(Path(arch_json).read_text())["model"]}
    if variant == "unipolar" and model_cfg.get("polarity") is None:
        raise ValueError("variant 'unipolar' needs a polarity in the model (from nas_unipolar's arch.json)")
    select, fit_on = train_cfg.get("select", "last"), train_cfg.get("fit_on", "train")
    if select not in ("last", "best_val"):
        raise ValueError(f"train select must be 'last' or 'best_val', got {select!r}")
    if fit_on not in FIT_ON:
        raise ValueError(f"train fit_on must be one of {FIT_ON}, got {fit_on!r}")
    if fit_on == "train+val" and select == "best_val":
        raise ValueError("train fit_on 'train+val' trains on the validation split, so select 'best_val' cannot use it "
                         "to choose an epoch: use select 'last'")
    q = quant_settings(variant, bits, quant_cfg)
    distill = train_cfg.get("distill") if variant != "baseline" else None  # the baseline is the teacher
    # only when on: models trained without them keep their hash
    train_cfg = {k: v for k, v in train_cfg.items() if k != "distill" and not (k == "fit_on" and v == "train")}
    params = {"dataset": dataset, "variant": variant, "bits": bits, "seed": seed, "model": model_cfg,
              "train": train_cfg, "quant": q, "data_sha256": prov["source"]["sha256"]}
    teacher_net = None
    if distill and float(distill.get("alpha", 0)) > 0:
        if teacher is None:
            raise ValueError("distill.alpha > 0 needs a teacher model (the float baseline's model.pt)")
        if not 0 < float(distill["alpha"]) <= 1 or float(distill["temperature"]) <= 0:
            raise ValueError(f"distill: alpha must be in (0, 1] and temperature > 0, got {distill}")
        teacher_net, tdoc = load_model(teacher)
        if tdoc["dataset"] != dataset:
            raise ValueError(f"teacher {teacher} was trained on {tdoc['dataset']!r}, not {dataset!r}")
        params["distill"] = {"alpha": float(distill["alpha"]), "temperature": float(distill["temperature"]),
                             "teacher_config_hash": tdoc["config_hash"]}
    chash = config_hash(params)

    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    resume = ckpt_dir / "last.ckpt" if state.get("config_hash") == chash and (ckpt_dir / "last.ckpt").exists() else None
    if resume is None and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # checkpoints of another config must not leak into this run
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    run_id = None
    if experiment:
        import mlflow

        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        if resume and state.get("run_id"):
            run_id = state["run_id"]
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "resumed", "true")
        else:
            name = run_name or f"train {dataset}/{variant}" + (f"/b{bits}" if bits is not None else "")
            tags = tracking.standard_tags(dataset=dataset, variant=variant, bits=bits, seed=seed, rule=rule,
                                          config_hash=chash, data_sha256=prov["source"]["sha256"], **(extra_tags or {}))
            run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
            for k, v in tracking.flatten(params).items():
                client.log_param(run_id, k, v)
    tracking.write_json(state_file, {"config_hash": chash, "run_id": run_id})

    try:
        L.seed_everything(seed, workers=True, verbose=False)
        dm = NpzDataModule(data_npz, train_cfg["batch_size"], train_cfg.get("augment", False), seed, fit_on)
        arch = models.make_arch(dm.in_shape, len(dm.class_names), model_cfg)
        net = models.build(arch, q)
        module = Classifier(net, train_cfg["lr"], train_cfg["weight_decay"], train_cfg.get("label_smoothing", 0.0),
                            teacher=teacher_net, distill=params.get("distill"))
        best = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_acc", mode="max",
                                                   enable_version_counter=False)
        # Its own callback: Lightning's save_last rewrites last.ckpt only in epochs that also improved the best,
        # so a killed run would resume from the best epoch, not from the last one.
        last = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)
        trainer = L.Trainer(max_epochs=train_cfg["epochs"], accelerator=accelerator, devices=1, deterministic=True,
                            logger=False, callbacks=[best, last, EpochReport(run_id, train_cfg["epochs"])],
                            enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False,
                            num_sanity_val_steps=0)
        t_fit = time.time()
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
        fit_s = time.time() - t_fit

        # The exported model: the last epoch, or (select: best_val) the epoch of best validation accuracy.
        path = best.best_model_path if select == "best_val" else last.best_model_path
        ck = torch.load(path, map_location="cpu", weights_only=False)  # our own checkpoint
        module.load_state_dict(ck["state_dict"])
        best_epoch = int(torch.load(best.best_model_path, map_location="cpu", weights_only=False)["epoch"])
        selected_epoch = int(ck["epoch"])
        net = module.net.cpu()
        val, test = evaluate(net, dm, "val"), evaluate(net, dm, "test")
        metrics = {
            "dataset": dataset, "variant": variant, "bits": bits, "seed": seed,
            "test_accuracy": test["accuracy"], "val_accuracy": val["accuracy"],
            "fit_on": fit_on,  # train+val: val_accuracy is measured on windows it trained on
            "n_fit": int(len(dm.arrays["y_train"]) + (len(dm.arrays["y_val"]) if fit_on == "train+val" else 0)),
            "per_class_accuracy": test["per_class"], "val_per_class_accuracy": val["per_class"],
            "confusion_test": test["confusion"], "n_test": test["n"], "n_val": val["n"],
            "epochs": int(train_cfg["epochs"]), "best_epoch": best_epoch + 1, "select": select,
            "selected_epoch": selected_epoch + 1,
            "wall_time_s": round(time.time() - t_start, 2), "fit_time_s": round(fit_s, 2), "resumed": bool(resume),
            "threads": torch.get_num_threads(),  # CPU results are reproducible per seed AND thread count
            "n_params": int(sum(p.numel() for p in net.layers.parameters())),
            "quant": None if net.quant is None else {"weight_bits": net.quant.weight_bits, "dac_bits": net.quant.dac_bits,
                                                     "adc_bits": net.quant.adc_bits,
                                                     "weight_fullscale": net.quant.weight_fullscale.item(),
                                                     "act_fullscale": net.quant.act_fullscale.item(),
                                                     "adc_fullscale": net.quant.adc_fullscale.item()},
            "config_hash": chash, "mlflow_run_id": run_id, "data_sha256": prov["source"]["sha256"],
            "distill": params.get("distill"),
        }
        model_doc = {"format": MODEL_FORMAT, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                     "arch": arch, "quant": q, "dataset": dataset, "variant": variant, "bits": bits,
                     "class_names": dm.class_names, "config_hash": chash,
                     "input": {"dtype": str(dm.arrays["x_train"].dtype),
                               "norm_mean": [float(v) for v in np.ravel(dm.arrays["norm_mean"])],
                               "norm_std": [float(v) for v in np.ravel(dm.arrays["norm_std"])],
                               "normalised_in_npz": not dm.is_image}}
        with tracking.atomic_path(out_model) as tmp:
            torch.save(model_doc, tmp)
        tracking.write_json(out_metrics, metrics)
        if run_id:
            for k in ("test_accuracy", "val_accuracy", "wall_time_s", "fit_time_s"):
                client.log_metric(run_id, k, float(metrics[k]))
            for name, acc in test["per_class"].items():
                client.log_metric(run_id, f"test_acc_{name}", acc)
            client.log_artifact(run_id, str(out_metrics))
            client.log_artifact(run_id, str(out_model))
            client.set_terminated(run_id, "FINISHED")
    except BaseException:
        if run_id:
            client.set_terminated(run_id, "FAILED")
        raise
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    state_file.unlink(missing_ok=True)
    print(f"[train] {dataset}/{variant}{'' if bits is None else f'/b{bits}'}: test {metrics['test_accuracy']:.4f} "
          f"val {metrics['val_accuracy']:.4f} in {metrics['wall_time_s']:.0f} s", file=sys.stderr, flush=True)
    return metrics


def load_model(path: str | Path) -> tuple[models.Net, dict]:
    """Rebuild a network from model.pt (loaded with weights_only=True). Returns (net in eval mode, document)."""
    doc = torch.load(path, map_location="cpu", weights_only=True)
    if doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an nvmxbar model file (format {doc.get('format')!r}, expected {MODEL_FORMAT})")
    net = models.build(doc["arch"], doc["quant"])
    net.load_state_dict(doc["state_dict"])
    return net.eval(), doc
