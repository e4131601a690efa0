rule evaluate_noise:
    """Monte Carlo accuracy of the mapped crossbars under device non-idealities (noise.csv)."""
    input:
        npz=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/crossbar.npz",
        json=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/mapping.json",
        metrics=lambda wc: f"{RESULTS}/{wc.dataset}/{model_dir(wc)}/metrics.json",
        data=f"{RESULTS}/data/{{dataset}}.npz",
    output:
        csv=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/noise.csv",
        summary=f"{RESULTS}/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}/noise_summary.json",
    log:
        f"{RESULTS}/logs/evaluate_noise/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_noise/{{dataset}}/{{variant}}/b{{bits}}/seed{{seed}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: job_threads(2)
    resources:
        mem_mb=6000,
        runtime=lambda wc: 240 if wc.dataset == "cifar10" else 30,
        gpu=job_gpus("simulate"),
    params:
        mc=P(MONTE_CARLO),
        seed=lambda wc: int(wc.seed),
        device=CFG["device"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/evaluate_noise.py"
