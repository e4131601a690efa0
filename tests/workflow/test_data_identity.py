"""The identity of a dataset's source is its content (a params entry of rule prepare_data, docs/DATA.md): touching
or re-copying the data reruns nothing; changing a file's content reruns prepare_data and what follows. Real
Snakemake runs (smoke profile, HAR, one trained model) on a copy of the real HAR source in tmp."""

import hashlib
import json
import os
import shutil
import time

import numpy as np
import pytest

from .test_workflow import job_counts, snakemake

TARGET = "results/har/baseline/seed0/model.pt"  # prepared data and one cheap job after it
HAR_FILES = ("activity_labels.txt", "har.npz")  # the prepared_npz source: the arrays and their class names


def config(data):
    return ["--config", "profile=smoke", f"data_dir={data}", "datasets=[har]"]


def planned(work, data) -> dict[str, int]:
    """The jobs a dry run of TARGET lists (rule -> count; {} when there is nothing to do)."""
    r = snakemake(work, "-n", "--cores", "1", TARGET, *config(data))
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    return {} if "Nothing to be done" in out else job_counts(out)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def har_run(tmp_path_factory, data_dir):
    """A copy of the real HAR source (har.npz and activity_labels.txt) and a real run up to TARGET on it."""
    data = tmp_path_factory.mktemp("data")
    (data / "uci_har").mkdir()
    for name in HAR_FILES:
        shutil.copyfile(data_dir / "uci_har" / name, data / "uci_har" / name)
    work = tmp_path_factory.mktemp("work")
    r = snakemake(work, "--cores", "1", TARGET, *config(data))
    assert r.returncode == 0, r.stderr[-5000:]
    return work, data


def test_the_recorded_identity_is_the_content_digest(har_run, data_dir):
    work, data = har_run
    source = json.loads((work / "results" / "data" / "har.json").read_text())["source"]
    digests = {name: sha256((data_dir / "uci_har" / name).read_bytes()) for name in HAR_FILES}
    assert source["sha256"] == digests["har.npz"]  # the npz's own digest, as in shared/data/SHA256SUMS
    lines = "".join(f"{name} {digests[name]}\n" for name in sorted(HAR_FILES))
    assert source["content_sha256"] == sha256(lines.encode())  # the arrays and their class names
    cache = json.loads((work / "results" / "data" / "source-digests.json").read_text())
    entry = cache["sources"][str((data / "uci_har" / "har.npz").resolve())]
    assert {name: e[4] for name, e in entry.items()} == digests
    assert planned(work, data) == {}


def test_touched_or_recopied_data_reruns_nothing(har_run, data_dir):
    work, data = har_run
    built = (work / "results" / "data" / "har.npz").stat().st_mtime_ns
    now = time.time_ns()
    for name in HAR_FILES:
        os.utime(data / "uci_har" / name, ns=(now, now))
    assert now > built  # newer than the prepared data: an mtime-triggered input would rerun everything
    assert planned(work, data) == {}
    shutil.rmtree(data / "uci_har")  # re-copied: new files (inodes), new times, same content
    shutil.copytree(data_dir / "uci_har", data / "uci_har", ignore=lambda d, names: set(names) - set(HAR_FILES))
    assert sorted(p.name for p in (data / "uci_har").iterdir()) == sorted(HAR_FILES)
    assert planned(work, data) == {}


def test_changed_content_reruns_prepare_data_and_what_follows(har_run, data_dir):
    work, data = har_run
    labels, npz = data / "uci_har" / "activity_labels.txt", data / "uci_har" / "har.npz"
    try:
        # a class renamed: the arrays are the same, the prepared class names are not
        labels.write_text(labels.read_text().replace("WALKING_UPSTAIRS", "CLIMBING_STAIRS"))
        assert planned(work, data) == {"prepare_data": 1, "train": 1, "total": 2}
        shutil.copyfile(data_dir / "uci_har" / labels.name, labels)  # back: new mtime, the old content
        assert planned(work, data) == {}
        # one value of one window changed
        with np.load(data_dir / "uci_har" / "har.npz") as z:
            arrays = dict(z)
        arrays["inertial_train"][0, 0, 0] += 1.0
        np.savez(npz, **arrays)
        assert planned(work, data) == {"prepare_data": 1, "train": 1, "total": 2}
    finally:
        for name in HAR_FILES:
            shutil.copyfile(data_dir / "uci_har" / name, data / "uci_har" / name)
    assert planned(work, data) == {}
