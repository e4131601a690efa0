NAS = f"{RESULTS}/{{dataset}}/unipolar/b{{bits}}/nas"


rule nas_unipolar_search:
    """One Optuna search worker: sign-constrained, quantized trials on a study shared (journal file) by all
    workers, until it holds nas_unipolar.trials finished trials. Each trial is an MLflow run nested under the
    study's search run."""
    input:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        json=f"{NAS}/worker{{worker}}.json",
    params:
        cfg=CFG["nas_unipolar"],
        model_base=lambda wc: CFG["model"][wc.dataset],
        train_cfg=lambda wc: {k: v for k, v in CFG["train"][wc.dataset].items() if k != "epochs"},  # trials use nas epochs
        quant_cfg=lambda wc: nvconfig.quant_for(CFG["quant"], "unipolar", int(wc.bits)),
        map_cfg=CFG["map_crossbar"],
        cost_cfg=CFG["estimate_cost"],
        # the device model the noisy score needs, not evaluate_noise's sweep or chip count: an evaluate_noise
        # ablation must not rerun the search
        noise_cfg={"drift": CFG["evaluate_noise"]["drift"]},
        seed=CFG["seed"],
        accelerator=CFG["train"]["accelerator"],
        experiment=lambda wc: tracking.experiment_name(CFG, wc.dataset),
    log:
        f"{RESULTS}/logs/nas_unipolar_search/{{dataset}}/b{{bits}}/worker{{worker}}.log",
    threads: CFG["nas_unipolar"]["threads_per_worker"]
    resources:
        mem_mb=lambda wc: 6000 if wc.dataset == "cifar10" else 2000,
    script:
        "../scripts/nas_unipolar_search.py"


rule nas_unipolar:
    """Select the unipolar architecture: trials.csv, the Pareto front (pareto.csv, pareto.png/.pdf) and
    arch.json with the rule that chose it. The ordinary train rule then trains it with the full recipe."""
    input:
        workers=lambda wc: [f"{RESULTS}/{wc.dataset}/unipolar/b{wc.bits}/nas/worker{w}.json"
                            for w in range(CFG["nas_unipolar"]["workers"])] if CFG["nas_unipolar"]["search"] else [],
    output:
        trials=f"{NAS}/trials.csv",
        pareto=f"{NAS}/pareto.csv",
        arch=f"{NAS}/arch.json",
    params:
        cfg=CFG["nas_unipolar"],
        model_base=lambda wc: CFG["model"][wc.dataset],
        seed=CFG["seed"],
        experiment=lambda wc: tracking.experiment_name(CFG, wc.dataset),
    log:
        f"{RESULTS}/logs/nas_unipolar/{{dataset}}/b{{bits}}.log",
    threads: 1
    script:
        "../scripts/nas_unipolar.py"
