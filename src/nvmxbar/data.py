"""The ``prepare_data`` stage: find, read, check, split and normalise the datasets.

Two datasets are supported:

* ``har``: UCI "Human Activity Recognition Using Smartphones" (30 subjects, 6 activities).
  Sources, in order of preference: the official UCI zip (``official_zip``), the extracted
  ``UCI HAR Dataset/`` folder (``official_dir``) or the prepared ``har.npz`` of
  shared/data/PROVENANCE.md (``prepared_npz``, inertial signals only).
* ``cifar10``: CIFAR-10. Sources: the official ``cifar-10-python.tar.gz`` (``python_tarball``,
  also any tar holding ``cifar-10-batches-py/``), its extracted ``cifar-10-batches-py/`` folder
  (``python_dir``), or the image-folder layout ``train/<class>/*``, ``test/<class>/*`` as a tar
  (``imagefolder_tar``, e.g. the shared JPEG copy) or as a folder (``imagefolder_dir``).

Public API: :class:`DataError`, :class:`Source`, :func:`find_source`, :func:`load_raw`,
:func:`prepare` and :func:`download_file`.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np


class DataError(Exception):
    """Bad or missing input data, or bad parameters for the data stage."""


@dataclass(frozen=True)
class Source:
    """Where a dataset was found: ``kind`` (see module doc) and the file or folder ``path``."""

    kind: str
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def dataset(self) -> str:
        return _dataset_of_kind(self.kind)


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

DATASETS = ("har", "cifar10")
SUBDIRS = {"har": "uci_har", "cifar10": "cifar10"}
HAR_KINDS = ("official_zip", "official_dir", "prepared_npz")
CIFAR_KINDS = ("python_tarball", "imagefolder_tar", "python_dir", "imagefolder_dir")

HAR_URL = "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
HAR_ZIP_NAME = "human+activity+recognition+using+smartphones.zip"
HAR_ZIP_NAMES = (HAR_ZIP_NAME, "human%2Bactivity%2Brecognition%2Busing%2Bsmartphones.zip",
                 "UCI HAR Dataset.zip", "UCI%20HAR%20Dataset.zip")
# UCI publishes no checksum for this archive. These SHA-256 digests are the ones recorded,
# independently and identically, by many public projects that downloaded the official archive
# (found by searching public code/docs): the outer wrapper (61,005,872 bytes) and the nested
# "UCI HAR Dataset.zip" (60,999,314 bytes; this one also pinned for the older URL
# .../machine-learning-databases/00240/UCI%20HAR%20Dataset.zip, e.g. in a Julia DataDeps
# registration). A download is accepted when the outer digest matches, or, should UCI ever
# re-pack the wrapper, when the nested archive's digest matches.
HAR_ZIP_SHA256 = "c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031"
HAR_INNER_ZIP_SHA256 = "2045e435c955214b38145fb5fa00776c72814f01b203fec405152dac7d5bfeb0"
HAR_INNER_ZIP = "UCI HAR Dataset.zip"
HAR_DIR = "UCI HAR Dataset"

INERTIAL_CHANNELS = ("body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y",
                     "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z")
HAR_CLASS_NAMES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
HAR_WINDOW = 128
HAR_FEATURES = 561
HAR_NPZ_KEYS = ("inertial_train", "inertial_test", "y_train", "y_test", "subject_train", "subject_test")

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_PY_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_SIZE = 32

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _dataset_of_kind(kind: str) -> str:
    if kind in HAR_KINDS:
        return "har"
    if kind in CIFAR_KINDS:
        return "cifar10"
    raise DataError(f"unknown source kind {kind!r}; expected one of {HAR_KINDS + CIFAR_KINDS}")


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


def _check_input_form(dataset: str, input_form: str) -> str:
    """Return the effective input form ("inertial", "engineered" or "image")."""
    if dataset == "har":
        if input_form not in ("inertial", "engineered"):
            raise DataError(f"unknown input_form {input_form!r} for har; expected 'inertial' or 'engineered'")
        return input_form
    # CIFAR-10 has one form; "inertial" is accepted only because it is the default argument.
    if input_form not in ("image", "inertial"):
        raise DataError(f"unknown input_form {input_form!r} for cifar10; expected 'image'")
    return "image"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[tuple[str, Path]]:
    """All regular files under ``folder`` as sorted (posix relative path, path) pairs."""
    files = [(p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file()]
    return sorted(files)


def _folder_digest(folder: Path) -> tuple[str, dict[str, str]]:
    """SHA-256 of the sorted lines "relpath sha256" of a folder's files, and the per-file digests."""
    per_file = {rel: file_digest(p) for rel, p in _folder_files(folder)}
    text = "".join(f"{rel} {digest}\n" for rel, digest in per_file.items())
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), per_file


def _is_junk(name: str) -> bool:
    """macOS resource forks, __MACOSX folders and hidden files found in some archives."""
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or p.startswith(".") for p in parts if p not in (".", ".."))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Errors raised by the readers for truncated or corrupt archives and images.
_READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, ValueError,
                KeyError, IndexError, pickle.UnpicklingError)


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------

def download_file(url: str, dest: str | Path, verify=None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (``dest.part``, then rename).

    ``verify(path)`` is called on the finished ``.part`` file and must raise DataError when the
    file is wrong; the file is renamed to ``dest`` only after it passes. Progress goes to stderr
    about every 10 %. Any failure removes the ``.part`` file and raises DataError.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, next_report = 0, 10
            _progress(f"downloading {url} -> {dest}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if total:
                    while done * 100 >= next_report * total and next_report <= 100:
                        _progress(f"  {next_report:3d} % ({done / 1e6:.1f} / {total / 1e6:.1f} MB)")
                        next_report += 10
                elif done // (10 * CHUNK) != (done - len(block)) // (10 * CHUNK):
                    _progress(f"  {done / 1e6:.1f} MB")
        if total and done != total:
            raise DataError(f"download of {url} stopped after {done} of {total} bytes")
        if verify is not None:
            verify(part)
        os.replace(part, dest)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    except (OSError, urllib.error.URLError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}") from exc
    return dest


def _verify_md5(expected: str):
    def verify(path: Path) -> None:
        actual = file_digest(path, "md5")
        if actual != expected:
            raise DataError(f"{path}: md5 is {actual}, expected {expected} (corrupt or incomplete file)")
    return verify


def _verify_har_zip(path: Path) -> None:
    """Check a downloaded UCI HAR zip: outer SHA-256, or else the nested archive's SHA-256."""
    if file_digest(path) == HAR_ZIP_SHA256:
        return
    try:
        with zipfile.ZipFile(path) as outer:
            h = hashlib.sha256()
            with outer.open(HAR_INNER_ZIP) as inner:
                for block in iter(lambda: inner.read(CHUNK), b""):
                    h.update(block)
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{path}: SHA-256 differs from the official UCI HAR zip ({HAR_ZIP_SHA256}) "
                        f"and no readable {HAR_INNER_ZIP!r} inside: {exc}") from exc
    if h.hexdigest() != HAR_INNER_ZIP_SHA256:
        raise DataError(f"{path}: neither the archive (expected SHA-256 {HAR_ZIP_SHA256}) nor its "
                        f"{HAR_INNER_ZIP!r} (expected {HAR_INNER_ZIP_SHA256}) match the official UCI HAR release")


# --------------------------------------------------------------------------------------------
# find_source
# --------------------------------------------------------------------------------------------

_ACCEPTED = {
    "har": [
        f"official UCI zip: {HAR_ZIP_NAME} (holding {HAR_INNER_ZIP!r}) or {HAR_INNER_ZIP!r}, "
        "or any .zip with that content",
        f"extracted folder {HAR_DIR!r}/ (or a folder) with train/ and test/ holding X_*.txt, y_*.txt, "
        "subject_*.txt and 'Inertial Signals/*.txt'",
        "har.npz (prepared layout: inertial_train/test, y_train/test, subject_train/test)",
    ],
    "cifar10": [
        f"official {CIFAR_TARBALL} (md5 {CIFAR_MD5}) or any .tar/.tar.gz/.tgz holding {CIFAR_PY_DIR}/",
        "any .tar/.tar.gz/.tgz in image-folder layout train/<class>/*, test/<class>/*",
        f"extracted folder {CIFAR_PY_DIR}/ (data_batch_1..5, test_batch, batches.meta)",
        "extracted image folder with train/<class>/* and test/<class>/* (the folder itself or one below it)",
    ],
}


def _not_found_message(dataset: str, folders: list[Path], reason: str) -> str:
    lines = [f"no {dataset} data found. Searched: {', '.join(str(f) for f in folders)}.",
             "Accepted files/layouts:"]
    lines += [f"  - {a}" for a in _ACCEPTED[dataset]]
    lines.append(reason)
    return "\n".join(lines)


def find_source(dataset: str, data_dir: str | Path, download: bool = True) -> Source:
    """Find a usable copy of ``dataset`` in ``data_dir/<uci_har|cifar10>/`` or ``data_dir``.

    When none is found and ``download`` is true, the official archive is downloaded into
    ``data_dir/<uci_har|cifar10>/`` and verified. Raises DataError otherwise.
    """
    _check_dataset(dataset)
    data_dir = Path(data_dir)
    sub = data_dir / SUBDIRS[dataset]
    folders = [f for f in (sub, data_dir) if f.is_dir()]
    found = _find_har(folders) if dataset == "har" else _find_cifar(folders)
    if found is not None:
        return found
    searched = [sub, data_dir]
    if not download:
        raise DataError(_not_found_message(dataset, searched, "Download is disabled (download=False)."))
    try:
        if dataset == "har":
            path = download_file(HAR_URL, sub / HAR_ZIP_NAME, verify=_verify_har_zip)
            return Source("official_zip", path)
        path = download_file(CIFAR_URL, sub / CIFAR_TARBALL, verify=_verify_md5(CIFAR_MD5))
        return Source("python_tarball", path)
    except DataError as exc:
        raise DataError(_not_found_message(dataset, searched, f"Download failed: {exc}")) from exc


def _find_har(folders: list[Path]) -> Source | None:
    for folder in folders:  # 1. official zip, by name first
        for name in HAR_ZIP_NAMES:
            if (folder / name).is_file():
                return Source("official_zip", folder / name)
    for folder in folders:  # ... then any zip with the right content
        for path in sorted(folder.glob("*.zip")):
            if path.name not in HAR_ZIP_NAMES and _zip_looks_like_har(path):
                return Source("official_zip", path)
    for folder in folders:  # 2. extracted folder
        for cand in (folder / HAR_DIR / HAR_DIR, folder / HAR_DIR, folder):
            if (cand / "train" / "y_train.txt").is_file() and (cand / "test" / "y_test.txt").is_file():
                return Source("official_dir", cand)
    for folder in folders:  # 3. prepared npz
        if (folder / "har.npz").is_file():
            return Source("prepared_npz", folder / "har.npz")
    return None


def _zip_looks_like_har(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not _is_junk(n)]
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); expected the UCI HAR zip") from exc
    return any(PurePosixPath(n).name == HAR_INNER_ZIP or n.endswith("train/y_train.txt") for n in names)


def _find_cifar(folders: list[Path]) -> Source | None:
    for folder in folders:  # 1. official python tarball, by name
        path = folder / CIFAR_TARBALL
        if path.is_file():
            _verify_md5(CIFAR_MD5)(path)
            return Source("python_tarball", path)
    for folder in folders:  # ... and any tar, by content
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TAR_SUFFIXES)):
            kind = _peek_tar_layout(path)
            if kind is not None:
                return Source(kind, path)
    for folder in folders:  # 2. extracted python batches
        for cand in (folder / CIFAR_PY_DIR, folder):
            if (cand / "data_batch_1").is_file() and (cand / "test_batch").is_file():
                return Source("python_dir", cand)
    for folder in folders:  # 3. extracted image folder: the folder itself or one below it
        for cand in [folder] + sorted(p for p in folder.iterdir() if p.is_dir()):
            if (cand / "train").is_dir() and (cand / "test").is_dir():
                return Source("imagefolder_dir", cand)
    return None


def _peek_tar_layout(path: Path, max_members: int = 50) -> str | None:
    """'python_tarball', 'imagefolder_tar' or None, from the first members of a tar archive."""
    try:
        with tarfile.open(path, "r|*") as tf:
            for i, member in enumerate(tf):
                if i >= max_members:
                    break
                if _is_junk(member.name):
                    continue
                parts = PurePosixPath(member.name).parts
                if CIFAR_PY_DIR in parts or parts[-1] in CIFAR_TRAIN_BATCHES + ("test_batch", "batches.meta"):
                    return "python_tarball"
                if "train" in parts[:-1] or "test" in parts[:-1] or (member.isdir() and parts[-1] in ("train", "test")):
                    return "imagefolder_tar"
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{path} is not a readable tar archive ({exc}); expected a CIFAR-10 tarball") from exc
    return None


# --------------------------------------------------------------------------------------------
# load_raw
# --------------------------------------------------------------------------------------------

def load_raw(source: Source, input_form: str = "inertial") -> dict:
    """Read and check the raw dataset. See the module doc and :func:`_load_har` / :func:`_load_cifar`."""
    dataset = _dataset_of_kind(source.kind)
    form = _check_input_form(dataset, input_form)
    if not source.path.exists():
        raise DataError(f"{source.path} does not exist (source kind {source.kind})")
    if dataset == "har":
        return _load_har(source, form)
    return _load_cifar(source)


# ---- HAR -----------------------------------------------------------------------------------

def _load_har(source: Source, form: str) -> dict:
    if source.kind == "prepared_npz":
        data = _har_from_npz(source.path, form)
    elif source.kind == "official_dir":
        root = source.path

        def read(rel: str) -> bytes | None:
            p = root / rel
            return p.read_bytes() if p.is_file() else None

        data = _har_from_files(read, str(root), form)
    else:
        data = _har_from_zip(source.path, form)
    _check_har(data, str(source.path), form)
    return data


def _har_from_zip(path: Path, form: str) -> dict:
    label = str(path)
    try:
        with zipfile.ZipFile(path) as outer:
            names = [n for n in outer.namelist() if not _is_junk(n)]
            nested = [n for n in names if PurePosixPath(n).name == HAR_INNER_ZIP]
            if nested:
                label = f"{path} -> {nested[0]}"
                zf = zipfile.ZipFile(io.BytesIO(outer.read(nested[0])))
            else:
                zf = zipfile.ZipFile(path)
        with zf:
            names = [n for n in zf.namelist() if not _is_junk(n)]
            roots = [n[: -len("train/y_train.txt")] for n in names if n.endswith("train/y_train.txt")]
            if not roots:
                raise DataError(f"{label}: no 'train/y_train.txt' inside; expected the UCI HAR layout "
                                f"'{HAR_DIR}/train/...' and '{HAR_DIR}/test/...'")
            prefix, members = roots[0], set(names)

            def read(rel: str) -> bytes | None:
                return zf.read(prefix + rel) if prefix + rel in members else None

            return _har_from_files(read, label, form)
    except DataError:
        raise
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{label}: cannot read the zip archive ({type(exc).__name__}: {exc}); "
                        "the file is truncated or corrupt, expected the official UCI HAR zip") from exc


def _parse_txt(raw: bytes, where: str, dtype, ncols: int | None = None) -> np.ndarray:
    """Parse a whitespace-separated text table; ``ncols`` None means one value per line."""
    try:
        arr = np.loadtxt(io.BytesIO(raw), dtype=dtype, ndmin=2 if ncols else 1)
    except ValueError as exc:
        raise DataError(f"{where}: not a valid numeric text table ({exc}); "
                        f"expected {ncols or 1} number(s) per line") from exc
    if ncols and arr.shape[1] != ncols:
        raise DataError(f"{where}: {arr.shape[1]} columns per line, expected {ncols}")
    return arr


def _har_from_files(read, label: str, form: str) -> dict:
    """Build the HAR dict from a ``read(relative path) -> bytes | None`` function."""

    def need(rel: str, what: str) -> bytes:
        raw = read(rel)
        if raw is None:
            raise DataError(f"{label}: missing {rel} ({what})")
        return raw

    out = {}
    for split in ("train", "test"):
        out[f"y_{split}"] = _parse_txt(need(f"{split}/y_{split}.txt", "activity labels 1..6"),
                                       f"{label}: {split}/y_{split}.txt", np.int64) - 1
        out[f"subject_{split}"] = _parse_txt(need(f"{split}/subject_{split}.txt", "subject ids 1..30"),
                                             f"{label}: {split}/subject_{split}.txt", np.int64)
        if form == "engineered":
            rel = f"{split}/X_{split}.txt"
            x = _parse_txt(need(rel, f"the {HAR_FEATURES} engineered features"), f"{label}: {rel}",
                           np.float32, HAR_FEATURES)
        else:
            channels = []
            for ch in INERTIAL_CHANNELS:
                rel = f"{split}/Inertial Signals/{ch}_{split}.txt"
                raw = need(rel, f"one of the 9 'Inertial Signals' files {', '.join(INERTIAL_CHANNELS)}")
                channels.append(_parse_txt(raw, f"{label}: {rel}", np.float32, HAR_WINDOW))
            rows = {c.shape[0] for c in channels}
            if len(rows) != 1:
                raise DataError(f"{label}: the 9 {split} 'Inertial Signals' files have different row counts "
                                f"{sorted(rows)}; expected the same number of windows in each")
            x = np.stack(channels, axis=1)
        out[f"x_{split}"] = x
    labels = read("activity_labels.txt")
    out["class_names"] = _parse_activity_labels(labels, f"{label}: activity_labels.txt") if labels else list(HAR_CLASS_NAMES)
    return {k: out[k] for k in ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test",
                                "class_names")}


def _parse_activity_labels(raw: bytes, where: str) -> list[str]:
    pairs = [line.split() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    try:
        by_id = {int(p[0]): p[1] for p in pairs}
    except (ValueError, IndexError) as exc:
        raise DataError(f"{where}: expected lines '<id> <NAME>' ({exc})") from exc
    if sorted(by_id) != list(range(1, 7)):
        raise DataError(f"{where}: activity ids {sorted(by_id)}, expected 1..6")
    return [by_id[i] for i in range(1, 7)]


def _har_from_npz(path: Path, form: str) -> dict:
    if form == "engineered":
        raise DataError(f"input_form 'engineered': the 561 engineered features are not in {path} "
                        "(har.npz holds only the inertial signals); use input_form: inertial "
                        "or give the official UCI zip")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            missing = [k for k in HAR_NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: arrays {missing} missing; expected {list(HAR_NPZ_KEYS)} "
                                "(layout of shared/data/PROVENANCE.md)")
            arrays = {k: npz[k] for k in HAR_NPZ_KEYS}
            channels = [str(c) for c in npz["inertial_channels"]] if "inertial_channels" in npz.files \
                else list(INERTIAL_CHANNELS)
    except DataError:
        raise
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{path}: cannot read the npz file ({type(exc).__name__}: {exc}); "
                        "truncated or corrupt?") from exc
    if sorted(channels) != sorted(INERTIAL_CHANNELS) or len(channels) != len(INERTIAL_CHANNELS):
        raise DataError(f"{path}: inertial_channels {channels}, expected {list(INERTIAL_CHANNELS)}")
    order = [channels.index(c) for c in INERTIAL_CHANNELS]
    out = {}
    for split in ("train", "test"):
        x = arrays[f"inertial_{split}"]
        if x.ndim != 3 or x.shape[1] != len(INERTIAL_CHANNELS):
            raise DataError(f"{path}: inertial_{split} has shape {x.shape}, expected (N, 9, {HAR_WINDOW})")
        out[f"x_{split}"] = np.ascontiguousarray(x[:, order], dtype=np.float32)
        out[f"y_{split}"] = arrays[f"y_{split}"].astype(np.int64) - 1
        out[f"subject_{split}"] = arrays[f"subject_{split}"].astype(np.int64)
    labels_file = path.parent / "activity_labels.txt"
    out["class_names"] = (_parse_activity_labels(labels_file.read_bytes(), str(labels_file))
                          if labels_file.is_file() else list(HAR_CLASS_NAMES))
    return {k: out[k] for k in ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test",
                                "class_names")}


def _check_har(d: dict, where: str, form: str) -> None:
    sample = (HAR_FEATURES,) if form == "engineered" else (len(INERTIAL_CHANNELS), HAR_WINDOW)
    for split in ("train", "test"):
        x, y, s = d[f"x_{split}"], d[f"y_{split}"], d[f"subject_{split}"]
        if x.shape[1:] != sample:
            raise DataError(f"{where}: x_{split} has shape {x.shape}, expected (N, {', '.join(map(str, sample))})")
        if not (len(x) == len(y) == len(s)):
            raise DataError(f"{where}: {split} row counts differ: {len(x)} windows, {len(y)} labels, "
                            f"{len(s)} subjects; expected equal counts")
        if len(y) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if y.min() < 0 or y.max() > 5:
            raise DataError(f"{where}: {split} activity labels outside 1..6 (found {y.min() + 1}..{y.max() + 1})")
        missing = sorted(set(range(6)) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(f"{where}: {split} split has no windows of activities {[m + 1 for m in missing]}; "
                            "expected all 6 activities")
        if s.min() < 1 or s.max() > 30:
            raise DataError(f"{where}: {split} subject ids outside 1..30 (found {s.min()}..{s.max()})")
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x_{split} holds NaN or infinite values")
    both = sorted(set(np.unique(d["subject_train"]).tolist()) & set(np.unique(d["subject_test"]).tolist()))
    if both:
        raise DataError(f"{where}: subjects {both} are in both train and test; expected disjoint subjects")
    if len(d["class_names"]) != 6:
        raise DataError(f"{where}: {len(d['class_names'])} class names, expected 6")


# ---- CIFAR-10 ------------------------------------------------------------------------------

def _load_cifar(source: Source) -> dict:
    path = source.path
    if source.kind == "python_tarball":
        if path.name == CIFAR_TARBALL:
            _verify_md5(CIFAR_MD5)(path)
        blobs = {}
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    name = PurePosixPath(member.name).name
                    if member.isfile() and not _is_junk(member.name) and name in _CIFAR_BATCH_FILES:
                        blobs[name] = tf.extractfile(member).read()
        except (*_READ_ERRORS,) as exc:
            raise DataError(f"{path}: cannot read the tar archive ({type(exc).__name__}: {exc}); "
                            "the file is truncated or corrupt") from exc
        data = _cifar_from_batches(blobs, str(path))
    elif source.kind == "python_dir":
        blobs = {n: (path / n).read_bytes() for n in _CIFAR_BATCH_FILES if (path / n).is_file()}
        data = _cifar_from_batches(blobs, str(path))
    elif source.kind == "imagefolder_tar":
        data = _cifar_from_images(_tar_images(path), str(path))
    else:
        data = _cifar_from_images(_dir_images(path), str(path))
    _check_cifar(data, str(path))
    return data


_CIFAR_BATCH_FILES = CIFAR_TRAIN_BATCHES + ("test_batch", "batches.meta")


def _numpy_pickle_globals() -> dict:
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               # protocol-2 pickles written by Python 3 encode bytes with _codecs.encode(str, "latin1")
               ("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: only numpy arrays/dtypes and plain Python data."""

    allowed = None

    def find_class(self, module, name):
        if _NumpyOnlyUnpickler.allowed is None:
            _NumpyOnlyUnpickler.allowed = _numpy_pickle_globals()
        try:
            return _NumpyOnlyUnpickler.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle(raw: bytes, where: str):
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (*_READ_ERRORS, AttributeError, TypeError) as exc:
        raise DataError(f"{where}: not a valid CIFAR-10 batch pickle ({type(exc).__name__}: {exc})") from exc


def _key(d, name: str):
    """Value of ``name`` in a batch dict whose keys may be bytes (Python 2 pickles) or str."""
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise KeyError(name)


def _cifar_from_batches(blobs: dict, where: str) -> dict:
    missing = [n for n in CIFAR_TRAIN_BATCHES + ("test_batch",) if n not in blobs]
    if missing:
        raise DataError(f"{where}: missing {missing}; expected {CIFAR_PY_DIR}/data_batch_1..5 and test_batch")

    def batch(name: str):
        d = _unpickle(blobs[name], f"{where}: {name}")
        try:
            x, y = np.asarray(_key(d, "data")), np.asarray(_key(d, "labels"), dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: {name} has no 'data'/'labels' entries ({exc})") from exc
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * CIFAR_SIZE * CIFAR_SIZE:
            raise DataError(f"{where}: {name} data is {x.dtype} {x.shape}, expected uint8 (N, 3072)")
        if y.shape != (len(x),):
            raise DataError(f"{where}: {name} has {len(x)} images but {y.size} labels")
        # Each row holds the 1024 red, then 1024 green, then 1024 blue values, row-major: CHW.
        return x.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE), y

    parts = [batch(n) for n in CIFAR_TRAIN_BATCHES]
    x_test, y_test = batch("test_batch")
    class_names = list(CIFAR_CLASS_NAMES)
    if "batches.meta" in blobs:
        meta = _unpickle(blobs["batches.meta"], f"{where}: batches.meta")
        try:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, "label_names")]
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}: batches.meta has no label_names ({exc})") from exc
        if len(names) != len(CIFAR_CLASS_NAMES):
            raise DataError(f"{where}: batches.meta lists {len(names)} classes, expected 10")
        class_names = names
    return {"x_train": np.concatenate([p[0] for p in parts]), "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": x_test, "y_test": y_test, "class_names": class_names}


def _tar_images(path: Path):
    """Yield (split, class, member name, bytes) for image-folder members of a tar, streaming it once."""
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                if not member.isfile() or _is_junk(member.name):
                    continue
                parts = PurePosixPath(member.name).parts
                if len(parts) >= 3 and parts[-3] in ("train", "test"):
                    yield parts[-3], parts[-2], member.name, tf.extractfile(member).read()
    except (*_READ_ERRORS,) as exc:
        raise DataError(f"{path}: cannot read the tar archive ({type(exc).__name__}: {exc}); "
                        "the file is truncated or corrupt") from exc


def _dir_images(root: Path):
    for split in ("train", "test"):
        for rel, p in _folder_files(root / split):
            parts = PurePosixPath(rel).parts
            if len(parts) == 2 and not _is_junk(rel):
                yield split, parts[0], f"{split}/{rel}", p.read_bytes()


def _decode_image(raw: bytes, where: str) -> np.ndarray:
    from PIL import Image  # imported here so HAR-only use does not need Pillow

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.size != (CIFAR_SIZE, CIFAR_SIZE):
                raise DataError(f"{where}: image is {im.size[0]}x{im.size[1]}, expected 32x32")
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except (*_READ_ERRORS, Image.DecompressionBombError, SyntaxError) as exc:
        raise DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return arr.transpose(2, 0, 1)  # HWC -> CHW


def _cifar_from_images(items, where: str) -> dict:
    images = {"train": [], "test": []}
    classes = {"train": [], "test": []}
    count = 0
    for split, cls, name, raw in items:
        images[split].append(_decode_image(raw, f"{where}: {name}"))
        classes[split].append(cls)
        count += 1
        if count % 10000 == 0:
            _progress(f"decoded {count} images from {where}")
    found = {s: sorted(set(classes[s])) for s in ("train", "test")}
    for split in ("train", "test"):
        if not images[split]:
            raise DataError(f"{where}: no images under {split}/<class>/; expected train/<class>/* and test/<class>/*")
    if found["train"] != found["test"]:
        only_train = sorted(set(found["train"]) - set(found["test"]))
        only_test = sorted(set(found["test"]) - set(found["train"]))
        raise DataError(f"{where}: train and test have different class folders (missing in test: {only_train}, "
                        f"missing in train: {only_test}); expected the same 10 classes in both")
    names = found["train"]
    if len(names) != len(CIFAR_CLASS_NAMES):
        missing = sorted(set(CIFAR_CLASS_NAMES) - set(names))
        raise DataError(f"{where}: {len(names)} class folders {names}, expected 10"
                        + (f" (missing: {missing})" if missing else ""))
    index = {c: i for i, c in enumerate(names)}
    out = {"class_names": names}
    for split in ("train", "test"):
        out[f"x_{split}"] = np.stack(images[split])
        out[f"y_{split}"] = np.array([index[c] for c in classes[split]], dtype=np.int64)
    return {k: out[k] for k in ("x_train", "y_train", "x_test", "y_test", "class_names")}


def _check_cifar(d: dict, where: str) -> None:
    n_classes = len(d["class_names"])
    for split in ("train", "test"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape[1:] != (3, CIFAR_SIZE, CIFAR_SIZE):
            raise DataError(f"{where}: x_{split} is {x.dtype} {x.shape}, expected uint8 (N, 3, 32, 32)")
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{where}: {split} has {len(x)} images and {len(y)} labels; expected equal, non-zero")
        if y.min() < 0 or y.max() >= n_classes:
            raise DataError(f"{where}: {split} labels outside 0..{n_classes - 1}")
        missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(f"{where}: {split} split has no images of classes "
                            f"{[d['class_names'][m] for m in missing]}; expected all {n_classes}")


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------

def stratified_subset(y: np.ndarray, k: int | None, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``k`` (all indices if k is None or >= len)."""
    n = len(y)
    if k is None or k >= n:
        return np.arange(n)
    counts = np.bincount(y, minlength=n_classes)
    exact = counts * (k / n)
    quota = np.floor(exact).astype(np.int64)
    rest = int(k - quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:rest]] += 1  # largest remainders
    picks = [rng.choice(np.flatnonzero(y == c), size=int(q), replace=False) for c, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def _check_limit(limit) -> dict:
    if limit is None:
        return {"train": None, "val": None, "test": None}
    if not isinstance(limit, dict) or set(limit) - {"train", "val", "test"}:
        raise DataError(f"limit must be a dict with keys train/val/test (int or None), got {limit!r}")
    out = {s: limit.get(s) for s in ("train", "val", "test")}
    for split, k in out.items():
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise DataError(f"limit[{split!r}] must be a positive integer or None, got {k!r}")
    return {s: (None if k is None else int(k)) for s, k in out.items()}


def _tmp_path(path: Path) -> Path:
    """A new empty temp file next to ``path`` (created like a normal file, so the umask applies)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            open(tmp, "xb").close()
            return tmp
        except FileExistsError:
            continue


def prepare(dataset: str, source: Source, out_npz: Path, out_json: Path, *, seed: int,
            input_form: str = "inertial", val_subjects: int = 4, val_fraction: float = 0.1,
            limit: dict | None = None) -> dict:
    """Load ``source``, split it, normalise (HAR) or compute input statistics (CIFAR), and write
    ``out_npz`` and the provenance ``out_json`` atomically. Returns the provenance dict.

    On any failure neither output file exists afterwards (stale ones are removed first).
    """
    out_npz, out_json = Path(out_npz), Path(out_json)
    for p in (out_npz, out_json):
        p.unlink(missing_ok=True)
    _check_dataset(dataset)
    form = _check_input_form(dataset, input_form)
    if source.dataset != dataset:
        raise DataError(f"source {source.path} is a {source.dataset} source ({source.kind}), not {dataset}")
    limit = _check_limit(limit)
    if dataset == "cifar10" and not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if dataset == "har" and (isinstance(val_subjects, bool) or not isinstance(val_subjects, (int, np.integer))
                             or val_subjects < 1):
        raise DataError(f"val_subjects must be a positive integer, got {val_subjects!r}")

    raw = load_raw(source, form)
    rng = np.random.default_rng(seed)
    n_classes = len(raw["class_names"])
    arrays, extra = _split_har(raw, val_subjects, rng) if dataset == "har" else _split_cifar(raw, val_fraction, rng)
    # Statistics of the whole (remaining) train split, before any limit, so that smoke runs
    # normalise exactly like full runs.
    if dataset == "har":
        mean, std = _har_stats(arrays["x_train"])
    else:
        mean, std = _cifar_channel_stats(arrays["x_train"])

    for split in ("train", "val", "test"):
        keep = stratified_subset(arrays[f"y_{split}"], limit[split], n_classes, rng)
        for name in [k for k in arrays if k.endswith("_" + split)]:
            arrays[name] = arrays[name][keep]
    for split in ("train", "val", "test"):
        if len(arrays[f"y_{split}"]) == 0:
            raise DataError(f"the {split} split is empty after splitting; check val_subjects/val_fraction/limit")

    if dataset == "har":
        _normalise_har(arrays, mean, std)
    arrays["class_names"] = np.array(raw["class_names"], dtype=str)
    arrays["norm_mean"], arrays["norm_std"] = mean.astype(np.float32), std.astype(np.float32)

    source_sha, files = _source_digests(source)
    provenance = {
        "dataset": dataset,
        "input_form": form,
        "source": {"kind": source.kind, "path": str(source.path), "sha256": source_sha},
        "files": files,
        "seed": int(seed),
        "counts": {s: int(len(arrays[f"y_{s}"])) for s in ("train", "val", "test")},
        "class_counts": {s: np.bincount(arrays[f"y_{s}"], minlength=n_classes).tolist()
                         for s in ("train", "val", "test")},
        "class_names": list(raw["class_names"]),
        "val_subjects": extra.get("val_subjects"),
        "val_fraction": None if dataset == "har" else float(val_fraction),
        "normalisation": {"mean": [float(v) for v in arrays["norm_mean"]],
                          "std": [float(v) for v in arrays["norm_std"]],
                          "computed_on": "train",
                          "applied_to_x": dataset == "har",
                          "per": "channel" if form in ("inertial", "image") else "feature"},
        "limit": None if all(v is None for v in limit.values()) else limit,
        "x_shape": list(arrays["x_train"].shape[1:]),
        "x_dtype": str(arrays["x_train"].dtype),
    }
    _write_outputs(arrays, provenance, out_npz, out_json, compressed=dataset == "har")
    return provenance


def _split_har(raw: dict, val_subjects: int, rng: np.random.Generator) -> tuple[dict, dict]:
    subjects = np.unique(raw["subject_train"])
    if val_subjects >= len(subjects):
        raise DataError(f"val_subjects={val_subjects} but the train split has only {len(subjects)} subjects; "
                        f"expected 1..{len(subjects) - 1}")
    chosen = np.sort(rng.choice(subjects, size=val_subjects, replace=False))
    is_val = np.isin(raw["subject_train"], chosen)
    arrays = {}
    for name in ("x", "y", "subject"):
        arrays[f"{name}_train"] = raw[f"{name}_train"][~is_val]
        arrays[f"{name}_val"] = raw[f"{name}_train"][is_val]
        arrays[f"{name}_test"] = raw[f"{name}_test"]
    return arrays, {"val_subjects": [int(s) for s in chosen]}


def subject_fold(npz: str | Path, out: str | Path, fold: int, seed: int) -> list[int] | None:
    """Write a copy of a prepared npz whose validation split is another group of whole subjects, as many as the
    prepared one holds; the prepared validation subjects join training. Fold 0 is the prepared split itself;
    fold k >= 1 takes the k-th group of a seeded shuffle of the training subjects (disjoint groups while
    they last, then around again). Returns the fold's validation subjects, or None (nothing written) for
    data without subject ids (CIFAR-10): its validation split is a random sample, not a few people."""
    with np.load(npz, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    if "subject_val" not in arrays:
        return None
    held = np.unique(arrays["subject_val"])
    if fold == 0:
        return [int(s) for s in held]
    pool = np.random.default_rng(seed).permutation(np.unique(arrays["subject_train"]))
    groups = len(pool) // len(held)
    if groups < 1:
        raise DataError(f"{npz}: {len(pool)} training subjects cannot make a validation group of {len(held)}")
    chosen = np.sort(pool[((fold - 1) % groups) * len(held):((fold - 1) % groups + 1) * len(held)])
    for name in ("x", "y", "subject"):
        both = np.concatenate([arrays[f"{name}_train"], arrays[f"{name}_val"]])
        is_val = np.isin(np.concatenate([arrays["subject_train"], arrays["subject_val"]]), chosen)
        arrays[f"{name}_train"], arrays[f"{name}_val"] = both[~is_val], both[is_val]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return [int(s) for s in chosen]


def _split_cifar(raw: dict, val_fraction: float, rng: np.random.Generator) -> tuple[dict, dict]:
    y = raw["y_train"]
    n_val = int(round(len(y) * val_fraction))
    if not 0 < n_val < len(y):
        raise DataError(f"val_fraction={val_fraction} gives {n_val} of {len(y)} train images for validation; "
                        "expected at least 1 and fewer than all")
    val = stratified_subset(y, n_val, len(raw["class_names"]), rng)
    is_val = np.zeros(len(y), dtype=bool)
    is_val[val] = True
    arrays = {"x_train": raw["x_train"][~is_val], "y_train": y[~is_val],
              "x_val": raw["x_train"][is_val], "y_val": y[is_val],
              "x_test": raw["x_test"], "y_test": raw["y_test"]}
    return arrays, {}


def _har_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (N, 9, 128) or per-feature (N, 561) mean and std, in float64."""
    axes = (0, 2) if x.ndim == 3 else (0,)
    mean = x.mean(axis=axes, dtype=np.float64)
    std = x.std(axis=axes, dtype=np.float64)
    return mean, np.where(std > 1e-12, std, 1.0)  # constant channel: leave its scale alone


def _normalise_har(arrays: dict, mean: np.ndarray, std: np.ndarray) -> None:
    """Standardise every split in place with the train statistics; stored as float32."""
    shape = (1, -1, 1) if arrays["x_train"].ndim == 3 else (1, -1)
    for split in ("train", "val", "test"):
        xs = arrays[f"x_{split}"].astype(np.float64)
        arrays[f"x_{split}"] = ((xs - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def _cifar_channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean/std of x/255 via 256-bin histograms (no float copy of the images)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean, std = np.zeros(3), np.zeros(3)
    for c in range(3):
        hist = np.bincount(x[:, c].ravel(), minlength=256).astype(np.float64)
        n = hist.sum()
        mean[c] = (hist * levels).sum() / n
        std[c] = np.sqrt((hist * (levels - mean[c]) ** 2).sum() / n)
    return mean, std


def _source_digests(source: Source) -> tuple[str, dict]:
    """(source sha256, {relative file name: sha256}) for the files the source consists of."""
    path = source.path
    if path.is_dir():
        digest, per_file = _folder_digest(path)
        return digest, per_file
    digest = file_digest(path)
    files = {path.name: digest}
    labels = path.parent / "activity_labels.txt"
    if source.kind == "prepared_npz" and labels.is_file():
        files[labels.name] = file_digest(labels)
    return digest, files


def _write_outputs(arrays: dict, provenance: dict, out_npz: Path, out_json: Path, compressed: bool) -> None:
    """Write npz then json via temp files in the same folders and os.replace; clean up on failure."""
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp_npz, tmp_json, npz_done = _tmp_path(out_npz), _tmp_path(out_json), False
    try:
        with open(tmp_npz, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
        provenance["outputs"] = {out_npz.name: file_digest(tmp_npz)}
        with open(tmp_json, "w", encoding="utf-8") as f:
            json.dump(provenance, f, indent=2)
            f.write("\n")
        os.replace(tmp_npz, out_npz)
        npz_done = True
        os.replace(tmp_json, out_json)
    except BaseException:
        tmp_npz.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        if npz_done:
            out_npz.unlink(missing_ok=True)
        raise


def prepare_stage(*, dataset: str, data_dir: str | Path, download: bool, out_npz: str | Path, out_json: str | Path,
                  seed: int, cfg: dict, experiment: str | None = None, rule: str = "prepare_data") -> dict:
    """The whole ``prepare_data`` rule: find (or download) the source, prepare it, log one MLflow run
    (params = the config slice, tags = dataset/seed/rule/git commit/config hash/data sha256,
    artifact = the provenance JSON). Returns the provenance."""
    import time

    from . import tracking
    from .config import config_hash

    t0 = time.time()
    source = find_source(dataset, data_dir, download=download)
    _progress(f"[prepare_data] {dataset}: reading {source.kind} {source.path}")
    kw = {"input_form": cfg.get("input_form", "image" if dataset == "cifar10" else "inertial"),
          "limit": cfg.get("limit")}
    if dataset == "har":
        kw["val_subjects"] = cfg.get("val_subjects", 4)
    else:
        kw["val_fraction"] = cfg.get("val_fraction", 0.1)
    prov = prepare(dataset, source, Path(out_npz), Path(out_json), seed=seed, **kw)
    wall = time.time() - t0
    _progress(f"[prepare_data] {dataset}: train/val/test = {prov['counts']['train']}/{prov['counts']['val']}/"
              f"{prov['counts']['test']} in {wall:.1f} s")
    if experiment:
        import mlflow

        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        params = {"dataset": dataset, "seed": seed, **cfg}
        tags = tracking.standard_tags(dataset=dataset, variant="data", bits=None, seed=seed, rule=rule,
                                      config_hash=config_hash(params), data_sha256=prov["source"]["sha256"],
                                      source_kind=source.kind)
        run_id = client.create_run(exp_id, run_name=f"prepare_data {dataset}", tags=tags).info.run_id
        for k, v in tracking.flatten(params).items():
            client.log_param(run_id, k, v)
        for split, n in prov["counts"].items():
            client.log_metric(run_id, f"n_{split}", n)
        client.log_metric(run_id, "wall_time_s", wall)
        client.log_artifact(run_id, str(out_json))
        client.set_terminated(run_id, "FINISHED")
    return prov
