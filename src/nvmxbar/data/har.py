"""UCI HAR ("Human Activity Recognition Using Smartphones", 30 subjects, 6 activities): read the official zip,
the extracted ``UCI HAR Dataset/`` folder or the prepared ``har.npz``, and check what was read.

The result of :func:`load_har` is a dict with ``x_train``, ``y_train`` (0..5), ``subject_train`` (1..30), the
same for ``test``, and ``class_names``; ``x`` is (N, 9, 128) float32 inertial windows (channels in the order of
:data:`INERTIAL_CHANNELS`) or (N, 561) float32 engineered features.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from .sources import HAR_DIR, HAR_INNER_ZIP, READ_ERRORS, DataError, Source, is_junk

INERTIAL_CHANNELS = (
    "body_acc_x",
    "body_acc_y",
    "body_acc_z",
    "body_gyro_x",
    "body_gyro_y",
    "body_gyro_z",
    "total_acc_x",
    "total_acc_y",
    "total_acc_z",
)
HAR_CLASS_NAMES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")
HAR_WINDOW = 128
HAR_FEATURES = 561
HAR_NPZ_KEYS = ("inertial_train", "inertial_test", "y_train", "y_test", "subject_train", "subject_test")


def load_har(source: Source, form: str) -> dict:
    """Read ``source`` (a HAR source) as ``form`` ("inertial" or "engineered") and check it (see module doc)."""
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
            names = [n for n in outer.namelist() if not is_junk(n)]
            nested = [n for n in names if PurePosixPath(n).name == HAR_INNER_ZIP]
            if nested:
                label = f"{path} -> {nested[0]}"
                zf = zipfile.ZipFile(io.BytesIO(outer.read(nested[0])))
            else:
                zf = zipfile.ZipFile(path)
        with zf:
            names = [n for n in zf.namelist() if not is_junk(n)]
            roots = [n[: -len("train/y_train.txt")] for n in names if n.endswith("train/y_train.txt")]
            if not roots:
                raise DataError(
                    f"{label}: no 'train/y_train.txt' inside; expected the UCI HAR layout "
                    f"'{HAR_DIR}/train/...' and '{HAR_DIR}/test/...'"
                )
            prefix, members = roots[0], set(names)

            def read(rel: str) -> bytes | None:
                return zf.read(prefix + rel) if prefix + rel in members else None

            return _har_from_files(read, label, form)
    except DataError:
        raise
    except (*READ_ERRORS,) as exc:
        raise DataError(
            f"{label}: cannot read the zip archive ({type(exc).__name__}: {exc}); "
            "the file is truncated or corrupt, expected the official UCI HAR zip"
        ) from exc


def _parse_txt(raw: bytes, where: str, dtype, ncols: int | None = None) -> np.ndarray:
    """Parse a whitespace-separated text table; ``ncols`` None means one value per line."""
    try:
        arr = np.loadtxt(io.BytesIO(raw), dtype=dtype, ndmin=2 if ncols else 1)
    except ValueError as exc:
        raise DataError(
            f"{where}: not a valid numeric text table ({exc}); expected {ncols or 1} number(s) per line"
        ) from exc
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
        out[f"y_{split}"] = (
            _parse_txt(
                need(f"{split}/y_{split}.txt", "activity labels 1..6"), f"{label}: {split}/y_{split}.txt", np.int64
            )
            - 1
        )
        out[f"subject_{split}"] = _parse_txt(
            need(f"{split}/subject_{split}.txt", "subject ids 1..30"), f"{label}: {split}/subject_{split}.txt", np.int64
        )
        if form == "engineered":
            rel = f"{split}/X_{split}.txt"
            x = _parse_txt(
                need(rel, f"the {HAR_FEATURES} engineered features"), f"{label}: {rel}", np.float32, HAR_FEATURES
            )
        else:
            channels = []
            for ch in INERTIAL_CHANNELS:
                rel = f"{split}/Inertial Signals/{ch}_{split}.txt"
                raw = need(rel, f"one of the 9 'Inertial Signals' files {', '.join(INERTIAL_CHANNELS)}")
                channels.append(_parse_txt(raw, f"{label}: {rel}", np.float32, HAR_WINDOW))
            rows = {c.shape[0] for c in channels}
            if len(rows) != 1:
                raise DataError(
                    f"{label}: the 9 {split} 'Inertial Signals' files have different row counts "
                    f"{sorted(rows)}; expected the same number of windows in each"
                )
            x = np.stack(channels, axis=1)
        out[f"x_{split}"] = x
    labels = read("activity_labels.txt")
    out["class_names"] = (
        _parse_activity_labels(labels, f"{label}: activity_labels.txt") if labels else list(HAR_CLASS_NAMES)
    )
    return {
        k: out[k] for k in ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test", "class_names")
    }


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
        raise DataError(
            f"input_form 'engineered': the 561 engineered features are not in {path} "
            "(har.npz holds only the inertial signals); use input_form: inertial "
            "or give the official UCI zip"
        )
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            missing = [k for k in HAR_NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: arrays {missing} missing; expected {list(HAR_NPZ_KEYS)} "
                    "(layout of shared/data/PROVENANCE.md)"
                )
            arrays = {k: npz[k] for k in HAR_NPZ_KEYS}
            channels = (
                [str(c) for c in npz["inertial_channels"]]
                if "inertial_channels" in npz.files
                else list(INERTIAL_CHANNELS)
            )
    except DataError:
        raise
    except (*READ_ERRORS,) as exc:
        raise DataError(
            f"{path}: cannot read the npz file ({type(exc).__name__}: {exc}); truncated or corrupt?"
        ) from exc
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
    out["class_names"] = (
        _parse_activity_labels(labels_file.read_bytes(), str(labels_file))
        if labels_file.is_file()
        else list(HAR_CLASS_NAMES)
    )
    return {
        k: out[k] for k in ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test", "class_names")
    }


def _check_har(d: dict, where: str, form: str) -> None:
    sample = (HAR_FEATURES,) if form == "engineered" else (len(INERTIAL_CHANNELS), HAR_WINDOW)
    for split in ("train", "test"):
        x, y, s = d[f"x_{split}"], d[f"y_{split}"], d[f"subject_{split}"]
        if x.shape[1:] != sample:
            raise DataError(f"{where}: x_{split} has shape {x.shape}, expected (N, {', '.join(map(str, sample))})")
        if not (len(x) == len(y) == len(s)):
            raise DataError(
                f"{where}: {split} row counts differ: {len(x)} windows, {len(y)} labels, "
                f"{len(s)} subjects; expected equal counts"
            )
        if len(y) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        if y.min() < 0 or y.max() > 5:
            raise DataError(f"{where}: {split} activity labels outside 1..6 (found {y.min() + 1}..{y.max() + 1})")
        missing = sorted(set(range(6)) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(
                f"{where}: {split} split has no windows of activities {[m + 1 for m in missing]}; "
                "expected all 6 activities"
            )
        if s.min() < 1 or s.max() > 30:
            raise DataError(f"{where}: {split} subject ids outside 1..30 (found {s.min()}..{s.max()})")
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x_{split} holds NaN or infinite values")
    both = sorted(set(np.unique(d["subject_train"]).tolist()) & set(np.unique(d["subject_test"]).tolist()))
    if both:
        raise DataError(f"{where}: subjects {both} are in both train and test; expected disjoint subjects")
    if len(d["class_names"]) != 6:
        raise DataError(f"{where}: {len(d['class_names'])} class names, expected 6")
