rule map_crossbar:
    """Trained model -> device levels and conductances on tiles (crossbar.npz) + component counts (mapping.json).
    The float baseline is mapped at every device resolution (per-layer scales, bit slicing).
    """
    input:
        model=lambda wc: f"{RESULTS}/{wc.dataset}/{model_dir(wc)}/model.pt",
        metrics=lambda wc: f"{RESULTS}/{wc.dataset}/{model_dir(wc)}/metrics.json",
        npz=f"{RESULTS}/data/{{dataset}}.npz",
        constants=pricing_inputs,  # the baseline's candidates are priced (estimate_cost's constants)
    output:
        npz=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/crossbar.npz",
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/mapping.json",
    log:
        f"{RESULTS}/logs/map_crossbar/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/map_crossbar/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=job_gpus("simulate"),  # the baseline's DAC/ADC calibration runs the simulator
    params:
        settings=lambda wc: P(MAP.for_variant(wc.variant)),
        seed=lambda wc: int(wc.seed),
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/map_crossbar.py"
