"""Rule map_crossbar: nvmxbar.stages.map_crossbar."""
from nvmxbar.logs import job_log
from nvmxbar.settings import MapSettings, from_params
from nvmxbar.stages import map_crossbar

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    map_crossbar.run(model_path=sm.input.model, model_metrics=sm.input.metrics, data_npz=sm.input.npz,
                     out_npz=sm.output.npz, out_json=sm.output.json, dataset=sm.wildcards.dataset,
                     variant=sm.wildcards.variant, bits=int(sm.wildcards.bits), settings=from_params(MapSettings, sm.params.settings),
                     seed=sm.params.seed, experiment=sm.params.experiment, rule=sm.rule,
                     device=sm.params.device)
