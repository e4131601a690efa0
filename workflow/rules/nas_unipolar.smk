rule nas_unipolar_search:
    """One Optuna search worker: sign-constrained, quantized trials on a study shared by all workers
    (nas_unipolar.storage: a journal file, or a PostgreSQL database for workers on several machines), until
    it holds nas_unipolar.trials finished trials. Each trial is an MLflow run nested under the study's search
    run."""
    input:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        json=f"{NAS}/worker{{worker}}.json",
    log:
        f"{RESULTS}/logs/nas_unipolar_search/{{dataset}}/b{{bits}}/worker{{worker}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nas_unipolar_search/{{dataset}}/b{{bits}}/worker{{worker}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: CFG["nas_unipolar"]["threads_per_worker"]
    resources:
        mem_mb=lambda wc: 6000 if wc.dataset == "cifar10" else 2000,
        runtime=runtime_nas("search"),
        gpu=job_gpus("train", "simulate"),
    params:
        cfg=lambda wc: {
            **{k: CFG["nas_unipolar"][k] for k in SEARCH_KEYS},
            "space": {wc.dataset: CFG["nas_unipolar"]["space"][wc.dataset]},
        },
        model_base=lambda wc: CFG["model"][wc.dataset],
        recipe=lambda wc: search_recipe(wc.dataset),
        quant=lambda wc: quant_params("unipolar", int(wc.bits)),
        ms=P(MAP.for_variant("unipolar")),
        pricing=P(COST.pricing),
        score=P(SCORE),
        seed=CFG["seed"],
        accelerator=CFG["train"]["accelerator"],
        num_threads=CFG["nas_unipolar"]["threads_per_worker"],  # fixed, whatever --cores is
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/nas_unipolar_search.py"


rule nas_unipolar_finalist:
    """Retrain the {rank}-th best COMPLETE trial of the study with the full recipe (train.<dataset>, seed = workflow
    seed + 1 + {rep}) and score it as the search does (mapped crossbar under programming noise, validation split).
    A rank beyond the study's COMPLETE trials writes trial: null."""
    input:
        workers=nas_workers,
        npz=f"{RESULTS}/data/{{dataset}}.npz",
        json=f"{RESULTS}/data/{{dataset}}.json",
        teacher=teacher,
    output:
        json=f"{NAS}/finalists/rank{{rank}}_rep{{rep}}.json",
    log:
        f"{RESULTS}/logs/nas_unipolar_finalist/{{dataset}}/b{{bits}}/rank{{rank}}_rep{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nas_unipolar_finalist/{{dataset}}/b{{bits}}/rank{{rank}}_rep{{rep}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: CFG["nas_unipolar"]["threads_per_worker"]
    resources:
        mem_mb=lambda wc: 6000 if wc.dataset == "cifar10" else 2000,
        runtime=runtime_nas("finalists"),
        gpu=job_gpus("train", "simulate"),
    params:
        # not finalists.count: more slots must not redo the others
        score=P(SCORE),
        val_folds=CFG["nas_unipolar"]["finalists"]["val_folds"],
        model_base=lambda wc: CFG["model"][wc.dataset],
        recipe=lambda wc: finalist_recipe(wc.dataset),
        quant=lambda wc: quant_params("unipolar", int(wc.bits)),
        ms=P(MAP.for_variant("unipolar")),
        chip=chip_record("unipolar"),
        seed=CFG["seed"],
        accelerator=CFG["train"]["accelerator"],
        num_threads=CFG["nas_unipolar"]["threads_per_worker"],  # fixed, whatever --cores is
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/nas_unipolar_finalist.py"


rule nas_unipolar:
    """Select the unipolar architecture: trials.csv, the Pareto front (pareto.csv, pareto.png/.pdf) and
    arch.json with the rule that chose it (among the finalists' full-recipe scores, when there are finalists).
    The ordinary train rule then trains it with the full recipe."""
    input:
        workers=nas_workers,
        finalists=nas_finalists,
    output:
        trials=f"{NAS}/trials.csv",
        pareto=f"{NAS}/pareto.csv",
        arch=f"{NAS}/arch.json",
    log:
        f"{RESULTS}/logs/nas_unipolar/{{dataset}}/b{{bits}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nas_unipolar/{{dataset}}/b{{bits}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        gpu=0,
    params:
        cfg={k: CFG["nas_unipolar"][k] for k in SELECTION_KEYS},
        model_base=lambda wc: CFG["model"][wc.dataset],
        seed=CFG["seed"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/nas_unipolar.py"
