"""Validation folds: how a recipe or an architecture is chosen without the test split.

HAR validates on a few whole subjects (4 of the 21 training subjects), so one validation split rests on four
people. :func:`write_fold` writes the data a comparison trains and scores on: fold k's group of whole subjects as
the validation split (:func:`nvmxbar.data.subject_fold`, the same groups the NAS finalists validate on; fold 0 =
the prepared split), and, unless asked, no test split at all: its place is taken by the validation split, so
that a training that evaluates "test" (``nvmxbar.stages.train``) never reads a test window. :func:`nvmxbar.stats.paired`
compares two settings trained on the same (fold, seed) pairs: the fold and the seed move both alike, so their
difference is measured against its own spread, not against the spread of either.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..data import DataError, subject_fold
from ..files import atomic_path


def write_fold(npz: str | Path, out: str | Path, fold: int, seed: int, *, keep_test: bool = False) -> list[int] | None:
    """Write to ``out`` (an .npz path) a copy of the prepared ``npz`` whose validation split is fold ``fold``
    (:func:`nvmxbar.data.subject_fold` at the workflow ``seed``; 0 = the prepared split). Without ``keep_test``
    every ``*_test`` array is replaced by its ``*_val`` array. Returns the fold's validation subjects, or None for
    data without subject ids (CIFAR-10), which has fold 0 alone (DataError for another)."""
    npz, out = Path(npz), Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"{out}: a fold copy is an .npz file")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        subjects = subject_fold(npz, tmp, fold, seed)  # writes tmp for fold >= 1 of data with subjects
        if fold and subjects is None:
            raise DataError(
                f"{npz} has no subject ids (CIFAR-10): its validation split is a random sample of images, not a "
                "group of people, so it has no other folds than 0 (its own split)"
            )
        src = tmp if fold else npz
        if keep_test:
            if src != tmp:
                shutil.copyfile(src, tmp)
        else:
            with np.load(src, allow_pickle=False) as d:
                arrays = {k: d[k] for k in d.files}
            for key in [k for k in arrays if k.endswith("_test")]:
                val = key[: -len("_test")] + "_val"
                if val in arrays:
                    arrays[key] = arrays[val]
                else:
                    del arrays[key]
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to tmp's name
                np.savez(f, **arrays)
    return subjects
