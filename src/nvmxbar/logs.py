"""Python logging for jobs: one handler per job's Snakemake log file, plus the console. Nothing is configured
on import; :func:`job_log` sets handlers up for the duration of one job and removes them afterwards."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
#: Libraries whose routine banners ("GPU available: False", tips) would drown a job's own lines.
#: Warnings that say nothing about a job's result (single-process data loading is deliberate: the arrays are in
#: memory; a checkpoint folder of a resumed job exists on purpose).
ROUTINE_WARNINGS = r".*(LeafSpec|does not have many workers|exists and is not empty).*"
QUIET = {
    "lightning.pytorch": logging.WARNING,
    "lightning.fabric": logging.WARNING,
    "optuna": logging.WARNING,
    "alembic": logging.WARNING,
    "mlflow": logging.WARNING,
}


def get(name: str) -> logging.Logger:
    """The logger of an nvmxbar module (``nvmxbar.<...>``)."""
    return logging.getLogger(name)


@contextlib.contextmanager
def job_log(path: str | Path | None, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Log records of this process to ``path`` (the rule's ``log:`` file, truncated) and to stderr while the
    block runs; an exception is written to the file with its traceback before it propagates. Restores the
    previous logging state on exit."""
    root = logging.getLogger()
    fmt = logging.Formatter(FORMAT, datefmt="%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    old_level = root.level
    root.setLevel(level)
    quiet_old = {name: logging.getLogger(name).level for name in QUIET}
    for name, lvl in QUIET.items():
        logging.getLogger(name).setLevel(lvl)
    log = logging.getLogger("nvmxbar")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=ROUTINE_WARNINGS)
            yield log
    except BaseException:
        log.exception("job failed")
        raise
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(old_level)
        for name, lvl in quiet_old.items():
            logging.getLogger(name).setLevel(lvl)
