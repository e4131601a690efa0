"""CIFAR-10: read the official python batches (tarball or extracted folder, with an unpickler that loads only
numpy arrays and plain data) or the image-folder layout ``train/<class>/*``, ``test/<class>/*`` (tar or folder),
and check what was read.

The result of :func:`load_cifar` is a dict with ``x_train`` (N, 3, 32, 32) uint8 (CHW), ``y_train`` (0..9), the
same for ``test``, and ``class_names``.
"""

from __future__ import annotations

import codecs
import io
import logging
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from .digests import folder_files
from .sources import (
    CIFAR_PY_DIR,
    CIFAR_TARBALL,
    CIFAR_TRAIN_BATCHES,
    READ_ERRORS,
    DataError,
    Source,
    is_junk,
    verify_cifar_tarball,
)

log = logging.getLogger(__name__)

CIFAR_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_SIZE = 32
_CIFAR_BATCH_FILES = CIFAR_TRAIN_BATCHES + ("test_batch", "batches.meta")


def load_cifar(source: Source) -> dict:
    """Read ``source`` (a CIFAR-10 source) and check it (see module doc)."""
    path = source.path
    if source.kind == "python_tarball":
        if path.name == CIFAR_TARBALL:
            verify_cifar_tarball(path)
        blobs = {}
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    name = PurePosixPath(member.name).name
                    if member.isfile() and not is_junk(member.name) and name in _CIFAR_BATCH_FILES:
                        blobs[name] = tf.extractfile(member).read()
        except (*READ_ERRORS,) as exc:
            raise DataError(
                f"{path}: cannot read the tar archive ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
            ) from exc
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


def _numpy_pickle_globals() -> dict:
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # protocol-2 pickles written by Python 3 encode bytes with _codecs.encode(str, "latin1")
        ("_codecs", "encode"): codecs.encode,
    }
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
    except (*READ_ERRORS, AttributeError, TypeError) as exc:
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
    return {
        "x_train": np.concatenate([p[0] for p in parts]),
        "y_train": np.concatenate([p[1] for p in parts]),
        "x_test": x_test,
        "y_test": y_test,
        "class_names": class_names,
    }


def _tar_images(path: Path):
    """Yield (split, class, member name, bytes) for image-folder members of a tar, streaming it once."""
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                if not member.isfile() or is_junk(member.name):
                    continue
                parts = PurePosixPath(member.name).parts
                if len(parts) >= 3 and parts[-3] in ("train", "test"):
                    yield parts[-3], parts[-2], member.name, tf.extractfile(member).read()
    except (*READ_ERRORS,) as exc:
        raise DataError(
            f"{path}: cannot read the tar archive ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
        ) from exc


def _dir_images(root: Path):
    for split in ("train", "test"):
        for rel, p in folder_files(root / split):
            parts = PurePosixPath(rel).parts
            if len(parts) == 2 and not is_junk(rel):
                yield split, parts[0], f"{split}/{rel}", Path(p).read_bytes()


def _decode_image(raw: bytes, where: str) -> np.ndarray:
    """One image as uint8 CHW; ``where``: "<archive or folder>: <member path>", named by every error."""
    from PIL import Image  # imported here so HAR-only use does not need Pillow

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.size != (CIFAR_SIZE, CIFAR_SIZE):
                raise DataError(f"{where}: image is {im.size[0]}x{im.size[1]}, expected 32x32")
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except Image.UnidentifiedImageError as exc:  # its message names only an in-memory buffer
        raise DataError(
            f"{where}: cannot decode image: no image format Pillow reads ({len(raw)} bytes starting {raw[:8]!r}); "
            "the file is corrupt or not an image (expected PNG or JPEG)"
        ) from exc
    except (*READ_ERRORS, Image.DecompressionBombError, SyntaxError) as exc:
        raise DataError(
            f"{where}: cannot decode image ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
        ) from exc
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
            log.info("decoded %d images from %s", count, where)
    found = {s: sorted(set(classes[s])) for s in ("train", "test")}
    for split in ("train", "test"):
        if not images[split]:
            raise DataError(f"{where}: no images under {split}/<class>/; expected train/<class>/* and test/<class>/*")
    if found["train"] != found["test"]:
        only_train = sorted(set(found["train"]) - set(found["test"]))
        only_test = sorted(set(found["test"]) - set(found["train"]))
        raise DataError(
            f"{where}: train and test have different class folders (missing in test: {only_train}, "
            f"missing in train: {only_test}); expected the same 10 classes in both"
        )
    names = found["train"]
    if len(names) != len(CIFAR_CLASS_NAMES):
        missing = sorted(set(CIFAR_CLASS_NAMES) - set(names))
        raise DataError(
            f"{where}: {len(names)} class folders {names}, expected 10" + (f" (missing: {missing})" if missing else "")
        )
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
            raise DataError(
                f"{where}: {split} split has no images of classes "
                f"{[d['class_names'][m] for m in missing]}; expected all {n_classes}"
            )
