"""The data layer: find, read, check, split and normalise the datasets (UCI HAR and CIFAR-10).

Modules: :mod:`.sources` (accepted sources, :func:`find_source`, download, digests), :mod:`.har` and
:mod:`.cifar10` (reading and checking each dataset), :mod:`.splits` (:func:`load_raw`, :func:`prepare`, subject
folds), :mod:`.arrays` and :mod:`.datamodule` (prepared splits as the network sees them; import those directly,
they need torch). The names below are re-exported for convenience; importing this package needs only numpy.
"""

from .cifar10 import CIFAR_CLASS_NAMES, CIFAR_SIZE, load_cifar
from .har import HAR_CLASS_NAMES, HAR_FEATURES, HAR_NPZ_KEYS, HAR_WINDOW, INERTIAL_CHANNELS, load_har
from .sources import (
    CIFAR_KINDS,
    CIFAR_MD5,
    CIFAR_PY_DIR,
    CIFAR_TARBALL,
    CIFAR_TRAIN_BATCHES,
    CIFAR_URL,
    DATASETS,
    HAR_DIR,
    HAR_INNER_ZIP,
    HAR_INNER_ZIP_SHA256,
    HAR_KINDS,
    HAR_URL,
    HAR_ZIP_NAME,
    HAR_ZIP_NAMES,
    HAR_ZIP_SHA256,
    SUBDIRS,
    DataError,
    Source,
    download_file,
    file_digest,
    find_source,
    source_digests,
)
from .splits import load_raw, prepare, stratified_subset, subject_fold

__all__ = [
    "CIFAR_CLASS_NAMES",
    "CIFAR_KINDS",
    "CIFAR_MD5",
    "CIFAR_PY_DIR",
    "CIFAR_SIZE",
    "CIFAR_TARBALL",
    "CIFAR_TRAIN_BATCHES",
    "CIFAR_URL",
    "DATASETS",
    "HAR_CLASS_NAMES",
    "HAR_DIR",
    "HAR_FEATURES",
    "HAR_INNER_ZIP",
    "HAR_INNER_ZIP_SHA256",
    "HAR_KINDS",
    "HAR_NPZ_KEYS",
    "HAR_URL",
    "HAR_WINDOW",
    "HAR_ZIP_NAME",
    "HAR_ZIP_NAMES",
    "HAR_ZIP_SHA256",
    "INERTIAL_CHANNELS",
    "SUBDIRS",
    "DataError",
    "Source",
    "download_file",
    "file_digest",
    "find_source",
    "load_cifar",
    "load_har",
    "load_raw",
    "prepare",
    "source_digests",
    "stratified_subset",
    "subject_fold",
]
