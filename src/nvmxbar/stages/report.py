"""Rule ``report``: the tables, figures and REPORT.md (:func:`nvmxbar.report.build`), and per dataset an MLflow run
with the improvements over the baseline, the crossbar accuracies, the architecture search and the outputs."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .. import files, report, tracking

log = logging.getLogger(__name__)

#: The architecture-search columns logged as metrics ``nas.<column>.b<bits>``.
NAS_METRICS = (
    "chosen_val_accuracy_pct",
    "chosen_area_um2",
    "best_val_accuracy_pct",
    "trials_complete",
    "trials_pruned",
    "search_wall_time_s",
)


def run(
    *,
    results_dir: str | Path,
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    cfg: dict,
    tables_dir: str | Path,
    figures_dir: str | Path,
    report_md: str | Path,
    profile: str | None,
    experiments: dict[str, str] | None,
    cost_cfg: dict | None = None,
) -> dict[str, list[Path]]:
    """Build the report; ``cfg``: the validated ``report`` section, ``cost_cfg`` the ``estimate_cost`` one (how
    the sensitivity table reprices; None: as cost.json states). ``experiments`` maps a dataset to its MLflow
    experiment (None or empty: nothing is logged). Returns the written paths by kind (tables, figures, report)."""
    datasets = list(datasets)
    written, acc, cost, nas = report.build(
        results_dir,
        datasets,
        variants,
        bits,
        cfg,
        tables_dir=tables_dir,
        figures_dir=figures_dir,
        report_md=report_md,
        profile=profile,
        cost_cfg=cost_cfg,
    )
    if experiments:
        log_runs(experiments, datasets, acc, cost, written, cfg, nas)
    return written


def log_runs(
    experiments: dict[str, str],
    datasets: list[str],
    acc: pd.DataFrame,
    cost: pd.DataFrame,
    written: dict[str, list[Path]],
    cfg: dict,
    nas: pd.DataFrame | None = None,
) -> None:
    """One run ``report <dataset>`` per dataset with an experiment: metrics per variant and bits, the tables and
    REPORT.md (artifact folder report/) and the dataset's figures (figures/)."""
    for ds in datasets:
        name = experiments.get(ds)
        if not name:
            continue
        tags = {"dataset": ds, "rule": "report", "git_commit": files.git_commit()}
        with tracking.stage_run(name, run_name=f"report {ds}", tags=tags, params={"report": cfg}) as run_:
            for r in cost[(cost.dataset == ds) & cost.area_improvement_pct.notna()].itertuples():
                run_.log_metric(f"area_improvement_pct.{r.variant}.b{r.bits}", float(r.area_improvement_pct))
                run_.log_metric(f"energy_improvement_pct.{r.variant}.b{r.bits}", float(r.energy_improvement_pct))
            for r in acc[acc.dataset == ds].itertuples():
                run_.log_metric(
                    f"ideal_crossbar_accuracy_pct.{r.variant}.b{r.bits}", float(r.ideal_crossbar_accuracy_pct)
                )
                run_.log_metric(f"noisy_accuracy_mean_pct.{r.variant}.b{r.bits}", float(r.noisy_accuracy_mean_pct))
            if nas is not None and len(nas):
                for r in nas[(nas.dataset == ds) & nas.search.astype(bool)].itertuples():
                    for k in NAS_METRICS:
                        val = float(getattr(r, k))
                        if not math.isnan(val):
                            run_.log_metric(f"nas.{k}.b{r.bits}", val)
            for p in written["tables"] + written["report"]:
                run_.log_artifact(p, artifact_path="report")
            for p in written["figures"]:
                if p.stem.endswith(f"_{ds}"):
                    run_.log_artifact(p, artifact_path="figures")
        log.info("report %s: MLflow run %s in experiment %s", ds, run_.id, name)
