"""Tests for nvmxbar.data (finding, reading, checking, splitting and writing the datasets) on small copies of
every accepted source format, built in tmp_path. The real copies are read in tests/integration/test_data_real.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nvmxbar import data
from nvmxbar.data import DataError, Source, find_source, load_raw, prepare, sources, splits

CHANNELS = data.INERTIAL_CHANNELS
HAR_TRAIN_SUBJECTS = (1, 3, 5, 6, 7, 8)
HAR_TEST_SUBJECTS = (2, 4)
WINDOWS_PER_ACTIVITY = 2
CIFAR_CLASSES = data.CIFAR_CLASS_NAMES


# --------------------------------------------------------------------------------------------
# Builders for small copies of the official formats
# --------------------------------------------------------------------------------------------


def uci_number(v: float) -> str:
    """One field of the UCI text files: '%.7e' with a 3-digit exponent, 16 characters wide."""
    mantissa, exponent = f"{v:.7e}".split("e")
    return f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}".rjust(16)


def uci_table(rows: np.ndarray) -> bytes:
    return "".join("".join(uci_number(v) for v in row) + "\n" for row in rows).encode()


def make_har_files(seed: int = 0) -> tuple[dict[str, bytes], dict]:
    """Files of a small 'UCI HAR Dataset' (relative path -> bytes) and the values written."""
    rng = np.random.default_rng(seed)
    files, truth = {}, {}
    for split, subjects in (("train", HAR_TRAIN_SUBJECTS), ("test", HAR_TEST_SUBJECTS)):
        subj = np.repeat(subjects, 6 * WINDOWS_PER_ACTIVITY)
        y = np.tile(np.repeat(np.arange(1, 7), WINDOWS_PER_ACTIVITY), len(subjects))
        n = len(y)
        # channel c has mean c and scale c+1; the test split is shifted so its stats differ
        shift = 0.0 if split == "train" else 1.0
        x = rng.normal(size=(n, 9, 128)) * (np.arange(9)[None, :, None] + 1) + np.arange(9)[None, :, None] + shift
        x[:, :, 0] = np.arange(9)[None, :] + np.arange(n)[:, None] / 100  # channel/row marker
        feats = rng.uniform(-1, 1, size=(n, 561))
        feats[:, 0] = np.arange(n) / 1000
        for c, name in enumerate(CHANNELS):
            files[f"{split}/Inertial Signals/{name}_{split}.txt"] = uci_table(x[:, c])
        files[f"{split}/X_{split}.txt"] = uci_table(feats)
        files[f"{split}/y_{split}.txt"] = "".join(f"{v}\n" for v in y).encode()
        files[f"{split}/subject_{split}.txt"] = "".join(f"{v}\n" for v in subj).encode()
        truth[split] = {"x": x, "X": feats, "y": y, "subject": subj}
    files["activity_labels.txt"] = b"".join(f"{i + 1} {n}\n".encode() for i, n in enumerate(data.HAR_CLASS_NAMES))
    files["features.txt"] = b"".join(f"{i + 1} f{i}\n".encode() for i in range(561))
    files["README.txt"] = b"small test copy\n"
    return files, truth


def write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, raw in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(raw)
    return root


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, raw in files.items():
            zf.writestr(rel, raw)
    return buf.getvalue()


def har_inner_zip(files: dict[str, bytes]) -> bytes:
    """'UCI HAR Dataset.zip': the dataset folder plus the __MACOSX junk of the real archive."""
    members = {f"UCI HAR Dataset/{rel}": raw for rel, raw in files.items()}
    members["__MACOSX/UCI HAR Dataset/._README.txt"] = b"\x00\x05\x16\x07 resource fork"
    return zip_bytes(members)


def har_official_zip(path: Path, files: dict[str, bytes]) -> Path:
    """The UCI download: an outer zip nesting 'UCI HAR Dataset.zip'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes({"UCI HAR Dataset.names": b"names\n", "UCI HAR Dataset.zip": har_inner_zip(files)}))
    return path


def batch_pickle(d: dict, py2_style: bool) -> bytes:
    if py2_style:  # protocol 2 with the numpy 1.x module path, as in the official Python 2 pickles
        return pickle.dumps(d, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return pickle.dumps(d)


def make_cifar_batches(per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> tuple[dict, dict]:
    """Files of cifar-10-batches-py (name -> bytes) and the arrays written (x as (N, 3072))."""
    rng = np.random.default_rng(seed)
    files, truth = {}, {"x": [], "y": []}
    for b in range(1, 6):
        y = np.tile(np.arange(10), per_class)
        x = rng.integers(0, 256, size=(len(y), 3072), dtype=np.uint8)
        if b == 1:
            x[0] = 0
            x[0, :1024] = 255  # a pure red image
            x[1] = np.arange(3072) % 251  # layout marker
        d = {
            b"batch_label": f"training batch {b} of 5".encode(),
            b"labels": y.tolist(),
            b"data": x,
            b"filenames": [f"img{b}_{i}.png".encode() for i in range(len(y))],
        }
        files[f"data_batch_{b}"] = batch_pickle(d, py2_style=(b % 2 == 1))
        truth["x"].append(x)
        truth["y"].append(y)
    yt = np.tile(np.arange(10), test_per_class)
    xt = rng.integers(0, 256, size=(len(yt), 3072), dtype=np.uint8)
    files["test_batch"] = batch_pickle({b"labels": yt.tolist(), b"data": xt}, py2_style=True)
    files["batches.meta"] = batch_pickle(
        {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": len(yt), b"num_vis": 3072},
        py2_style=True,
    )
    truth = {"x_train": np.concatenate(truth["x"]), "y_train": np.concatenate(truth["y"]), "x_test": xt, "y_test": yt}
    return files, truth


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        dirs = sorted({str(Path(n).parent) for n in members} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, raw in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def cifar_python_tarball(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {f"cifar-10-batches-py/{n}": raw for n, raw in files.items()}
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    path.write_bytes(tar_bytes(members))
    return path


CLASS_COLOURS = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (0, 255, 255),
    (255, 0, 255),
    (128, 0, 0),
    (0, 128, 0),
    (0, 0, 128),
    (128, 128, 128),
]


def image_bytes(colour, fmt: str, size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def make_imagefolder(
    train_per_class: int = 2, test_per_class: int = 1, drop: tuple = (), odd_size: str | None = None
) -> dict[str, bytes]:
    """train/<class>/NNNN.(jpg|png), test/<class>/... with one solid colour per class.

    ``drop``: (split, class) folders to leave out; ``odd_size``: a member that is 33x32 instead.
    """
    members = {}
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c, cls in enumerate(CIFAR_CLASSES):
            if (split, cls) in drop:
                continue
            for i in range(n):
                fmt, ext = ("PNG", "png") if i % 2 else ("JPEG", "jpg")
                name = f"{split}/{cls}/{i:04d}.{ext}"
                size = (33, 32) if name == odd_size else (32, 32)
                members[name] = image_bytes(CLASS_COLOURS[c], fmt, size)
    return members


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def har_files():
    return make_har_files()


@pytest.fixture(scope="module")
def cifar_batches():
    return make_cifar_batches()


@pytest.fixture
def har_zip_dir(tmp_path, har_files):
    har_official_zip(tmp_path / "uci_har" / data.HAR_ZIP_NAME, har_files[0])
    return tmp_path


@pytest.fixture
def har_dir_source(tmp_path, har_files):
    write_dir(tmp_path / "uci_har" / "UCI HAR Dataset", har_files[0])
    return find_source("har", tmp_path, download=False)


@pytest.fixture
def cifar_tar_source(tmp_path, cifar_batches):
    cifar_python_tarball(tmp_path / "cifar10" / "my-cifar-copy.tar.gz", cifar_batches[0])
    return find_source("cifar10", tmp_path, download=False)


def assert_har_matches(raw: dict, truth: dict, form: str = "inertial"):
    for split in ("train", "test"):
        t = truth[split]
        assert raw[f"y_{split}"].dtype == np.int64
        np.testing.assert_array_equal(raw[f"y_{split}"], t["y"] - 1)
        np.testing.assert_array_equal(raw[f"subject_{split}"], t["subject"])
        x = raw[f"x_{split}"]
        assert x.dtype == np.float32
        expected = t["x"] if form == "inertial" else t["X"]
        assert x.shape == expected.shape
        np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)  # 8 significant digits in the text
    assert raw["class_names"] == list(data.HAR_CLASS_NAMES)


# --------------------------------------------------------------------------------------------
# HAR: parsing the official formats
# --------------------------------------------------------------------------------------------


def test_uci_number_format_is_official():
    assert uci_number(0.28858451) == "  2.8858451e-001"
    assert uci_number(-0.020294171) == " -2.0294171e-002"


def test_har_nested_official_zip(har_zip_dir, har_files):
    src = find_source("har", har_zip_dir, download=False)
    assert src == Source("official_zip", har_zip_dir / "uci_har" / data.HAR_ZIP_NAME)
    raw = load_raw(src)
    assert_har_matches(raw, har_files[1])
    assert raw["x_train"].shape == (len(HAR_TRAIN_SUBJECTS) * 12, 9, 128)
    # channel order body_acc_x..total_acc_z: the marker in sample 0 is channel + row / 100
    np.testing.assert_allclose(raw["x_train"][3, :, 0], np.arange(9) + 0.03, atol=1e-6)


def test_har_engineered_from_zip(har_zip_dir, har_files):
    raw = load_raw(find_source("har", har_zip_dir, download=False), "engineered")
    assert raw["x_train"].shape == (72, 561) and raw["x_test"].shape == (24, 561)
    assert_har_matches(raw, har_files[1], form="engineered")


def test_har_inner_zip_directly_in_data_dir(tmp_path, har_files):
    (tmp_path / "UCI HAR Dataset.zip").write_bytes(har_inner_zip(har_files[0]))
    src = find_source("har", tmp_path, download=False)
    assert src.kind == "official_zip" and src.path.name == "UCI HAR Dataset.zip"
    assert_har_matches(load_raw(src), har_files[1])


def test_har_zip_found_by_content_under_any_name(tmp_path, har_files):
    har_official_zip(tmp_path / "uci_har" / "download (1).zip", har_files[0])
    src = find_source("har", tmp_path, download=False)
    assert src.kind == "official_zip" and src.path.name == "download (1).zip"


def test_har_extracted_folder(har_dir_source, har_files):
    assert har_dir_source.kind == "official_dir"
    assert har_dir_source.path.name == "UCI HAR Dataset"
    assert_har_matches(load_raw(har_dir_source), har_files[1])
    assert_har_matches(load_raw(har_dir_source, "engineered"), har_files[1], form="engineered")


def test_har_class_names_default_without_activity_labels(tmp_path, har_files):
    files = {k: v for k, v in har_files[0].items() if k != "activity_labels.txt"}
    write_dir(tmp_path / "UCI HAR Dataset", files)
    raw = load_raw(find_source("har", tmp_path, download=False))
    assert raw["class_names"] == list(data.HAR_CLASS_NAMES)


def test_har_source_priority(tmp_path, har_files):
    folder = tmp_path / "uci_har"
    write_dir(folder / "UCI HAR Dataset", har_files[0])
    np.savez(folder / "har.npz", y_train=np.array([1]))
    assert find_source("har", tmp_path, download=False).kind == "official_dir"
    har_official_zip(folder / data.HAR_ZIP_NAME, har_files[0])
    assert find_source("har", tmp_path, download=False).kind == "official_zip"


def write_prepared_npz(path: Path, truth: dict, shuffle_channels: bool = False):
    order = list(range(9))[::-1] if shuffle_channels else list(range(9))
    arrays = {"inertial_channels": np.array([CHANNELS[i] for i in order])}
    for split in ("train", "test"):
        t = truth[split]
        arrays[f"inertial_{split}"] = t["x"][:, order].astype(np.float32)
        arrays[f"y_{split}"] = t["y"].astype(np.int64)
        arrays[f"subject_{split}"] = t["subject"].astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def test_har_prepared_npz(tmp_path, har_files):
    write_prepared_npz(tmp_path / "uci_har" / "har.npz", har_files[1], shuffle_channels=True)
    src = find_source("har", tmp_path, download=False)
    assert src.kind == "prepared_npz"
    raw = load_raw(src)
    assert_har_matches(raw, har_files[1])  # channels reordered back to body_acc_x..total_acc_z
    with pytest.raises(DataError, match=r"561 engineered features are not in .*har\.npz.*input_form: inertial"):
        load_raw(src, "engineered")


# --------------------------------------------------------------------------------------------
# CIFAR-10: parsing the official formats
# --------------------------------------------------------------------------------------------


def assert_cifar_matches(raw: dict, truth: dict):
    for split in ("train", "test"):
        x = raw[f"x_{split}"]
        assert x.dtype == np.uint8 and x.shape == (len(truth[f"y_{split}"]), 3, 32, 32)
        np.testing.assert_array_equal(x.reshape(len(x), -1), truth[f"x_{split}"])
        assert raw[f"y_{split}"].dtype == np.int64
        np.testing.assert_array_equal(raw[f"y_{split}"], truth[f"y_{split}"])
    assert raw["class_names"] == list(CIFAR_CLASSES)


def test_cifar_python_tarball_any_name(cifar_tar_source, cifar_batches):
    assert cifar_tar_source.kind == "python_tarball"
    raw = load_raw(cifar_tar_source)
    assert_cifar_matches(raw, cifar_batches[1])
    assert raw["x_train"].shape == (100, 3, 32, 32) and raw["x_test"].shape == (10, 3, 32, 32)
    red = raw["x_train"][0]
    assert (red[0] == 255).all() and (red[1:] == 0).all()
    marker = raw["x_train"][1]  # CHW, row-major: x[c, r, col] = (1024c + 32r + col) % 251
    assert marker[1, 2, 3] == (1024 + 64 + 3) % 251 and marker[2, 31, 0] == (2048 + 992) % 251


def test_cifar_python_tarball_official_name_and_md5(tmp_path, cifar_batches, monkeypatch):
    path = cifar_python_tarball(tmp_path / "cifar10" / data.CIFAR_TARBALL, cifar_batches[0])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: md5 is [0-9a-f]{32}, expected c58f3010"):
        find_source("cifar10", tmp_path, download=False)
    with pytest.raises(DataError, match="md5"):
        load_raw(Source("python_tarball", path))
    monkeypatch.setattr(sources, "CIFAR_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    src = find_source("cifar10", tmp_path, download=False)
    assert src == Source("python_tarball", path)
    assert_cifar_matches(load_raw(src), cifar_batches[1])


def test_cifar_python_dir(tmp_path, cifar_batches):
    write_dir(tmp_path / "cifar10" / "cifar-10-batches-py", cifar_batches[0])
    src = find_source("cifar10", tmp_path, download=False)
    assert src.kind == "python_dir"
    assert_cifar_matches(load_raw(src), cifar_batches[1])


def test_cifar_unpickler_refuses_code(tmp_path, cifar_batches):
    files = dict(cifar_batches[0])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    files["data_batch_3"] = pickle.dumps({b"data": Evil(), b"labels": []})
    cifar_python_tarball(tmp_path / "evil.tar.gz", files)
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to load global (posix|nt|os)\.system"):
        load_raw(find_source("cifar10", tmp_path, download=False))


def test_cifar_imagefolder_tar(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "images.tar.gz").write_bytes(tar_bytes(make_imagefolder()))
    src = find_source("cifar10", tmp_path, download=False)
    assert src.kind == "imagefolder_tar"
    raw = load_raw(src)
    assert raw["class_names"] == list(CIFAR_CLASSES)
    assert raw["x_train"].shape == (20, 3, 32, 32) and raw["x_test"].shape == (10, 3, 32, 32)
    assert raw["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(raw["y_train"], np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(raw["y_test"], np.arange(10))
    # class 0 (airplane) is red, class 2 (bird) is blue, in JPEG (i=0) and PNG (i=1)
    for i in (0, 1):
        airplane = raw["x_train"][i].reshape(3, -1).mean(axis=1)
        assert airplane[0] > 240 and airplane[1] < 15 and airplane[2] < 15
    bird = raw["x_test"][2].reshape(3, -1).mean(axis=1)
    assert bird[2] > 240 and bird[0] < 15
    assert (raw["x_train"][1][0] == 255).all()  # PNG is lossless


def test_cifar_imagefolder_dir_and_uncompressed_tar(tmp_path):
    members = make_imagefolder(train_per_class=1)
    write_dir(tmp_path / "cifar10" / "CIFAR-10-images", members)
    src = find_source("cifar10", tmp_path, download=False)
    assert src == Source("imagefolder_dir", tmp_path / "cifar10" / "CIFAR-10-images")
    raw_dir = load_raw(src)
    (tmp_path / "plain.tar").write_bytes(tar_bytes(members, mode="w"))
    raw_tar = load_raw(Source("imagefolder_tar", tmp_path / "plain.tar"))
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(raw_dir[k], raw_tar[k])


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


def test_find_source_empty_folder_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataError) as err:
        find_source("har", tmp_path, download=False)
    msg = str(err.value)
    for needle in (
        str(tmp_path / "uci_har"),
        data.HAR_ZIP_NAME,
        "UCI HAR Dataset.zip",
        "Inertial Signals",
        "har.npz",
        "download=False",
    ):
        assert needle in msg
    with pytest.raises(DataError) as err:
        find_source("cifar10", tmp_path, download=False)
    msg = str(err.value)
    for needle in (
        str(tmp_path / "cifar10"),
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "train/<class>/*",
        "cifar-10-batches-py",
    ):
        assert needle in msg


def test_unknown_dataset_and_input_form(tmp_path, har_dir_source):
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        find_source("mnist", tmp_path)
    with pytest.raises(DataError, match="unknown input_form 'spectrogram'"):
        load_raw(har_dir_source, "spectrogram")
    with pytest.raises(DataError, match="unknown dataset"):
        prepare("mnist", har_dir_source, tmp_path / "o.npz", tmp_path / "o.json", seed=0)
    with pytest.raises(DataError, match="unknown input_form"):
        prepare("har", har_dir_source, tmp_path / "o.npz", tmp_path / "o.json", seed=0, input_form="fft")
    with pytest.raises(DataError, match="not cifar10"):
        prepare("cifar10", har_dir_source, tmp_path / "o.npz", tmp_path / "o.json", seed=0)


def test_truncated_har_zip(har_zip_dir):
    path = har_zip_dir / "uci_har" / data.HAR_ZIP_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"human\+activity.*\.zip.*truncated or corrupt"):
        load_raw(find_source("har", har_zip_dir, download=False))


def test_corrupt_member_in_har_zip(tmp_path, har_files):
    path = tmp_path / "UCI HAR Dataset.zip"
    raw = bytearray(har_inner_zip(har_files[0]))
    i = raw.find(b"y_train.txt") + 200  # inside the compressed data of some member after the header
    raw[i : i + 40] = bytes(40)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="UCI HAR Dataset.zip"):
        load_raw(Source("official_zip", path))


def test_har_zip_without_inertial_signals(tmp_path, har_files):
    files = {k: v for k, v in har_files[0].items() if "Inertial Signals" not in k}
    har_official_zip(tmp_path / data.HAR_ZIP_NAME, files)
    src = find_source("har", tmp_path, download=False)
    with pytest.raises(DataError, match=r"missing train/Inertial Signals/body_acc_x_train\.txt"):
        load_raw(src)
    assert load_raw(src, "engineered")["x_train"].shape == (72, 561)  # the features are still there


def test_har_zip_wrong_content(tmp_path):
    (tmp_path / "UCI HAR Dataset.zip").write_bytes(zip_bytes({"notes.txt": b"hello"}))
    with pytest.raises(DataError, match=r"no 'train/y_train\.txt' inside"):
        load_raw(find_source("har", tmp_path, download=False))


@pytest.mark.parametrize(
    "problem, match",
    [
        ("short_row", r"body_gyro_y_test\.txt: not a valid numeric text table .*row 4.*expected 128 number"),
        ("narrow_file", r"body_gyro_y_test\.txt: 127 columns per line, expected 128"),
        ("row_count", r"test row counts differ: 24 windows, 23 labels"),
        ("label_range", r"train activity labels outside 1\.\.6"),
        ("missing_class", r"test split has no windows of activities \[6\]"),
        ("text", r"subject_train\.txt: not a valid numeric text table"),
        ("subject_overlap", r"subjects \[1\] are in both train and test"),
    ],
)
def test_har_validation(tmp_path, har_files, problem, match):
    files = dict(har_files[0])
    if problem == "short_row":
        rows = files["test/Inertial Signals/body_gyro_y_test.txt"].splitlines(keepends=True)
        rows[3] = rows[3][16:]
        files["test/Inertial Signals/body_gyro_y_test.txt"] = b"".join(rows)
    elif problem == "narrow_file":
        rows = files["test/Inertial Signals/body_gyro_y_test.txt"].splitlines(keepends=True)
        files["test/Inertial Signals/body_gyro_y_test.txt"] = b"".join(r[16:] for r in rows)
    elif problem == "row_count":
        files["test/y_test.txt"] = b"".join(files["test/y_test.txt"].splitlines(keepends=True)[:-1])
    elif problem == "label_range":
        files["train/y_train.txt"] = files["train/y_train.txt"].replace(b"6\n", b"7\n", 1)
    elif problem == "missing_class":
        files["test/y_test.txt"] = files["test/y_test.txt"].replace(b"6\n", b"5\n")
    elif problem == "text":
        files["train/subject_train.txt"] = b"1\nthree\n" + files["train/subject_train.txt"][4:]
    elif problem == "subject_overlap":
        files["test/subject_test.txt"] = files["test/subject_test.txt"].replace(b"2\n", b"1\n")
    write_dir(tmp_path / "UCI HAR Dataset", files)
    with pytest.raises(DataError, match=match):
        load_raw(find_source("har", tmp_path, download=False))


def test_corrupt_prepared_npz(tmp_path):
    (tmp_path / "har.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"har\.npz: cannot read the npz file"):
        load_raw(find_source("har", tmp_path, download=False))
    np.savez(tmp_path / "har.npz", y_train=np.array([1]))
    with pytest.raises(DataError, match=r"har\.npz: arrays \['inertial_train'"):
        load_raw(find_source("har", tmp_path, download=False))


def test_truncated_imagefolder_tar_gz(tmp_path):
    raw = tar_bytes(make_imagefolder())
    path = tmp_path / "cifar10" / "images.tar.gz"
    path.parent.mkdir()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DataError, match=r"images\.tar\.gz.*(truncated or corrupt|not a readable tar)"):
        load_raw(find_source("cifar10", tmp_path, download=False))


def test_garbage_tar_is_reported(tmp_path):
    (tmp_path / "cifar10.tar.gz").write_bytes(b"\x1f\x8b this is not gzip data at all")
    with pytest.raises(DataError, match=r"cifar10\.tar\.gz is not a readable tar archive"):
        find_source("cifar10", tmp_path, download=False)


def test_truncated_python_tarball(tmp_path, cifar_batches):
    path = cifar_python_tarball(tmp_path / "batches.tar.gz", cifar_batches[0])
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match=r"batches\.tar\.gz: cannot read the tar archive"):
        load_raw(Source("python_tarball", path))


def test_bad_pickle(tmp_path, cifar_batches):
    files = dict(cifar_batches[0])
    files["test_batch"] = files["test_batch"][:500]
    cifar_python_tarball(tmp_path / "batches.tar.gz", files)
    with pytest.raises(DataError, match=r"test_batch: not a valid CIFAR-10 batch pickle"):
        load_raw(Source("python_tarball", tmp_path / "batches.tar.gz"))


def test_imagefolder_with_a_class_missing(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(tar_bytes(make_imagefolder(drop=(("test", "cat"),))))
    with pytest.raises(DataError, match=r"missing in test: \['cat'\]"):
        load_raw(Source("imagefolder_tar", path))
    path.write_bytes(tar_bytes(make_imagefolder(drop=(("test", "cat"), ("train", "cat")))))
    with pytest.raises(DataError, match=r"9 class folders .*expected 10 \(missing: \['cat'\]\)"):
        load_raw(Source("imagefolder_tar", path))


def test_image_not_32x32(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(tar_bytes(make_imagefolder(odd_size="train/dog/0001.png")))
    with pytest.raises(DataError, match=r"a\.tar\.gz: train/dog/0001\.png: image is 33x32, expected 32x32"):
        load_raw(Source("imagefolder_tar", path))


def test_undecodable_image(tmp_path):
    members = make_imagefolder()
    members["train/frog/0000.jpg"] = members["train/frog/0000.jpg"][:40]
    write_dir(tmp_path / "imgs", members)
    with pytest.raises(DataError, match=r"train/frog/0000\.jpg: cannot decode image"):
        load_raw(Source("imagefolder_dir", tmp_path / "imgs"))


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (b"this is not an image\n" * 3, r"no image format Pillow reads \(63 bytes starting b'this is '\)"),
        (image_bytes((0, 0, 255), "PNG", (32, 32))[:60], r"\(OSError: image file is truncated.*\); the file is"),
    ],
)
@pytest.mark.parametrize("layout", ["imagefolder_dir", "imagefolder_tar"])
def test_corrupt_image_names_the_source_the_member_and_the_problem(tmp_path, layout, corrupt, problem):
    """Real JPEG and PNG files and one corrupt member, in a folder and in a tar: the error names the folder or
    archive, the member and what is wrong with it, never Pillow's in-memory buffer; prepare writes nothing."""
    members = make_imagefolder()
    members["test/ship/0000.jpg"] = corrupt
    if layout == "imagefolder_dir":
        path = write_dir(tmp_path / "cifar10" / "CIFAR-10-images", members)
    else:
        path = tmp_path / "cifar10" / "images.tar.gz"
        path.parent.mkdir()
        path.write_bytes(tar_bytes(members))
    source = find_source("cifar10", tmp_path, download=False)
    assert source == Source(layout, path)
    with pytest.raises(DataError) as err:
        load_raw(source)
    message = str(err.value)
    assert message.startswith(f"{path}: test/ship/0000.jpg: cannot decode image"), message
    assert re.search(problem, message) and "BytesIO" not in message, message
    out = tmp_path / "out"
    with pytest.raises(DataError, match=re.escape(f"{path}: test/ship/0000.jpg: cannot decode image")):
        prepare("cifar10", source, out / "cifar10.npz", out / "cifar10.json", seed=0)
    assert not out.exists() or list(out.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Content identity (rule prepare_data's rerun trigger) and the digest cache
# --------------------------------------------------------------------------------------------


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def lines_digest(per_file: dict[str, str]) -> str:
    return sha("".join(f"{rel} {d}\n" for rel, d in sorted(per_file.items())).encode())


def test_content_sha256_covers_every_file_of_each_source_kind(har_zip_dir, har_files):
    zip_src = find_source("har", har_zip_dir, download=False)
    assert sources.content_sha256(zip_src) == sha(zip_src.path.read_bytes()) == sources.source_digests(zip_src)[0]
    folder = write_dir(har_zip_dir / "dir" / "UCI HAR Dataset", har_files[0])
    dir_src = Source("official_dir", folder)
    expected = lines_digest({rel: sha(raw) for rel, raw in har_files[0].items()})
    assert sources.content_sha256(dir_src) == expected == sources.source_digests(dir_src)[0]
    npz = har_zip_dir / "npz" / "har.npz"
    write_prepared_npz(npz, har_files[1])
    npz_src = Source("prepared_npz", npz)
    assert sources.content_sha256(npz_src) == sha(npz.read_bytes())  # alone: the npz's own digest
    (npz.parent / "activity_labels.txt").write_text("\n".join(f"{i} A{i}" for i in range(1, 7)) + "\n")
    both = {name: sha((npz.parent / name).read_bytes()) for name in ("har.npz", "activity_labels.txt")}
    # with its class names: both files; source_digests keeps the npz's own digest as the source sha256
    assert sources.content_sha256(npz_src) == lines_digest(both)
    assert sources.source_digests(npz_src) == (both["har.npz"], both)
    assert sources.identity_sha256(npz_src, both) == lines_digest(both)


def test_digest_cache_reads_only_new_or_changed_files(tmp_path, monkeypatch):
    from nvmxbar.data import digests

    reads = []
    real = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda p, *a: reads.append(Path(p).name) or real(p, *a))
    members = make_imagefolder()
    root = write_dir(tmp_path / "imgs", members)
    src, cache = Source("imagefolder_dir", root), tmp_path / "results" / "source-digests.json"
    first = sources.content_sha256(src, cache)
    assert first == lines_digest({rel: sha(raw) for rel, raw in members.items()})
    assert len(reads) == len(members) and cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # written atomically: no temporary left

    def again() -> tuple[str, list[str]]:
        reads.clear()
        return sources.content_sha256(src, cache), list(reads)

    assert again() == (first, [])  # warm: nothing read
    frog = root / "train" / "frog" / "0000.jpg"
    st = frog.stat()
    os.utime(frog, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert again() == (first, ["0000.jpg"])  # touched: read once more, same identity
    assert again() == (first, [])
    # same size, the old mtime set back: the ctime still tells (any write changes it)
    frog.write_bytes(members["train/frog/0001.png"][: st.st_size].ljust(st.st_size, b"\0"))
    os.utime(frog, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert frog.stat().st_size == st.st_size and frog.stat().st_mtime_ns == st.st_mtime_ns
    changed, read = again()
    assert changed != first and read == ["0000.jpg"]
    frog.write_bytes(members["train/frog/0000.jpg"])
    shutil.rmtree(root)  # re-copied: every file new (inode, times), the same content
    write_dir(root, members)
    recopied, read = again()
    assert recopied == first and len(read) == len(members)
    (root / "test" / "cat" / "0000.jpg").unlink()  # a file gone: another identity, and out of the cache
    assert again()[0] != first
    entry = json.loads(cache.read_text())["sources"][str(root.resolve())]
    assert "test/cat/0000.jpg" not in entry and len(entry) == len(members) - 1


def test_digest_cache_unreadable_or_foreign_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "a.tar"
    path.write_bytes(b"content")
    cache = tmp_path / "cache.json"
    for bad in ("{not json", json.dumps({"version": 0, "sources": {}}), json.dumps([1, 2])):
        cache.write_text(bad)
        with caplog.at_level(logging.INFO, logger="nvmxbar.data.digests"):
            assert sources.content_sha256(Source("imagefolder_tar", path), cache) == sha(b"content")
        assert "ignoring the digest cache" in caplog.text
        caplog.clear()
        doc = json.loads(cache.read_text())
        assert doc["version"] == 1 and doc["sources"][str(path.resolve())]["a.tar"][4] == sha(b"content")


def test_content_sha256_of_a_vanished_source_names_it(tmp_path):
    missing = tmp_path / "cifar10" / "images.tar"
    with pytest.raises(DataError, match=rf"{re.escape(str(missing))}: cannot read the imagefolder_tar source to hash"):
        sources.content_sha256(Source("imagefolder_tar", missing), tmp_path / "cache.json")
    assert not (tmp_path / "cache.json").exists()


# --------------------------------------------------------------------------------------------
# Download (local file:// URLs only)
# --------------------------------------------------------------------------------------------


def test_download_file_atomic_with_progress(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nvmxbar.data.sources")
    payload = os.urandom(3 * (1 << 20) + 123)
    src = tmp_path / "remote.bin"
    src.write_bytes(payload)
    dest = tmp_path / "out" / "local.bin"
    got = sources.download_file(src.as_uri(), dest, verify=sources._verify_md5(hashlib.md5(payload).hexdigest()))
    assert got == dest and dest.read_bytes() == payload
    assert not (tmp_path / "out" / "local.bin.part").exists()
    progress = caplog.text
    assert "100 %" in progress and progress.count(" %") >= 4
    with pytest.raises(DataError, match="md5 is"):
        sources.download_file(src.as_uri(), tmp_path / "bad.bin", verify=sources._verify_md5("0" * 32))
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
    with pytest.raises(DataError, match="download of .* failed"):
        sources.download_file((tmp_path / "nope.bin").as_uri(), tmp_path / "x.bin")
    assert not (tmp_path / "x.bin.part").exists()


def test_find_source_downloads_cifar(tmp_path, cifar_batches, monkeypatch):
    remote = cifar_python_tarball(tmp_path / "remote" / "c.tar.gz", cifar_batches[0])
    monkeypatch.setattr(sources, "CIFAR_URL", remote.as_uri())
    monkeypatch.setattr(sources, "CIFAR_MD5", hashlib.md5(remote.read_bytes()).hexdigest())
    root = tmp_path / "data"
    src = find_source("cifar10", root)
    assert src == Source("python_tarball", root / "cifar10" / "cifar-10-python.tar.gz")
    assert_cifar_matches(load_raw(src), cifar_batches[1])
    assert find_source("cifar10", root, download=False) == src  # found locally now


def test_find_source_downloads_har_and_checks_digest(tmp_path, har_files, monkeypatch):
    remote = har_official_zip(tmp_path / "remote" / "har.zip", har_files[0])
    monkeypatch.setattr(sources, "HAR_URL", remote.as_uri())
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"Download failed: .*neither the archive .*c00b8030"):
        find_source("har", root)
    assert list((root / "uci_har").iterdir()) == []  # nothing half-written left behind
    # the nested archive's digest is accepted too (in case UCI re-packs the outer wrapper)
    inner = zipfile.ZipFile(remote).read("UCI HAR Dataset.zip")
    monkeypatch.setattr(sources, "HAR_INNER_ZIP_SHA256", hashlib.sha256(inner).hexdigest())
    src = find_source("har", root)
    assert src == Source("official_zip", root / "uci_har" / data.HAR_ZIP_NAME)
    assert_har_matches(load_raw(src), har_files[1])


def test_download_unreachable_reports_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CIFAR_URL", (tmp_path / "missing.tar.gz").as_uri())
    with pytest.raises(DataError, match=r"(?s)no cifar10 data found\. Searched: .*cifar10.*Download failed"):
        find_source("cifar10", tmp_path / "d")


# --------------------------------------------------------------------------------------------
# prepare()
# --------------------------------------------------------------------------------------------


def load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def run_prepare(tmp_path, dataset, source, name="out", **kw):
    kw.setdefault("seed", 0)
    out_npz, out_json = tmp_path / name / f"{dataset}.npz", tmp_path / name / f"{dataset}.json"
    prov = prepare(dataset, source, out_npz, out_json, **kw)
    return prov, load_npz(out_npz), json.loads(out_json.read_text()), out_npz


def test_prepare_har_split_and_normalisation(tmp_path, har_dir_source):
    prov, arrays, js, out_npz = run_prepare(tmp_path, "har", har_dir_source, val_subjects=2)
    assert js == json.loads(json.dumps(prov))  # the json is the returned provenance
    expected_keys = {
        "x_train",
        "y_train",
        "x_val",
        "y_val",
        "x_test",
        "y_test",
        "class_names",
        "norm_mean",
        "norm_std",
        "subject_train",
        "subject_val",
        "subject_test",
    }
    assert set(arrays) == expected_keys
    subjects = {s: set(arrays[f"subject_{s}"].tolist()) for s in ("train", "val", "test")}
    assert subjects["val"] == set(js["val_subjects"]) and len(js["val_subjects"]) == 2
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    assert subjects["train"] | subjects["val"] == set(HAR_TRAIN_SUBJECTS)
    assert subjects["test"] == set(HAR_TEST_SUBJECTS)
    assert js["counts"] == {"train": 48, "val": 24, "test": 24}
    for s in ("train", "val", "test"):
        assert len(arrays[f"x_{s}"]) == len(arrays[f"y_{s}"]) == len(arrays[f"subject_{s}"]) == js["counts"][s]
        assert js["class_counts"][s] == np.bincount(arrays[f"y_{s}"], minlength=6).tolist()
        assert arrays[f"x_{s}"].dtype == np.float32
    # statistics of the remaining train split only: mean 0 / std 1 there, not on val/test
    np.testing.assert_allclose(arrays["x_train"].mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(arrays["x_train"].std(axis=(0, 2)), 1, atol=1e-5)
    assert (arrays["x_test"].mean(axis=(0, 2)) > 0.05).all()  # test was generated shifted by +1 (~1/(c+1) here)
    raw = load_raw(har_dir_source)
    keep = ~np.isin(raw["subject_train"], js["val_subjects"])
    raw_train = raw["x_train"][keep].astype(np.float64)
    np.testing.assert_allclose(arrays["norm_mean"], raw_train.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(arrays["norm_std"], raw_train.std(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(
        arrays["x_test"] * arrays["norm_std"][:, None] + arrays["norm_mean"][:, None],
        raw["x_test"],
        rtol=1e-5,
        atol=1e-4,
    )
    assert arrays["norm_mean"].dtype == np.float32 and arrays["norm_mean"].shape == (9,)
    assert js["normalisation"]["computed_on"] == "train"
    np.testing.assert_allclose(js["normalisation"]["mean"], arrays["norm_mean"])
    assert list(arrays["class_names"]) == list(data.HAR_CLASS_NAMES) == js["class_names"]
    assert js["dataset"] == "har" and js["input_form"] == "inertial" and js["x_shape"] == [9, 128]
    assert js["seed"] == 0 and js["limit"] is None
    # provenance of the source folder: per-file digests and the digest of their sorted lines
    assert js["source"]["kind"] == "official_dir"
    assert (
        js["files"]["train/y_train.txt"]
        == hashlib.sha256((har_dir_source.path / "train/y_train.txt").read_bytes()).hexdigest()
    )
    lines = "".join(f"{rel} {h}\n" for rel, h in sorted(js["files"].items()))
    assert js["source"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert js["outputs"] == {"har.npz": hashlib.sha256(out_npz.read_bytes()).hexdigest()}
    with zipfile.ZipFile(out_npz) as zf:  # HAR is written compressed
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    assert sorted(p.name for p in out_npz.parent.iterdir()) == ["har.json", "har.npz"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert out_npz.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, not a private temp file


def test_prepare_har_seeds(tmp_path, har_dir_source):
    _, a1, j1, _ = run_prepare(tmp_path, "har", har_dir_source, name="a", seed=3)
    _, a2, j2, _ = run_prepare(tmp_path, "har", har_dir_source, name="b", seed=3)
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
    assert j1["outputs"] == j2["outputs"]  # byte-identical npz
    val_sets = {
        tuple(run_prepare(tmp_path, "har", har_dir_source, name=f"s{s}", seed=s)[2]["val_subjects"]) for s in range(4)
    }
    assert len(val_sets) > 1


def test_prepare_har_engineered_per_feature(tmp_path, har_zip_dir):
    src = find_source("har", har_zip_dir, download=False)
    prov, arrays, js, _ = run_prepare(tmp_path, "har", src, input_form="engineered", val_subjects=2)
    assert arrays["x_train"].shape == (48, 561) and js["x_shape"] == [561]
    assert arrays["norm_mean"].shape == (561,) and js["input_form"] == "engineered"
    np.testing.assert_allclose(arrays["x_train"].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(arrays["x_train"].std(axis=0), 1, atol=1e-4)
    assert js["source"]["sha256"] == hashlib.sha256(src.path.read_bytes()).hexdigest()
    assert js["files"] == {src.path.name: js["source"]["sha256"]}


def test_prepare_har_limit(tmp_path, har_dir_source):
    _, arrays, js, _ = run_prepare(
        tmp_path, "har", har_dir_source, val_subjects=2, limit={"train": 12, "val": None, "test": 7}
    )
    assert js["counts"] == {"train": 12, "val": 24, "test": 7}
    assert js["class_counts"]["train"] == [2] * 6  # stratified
    assert sorted(js["class_counts"]["test"]) == [1, 1, 1, 1, 1, 2]
    assert len(arrays["subject_test"]) == 7
    assert js["limit"] == {"train": 12, "val": None, "test": 7}
    # normalisation statistics are those of the whole remaining train split, as without limit
    _, full, _, _ = run_prepare(tmp_path, "har", har_dir_source, name="full", val_subjects=2)
    np.testing.assert_array_equal(arrays["norm_mean"], full["norm_mean"])
    np.testing.assert_array_equal(arrays["norm_std"], full["norm_std"])
    rows = [np.flatnonzero((full["x_test"] == row).all(axis=(1, 2)))[0] for row in arrays["x_test"]]
    assert rows == sorted(set(rows))  # a subset of the full run's rows, in order


def test_prepare_cifar(tmp_path, cifar_tar_source, cifar_batches):
    prov, arrays, js, out_npz = run_prepare(tmp_path, "cifar10", cifar_tar_source, val_fraction=0.2, seed=1)
    assert set(arrays) == {
        "x_train",
        "y_train",
        "x_val",
        "y_val",
        "x_test",
        "y_test",
        "class_names",
        "norm_mean",
        "norm_std",
    }
    assert js["counts"] == {"train": 80, "val": 20, "test": 10}
    assert js["class_counts"]["val"] == [2] * 10 and js["class_counts"]["train"] == [8] * 10
    assert arrays["x_train"].dtype == np.uint8 and js["x_shape"] == [3, 32, 32]
    assert js["input_form"] == "image" and js["val_subjects"] is None
    # train and val together are the original train set, without overlap
    raw = load_raw(cifar_tar_source)
    both = np.concatenate([arrays["x_train"], arrays["x_val"]]).reshape(100, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, raw["x_train"].reshape(100, -1)))
    np.testing.assert_array_equal(arrays["x_test"], raw["x_test"])
    x = arrays["x_train"].astype(np.float64) / 255
    np.testing.assert_allclose(arrays["norm_mean"], x.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(arrays["norm_std"], x.std(axis=(0, 2, 3)), rtol=1e-6)
    assert js["normalisation"]["applied_to_x"] is False
    with zipfile.ZipFile(out_npz) as zf:  # CIFAR is written uncompressed
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    _, again, _, _ = run_prepare(tmp_path, "cifar10", cifar_tar_source, name="again", val_fraction=0.2, seed=1)
    np.testing.assert_array_equal(again["y_val"], arrays["y_val"])
    np.testing.assert_array_equal(again["x_val"], arrays["x_val"])
    _, other, _, _ = run_prepare(tmp_path, "cifar10", cifar_tar_source, name="other", val_fraction=0.2, seed=2)
    assert not np.array_equal(other["x_val"], arrays["x_val"])


def test_prepare_cifar_limit(tmp_path, cifar_tar_source):
    _, arrays, js, _ = run_prepare(tmp_path, "cifar10", cifar_tar_source, limit={"train": 30, "val": 10, "test": 10})
    assert js["counts"] == {"train": 30, "val": 10, "test": 10}
    assert js["class_counts"] == {"train": [3] * 10, "val": [1] * 10, "test": [1] * 10}
    assert len(arrays["x_train"]) == 30


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dataset": "har", "val_subjects": 6}, r"val_subjects=6 but the train split has only 6 subjects"),
        ({"dataset": "har", "val_subjects": 0}, r"val_subjects must be a positive integer"),
        ({"dataset": "cifar10", "val_fraction": 0.0}, r"val_fraction must be in \(0, 1\)"),
        ({"dataset": "cifar10", "val_fraction": 1.0}, r"val_fraction must be in \(0, 1\)"),
        ({"dataset": "cifar10", "limit": {"train": 0}}, r"limit\['train'\] must be a positive integer"),
        ({"dataset": "cifar10", "limit": {"tran": 5}}, r"limit must be a dict with keys train/val/test"),
        ({"dataset": "har", "input_form": "engineered", "corrupt": True}, r"X_train\.txt"),
    ],
)
def test_prepare_failure_leaves_no_outputs(tmp_path, har_dir_source, cifar_tar_source, kwargs, match):
    kwargs = dict(kwargs)
    dataset = kwargs.pop("dataset")
    source = har_dir_source if dataset == "har" else cifar_tar_source
    if kwargs.pop("corrupt", False):
        (source.path / "train" / "X_train.txt").write_bytes(b"1 2 3\n")
    out = tmp_path / "out"
    out.mkdir()
    out_npz, out_json = out / "d.npz", out / "d.json"
    out_npz.write_bytes(b"stale")
    out_json.write_text("{}")
    with pytest.raises(DataError, match=match):
        prepare(dataset, source, out_npz, out_json, seed=0, **kwargs)
    assert list(out.iterdir()) == []


def test_prepare_write_failure_leaves_no_outputs(tmp_path, har_dir_source, monkeypatch):
    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(splits.json, "dump", broken_dump)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        prepare("har", har_dir_source, out / "d.npz", out / "d.json", seed=0)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The DataModule's in-memory batches
# --------------------------------------------------------------------------------------------


def test_datamodule_batches_are_those_of_the_dataloader_it_replaced(tmp_path):
    import torch
    from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

    from nvmxbar.data.datamodule import NpzDataModule

    rng = np.random.default_rng(0)
    arrays = {
        f"{k}_{split}": v
        for split, n in (("train", 300), ("val", 70), ("test", 50))
        for k, v in (("x", rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)), ("y", rng.integers(0, 10, n)))
    }
    norm = {"norm_mean": np.full(3, 0.5), "norm_std": np.full(3, 0.25)}
    np.savez(tmp_path / "d.npz", class_names=np.array(CIFAR_CLASSES), **norm, **arrays)
    ds = {
        s: TensorDataset(torch.from_numpy(arrays[f"x_{s}"]), torch.from_numpy(arrays[f"y_{s}"]))
        for s in ("train", "val", "test")
    }
    for fit_on, train_ds in (("train", ds["train"]), ("train+val", ConcatDataset([ds["train"], ds["val"]]))):
        dm = NpzDataModule(tmp_path / "d.npz", 64, seed=3, fit_on=fit_on)
        new = dm.train_dataloader()
        old = DataLoader(train_ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(3))
        assert len(new) == len(old) == -(-len(train_ds) // 64)
        for _ in range(3):  # epochs: a new permutation each, the same as the DataLoader's
            got, want = list(new), list(old)
            assert len(got) == len(want) and len(got[-1][0]) == len(train_ds) % 64  # drop_last False
            for (x, y), (xo, yo) in zip(got, want):
                assert x.dtype == torch.uint8 and y.dtype == torch.long  # images stay uint8 to the device
                assert torch.equal(x, xo) and torch.equal(y, yo.long())
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        batches = list(loader)
        assert len(loader) == len(batches) == 1  # batch max(batch_size, 512), in order
        assert torch.equal(batches[0][0], ds[split].tensors[0])
    x, _ = next(iter(dm.batches("test", 16)))
    assert x.shape == (16, 3, 4, 4) and torch.equal(x, ds["test"].tensors[0][:16])
    norm = dm.normalise(x)
    assert norm.dtype == torch.float32 and torch.allclose(norm, (x.float() / 255 - 0.5) / 0.25)


def test_augment_crops_and_flips_every_image_on_its_own():
    """CIFAR-10 augmentation: each image gets its own crop offset (up to 4 pixels of zero padding either way)
    and about half of them a horizontal flip, all drawn at once for the batch."""
    import torch
    import torch.nn.functional as F

    from nvmxbar.data.datamodule import PAD, augment

    torch.manual_seed(0)
    n, h, w = 400, 8, 8
    x = torch.rand(n, 3, h, w) + 1.0  # > 0 everywhere: the zero padding is recognisable
    torch.manual_seed(1)
    out = augment(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    found = []
    for i in range(n):
        hits = [
            (dy, dx, f)
            for dy in range(2 * PAD + 1)
            for dx in range(2 * PAD + 1)
            for f in (False, True)
            if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(padded[i, :, dy : dy + h, dx : dx + w]))
        ]
        assert hits, f"image {i} is not a (flipped) crop of its padded self"
        found.append(hits[0])
    offsets = {(dy, dx) for dy, dx, _ in found}
    assert len(offsets) > 40  # of 81: offsets per image, not one per batch
    flips = sum(f for _, _, f in found)
    assert 0.4 * n < flips < 0.6 * n
    torch.manual_seed(1)
    assert torch.equal(augment(x), out)  # seeded: the same draws
