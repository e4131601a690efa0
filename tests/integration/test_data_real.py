"""nvmxbar.data on the real dataset copies ($NVMXBAR_DATA_DIR, fixture ``data_dir``): the shared HAR npz and
the CIFAR-10 JPEG image-folder tar are found, read, checked and prepared as expected."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from nvmxbar.data import CIFAR_CLASS_NAMES, HAR_CLASS_NAMES, DataError, find_source, load_raw, prepare


def run_prepare(tmp_path: Path, dataset: str, source, name: str = "out", **kw):
    """prepare() into tmp_path/<name>/: (provenance, arrays of the npz, the JSON, npz path)."""
    kw.setdefault("seed", 0)
    out_npz, out_json = tmp_path / name / f"{dataset}.npz", tmp_path / name / f"{dataset}.json"
    prov = prepare(dataset, source, out_npz, out_json, **kw)
    with np.load(out_npz, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return prov, arrays, json.loads(out_json.read_text()), out_npz


def test_real_har(tmp_path, data_dir):
    src = find_source("har", data_dir, download=False)
    assert src.kind == "prepared_npz"
    t0 = time.perf_counter()
    raw = load_raw(src)
    print(f"\nreal HAR load_raw: {time.perf_counter() - t0:.2f} s")
    assert raw["x_train"].shape == (7352, 9, 128) and raw["x_test"].shape == (2947, 9, 128)
    assert np.bincount(raw["y_train"]).tolist() == [1226, 1073, 986, 1286, 1374, 1407]
    assert np.bincount(raw["y_test"]).tolist() == [496, 471, 420, 491, 532, 537]
    assert set(raw["subject_test"].tolist()) == {2, 4, 9, 10, 12, 13, 18, 20, 24}
    assert raw["class_names"] == list(HAR_CLASS_NAMES)
    assert 1.0 < np.linalg.norm(raw["x_train"][:, 6:9], axis=1).mean() < 1.07  # |total_acc| ~ 1.03 g
    with pytest.raises(DataError, match=r"561 engineered features are not in .*har\.npz"):
        load_raw(src, "engineered")
    t0 = time.perf_counter()
    _, arrays, js, _ = run_prepare(tmp_path, "har", src, seed=0)
    print(f"real HAR prepare: {time.perf_counter() - t0:.2f} s")
    assert js["counts"]["test"] == 2947 and js["counts"]["train"] + js["counts"]["val"] == 7352
    assert not set(js["val_subjects"]) & set(arrays["subject_train"].tolist())
    assert js["source"]["sha256"] == "bf506e7b69958942fe6188cdf46f4a6b0cdb250b66905c22d8ba756555988ed3"


@pytest.mark.slow  # decodes 60,000 JPEGs (~30 s)
def test_real_cifar(data_dir):
    src = find_source("cifar10", data_dir, download=False)
    assert src.kind == "imagefolder_tar"
    t0 = time.perf_counter()
    raw = load_raw(src)
    print(f"\nreal CIFAR-10 load_raw: {time.perf_counter() - t0:.2f} s")
    assert raw["x_train"].shape == (50000, 3, 32, 32) and raw["x_test"].shape == (10000, 3, 32, 32)
    assert raw["x_train"].dtype == np.uint8
    assert np.bincount(raw["y_train"]).tolist() == [5000] * 10
    assert np.bincount(raw["y_test"]).tolist() == [1000] * 10
    assert raw["class_names"] == list(CIFAR_CLASS_NAMES)
    mean = raw["x_train"].mean(axis=(0, 2, 3)) / 255  # the well-known CIFAR-10 channel means
    np.testing.assert_allclose(mean, [0.491, 0.482, 0.447], atol=0.01)
