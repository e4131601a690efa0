rule prepare_data:
    """Dataset source (official archive, extracted folder or ../shared/data copy) -> split, normalised arrays."""
    input:
        source=lambda wc: source_path(wc.dataset),
    output:
        npz=f"{RESULTS}/data/{{dataset}}.npz",
        json=f"{RESULTS}/data/{{dataset}}.json",
    params:
        cfg=lambda wc: CFG["prepare_data"][wc.dataset],
        data_dir=CFG["data_dir"],
        download=CFG["download"],
        seed=CFG["seed"],
        experiment=lambda wc: tracking.experiment_name(CFG, wc.dataset),
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    threads: 1
    resources:
        mem_mb=6000,
    script:
        "../scripts/prepare_data.py"


def source_path(dataset):
    """The source file/folder the job will read, so that replacing it reruns the job ([] before download)."""
    from nvmxbar.data import DataError, find_source

    try:
        return str(find_source(dataset, CFG["data_dir"], download=False).path)
    except DataError:
        return []
