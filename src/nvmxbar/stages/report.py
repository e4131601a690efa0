"""Rule ``report``: REPORT.md from the tables, figures and benchmark files it declares (:mod:`nvmxbar.report.render`),
per dataset an MLflow run
with the improvements over the baseline, the crossbar accuracies (means over the seeds), the architecture search and
the outputs, and on each trained model's group run (the parent of its seeds' runs) the statistics over its seeds."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .. import files, tracking
from ..report.collect import load_frames
from ..report.render import render_report
from ..report.timing import job_rows, rule_table
from ..stats import summary

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
#: The accuracy-table columns logged on the report run as ``<column>.<variant>.b<bits>`` (fractions).
ACC_METRICS = (
    "test_accuracy_mean",
    "ideal_crossbar_accuracy_mean",
    "ideal_crossbar_accuracy_std",
    "noisy_accuracy_mean",
    "noisy_accuracy_std",
    "n_seeds",
)


def run(
    *,
    collected: str | Path,
    tables: str | Path,
    table_files: Iterable[str | Path],
    sensitivity: str | Path,
    figures: Iterable[str | Path],
    benchmarks: dict[str, Iterable[str | Path]],
    cfg: dict,
    report_md: str | Path,
    profile: str | None,
    experiments: dict[str, str] | None,
    notes: Iterable[str] = (),
) -> dict[str, list[Path]]:
    """Render REPORT.md from the declared frames (``collected``: rule report_collect's, ``tables``: rule
    report_tables'), the sensitivity table, the figures (PNG; the PDF beside each is logged too) and the benchmark
    files by rule (``benchmarks``; empty: no "Where the time went"); ``table_files``: every table file, logged to
    MLflow and linked from their folder. ``cfg``: the validated ``report`` section; ``notes``: lines for "What was
    run" (e.g. a dataset the workflow left out, and why). ``experiments`` maps a dataset to its MLflow experiment
    (None or empty: nothing is logged). Returns the files by kind (tables, figures, report)."""
    data, frames = load_frames(collected), load_frames(tables)
    table_files = [Path(p) for p in table_files]
    sens = pd.read_csv(sensitivity)
    pngs = [Path(p) for p in figures]
    bench = {rule: list(paths) for rule, paths in benchmarks.items() if list(paths)}
    times = rule_table(job_rows(bench)) if bench else None
    bench_dir = Path(os.path.commonpath([str(p) for ps in bench.values() for p in ps])) if bench else None
    report_md = Path(report_md)
    text = render_report(
        data,
        frames["accuracy"],
        frames["cost"],
        cfg,
        profile,
        {p.stem: p for p in pngs},
        report_md,
        Path(sensitivity).parent,
        times,
        sens,
        frames["attribution"],
        comparisons=frames["comparisons"],
        per_seed=frames["accuracy_per_seed"],
        nonideal_tables=(frames["nonideal"], frames["nonideal_comparisons"]) if "nonideal" in frames else None,
        notes=notes,
        bench_dir=bench_dir,
    )
    files.write_text(report_md, text)
    written = {
        "tables": table_files,
        "figures": [f for p in pngs for f in (p, p.with_suffix(".pdf"))],
        "report": [report_md],
    }
    datasets = list(data["meta"].iloc[0].datasets)
    if experiments:
        log_runs(experiments, datasets, frames["accuracy"], frames["cost"], written, cfg, frames.get("nas"))
        log_group_runs(data["training"], frames["accuracy"])
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
                run_.log_metrics(
                    {
                        f"{q}.{r.variant}.b{r.bits}": float(getattr(r, q))
                        for q in ACC_METRICS
                        if not math.isnan(float(getattr(r, q)))
                    }
                )
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


def group_metrics(training: pd.DataFrame, acc: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per MLflow group run id (a trained model's run that parents its seeds' runs, ``mlflow_group_run_id`` of
    their metrics.json): test_accuracy_mean / _std and n_seeds over the seeds of the model, and per device bits of
    its deployments ``b<bits>.ideal_crossbar_accuracy_mean`` / ``_std`` and ``b<bits>.noisy_accuracy_mean`` /
    ``_std``. Models without a group id are left out; a std of one seed (NaN) is not logged."""
    if "mlflow_group_run_id" not in training.columns:
        return {}
    out: dict[str, dict[str, float]] = {}
    for (ds, _), g in training.groupby(["dataset", "model"], sort=False):
        ids = [str(i) for i in dict.fromkeys(g.mlflow_group_run_id) if i is not None and not pd.isna(i) and str(i)]
        if not ids:
            continue
        mean, std, n = summary(g.test_accuracy)
        metrics = {"test_accuracy_mean": mean, "test_accuracy_std": std, "n_seeds": float(n)}
        v = g.variant.iloc[0]
        deps = acc[(acc.dataset == ds) & (acc.variant == v)]
        if v != "baseline":
            deps = deps[deps.bits == int(g.bits.iloc[0])]
        for r in deps.itertuples():
            for q in ("ideal_crossbar_accuracy", "noisy_accuracy"):
                for stat in ("mean", "std"):
                    metrics[f"b{r.bits}.{q}_{stat}"] = float(getattr(r, f"{q}_{stat}"))
        metrics = {k: x for k, x in metrics.items() if not math.isnan(x)}
        for i in ids:
            out[i] = metrics
    return out


def log_group_runs(training: pd.DataFrame, acc: pd.DataFrame) -> int:
    """Log :func:`group_metrics` on every group run that metrics.json names. Returns how many runs were logged."""
    logged = group_metrics(training, acc)
    for run_id, metrics in logged.items():
        tracking.Run(run_id).log_metrics(metrics)
    if logged:
        log.info("seed statistics logged on %d trained models' group runs", len(logged))
    return len(logged)
