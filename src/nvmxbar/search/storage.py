"""Where a search lives: one Optuna study per dataset and device bits, shared by the search workers, named by
everything that defines its trials, and the MLflow run every trial nests under.

The study's storage is config ``nas_unipolar.storage``: ``journal`` (default), a journal file in the search folder
for workers on one machine, or the SQLAlchemy URL of a PostgreSQL database (Optuna's RDBStorage) for workers on
several machines. Either way a worker asks for a new trial only under a lock that every worker of the study takes
(a file lock beside the journal; a PostgreSQL advisory lock keyed by the study for a database), so the study never
overshoots its trial count. The search records which storage it used (``storage.json`` in the search folder), and
the stages after it (finalists, selection) open that one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import optuna

from .. import files, tracking
from ..config import config_hash
from ..files import locked

log = logging.getLogger(__name__)

STUDY_FILE = "study.journal"
#: Which storage the search used: the stages after it open the same one.
POINTER_FILE = "storage.json"
JOURNAL = "journal"
KEY = "nas_unipolar.storage"
#: The advisory lock a worker holds while it opens the database (Optuna creates its tables on first use).
TABLES_LOCK = "nvmxbar: optuna tables"
#: Seconds a worker waits for the study database to answer before it stops (libpq connect_timeout).
CONNECT_TIMEOUT_S = 10

#: Part of every study's name: a study pruned by an older rule is not continued under this one.
PRUNING_RULE = "median of complete trials vs best so far"


class StorageError(RuntimeError):
    """The configured study storage cannot be used (bad URL, unreachable database, missing driver)."""


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


def is_journal(url: str | None) -> bool:
    return url in (None, "", JOURNAL)


def masked(url: str | None) -> str:
    """``url`` with its password hidden (for logs, MLflow params and error messages); ``journal`` as is."""
    if is_journal(url):
        return JOURNAL
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (a URL SQLAlchemy cannot parse: say nothing of it but its scheme)
        return url.split("://", 1)[0] + "://..." if "://" in url else "<unparsable URL>"


def _check_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as e:
        raise StorageError(f"{KEY}: {masked(url)!r} is neither 'journal' nor an SQLAlchemy URL ({e})") from None
    if backend != "postgresql":
        raise StorageError(
            f"{KEY}: {masked(url)!r} is a {backend} database; a shared study needs 'journal' (one machine) or "
            "PostgreSQL (postgresql://user@host:port/db), whose advisory locks keep the trial count across machines"
        )


def open_storage(url: str | None, nas_dir: str | Path):
    """The Optuna storage of config ``nas_unipolar.storage``: the journal file in ``nas_dir``, or Optuna's
    RDBStorage on the PostgreSQL database of ``url`` (tables created on first use, under the study database's
    advisory lock: workers start together). Raises :class:`StorageError`, naming the key, when the database
    cannot be reached or the URL is not a PostgreSQL one."""
    if is_journal(url):
        Path(nas_dir).mkdir(parents=True, exist_ok=True)
        path = str(Path(nas_dir) / STUDY_FILE)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    _check_url(url)
    import sqlalchemy.exc

    kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    try:
        with _advisory_lock(url, TABLES_LOCK):
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StorageError(f"{KEY}: cannot use the study database {masked(url)}: {reason}") from None


def record(nas_dir: str | Path, url: str | None) -> None:
    """Write which storage this search uses (the URL as configured, readable by its owner only: it may hold a
    password; prefer PGPASSWORD or ~/.pgpass), for :func:`storage` in the stages after the search."""
    path = Path(nas_dir) / POINTER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:  # never readable by others
        json.dump({"storage": JOURNAL if is_journal(url) else url}, f)
    os.replace(tmp, path)  # atomic: workers write the same pointer at once


def recorded(nas_dir: str | Path) -> str:
    """The storage the search in ``nas_dir`` recorded (``journal`` when it recorded none: older searches)."""
    path = Path(nas_dir) / POINTER_FILE
    return files.read_json(path)["storage"] if path.exists() else JOURNAL


def storage(nas_dir: str | Path, url: str | None = None):
    """The study storage of the search in ``nas_dir``: ``url`` (config ``nas_unipolar.storage``) when given,
    else the one the search recorded (the journal file unless it used a database)."""
    return open_storage(recorded(nas_dir) if url is None else url, nas_dir)


def describe(nas_dir: str | Path) -> str:
    """Where the study of ``nas_dir`` lives, for reports: the journal file's path, or the database URL without
    its password."""
    url = recorded(nas_dir)
    return str(Path(nas_dir) / STUDY_FILE) if is_journal(url) else masked(url)


def lock_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key from a name (the same in every process and machine)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _advisory_lock(url: str, name: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock keyed by ``name``, held on a connection of its own: it spans processes
    and machines, and the server drops it when the holder's connection dies (a killed worker blocks nobody)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        with engine.connect() as conn:
            key = lock_key(name)
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()  # no transaction stays open while the lock is held
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()


def study_lock(url: str | None, nas_dir: str | Path, name: str) -> Callable[[], AbstractContextManager[None]]:
    """The lock every worker of study ``name`` takes around counting and asking for trials (and enqueueing
    the known architectures): a file lock in ``nas_dir`` for the journal (one machine), a PostgreSQL advisory
    lock keyed by the study for a database (every machine)."""
    if is_journal(url):
        return lambda: locked(Path(nas_dir) / "ask.lock")
    return lambda: _advisory_lock(url, f"nvmxbar: optuna study {name}")


#: The study's user attribute holding its MLflow search run, when the study is in a database.
SEARCH_RUN_ATTR = "mlflow_search_run"


def search_run(
    nas_dir: Path,
    experiment: str | None,
    name: str,
    params: dict,
    tags: dict,
    study=None,
    lock: Callable[[], AbstractContextManager[None]] | None = None,
) -> str | None:
    """The MLflow run every trial nests under: created once per study (workers race), and recorded in
    ``search_run.json`` for the stages after the search. With the journal, under a file lock beside it; with a
    database (``study`` and its ``lock`` given), the study itself holds the run's id, so that workers on machines
    that share no folder still nest under one run."""
    if not experiment:
        return None
    state = nas_dir / "search_run.json"
    if study is not None and lock is not None:
        with lock():
            run_id = study.user_attrs.get(SEARCH_RUN_ATTR)
            if run_id is None:
                run_id = tracking.open_run(experiment, run_name=f"nas_unipolar {name}", tags=tags, params=params).id
                study.set_user_attr(SEARCH_RUN_ATTR, run_id)
        files.write_json(state, {"study": name, "run_id": run_id})
        return run_id
    with locked(nas_dir / ".lock"):
        if state.exists():
            doc = files.read_json(state)
            if doc.get("study") == name:
                return doc["run_id"]
        run = tracking.open_run(experiment, run_name=f"nas_unipolar {name}", tags=tags, params=params)
        files.write_json(state, {"study": name, "run_id": run.id})
        return run.id


def run_trials(
    study, objective, total: int, worker: int, lock: Path | Callable[[], AbstractContextManager[None]]
) -> list[int]:
    """Ask/tell loop of one worker: a new trial starts only while finished + running trials are fewer than
    ``total`` (checked and asked under ``lock``, shared by the workers: a lock file's path, or a factory of the
    study's lock, :func:`study_lock`), so the study never overshoots. A trial this worker left RUNNING when it
    was killed is marked FAIL first, so that it does not hold a slot."""
    TS = optuna.trial.TrialState
    hold = (lambda: locked(lock)) if isinstance(lock, Path) else lock
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if t.user_attrs.get("worker") == worker:
            study.tell(t.number, state=TS.FAIL)
    mine: list[int] = []
    while True:
        with hold():
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
