"""Thin entry point of rule nas_unipolar_search: all logic is in nvmxbar.nas."""
from pathlib import Path

from nvmxbar.nas import search_worker
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    search_worker(data_npz=sm.input.npz, nas_dir=Path(sm.output.json).parent, out_json=sm.output.json,
                  dataset=sm.wildcards.dataset, bits=int(sm.wildcards.bits), worker=int(sm.wildcards.worker),
                  cfg=sm.params.cfg, model_base=sm.params.model_base, train_cfg=sm.params.train_cfg,
                  quant_cfg=sm.params.quant_cfg, map_cfg=sm.params.map_cfg, cost_cfg=sm.params.cost_cfg,
                  seed=sm.params.seed, experiment=sm.params.experiment, threads=sm.threads,
                  accelerator=sm.params.accelerator, noise_cfg=sm.params.noise_cfg)
