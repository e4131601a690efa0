"""Rule evaluate_noise: nvmxbar.stages.evaluate_noise."""
from nvmxbar.logs import job_log
from nvmxbar.settings import MonteCarlo, from_params
from nvmxbar.stages import evaluate_noise

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    evaluate_noise.run(crossbar_npz=sm.input.npz, mapping_json=sm.input.json, data_npz=sm.input.data,
                       model_metrics=sm.input.metrics, out_csv=sm.output.csv, dataset=sm.wildcards.dataset,
                       variant=sm.wildcards.variant, bits=int(sm.wildcards.bits), mc=from_params(MonteCarlo, sm.params.mc),
                       seed=sm.params.seed, experiment=sm.params.experiment, threads=sm.threads, rule=sm.rule,
                       device=sm.params.device)
