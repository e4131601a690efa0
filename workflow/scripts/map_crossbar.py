"""Thin entry point of rule map_crossbar: all logic is in nvmxbar.crossbar."""
from nvmxbar.crossbar import map_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    map_stage(model_path=sm.input.model, model_metrics=sm.input.metrics, data_npz=sm.input.npz,
              out_npz=sm.output.npz, out_json=sm.output.json, dataset=sm.wildcards.dataset,
              variant=sm.wildcards.variant, bits=int(sm.wildcards.bits), cfg=sm.params.cfg,
              quant_cfg=sm.params.quant_cfg, seed=sm.params.seed, experiment=sm.params.experiment, rule=sm.rule)
