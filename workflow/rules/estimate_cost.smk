rule estimate_cost:
    """mapping.json -> area and energy per component, per layer, per inference (cost.json); the cell read
    energy is measured on crossbar.npz with training inputs (estimate_cost.cell_activity).
    """
    input:
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/mapping.json",
        npz=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/crossbar.npz",
        data=f"{RESULTS}/data/{{dataset}}.npz",
        metrics=lambda wc: f"{RESULTS}/{wc.dataset}/{model_dir(wc)}/metrics.json",
        constants=CFG["estimate_cost"]["constants"] or str(COST_CONSTANTS),
    output:
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/cost.json",
    log:
        f"{RESULTS}/logs/estimate_cost/{{dataset}}/{{variant}}/b{{bits}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/estimate_cost/{{dataset}}/{{variant}}/b{{bits}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    params:
        cfg=CFG["estimate_cost"],
        seed=CFG["seed"],
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/estimate_cost.py"
