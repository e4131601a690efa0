"""Rule nas_unipolar_finalist: nvmxbar.stages.nas_unipolar_finalist."""
from nvmxbar.logs import job_log
from nvmxbar.settings import MapSettings, QuantSettings, Recipe, Score, from_params
from nvmxbar.stages import nas_unipolar_finalist

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    nas_unipolar_finalist.run(
        workers=list(sm.input.workers), out_json=sm.output.json, data_npz=sm.input.npz, data_json=sm.input.json,
        dataset=sm.wildcards.dataset, bits=int(sm.wildcards.bits), rank=int(sm.wildcards.rank),
        rep=int(sm.wildcards.rep), score=from_params(Score, sm.params.score), val_folds=sm.params.val_folds,
        model_base=sm.params.model_base, recipe=from_params(Recipe, sm.params.recipe),
        quant=from_params(QuantSettings, sm.params.quant), ms=from_params(MapSettings, sm.params.ms),
        chip=sm.params.chip, seed=sm.params.seed,
        experiment=sm.params.experiment, threads=sm.params.num_threads, accelerator=sm.params.accelerator,
        teacher=sm.input.teacher[0] if sm.input.teacher else None, device=sm.params.device)
