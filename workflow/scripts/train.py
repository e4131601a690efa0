"""Thin entry point of rule train: all logic is in nvmxbar.train."""
from nvmxbar.tracking import log_to
from nvmxbar.train import train

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    train(data_npz=sm.input.npz, data_json=sm.input.json, out_model=sm.output.model, out_metrics=sm.output.metrics,
          dataset=sm.wildcards.dataset, variant=sm.params.variant, bits=sm.params.bits, seed=sm.params.seed,
          model_cfg=sm.params.model_cfg, train_cfg=sm.params.train_cfg, quant_cfg=sm.params.quant_cfg,
          experiment=sm.params.experiment, threads=sm.params.num_threads or sm.threads,
          accelerator=sm.params.accelerator, rule=sm.rule, arch_json=sm.input.arch[0] if sm.input.arch else None,
          teacher=sm.input.teacher[0] if sm.input.teacher else None)
