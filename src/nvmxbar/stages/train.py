"""Rule ``train``: Lightning training of the float baseline or a uniform-scale quantization-aware network.

Writes model.pt and metrics.json (atomically) and one MLflow run: params, per-epoch metrics through Lightning's
MLFlowLogger, test metrics, artifacts and tags. A rerun after a killed job resumes from
<out dir>/checkpoints/last.ckpt when the model's settings are unchanged, and continues the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from .. import files, tracking
from ..config import config_hash
from ..core import networks
from ..data.datamodule import FIT_ON, NpzDataModule
from ..settings import QuantSettings, Recipe, TrainWires
from ..training.fit import fit
from ..training.model_io import load_model, save_model
from ..training.module import evaluate
from ..training.wire_aware import WireAware

log = logging.getLogger(__name__)


def run(
    *,
    data_npz: str | Path,
    data_json: str | Path,
    out_model: str | Path,
    out_metrics: str | Path,
    dataset: str,
    variant: str,
    bits: int | None,
    seed: int,
    model_cfg: dict,
    recipe: Recipe,
    quant: QuantSettings | None,
    chip: dict | None = None,
    experiment: str | None = None,
    threads: int = 1,
    accelerator: str = "auto",
    rule: str = "train",
    arch_json: str | Path | None = None,
    extra_tags: dict | None = None,
    run_name: str | None = None,
    teacher: str | Path | None = None,
    group: bool = True,
    train_wires: TrainWires | None = None,
) -> dict[str, Any]:
    """Train one network and write model.pt and metrics.json. Returns the metrics. ``extra_tags`` join the
    MLflow run's tags (``mlflow.parentRunId`` nests it), ``run_name`` replaces its name. A quantized variant
    whose recipe distills learns from ``teacher`` (the float baseline's model.pt) too. ``group``: nest the run under
    the MLflow group run of this model's seeds (:func:`nvmxbar.tracking.group_run`; the NAS finalists nest under
    their search instead). ``train_wires``: hardware-aware training against IR drop on that chip's wires."""
    t_start = time.time()
    torch.set_num_threads(max(1, threads))
    out_model, out_metrics = Path(out_model), Path(out_metrics)
    ckpt_dir = out_model.parent / "checkpoints"
    state_file = out_model.parent / "checkpoints.json"  # model hash + MLflow run of the checkpoints
    prov = files.read_json(data_json)
    if arch_json:  # unipolar: the architecture (and sign groups) chosen by nas_unipolar replaces config's model
        model_cfg = {**model_cfg, **files.read_json(arch_json)["model"]}
        if variant == "signed":  # the same network with signed weights (differential pairs): no sign groups
            model_cfg.pop("polarity", None)
    if variant == "unipolar" and model_cfg.get("polarity") is None:
        raise ValueError("variant 'unipolar' needs a polarity in the model (from nas_unipolar's arch.json)")
    if recipe.select not in ("last", "best_val"):
        raise ValueError(f"train select must be 'last' or 'best_val', got {recipe.select!r}")
    if recipe.fit_on not in FIT_ON:
        raise ValueError(f"train fit_on must be one of {FIT_ON}, got {recipe.fit_on!r}")
    if recipe.fit_on == "train+val" and recipe.select == "best_val":
        raise ValueError(
            "train fit_on 'train+val' trains on the validation split, so select 'best_val' cannot use it "
            "to choose an epoch: use select 'last'"
        )
    if (quant is None) != (chip is None):
        raise ValueError(f"{variant}: a quantized training needs the chip it simulates, a float one none ({chip!r})")
    if train_wires is not None and quant is None:
        raise ValueError(f"{variant}: quant.train_wires needs a quantized network (the float baseline is not mapped)")
    callbacks = [WireAware(train_wires, bits)] if train_wires is not None else []  # refuses wires it cannot model
    if variant == "baseline":  # the baseline is the teacher
        recipe = dataclasses.replace(recipe, distill=None)
    q = quant.quantizer_kwargs() if quant is not None else None
    params = {
        "dataset": dataset,
        "variant": variant,
        "bits": bits,
        "seed": seed,
        "model": model_cfg,
        "train": recipe.params(),
        "quant": q,
        "data_sha256": prov["source"]["sha256"],
    }
    if train_wires is not None:  # only when on: the other models keep their hash
        params["train_wires"] = {
            "scale": train_wires.scale,
            "chip": train_wires.chip.to_dict(),
            "bias": train_wires.bias,
        }
    teacher_net = None
    if recipe.distill is not None:
        if teacher is None:
            raise ValueError("distill.alpha > 0 needs a teacher model (the float baseline's model.pt)")
        if not 0 < recipe.distill.alpha <= 1 or recipe.distill.temperature <= 0:
            raise ValueError(f"distill: alpha must be in (0, 1] and temperature > 0, got {recipe.distill}")
        teacher_net, tdoc = load_model(teacher)
        if tdoc["dataset"] != dataset:
            raise ValueError(f"teacher {teacher} was trained on {tdoc['dataset']!r}, not {dataset!r}")
        params["distill"] = {**dataclasses.asdict(recipe.distill), "teacher_config_hash": tdoc["config_hash"]}
    chash = config_hash(params)

    state = files.read_json(state_file) if state_file.exists() else {}
    resume = ckpt_dir / "last.ckpt" if state.get("config_hash") == chash and (ckpt_dir / "last.ckpt").exists() else None
    if resume is None and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # checkpoints of another config must not leak into this run
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    model_name = f"{dataset}/{variant}" + (f"/b{bits}" if bits is not None else "")
    name = run_name or f"train {model_name} seed {seed}"
    group_id = None
    if group and experiment:  # one parent per model settings: its seed runs side by side in the UI
        group_id = tracking.group_run(
            experiment,
            key=config_hash({k: v for k, v in params.items() if k != "seed"}),
            run_name=model_name,
            tags={
                "dataset": dataset,
                "variant": variant,
                "bits": "float" if bits is None else str(bits),
                "rule": "group",
            },
            lock_dir=out_model.parent.parent,
        )
    tags = tracking.standard_tags(
        dataset=dataset,
        variant=variant,
        bits=bits,
        seed=seed,
        rule=rule,
        config_hash=chash,
        data_sha256=prov["source"]["sha256"],
        **(extra_tags or {}),
        **({"mlflow.parentRunId": group_id} if group_id else {}),
    )
    with tracking.stage_run(
        experiment,
        run_name=name,
        tags=tags,
        params=params,
        resume=state.get("run_id") if resume else None,
        run_file=tracking.run_file(out_model),  # a killed attempt's run: resumed with its checkpoint, else KILLED
    ) as mlrun:
        files.write_json(state_file, {"config_hash": chash, "run_id": mlrun.id})
        if mlrun and not resume:  # the runs table's Dataset column: what it trained on (a resumed run has it)
            mlrun.log_splits(data_npz, dataset, files.sha256_file(data_npz), prov["counts"], recipe.fit_on)
        L.seed_everything(seed, workers=True, verbose=False)
        dm = NpzDataModule(data_npz, recipe.batch_size, recipe.augment, seed, recipe.fit_on)
        arch = networks.make_arch(dm.in_shape, len(dm.class_names), model_cfg)
        net = networks.build(arch, q)
        fitted = fit(
            net,
            dm,
            recipe,
            ckpt_dir=ckpt_dir,
            resume=resume,
            accelerator=accelerator,
            logger=tracking.lightning_logger(mlrun, experiment),
            teacher=teacher_net,
            callbacks=callbacks,
        )
        net = fitted.net
        val, test = evaluate(net, dm, "val"), evaluate(net, dm, "test")
        metrics = {
            "dataset": dataset,
            "variant": variant,
            "bits": bits,
            "seed": seed,
            "test_accuracy": test["accuracy"],
            "val_accuracy": val["accuracy"],
            "fit_on": recipe.fit_on,  # train+val: val_accuracy is measured on windows it trained on
            "n_fit": int(len(dm.arrays["y_train"]) + (len(dm.arrays["y_val"]) if recipe.fit_on == "train+val" else 0)),
            "per_class_accuracy": test["per_class"],
            "val_per_class_accuracy": val["per_class"],
            "confusion_test": test["confusion"],
            "n_test": test["n"],
            "n_val": val["n"],
            "epochs": recipe.epochs,
            "best_epoch": fitted.best_epoch,
            "select": recipe.select,
            "selected_epoch": fitted.selected_epoch,
            "wall_time_s": round(time.time() - t_start, 2),
            "fit_time_s": round(fitted.fit_s, 2),
            "resumed": bool(resume),
            "threads": torch.get_num_threads(),  # CPU results are reproducible per seed AND thread count
            "device": fitted.device,
            "precision": fitted.precision,
            "n_params": int(sum(p.numel() for p in net.layers.parameters())),
            "quant": None
            if net.quant is None
            else {
                "weight_bits": net.quant.weight_bits,
                "dac_bits": net.quant.dac_bits,
                "adc_bits": net.quant.adc_bits,
                **net.quant.fullscales(),  # per layer (lists) for perlayer
            },
            "config_hash": chash,
            "mlflow_run_id": mlrun.id,
            "mlflow_group_run_id": group_id,  # the parent of this model's seed runs (the report logs mean +- std)
            "data_sha256": prov["source"]["sha256"],
            "distill": params.get("distill"),
            "train_wires": None if train_wires is None else train_wires.scale,  # x the chip's wires seen in training
        }
        model_doc = {
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "arch": arch,
            "quant": q,
            "chip": chip,  # the chip's part training simulated (Chip.trained): map_crossbar checks it
            # the training inputs (the first batch) the quantizer's full-scales were calibrated on
            "calibration_samples": None
            if net.quant is None
            else int((net.quant.layers[0] if net.quant.per_layer else net.quant).calibration_samples),
            "dataset": dataset,
            "variant": variant,
            "bits": bits,
            "class_names": dm.class_names,
            "config_hash": chash,
            "input": {
                "dtype": str(dm.arrays["x_train"].dtype),
                "norm_mean": [float(v) for v in np.ravel(dm.arrays["norm_mean"])],
                "norm_std": [float(v) for v in np.ravel(dm.arrays["norm_std"])],
                "normalised_in_npz": not dm.is_image,
            },
        }
        with files.atomic_path(out_model) as tmp:
            save_model(tmp, model_doc)
        files.write_json(out_metrics, metrics)
        mlrun.log_metrics({k: metrics[k] for k in ("test_accuracy", "val_accuracy", "wall_time_s", "fit_time_s")})
        mlrun.log_metrics({f"test_acc_{name}": acc for name, acc in test["per_class"].items()})
        mlrun.log_artifact(out_metrics)
        mlrun.log_artifact(out_model)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    state_file.unlink(missing_ok=True)
    log.info(
        "%s/%s%s: test %.4f val %.4f in %.0f s",
        dataset,
        variant,
        "" if bits is None else f"/b{bits}",
        metrics["test_accuracy"],
        metrics["val_accuracy"],
        metrics["wall_time_s"],
    )
    return metrics
