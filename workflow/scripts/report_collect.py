"""Rule report_collect: nvmxbar.stages.report_collect."""
from nvmxbar.logs import job_log
from nvmxbar.stages import report_collect

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    declared = report_collect.inputs(dict(sm.input.items()), models=sm.params.models, deployments=sm.params.deployments,
                                     nas=sm.params.nas, datasets=sm.params.datasets, variants=sm.params.variants,
                                     bits=sm.params.bits, seeds=sm.params.seeds)
    report_collect.run(declared, sm.output.collected)
