"""Rule ``report_collect``: every declared input of the report (metrics.json, mapping.json, crossbar.npz,
noise.csv, noise_summary.json, cost.json of every deployment and seed; the unipolar search's trials.csv,
pareto.csv and arch.json), read once into tidy DataFrames (:func:`nvmxbar.report.collect.collect`) and written as
one file for the other report rules."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..report.collect import NAS_VARIANT, Inputs, collect, keyed, save_frames
from ..report.collect_nas import collect_nas

log = logging.getLogger(__name__)
#: The files of a deployment, as rule report_collect names its inputs.
DEPLOYMENT_FILES = {
    "mapping": "mapping.json",
    "crossbar": "crossbar.npz",
    "noise": "noise.csv",
    "noise_summary": "noise_summary.json",
    "cost": "cost.json",
}
NAS_FILES = {"nas_trials": "trials.csv", "nas_pareto": "pareto.csv", "nas_arch": "arch.json"}


def inputs(
    files: dict[str, Sequence[str]],
    *,
    models: Iterable[Iterable],
    deployments: Iterable[Iterable],
    nas: Iterable[Iterable],
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    seeds: Iterable[int],
) -> Inputs:
    """The declared paths by key: ``files`` the rule's named inputs (metrics, mapping, ..., nas_arch), ``models``,
    ``deployments`` and ``nas`` the keys of their entries, in the same order."""
    deps = list(deployments)
    by_key: dict = {}
    for name, file in DEPLOYMENT_FILES.items():
        for key, path in keyed(deps, files[name]).items():
            by_key.setdefault(key, {})[file] = path
    nas_keys, nas_by_key = list(nas), {}
    for name, file in NAS_FILES.items():
        for key, path in keyed(nas_keys, files.get(name) or []).items() if nas_keys else ():
            nas_by_key.setdefault(key, {})[file] = path
    return Inputs(
        list(datasets),
        list(variants),
        [int(b) for b in bits],
        [int(s) for s in seeds],
        metrics=keyed(models, files["metrics"]),
        deployments=by_key,
        nas=nas_by_key,
    )


def run(declared: Inputs, out: str | Path) -> Path:
    """Collect every declared input into ``out`` (frames by name, :func:`nvmxbar.report.collect.load_frames`)."""
    data = collect(declared)
    if NAS_VARIANT in declared.variants:
        data.update(collect_nas(declared))
    save_frames(data, out)
    log.info("%d frames from %d deployments into %s", len(data), len(declared.deployments), out)
    return Path(out)
