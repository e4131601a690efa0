rule estimate_cost:
    """mapping.json -> area and energy per component, per layer, per inference (cost.json); the cell read
    energy is measured on crossbar.npz with training inputs (estimate_cost.cell_activity).
    """
    input:
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/mapping.json",
        npz=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/crossbar.npz",
        data=f"{RESULTS}/data/{{dataset}}.npz",
        metrics=lambda wc: f"{RESULTS}/{wc.dataset}/{model_dir(wc)}/metrics.json",
        constants=COST_CONSTANTS_FILE,
    output:
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/cost.json",
    log:
        f"{RESULTS}/logs/estimate_cost/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/estimate_cost/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
        gpu=job_gpus("simulate"),  # the cell activity is measured on the simulator
    params:
        cs=P(COST),
        seed=lambda wc: int(wc.seed),
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/estimate_cost.py"
