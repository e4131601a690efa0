"""Rule report_sensitivity: nvmxbar.stages.report_sensitivity."""
from nvmxbar.logs import job_log
from nvmxbar.settings import Pricing, from_params
from nvmxbar.stages import report_sensitivity

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    report_sensitivity.run(sm.input.mapping, sm.input.cost, sm.params.deployments, datasets=sm.params.datasets,
                           variants=sm.params.variants, bits=sm.params.bits, seeds=sm.params.seeds,
                           pricing=from_params(Pricing, sm.params.pricing), csv=sm.output.csv, md=sm.output.md)
