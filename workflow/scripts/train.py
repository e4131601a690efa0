"""Rule train: nvmxbar.stages.train."""
from nvmxbar.logs import job_log
from nvmxbar.settings import QuantSettings, Recipe, TrainWires, from_params
from nvmxbar.stages import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    train.run(data_npz=sm.input.npz, data_json=sm.input.json, out_model=sm.output.model, out_metrics=sm.output.metrics,
              dataset=sm.wildcards.dataset, variant=sm.params.variant, bits=sm.params.bits, seed=sm.params.seed,
              model_cfg=sm.params.model_cfg, recipe=from_params(Recipe, sm.params.recipe),
              quant=sm.params.quant and from_params(QuantSettings, sm.params.quant), chip=sm.params.chip,
              experiment=sm.params.experiment, threads=sm.params.num_threads,
              accelerator=sm.params.accelerator, rule=sm.rule, arch_json=sm.input.arch[0] if sm.input.arch else None,
              teacher=sm.input.teacher[0] if sm.input.teacher else None,
              train_wires=sm.params.train_wires and from_params(TrainWires, sm.params.train_wires))
