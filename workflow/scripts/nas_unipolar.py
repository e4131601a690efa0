"""Thin entry point of rule nas_unipolar: all logic is in nvmxbar.nas."""
from pathlib import Path

from nvmxbar.nas import select_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    select_stage(nas_dir=Path(sm.output.arch).parent, out_trials=sm.output.trials, out_pareto=sm.output.pareto,
                 out_arch=sm.output.arch, dataset=sm.wildcards.dataset, bits=int(sm.wildcards.bits),
                 cfg=sm.params.cfg, model_base=sm.params.model_base, seed=sm.params.seed,
                 experiment=sm.params.experiment, finalists=list(sm.input.finalists) or None)
