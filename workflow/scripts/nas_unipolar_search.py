"""Rule nas_unipolar_search: nvmxbar.stages.nas_unipolar_search."""
from pathlib import Path

from nvmxbar.logs import job_log
from nvmxbar.settings import MapSettings, Pricing, QuantSettings, Recipe, Score, from_params
from nvmxbar.stages import nas_unipolar_search

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    nas_unipolar_search.run(
        data_npz=sm.input.npz, nas_dir=Path(sm.output.json).parent, out_json=sm.output.json,
        dataset=sm.wildcards.dataset, bits=int(sm.wildcards.bits), worker=int(sm.wildcards.worker), cfg=sm.params.cfg,
        model_base=sm.params.model_base, recipe=from_params(Recipe, sm.params.recipe),
        quant=from_params(QuantSettings, sm.params.quant), ms=from_params(MapSettings, sm.params.ms),
        pricing=from_params(Pricing, sm.params.pricing), score=from_params(Score, sm.params.score), seed=sm.params.seed, experiment=sm.params.experiment,
        threads=sm.params.num_threads, accelerator=sm.params.accelerator,
        device=sm.params.device)
