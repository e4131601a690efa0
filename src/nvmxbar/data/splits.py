"""Preparation: raw dataset -> train/val/test splits, normalisation statistics, and the prepared npz with its
provenance JSON (:func:`prepare`); plus the stratified subsets and the subject folds used downstream.

HAR is split by whole subjects (``val_subjects`` of the train subjects validate) and standardised per channel
(or per feature) with the train statistics; CIFAR-10 is split by a stratified random ``val_fraction`` and keeps
its uint8 images, with the per-channel statistics of x/255 stored beside them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from .cifar10 import load_cifar
from .har import load_har
from .sources import (
    DataError,
    Source,
    _check_dataset,
    _check_input_form,
    _dataset_of_kind,
    file_digest,
    identity_sha256,
    source_digests,
)


def load_raw(source: Source, input_form: str = "inertial") -> dict:
    """Read and check the raw dataset: :func:`nvmxbar.data.har.load_har` or :func:`nvmxbar.data.cifar10.load_cifar`."""
    dataset = _dataset_of_kind(source.kind)
    form = _check_input_form(dataset, input_form)
    if not source.path.exists():
        raise DataError(f"{source.path} does not exist (source kind {source.kind})")
    if dataset == "har":
        return load_har(source, form)
    return load_cifar(source)


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


def prepare(
    dataset: str,
    source: Source,
    out_npz: Path,
    out_json: Path,
    *,
    seed: int,
    input_form: str = "inertial",
    val_subjects: int = 4,
    val_fraction: float = 0.1,
    limit: dict | None = None,
) -> dict:
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
    if dataset == "har" and (
        isinstance(val_subjects, bool) or not isinstance(val_subjects, (int, np.integer)) or val_subjects < 1
    ):
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

    source_sha, files = source_digests(source)
    provenance = {
        "dataset": dataset,
        "input_form": form,
        "source": {
            "kind": source.kind,
            "path": str(source.path),
            "sha256": source_sha,
            "content_sha256": identity_sha256(source, files),  # the workflow's identity of the source
        },
        "files": files,
        "seed": int(seed),
        "counts": {s: int(len(arrays[f"y_{s}"])) for s in ("train", "val", "test")},
        "class_counts": {
            s: np.bincount(arrays[f"y_{s}"], minlength=n_classes).tolist() for s in ("train", "val", "test")
        },
        "class_names": list(raw["class_names"]),
        "val_subjects": extra.get("val_subjects"),
        "val_fraction": None if dataset == "har" else float(val_fraction),
        "normalisation": {
            "mean": [float(v) for v in arrays["norm_mean"]],
            "std": [float(v) for v in arrays["norm_std"]],
            "computed_on": "train",
            "applied_to_x": dataset == "har",
            "per": "channel" if form in ("inertial", "image") else "feature",
        },
        "limit": None if all(v is None for v in limit.values()) else limit,
        "x_shape": list(arrays["x_train"].shape[1:]),
        "x_dtype": str(arrays["x_train"].dtype),
    }
    _write_outputs(arrays, provenance, out_npz, out_json, compressed=dataset == "har")
    return provenance


def _split_har(raw: dict, val_subjects: int, rng: np.random.Generator) -> tuple[dict, dict]:
    subjects = np.unique(raw["subject_train"])
    if val_subjects >= len(subjects):
        raise DataError(
            f"val_subjects={val_subjects} but the train split has only {len(subjects)} subjects; "
            f"expected 1..{len(subjects) - 1}"
        )
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
    chosen = np.sort(pool[((fold - 1) % groups) * len(held) : ((fold - 1) % groups + 1) * len(held)])
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
        raise DataError(
            f"val_fraction={val_fraction} gives {n_val} of {len(y)} train images for validation; "
            "expected at least 1 and fewer than all"
        )
    val = stratified_subset(y, n_val, len(raw["class_names"]), rng)
    is_val = np.zeros(len(y), dtype=bool)
    is_val[val] = True
    arrays = {
        "x_train": raw["x_train"][~is_val],
        "y_train": y[~is_val],
        "x_val": raw["x_train"][is_val],
        "y_val": y[is_val],
        "x_test": raw["x_test"],
        "y_test": raw["y_test"],
    }
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
