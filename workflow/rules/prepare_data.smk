rule prepare_data:
    """Dataset source (official archive, extracted folder or an offline copy, see docs/DATA.md) -> split,
    normalised arrays."""
    output:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
        json=f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{dataset}}.tsv"
    conda:
        "../envs/nvmxbar.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,  # minutes; a download of the CIFAR-10 archive included
        gpu=0,
    params:
        source_sha256=lambda wc: source_sha256(wc.dataset),  # the source's identity
        cfg=lambda wc: CFG["prepare_data"][wc.dataset],
        data_dir=CFG["data_dir"],
        download=CFG["download"],
        seed=CFG["seed"],
        experiment=lambda wc: experiment(wc.dataset),
    script:
        "../scripts/prepare_data.py"
