# ------------------------------------------------------------------ the identity of a dataset's source
# The source is no input of prepare_data (an input reruns by mtime: a touched or re-copied data folder would rerun
# the whole DAG). Its identity is its content: the digest below is a params entry, so Snakemake's params trigger
# reruns prepare_data, and all that follows, exactly when a file's content changes (docs/DATA.md).
from nvmxbar.data import DataError, find_source
from nvmxbar.data.sources import DOWNLOAD_SHA256, content_sha256

# each file's digest under its size, mtime, ctime and inode; a dry run writes nothing
DIGEST_CACHE = f"{RESULTS}/data/source-digests.json"
SOURCE_SHA256 = {}  # per dataset, once per Snakemake process


def source_sha256(dataset):
    """The content digest of the source the job will read. With no source found, that of the official archive
    the job downloads (so the run after a download reruns nothing); with a source the job cannot read, a value
    that says so (the job then stops with the reader's error)."""
    if dataset not in SOURCE_SHA256:
        try:
            source = find_source(dataset, CFG["data_dir"], download=False)
        except DataError:  # absent: the job downloads it, or says where it looked
            SOURCE_SHA256[dataset] = DOWNLOAD_SHA256[dataset]
        else:
            try:
                SOURCE_SHA256[dataset] = content_sha256(
                    source, cache=None if workflow.dryrun else DIGEST_CACHE
                )
            except DataError as err:
                SOURCE_SHA256[dataset] = f"unreadable: {err}"
    return SOURCE_SHA256[dataset]


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
