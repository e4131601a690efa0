"""Thin entry point of rule evaluate_noise: all logic is in nvmxbar.noise."""
from nvmxbar.noise import noise_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    noise_stage(crossbar_npz=sm.input.npz, mapping_json=sm.input.json, data_npz=sm.input.data,
                model_metrics=sm.input.metrics, out_csv=sm.output.csv, dataset=sm.wildcards.dataset,
                variant=sm.wildcards.variant, bits=int(sm.wildcards.bits), cfg=sm.params.cfg, seed=sm.params.seed,
                experiment=sm.params.experiment, threads=sm.threads, rule=sm.rule)
