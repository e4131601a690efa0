"""Where the datasets come from: the accepted sources, finding one, downloading the official archive, digests.

Sources, in order of preference:

* ``har`` (UCI "Human Activity Recognition Using Smartphones"): the official UCI zip (``official_zip``), the
  extracted ``UCI HAR Dataset/`` folder (``official_dir``) or the prepared ``har.npz`` of
  shared/data/PROVENANCE.md (``prepared_npz``, inertial signals only).
* ``cifar10``: the official ``cifar-10-python.tar.gz`` (``python_tarball``, also any tar holding
  ``cifar-10-batches-py/``), its extracted ``cifar-10-batches-py/`` folder (``python_dir``), or the image-folder
  layout ``train/<class>/*``, ``test/<class>/*`` as a tar (``imagefolder_tar``, e.g. the shared JPEG copy) or as
  a folder (``imagefolder_dir``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .digests import CHUNK, DigestCache, file_digest, folder_digest, folder_files, lines_sha256

log = logging.getLogger(__name__)


class DataError(Exception):
    """Bad or missing input data, or bad parameters for the data stage."""


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

DATASETS = ("har", "cifar10")
SUBDIRS = {"har": "uci_har", "cifar10": "cifar10"}
HAR_KINDS = ("official_zip", "official_dir", "prepared_npz")
CIFAR_KINDS = ("python_tarball", "imagefolder_tar", "python_dir", "imagefolder_dir")

HAR_URL = "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
HAR_ZIP_NAME = "human+activity+recognition+using+smartphones.zip"
HAR_ZIP_NAMES = (
    HAR_ZIP_NAME,
    "human%2Bactivity%2Brecognition%2Busing%2Bsmartphones.zip",
    "UCI HAR Dataset.zip",
    "UCI%20HAR%20Dataset.zip",
)
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

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
# Not published with the dataset; the SHA-256 that torchvision's dataset code and many public projects pin.
CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR_PY_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# The content digest of what find_source downloads when no source is found (the official archives).
DOWNLOAD_SHA256 = {"har": HAR_ZIP_SHA256, "cifar10": CIFAR_SHA256}

# Errors raised by the readers for truncated or corrupt archives and images.
READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    tarfile.TarError,
    ValueError,
    KeyError,
    IndexError,
    pickle.UnpicklingError,
)


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


def is_junk(name: str) -> bool:
    """macOS resource forks, __MACOSX folders and hidden files found in some archives."""
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or p.startswith(".") for p in parts if p not in (".", ".."))


# --------------------------------------------------------------------------------------------
# Digests
# --------------------------------------------------------------------------------------------


def source_files(source: Source) -> list[tuple[str, str | Path]]:
    """The files a source consists of, as sorted (relative name, path) pairs: a folder's files, the archive, or
    ``har.npz`` and the ``activity_labels.txt`` beside it (its class names) when there is one."""
    path = source.path
    if path.is_dir():
        return folder_files(path)
    files = [(path.name, path)]
    labels = path.parent / "activity_labels.txt"
    if source.kind == "prepared_npz" and labels.is_file():
        files.append((labels.name, labels))
    return sorted(files)


def source_digests(source: Source) -> tuple[str, dict]:
    """(source sha256, {relative file name: sha256}) for the files the source consists of. The source sha256 is
    the archive's (or ``har.npz``'s) own digest, or a folder's :func:`~.digests.lines_sha256`."""
    path = source.path
    if path.is_dir():
        return folder_digest(path)
    files = {rel: file_digest(p) for rel, p in source_files(source)}
    return files[path.name], files


def identity_sha256(source: Source, files: dict[str, str]) -> str:
    """The source's content digest, its identity, from its per-file digests (see :func:`content_sha256`)."""
    if source.path.is_dir() or len(files) > 1:
        return lines_sha256(files)
    return files[source.path.name]


def content_sha256(source: Source, cache: str | Path | None = None) -> str:
    """The source's identity: its content digest over every file it consists of (:func:`source_files`): the
    archive's SHA-256, or the :func:`~.digests.lines_sha256` of a folder's files (or of ``har.npz`` and its
    ``activity_labels.txt``). ``cache``: a JSON file remembering each file's digest under its size, mtime, ctime
    and inode (written atomically), so that only new or changed files are read; None = read every file."""
    store = DigestCache(cache)
    try:
        files = store.digests(str(source.path.resolve()), source_files(source))
    except OSError as exc:
        raise DataError(f"{source.path}: cannot read the {source.kind} source to hash it: {exc}") from exc
    try:
        store.save()
    except OSError as exc:  # a read-only results folder costs time, not correctness
        log.warning("%s: cannot write the digest cache (%s)", cache, exc)
    return identity_sha256(source, files)


def _verify_md5(expected: str):
    def verify(path: Path) -> None:
        actual = file_digest(path, "md5")
        if actual != expected:
            raise DataError(f"{path}: md5 is {actual}, expected {expected} (corrupt or incomplete file)")

    return verify


def verify_cifar_tarball(path: Path) -> None:
    """Raise DataError unless ``path`` has the MD5 of the official CIFAR-10 python tarball."""
    _verify_md5(CIFAR_MD5)(path)


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
    except (*READ_ERRORS,) as exc:
        raise DataError(
            f"{path}: SHA-256 differs from the official UCI HAR zip ({HAR_ZIP_SHA256}) "
            f"and no readable {HAR_INNER_ZIP!r} inside: {exc}"
        ) from exc
    if h.hexdigest() != HAR_INNER_ZIP_SHA256:
        raise DataError(
            f"{path}: neither the archive (expected SHA-256 {HAR_ZIP_SHA256}) nor its "
            f"{HAR_INNER_ZIP!r} (expected {HAR_INNER_ZIP_SHA256}) match the official UCI HAR release"
        )


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def download_file(url: str, dest: str | Path, verify=None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (``dest.part``, then rename).

    ``verify(path)`` is called on the finished ``.part`` file and must raise DataError when the
    file is wrong; the file is renamed to ``dest`` only after it passes. Progress is logged (INFO)
    about every 10 %. Any failure removes the ``.part`` file and raises DataError.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, next_report = 0, 10
            log.info("downloading %s -> %s%s", url, dest, f" ({total / 1e6:.1f} MB)" if total else "")
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if total:
                    while done * 100 >= next_report * total and next_report <= 100:
                        log.info("  %3d %% (%.1f / %.1f MB)", next_report, done / 1e6, total / 1e6)
                        next_report += 10
                elif done // (10 * CHUNK) != (done - len(block)) // (10 * CHUNK):
                    log.info("  %.1f MB", done / 1e6)
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
    lines = [f"no {dataset} data found. Searched: {', '.join(str(f) for f in folders)}.", "Accepted files/layouts:"]
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
            names = [n for n in zf.namelist() if not is_junk(n)]
    except (*READ_ERRORS,) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); expected the UCI HAR zip") from exc
    return any(PurePosixPath(n).name == HAR_INNER_ZIP or n.endswith("train/y_train.txt") for n in names)


def _find_cifar(folders: list[Path]) -> Source | None:
    for folder in folders:  # 1. official python tarball, by name
        path = folder / CIFAR_TARBALL
        if path.is_file():
            verify_cifar_tarball(path)
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
                if is_junk(member.name):
                    continue
                parts = PurePosixPath(member.name).parts
                if CIFAR_PY_DIR in parts or parts[-1] in CIFAR_TRAIN_BATCHES + ("test_batch", "batches.meta"):
                    return "python_tarball"
                if "train" in parts[:-1] or "test" in parts[:-1] or (member.isdir() and parts[-1] in ("train", "test")):
                    return "imagefolder_tar"
    except (*READ_ERRORS,) as exc:
        raise DataError(f"{path} is not a readable tar archive ({exc}); expected a CIFAR-10 tarball") from exc
    return None
