"""Thin entry point of rule prepare_data: all logic is in nvmxbar.data."""
from nvmxbar.data import prepare_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    prepare_stage(dataset=sm.wildcards.dataset, data_dir=sm.params.data_dir, download=sm.params.download,
                  out_npz=sm.output.npz, out_json=sm.output.json, seed=sm.params.seed, cfg=sm.params.cfg,
                  experiment=sm.params.experiment, rule=sm.rule)
