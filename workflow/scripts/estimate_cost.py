"""Rule estimate_cost: nvmxbar.stages.estimate_cost."""
from nvmxbar.logs import job_log
from nvmxbar.settings import CostSettings, from_params
from nvmxbar.stages import estimate_cost

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    estimate_cost.run(mapping_json=sm.input.json, model_metrics=sm.input.metrics, out_json=sm.output.json,
                      dataset=sm.wildcards.dataset, variant=sm.wildcards.variant, bits=int(sm.wildcards.bits),
                      cs=from_params(CostSettings, sm.params.cs), seed=sm.params.seed, experiment=sm.params.experiment, rule=sm.rule,
                      crossbar_npz=sm.input.npz, data_npz=sm.input.data, device=sm.params.device)
