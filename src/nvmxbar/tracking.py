"""MLflow, and only here: where runs go, the experiments, and one context manager for a stage's run.

Default store: a sqlite database <results>/mlflow.db (no server needed), artifacts under <results>/mlartifacts.
A team points MLFLOW_TRACKING_URI (or config ``mlflow.tracking_uri``) at a tracking server and nothing else
changes. One experiment per dataset, ``<prefix>-<dataset>``, of the model-training kind (``make ui`` prints its
runs table's address: tools/ui_urls.py). A run's source is its stage (``rule <rule>``, a JOB: the Source column);
a training logs its data splits as dataset inputs (:meth:`Run.log_splits`: the Dataset column).

Every stage logs through :func:`stage_run`: it creates (or resumes) the run with its params and tags, nests it
under a parent run, yields a :class:`Run`, and ends it FINISHED, or FAILED when the block raises. With tracking
off (``experiment`` None) the same code runs against a :class:`Run` that records nothing.

A killed job (SIGKILL, the out-of-memory killer, a lost node) cannot end its run, left RUNNING: the job's next
attempt ends it KILLED (:func:`end_stale`), found through its :func:`run_file` or the training's checkpoint state;
a run that ends ends its nested runs still RUNNING (a killed search worker's trials) KILLED. Both carry the tag
``nvmxbar.killed`` saying why.

A fresh sqlite store is created (schema migrations) under a file lock beside it, so that jobs that start together
on an empty store do not run the migrations over one another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

from .config import config_hash
from .files import git_commit, locked, read_json, write_json

log = logging.getLogger(__name__)

#: The MLflow 3 experiment kind of model training (the UI may still open the GenAI overview: mlflow issue 24498).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

#: The tag of a run ended KILLED by someone else than its own process: why.
KILLED_TAG = "nvmxbar.killed"

_READY: set[str] = set()  # sqlite stores this process has opened (created) already


def client() -> mlflow.MlflowClient:
    """An MlflowClient of the current tracking URI. The first one of a sqlite store in a process opens the store
    under an exclusive file lock (``<db>.lock`` beside it): MLflow creates the tables and runs its schema
    migrations when it finds an empty database, and processes that do so at the same time on one file fail
    ("table ... already exists", alembic "expected to match one row"; measured: 7 and 8 of 8 processes failed
    without the lock). Afterwards sqlite's own locking (MLflow sets busy_timeout 20 s) serialises the writes."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and uri not in _READY:
        db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        db.parent.mkdir(parents=True, exist_ok=True)
        with locked(db.with_name(db.name + ".lock")):
            c = mlflow.MlflowClient(uri)  # opens the store: creates and migrates it if empty
        _READY.add(uri)
        return c
    return mlflow.MlflowClient()


def default_uri(results_dir: str | Path) -> str:
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def resolve_uri(tracking_uri: str | None, results_dir: str | Path) -> str:
    """config mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the sqlite store under results/."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(results_dir)


def configure(tracking_uri: str | None, results_dir: str | Path) -> str:
    """Export the tracking URI (jobs inherit it) and quiet MLflow's telemetry. Returns the URI."""
    uri = resolve_uri(tracking_uri, results_dir)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not is_server(uri):  # a tracking server stores (proxies) the artifacts itself: its --artifacts-destination
        os.environ.setdefault("MLFLOW_ARTIFACT_ROOT", (Path(results_dir).resolve() / "mlartifacts").as_uri())
    return uri


def is_server(uri: str) -> bool:
    """A tracking server (http/https), as opposed to a store this process writes itself (sqlite, a folder)."""
    return uri.split("://", 1)[0].lower() in ("http", "https")


def experiment_name(prefix: str, dataset: str) -> str:
    return f"{prefix}-{dataset}"


def ensure_experiments(names: dict[str, str], results_dir: str | Path) -> dict[str, str]:
    """Create the store (schema migrations) and the experiments ``{dataset: name}`` before jobs run in
    parallel; tag each as a model-training experiment. Returns ``{dataset: experiment id}``."""
    c = client()
    local = not is_server(mlflow.get_tracking_uri())  # a server: its own artifact store (mlflow-artifacts:)
    root = (Path(results_dir).resolve() / "mlartifacts").as_uri() if local else ""
    ids = {ds: _experiment_id(c, name, {"dataset": ds, "project": "nvmxbar"}, root) for ds, name in names.items()}
    for exp_id in ids.values():
        for k, v in EXPERIMENT_KIND.items():
            c.set_experiment_tag(exp_id, k, v)
    return ids


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON strings (MLflow params are strings)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else v
    return out


def standard_tags(
    *,
    dataset: str,
    variant: str,
    bits: int | None,
    seed: int,
    rule: str,
    config_hash: str,
    data_sha256: str,
    **extra: Any,
) -> dict[str, str]:
    """The tags every run of a trained model or a stage on it carries (provenance and grouping)."""
    b = "float" if bits is None else str(bits)
    tags = dict(dataset=dataset, variant=variant, bits=b, seed=str(seed), rule=rule, git_commit=git_commit())
    return {**tags, "config_hash": config_hash, "data_sha256": data_sha256, **{k: str(v) for k, v in extra.items()}}


class Run:
    """One MLflow run, or (``id`` None) a run that records nothing: stages log without asking whether
    tracking is on."""

    def __init__(self, run_id: str | None):
        self.id = run_id
        self._client = client() if run_id else None

    def __bool__(self) -> bool:
        return self.id is not None

    def log_params(self, params: dict) -> None:
        """Log ``params`` flattened, in batches (one write each, not one per key)."""
        if self._client:
            items = [Param(k, str(v)) for k, v in flatten(params).items()]
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self._client.log_batch(self.id, params=items[i : i + 100])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        if self._client:
            self._client.log_metric(self.id, key, float(value), step=step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._client and metrics:
            ts = int(time.time() * 1000)
            self._client.log_batch(self.id, metrics=[Metric(k, float(v), ts, step or 0) for k, v in metrics.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._client:
            self._client.log_artifact(self.id, str(path), artifact_path=artifact_path)

    def log_splits(self, npz: str | Path, dataset: str, digest: str, rows: dict[str, int], fit_on: str) -> None:
        """The data splits ``rows`` ({split: rows}) as MLflow dataset inputs ``<dataset>-<split>`` of the npz and
        its ``digest`` (sha256; MLflow keeps 36 characters): context training (``fit_on``'s), validation, testing."""
        if not self._client:
            return
        src, inputs = json.dumps({"uri": str(Path(npz).resolve())}), []
        for split, n in rows.items():
            ctx = "training" if split in fit_on.split("+") else {"val": "validation"}.get(split, "testing")
            ds = Dataset(f"{dataset}-{split}", digest[:36], "local", src, profile=json.dumps({"num_rows": n}))
            inputs.append(DatasetInput(ds, [InputTag("mlflow.data.context", ctx)]))
        self._client.log_inputs(self.id, datasets=inputs)

    def set_tag(self, key: str, value: Any) -> None:
        if self._client:
            self._client.set_tag(self.id, key, str(value))

    def end(self, status: str) -> None:
        """End the run with ``status``; its nested runs still RUNNING end KILLED (their processes are gone: a
        search run ends after every worker has, so a trial still RUNNING is one of a killed worker)."""
        if self._client:
            end_orphans(self.id, f"still RUNNING when its parent run {self.id} ended {status}: its process was killed")
            self._client.set_terminated(self.id, status)


def end_stale(run_id: str | None, reason: str, status: str = "KILLED") -> bool:
    """End run ``run_id`` with ``status`` if it is still RUNNING, tagged ``nvmxbar.killed: reason``: a run whose
    process died without ending it. Returns whether it did (False: no such run, or already ended)."""
    if not run_id:
        return False
    c = client()
    try:
        if c.get_run(run_id).info.status != "RUNNING":
            return False
    except mlflow.exceptions.MlflowException:  # not in this store (another store, or deleted)
        return False
    c.set_tag(run_id, KILLED_TAG, reason)
    end_orphans(run_id, f"still RUNNING when its parent run {run_id} was found killed")
    c.set_terminated(run_id, status)
    log.warning("MLflow run %s was still RUNNING: ended %s (%s)", run_id, status, reason)
    return True


def end_orphans(parent: str, reason: str, tags: dict[str, str] | None = None) -> list[str]:
    """End KILLED the runs nested under run ``parent`` (and carrying ``tags``, when given) that are still RUNNING.
    E.g. a search worker, restarted, for the trials its killed attempt left:
    ``end_orphans(search_run, reason, {"optuna.study": name, "optuna.trial": str(number)})``. Returns their ids."""
    c = client()
    exp = c.get_run(parent).info.experiment_id
    flt = f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'"
    for k, v in (tags or {}).items():
        flt += f" and tags.`{k}` = '{v}'"
    ended = []
    for r in c.search_runs([exp], filter_string=flt, max_results=1000):
        c.set_tag(r.info.run_id, KILLED_TAG, reason)
        c.set_terminated(r.info.run_id, "KILLED")
        ended.append(r.info.run_id)
    if ended:
        log.warning("MLflow runs %s under %s were still RUNNING: ended KILLED (%s)", ended, parent, reason)
    return ended


def run_file(output: str | Path) -> Path:
    """Where a job records the MLflow run it opened, beside its output ``output`` (hidden): its next attempt
    finds the run there when this one was killed. Removed when the run ends."""
    output = Path(output)
    return output.with_name(f".{output.name}.mlflow_run.json")


def _experiment_id(c: mlflow.MlflowClient, experiment: str, tags: dict | None = None, root: str | None = None) -> str:
    """The experiment's id, created (tagged ``tags``, artifacts under ``root``/<name>) when absent. ``root`` None:
    $MLFLOW_ARTIFACT_ROOT (set by configure(): artifacts beside the store, not in cwd); "": the server's own."""
    exp = c.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    root = os.environ.get("MLFLOW_ARTIFACT_ROOT") if root is None else root
    try:
        art = f"{root.rstrip('/')}/{experiment}" if root else None
        return c.create_experiment(experiment, artifact_location=art, tags={**(tags or {}), **EXPERIMENT_KIND})
    except mlflow.exceptions.MlflowException:  # created by a concurrent process
        return c.get_experiment_by_name(experiment).experiment_id


def open_run(
    experiment: str | None,
    *,
    run_name: str,
    tags: dict[str, str] | None = None,
    params: dict | None = None,
    parent: str | None = None,
    resume: str | None = None,
) -> Run:
    """Create a run (or mark run ``resume`` RUNNING again) without ending it: for runs that outlive one
    block, such as a search's parent run. Prefer :func:`stage_run`."""
    if not experiment:
        return Run(None)
    c = client()
    if resume:
        c.update_run(resume, status="RUNNING")
        c.set_tag(resume, "resumed", "true")
        return Run(resume)
    tags = {**source_tags((tags or {}).get("rule") or run_name.split()[0]), **(tags or {})}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = Run(c.create_run(_experiment_id(c, experiment), run_name=run_name, tags=tags).info.run_id)
    run.log_params(params or {})
    return run


def source_tags(rule: str) -> dict[str, str]:
    """The stage that made a run, as MLflow's source (the runs table's Source column): ``rule <rule>``, a JOB."""
    return {"mlflow.source.name": f"rule {rule}", "mlflow.source.type": "JOB"}


@contextlib.contextmanager
def stage_run(
    experiment: str | None,
    *,
    run_name: str,
    tags: dict[str, str] | None = None,
    params: dict | None = None,
    parent: str | None = None,
    resume: str | None = None,
    run_file: str | Path | None = None,
) -> Iterator[Run]:
    """A stage's run: created with ``params`` and ``tags`` (nested under run ``parent``), or run ``resume``
    continued; FINISHED when the block ends, FAILED when it raises (KILLED on Ctrl-C). ``run_file``
    (:func:`run_file` of the job's output): the run's id is kept there while it runs; a run found there still
    RUNNING, the same job's killed attempt, is ended KILLED first."""
    if experiment and run_file is not None and Path(run_file).exists():
        try:
            before = read_json(run_file).get("run_id")
        except (OSError, ValueError, AttributeError):
            before = None
        if before != resume:
            end_stale(before, f"its job was killed: run {run_name!r} found RUNNING by the job's next attempt")
    run = open_run(experiment, run_name=run_name, tags=tags, parent=parent, resume=resume)
    if run and run_file is not None:  # at once: a job killed from here on leaves its run to its next attempt
        write_json(run_file, {"run_id": run.id, "run_name": run_name})
    if not resume:
        run.log_params(params or {})
    try:
        yield run
    except KeyboardInterrupt:
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    else:
        run.end("FINISHED")
    finally:  # after the run ended: a job killed before that leaves the file for its next attempt
        if run and run_file is not None:
            Path(run_file).unlink(missing_ok=True)


@contextlib.contextmanager
def model_stage_run(
    experiment: str | None,
    *,
    model_metrics: str | Path,
    rule: str,
    params: dict,
    dataset: str,
    variant: str,
    bits: int,
    seed: int,
    output: str | Path | None = None,
) -> Iterator[Run]:
    """:func:`stage_run` of a stage on a trained model (map_crossbar, evaluate_noise, estimate_cost): named
    ``<rule> <dataset>/<variant>/b<bits> seed <seed>``, nested under the training's run recorded in
    ``model_metrics``, and tagged like it (its data digest, the hash of ``params``). ``output``: the job's output,
    beside which its run file lives (a killed attempt's run is ended KILLED by the next)."""
    parent, data_sha = parent_of(model_metrics)
    tags = standard_tags(
        dataset=dataset,
        variant=variant,
        bits=bits,
        seed=seed,
        rule=rule,
        config_hash=config_hash(params),
        data_sha256=data_sha,
    )
    name = f"{rule} {dataset}/{variant}/b{bits} seed {seed}"
    rf = run_file(output) if output is not None else None
    with stage_run(experiment, run_name=name, tags=tags, params=params, parent=parent, run_file=rf) as run:
        yield run


def group_run(
    experiment: str | None, *, key: str, run_name: str, tags: dict[str, str], lock_dir: str | Path
) -> str | None:
    """The parent run that groups the seeds of one trained model, so that the UI compares models (not seeds):
    one run per experiment and ``key`` (the hash of the model's settings without the seed), created FINISHED the
    first time and found by its ``group_key`` tag afterwards. Parallel jobs of the same model serialise on a file
    lock in ``lock_dir`` (the model's folder, above its seed folders). None when tracking is off."""
    if not experiment:
        return None
    c = client()
    exp_id = _experiment_id(c, experiment)
    with locked(Path(lock_dir) / ".mlflow_group.lock"):
        found = c.search_runs([exp_id], filter_string=f"tags.group_key = '{key}'", max_results=1)
        if found:
            return found[0].info.run_id
        tags = {**source_tags("train"), **tags, "group_key": key}  # made by the first of its trainings
        run_id = c.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        c.set_terminated(run_id, "FINISHED")  # a container: the report logs the seed statistics into it
        return run_id


def parent_of(metrics_json: str | Path) -> tuple[str | None, str]:
    """(MLflow run id, data sha256) recorded in a training's metrics.json: the run a downstream stage nests under."""
    doc = json.loads(Path(metrics_json).read_text())
    return doc.get("mlflow_run_id"), doc.get("data_sha256", "")


def run_of(run_id: str) -> dict[str, Any]:
    """A run's status, params, metrics and tags (for tests and tools)."""
    r = client().get_run(run_id)
    return {"status": r.info.status, "params": r.data.params, "metrics": r.data.metrics, "tags": r.data.tags}


def lightning_logger(run: Run, experiment: str | None):
    """Lightning's own MLFlowLogger, writing into ``run`` (resumed by id): per-epoch metrics of a training.
    None when tracking is off."""
    if not run or not experiment:
        return None
    from lightning.pytorch.loggers import MLFlowLogger  # Lightning only where a training logs

    return MLFlowLogger(experiment_name=experiment, run_id=run.id, tracking_uri=mlflow.get_tracking_uri())
