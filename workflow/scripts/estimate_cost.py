"""Thin entry point of rule estimate_cost: all logic is in nvmxbar.cost."""
from nvmxbar.cost import cost_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    cost_stage(mapping_json=sm.input.json, model_metrics=sm.input.metrics, out_json=sm.output.json,
               dataset=sm.wildcards.dataset, variant=sm.wildcards.variant, bits=int(sm.wildcards.bits),
               cfg=sm.params.cfg, seed=sm.params.seed, experiment=sm.params.experiment, rule=sm.rule,
               crossbar_npz=sm.input.npz, data_npz=sm.input.data)
