"""One search trial: sample an architecture, train it sign-constrained and quantized for a few epochs (median
pruning on the per-epoch validation accuracy), and score it where it will be deployed: mapped onto the crossbar
under programming noise (:func:`crossbar_score`). Each trial is an MLflow run nested under the search's run."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import lightning as L
import numpy as np
import optuna

from .. import files, tracking
from ..config import config_hash
from ..core import networks, noise
from ..core.schemes import map_network
from ..core.simulator import Simulator
from ..data.arrays import network_inputs
from ..data.datamodule import NpzDataModule
from ..settings import MapSettings, MonteCarlo, Pricing, QuantSettings, Recipe, Score
from ..training.fit import trainer_flags
from ..training.module import Classifier
from .space import hardware_of, sample_model

log = logging.getLogger(__name__)


def _median_pruner(study, trial_number: int, curve: list[float], pruning: dict) -> bool:
    """True when a trial with validation accuracies ``curve`` (one per epoch so far) is to stop: Optuna's
    MedianPruner rule on user attrs (multi-objective safe). Its best accuracy so far is below the median of
    the COMPLETE trials' accuracy at the same epoch, once ``warmup_epochs`` have run and at least
    ``min_trials`` complete trials reached that epoch. The best, not the latest: HAR validates on 4 subjects
    and a good trial's curve dips by several points from one epoch to the next (a rule on the latest value
    pruned trials whose best epochs had reached 0.92-0.95). Pruned trials stopped early and do not set the
    bar."""
    epoch = len(curve) - 1
    if not pruning["enabled"] or not curve or epoch + 1 < int(pruning["warmup_epochs"]):
        return False
    done = [
        t.user_attrs.get("val_acc_curve", [])
        for t in study.get_trials(deepcopy=False)
        if t.number != trial_number and t.state == optuna.trial.TrialState.COMPLETE
    ]
    at = [c[epoch] for c in done if len(c) > epoch]
    if len(at) < int(pruning["min_trials"]):
        return False
    return max(curve) < float(np.median(at))


def crossbar_score(
    net: networks.Net, data_npz, bits: int, ms: MapSettings, score: Score, seed: int, device: str = "auto"
) -> dict[str, float]:
    """Validation accuracy of a trained trial on the ideal crossbar, and the mean over ``score.chips`` chips under
    ``score.noise`` (map_crossbar's mapping, evaluate_noise's device model), simulated on ``device``."""
    arrays, mapping = map_network(net.eval().cpu(), bits, ms, device=device)
    sim = Simulator(arrays, mapping, device=device)
    xv, yv = network_inputs(data_npz, "val", score.samples)
    # every chip at once, in batches whose unfolded layer inputs stay near 16 M values (64 MB) per chip population:
    # several search workers share one machine
    bs = noise.batch_for(mapping, score.chips)
    mc = MonteCarlo(
        instances=score.chips, samples=score.samples, batch_size=bs, instance_chunk=score.chips, models=(score.noise,)
    )
    row = noise.evaluate(sim, xv, yv, mc, seed=seed)[0]
    return {
        "val_acc_crossbar": noise.ideal_accuracy(sim, xv, yv, bs=bs),
        "val_acc_noisy": row["accuracy_mean"],
        "val_acc_noisy_std": row["accuracy_std"],
    }


def make_objective(
    *,
    dm: NpzDataModule,
    dataset: str,
    bits: int,
    cfg: dict,
    model_base: dict,
    recipe: Recipe,
    quant: QuantSettings,
    ms: MapSettings,
    pricing: Pricing,
    score: Score,
    seed: int,
    parent_run: str | None,
    experiment: str | None,
    accelerator: str,
    data_sha256: str = "",
    device: str = "auto",
):
    """The Optuna objective of a study: (score, area or device count). ``cfg`` is the ``nas_unipolar`` section
    (space, epochs, pruning, objective); trials train with ``recipe`` for ``cfg['epochs']`` epochs."""
    space = cfg["space"][dataset]
    epochs = int(cfg["epochs"])
    recipe = replace(recipe, epochs=epochs, select="last", fit_on="train", distill=None)
    npz_sha = files.sha256_file(dm.path)  # the runs table's Dataset column: what every trial trains on
    rows = {split: len(dm.arrays[f"y_{split}"]) for split in ("train", "val", "test")}

    def objective(trial: optuna.Trial):
        t0 = time.time()
        model_cfg = sample_model(trial, space, model_base)
        hw = hardware_of(model_cfg, dm.in_shape, len(dm.class_names), quant, ms, pricing)
        trial.set_user_attr("model", model_cfg)
        for k, v in hw.items():
            trial.set_user_attr(k, v)
        tags = tracking.standard_tags(
            dataset=dataset,
            variant="unipolar",
            bits=bits,
            seed=seed,
            rule="nas_unipolar_search",
            config_hash=config_hash(model_cfg),
            data_sha256=data_sha256,
            **{"optuna.study": trial.study.study_name, "optuna.trial": trial.number},
        )
        run = tracking.open_run(
            experiment if parent_run else None,
            run_name=f"trial {trial.number}",
            tags=tags,
            params={"model": model_cfg, "epochs": epochs, **trial.params},
            parent=parent_run,
        )
        run.log_splits(dm.path, dataset, npz_sha, rows, "train")
        run.log_metrics(hw)
        curve: list[float] = []

        class Report(L.Callback):
            pruned = False

            def on_train_epoch_end(self, trainer, pl_module):
                acc = float(trainer.callback_metrics["val_acc"])
                curve.append(acc)
                trial.set_user_attr("val_acc_curve", list(curve))
                run.log_metric("val_acc", acc, step=len(curve) - 1)
                log.info(
                    "trial %d epoch %d/%d val_acc %.4f area %.4g um^2 (%.0f s)",
                    trial.number,
                    len(curve),
                    epochs,
                    acc,
                    hw["area_um2"],
                    time.time() - t0,
                )
                if _median_pruner(trial.study, trial.number, curve, cfg["pruning"]):
                    trainer.should_stop = True
                    self.pruned = True

        report = Report()
        state = "FAILED"
        try:
            L.seed_everything(seed + trial.number, workers=True, verbose=False)
            arch = networks.make_arch(dm.in_shape, len(dm.class_names), model_cfg)
            net = networks.build(arch, quant.quantizer_kwargs())
            module = Classifier(net, recipe)
            trainer = L.Trainer(
                max_epochs=epochs,
                accelerator=accelerator,
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                callbacks=[report],
                **trainer_flags(net, accelerator),
            )
            trainer.fit(module, datamodule=dm)
            best = max(curve)
            trial.set_user_attr("wall_time_s", round(time.time() - t0, 2))
            if report.pruned:
                state = "KILLED"
                raise optuna.TrialPruned(f"val_acc {curve[-1]:.4f} below the median after {len(curve)} epochs")
            # the last epoch's accuracy, as train exports the last epoch (select: last); the best of a few noisy
            # epochs would favour lucky trials
            value = curve[-1]
            if score.noisy:
                scores = crossbar_score(net, dm.path, bits, ms, score, seed + trial.number, device)
                for k, v in scores.items():
                    trial.set_user_attr(k, v)
                value = scores["val_acc_noisy"]
                log.info(
                    "trial %d: val_acc %.4f trained, %.4f ideal crossbar, %.4f +- %.4f at prog noise %s x sigma(G) "
                    "(%d chips)",
                    trial.number,
                    curve[-1],
                    scores["val_acc_crossbar"],
                    value,
                    scores["val_acc_noisy_std"],
                    score.noise.prog_sigma,
                    score.chips,
                )
            trial.set_user_attr("wall_time_s", round(time.time() - t0, 2))
            state = "FINISHED"
            run.log_metric("best_val_acc", best)
            run.log_metrics(
                {k: trial.user_attrs[k] for k in ("val_acc_crossbar", "val_acc_noisy") if k in trial.user_attrs}
            )
            return value, hw["area_um2"] if cfg["objective"] == "area" else float(hw["devices"])
        finally:
            run.set_tag("optuna.state", {"FINISHED": "COMPLETE", "KILLED": "PRUNED"}.get(state, "FAIL"))
            run.end(state)

    return objective
