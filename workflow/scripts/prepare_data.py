"""Rule prepare_data: nvmxbar.stages.prepare_data."""
from nvmxbar.logs import job_log
from nvmxbar.stages import prepare_data

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    prepare_data.run(dataset=sm.wildcards.dataset, data_dir=sm.params.data_dir, download=sm.params.download,
                     out_npz=sm.output.npz, out_json=sm.output.json, seed=sm.params.seed, cfg=sm.params.cfg,
                     experiment=sm.params.experiment, rule=sm.rule)
