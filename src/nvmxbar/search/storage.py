"""Where a search lives: one Optuna study per dataset and device bits in a journal file shared by the search
workers (file-locked ask/tell, so the study never overshoots its trial count), named by everything that
defines its trials, and the MLflow run every trial nests under."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import optuna

from .. import files, tracking
from ..config import config_hash

STUDY_FILE = "study.journal"

#: Part of every study's name: a study pruned by an older rule is not continued under this one.
PRUNING_RULE = "median of complete trials vs best so far"


def study_name(
    dataset: str,
    bits: int,
    cfg: dict,
    model_base: dict,
    seed: int,
    train_cfg: dict | None = None,
    quant_cfg: dict | None = None,
) -> str:
    """The study of one search: a changed search space or trial recipe starts a new study in the same journal."""
    h = config_hash(
        {
            "nas": {
                k: cfg[k]
                for k in ("trials", "epochs", "objective", "pruning", "space", "startup_trials", "score")
                if k in cfg
            },
            "pruning_rule": PRUNING_RULE,
            "model": model_base,
            "seed": seed,
            "train": train_cfg,
            "quant": quant_cfg,
        }
    )
    return f"{dataset}-unipolar-b{bits}-{h[:10]}"


def storage(nas_dir: str | Path):
    Path(nas_dir).mkdir(parents=True, exist_ok=True)
    path = str(Path(nas_dir) / STUDY_FILE)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def search_run(nas_dir: Path, experiment: str | None, name: str, params: dict, tags: dict) -> str | None:
    """The MLflow run every trial nests under: created once per study (under a file lock, workers race)."""
    if not experiment:
        return None
    state = nas_dir / "search_run.json"
    with locked(nas_dir / ".lock"):
        if state.exists():
            doc = files.read_json(state)
            if doc.get("study") == name:
                return doc["run_id"]
        run = tracking.open_run(experiment, run_name=f"nas_unipolar {name}", tags=tags, params=params)
        files.write_json(state, {"study": name, "run_id": run.id})
        return run.id


def run_trials(study, objective, total: int, worker: int, lock: Path) -> list[int]:
    """Ask/tell loop of one worker: a new trial starts only while finished + running trials are fewer than
    ``total`` (checked and asked under a file lock shared by the workers), so the study never overshoots.
    A trial this worker left RUNNING when it was killed is marked FAIL first, so that it does not hold a slot."""
    TS = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if t.user_attrs.get("worker") == worker:
            study.tell(t.number, state=TS.FAIL)
    mine: list[int] = []
    while True:
        with locked(lock):
            if len(study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED, TS.RUNNING))) >= total:
                return mine
            trial = study.ask()
            trial.set_user_attr("worker", worker)
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TS.PRUNED)
        except BaseException:
            study.tell(trial, state=TS.FAIL)
            raise
        else:
            study.tell(trial, values)
        mine.append(trial.number)
