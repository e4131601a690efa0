"""MLflow tracking and provenance: where runs go, the tags every stage sets, atomic file writes.

Default store: a sqlite database results/mlflow.db (no server needed), artifacts under
results/mlartifacts. A team points MLFLOW_TRACKING_URI (or config mlflow.tracking_uri) at a tracking
server and nothing else changes. One experiment per dataset: "<prefix>-<dataset>".
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]


def default_uri(results_dir: str | Path) -> str:
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def resolve_uri(cfg: dict, results_dir: str | Path) -> str:
    """config mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the sqlite store under results/."""
    return cfg.get("mlflow", {}).get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(results_dir)


def configure(cfg: dict, results_dir: str | Path) -> str:
    """Export the tracking URI (jobs inherit it) and quiet MLflow's telemetry. Returns the URI."""
    uri = resolve_uri(cfg, results_dir)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ARTIFACT_ROOT", (Path(results_dir).resolve() / "mlartifacts").as_uri())
    return uri


def experiment_name(cfg: dict, dataset: str) -> str:
    return f"{cfg.get('mlflow', {}).get('experiment_prefix', 'nvmxbar')}-{dataset}"


def ensure_experiments(cfg: dict, results_dir: str | Path, datasets: list[str]) -> dict[str, str]:
    """Create the store (schema migrations) and one experiment per dataset before jobs run in parallel."""
    import mlflow

    configure(cfg, results_dir)
    client = mlflow.MlflowClient()
    ids = {}
    for ds in datasets:
        name = experiment_name(cfg, ds)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            art = (Path(results_dir).resolve() / "mlartifacts" / name).as_uri()
            try:
                ids[ds] = client.create_experiment(name, artifact_location=art, tags={"dataset": ds, "project": "nvmxbar"})
            except mlflow.exceptions.MlflowException:  # created by a concurrent process
                ids[ds] = client.get_experiment_by_name(name).experiment_id
        else:
            ids[ds] = exp.experiment_id
    return ids


def git_commit() -> str:
    """HEAD of the repository that holds this package ('-dirty' if it has uncommitted changes), or 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.
    A killed or failed job therefore never leaves a half-written file that looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def standard_tags(*, dataset: str, variant: str, bits: int | None, seed: int, rule: str,
                  config_hash: str, data_sha256: str, **extra: Any) -> dict[str, str]:
    tags = {"dataset": dataset, "variant": variant, "bits": "float" if bits is None else str(bits),
            "seed": str(seed), "rule": rule, "git_commit": git_commit(), "config_hash": config_hash,
            "data_sha256": data_sha256}
    tags.update({k: str(v) for k, v in extra.items()})
    return tags


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Copy stdout and stderr of a job into its Snakemake log file while still showing them on the console."""
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(old[0], f), _Tee(old[1], f)
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=f)
            raise
        finally:
            sys.stdout, sys.stderr = old


def start_child_run(experiment: str | None, parent_metrics: str | Path, *, run_name: str, rule: str,
                    params: dict, dataset: str, variant: str, bits: int | None, seed: int):
    """An MLflow run of a downstream stage, nested under the training run recorded in metrics.json.
    Returns (client, run_id), or (None, None) when tracking is off."""
    if not experiment:
        return None, None
    import mlflow

    from .config import config_hash

    parent = json.loads(Path(parent_metrics).read_text())
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    tags = standard_tags(dataset=dataset, variant=variant, bits=bits, seed=seed, rule=rule,
                         config_hash=config_hash(params), data_sha256=parent.get("data_sha256", ""))
    if parent.get("mlflow_run_id"):
        tags["mlflow.parentRunId"] = parent["mlflow_run_id"]
    run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
    for k, v in flatten(params).items():
        client.log_param(run_id, k, v)
    return client, run_id
