"""Rule nas_unipolar: nvmxbar.stages.nas_unipolar."""
from pathlib import Path

from nvmxbar.logs import job_log
from nvmxbar.stages import nas_unipolar

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    nas_unipolar.run(nas_dir=Path(sm.output.arch).parent, out_trials=sm.output.trials, out_pareto=sm.output.pareto,
                     out_arch=sm.output.arch, dataset=sm.wildcards.dataset, bits=int(sm.wildcards.bits),
                     cfg=sm.params.cfg, model_base=sm.params.model_base, seed=sm.params.seed,
                     experiment=sm.params.experiment, finalists=list(sm.input.finalists) or None)
