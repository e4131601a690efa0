"""The paper's tables and figures, and REPORT.md, from everything the earlier rules wrote (rule ``report``).

Plain functions over pandas DataFrames, no MLflow (stage :mod:`nvmxbar.stages.report` logs the outcome):

* :mod:`.paper`: the paper's reference and published figures, the only numbers in the outputs not read from
  results/;
* :mod:`.collect`: :func:`~.collect.collect` and :func:`~.collect.collect_nas` read every input, every seed's, into
  tidy DataFrames (a missing or unreadable file stops with an error naming it and the rule that writes it);
* :mod:`.seeds`: statistics over the seeds (mean, std, Welch confidence intervals, means of per-seed frames);
* :mod:`.accuracy`: the accuracy tables (per seed; mean ± std over the seeds; differences between deployments
  with confidence intervals);
* :mod:`.tables`: the cost, attribution and architecture-search tables, and how every table is written as CSV,
  Markdown and LaTeX;
* :mod:`.figures`, :mod:`.figures_seeds` and :mod:`.figures_nas`: the figures, written as PNG and PDF;
* :mod:`.sensitivity` and :mod:`.figures_sensitivity`: the savings recomputed with one cost-model assumption moved
  at a time (tables/sensitivity.csv and .md, figure sensitivity_<dataset>);
* :mod:`.render`: REPORT.md with one verdict per claim of the paper;
* :mod:`.times`: where the workflow's time went, from the jobs' benchmark files (tables/workflow_times.csv and a
  section of REPORT.md, when benchmark files exist);
* :func:`build`: all of it, every file written atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ..files import write_text
from .accuracy import accuracy_table, comparisons_table, per_seed_table
from .collect import NAS_VARIANT, collect, collect_nas, seed_list
from .figures import plot_accuracy_vs_noise, plot_cost_breakdown, plot_weights, save_figure
from .figures_nas import plot_nas_pareto
from .figures_seeds import plot_accuracy_seeds
from .figures_sensitivity import plot_sensitivity
from .render import render_report
from .sensitivity import build_sensitivity, write_sensitivity
from .tables import attribution_table, cost_table, nas_table, write_table
from .times import load as load_times
from .times import rule_table

log = logging.getLogger(__name__)

#: The attribution stack's ablations (nvmxbar.settings.VARIANTS): reported in tables/attribution, not compared with
#: the paper.
ABLATIONS = ("perlayer", "signed")


class Built(NamedTuple):
    """What :func:`build` wrote and the tables it logged from (unpacks as written, accuracy, cost, nas, ...)."""

    written: dict[str, list[Path]]
    accuracy: pd.DataFrame
    cost: pd.DataFrame
    nas: pd.DataFrame | None
    accuracy_per_seed: pd.DataFrame
    comparisons: pd.DataFrame
    training: pd.DataFrame


def build(
    results_dir: str | Path,
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    cfg: dict,
    *,
    seeds: Iterable[int],
    tables_dir: str | Path,
    figures_dir: str | Path,
    report_md: str | Path,
    profile: str | None,
    cost_cfg: dict | None = None,
    notes: Iterable[str] = (),
) -> Built:
    """Collect the inputs of every seed under ``results_dir``; write the tables (CSV/MD/TeX) to ``tables_dir``,
    the figures (PNG/PDF) to ``figures_dir`` and ``report_md``. ``seeds``: the configured seeds (config ``seeds``),
    each deployment's results are read for every one; ``cfg``: the validated ``report`` section of the config
    (every key present); ``cost_cfg``: the validated ``estimate_cost`` section, how the sensitivity table reprices
    (None: as cost.json states); ``notes``: lines added to REPORT.md's "What was run". The architecture search is
    reported only when the unipolar variant is among ``variants``. Returns :class:`Built`: the written paths by
    kind (tables, figures, report), the accuracy table (means over seeds), the cost table, the search table or
    None, the per-seed accuracy table, the comparisons and the per-seed training rows (with each model's
    ``mlflow_group_run_id``)."""
    t0 = time.time()
    results_dir, tables_dir, figures_dir, report_md = map(Path, (results_dir, tables_dir, figures_dir, report_md))
    datasets, variants, seeds = list(datasets), list(variants), seed_list(seeds)
    data = collect(results_dir, datasets, variants, bits, seeds)
    with_nas = NAS_VARIANT in variants
    if with_nas:
        data.update(collect_nas(results_dir, datasets, bits))
    sigma = float(cfg["reference_prog_sigma"])
    per_seed = per_seed_table(data, sigma)
    acc = accuracy_table(data, sigma, per_seed)
    comparisons = comparisons_table(per_seed)
    cost = cost_table(data)
    written: dict[str, list[Path]] = {"tables": [], "figures": [], "report": []}
    written["tables"] += write_table(acc, "accuracy", tables_dir)
    written["tables"] += write_table(per_seed, "accuracy_per_seed", tables_dir)
    written["tables"] += write_table(comparisons, "comparisons", tables_dir)
    written["tables"] += write_table(cost, "cost", tables_dir)
    attribution = attribution_table(cost, acc, per_seed)
    written["tables"] += write_table(attribution, "attribution", tables_dir)
    nas = nas_table(data) if with_nas else None
    if nas is not None:
        written["tables"] += write_table(nas, "nas", tables_dir)
    # the paper's techniques against the baseline (the attribution table holds the ablations)
    kept = [v for v in variants if v not in ABLATIONS]
    sens = build_sensitivity(results_dir, datasets, kept, bits, seeds, cost_cfg)
    written["tables"] += write_sensitivity(sens, tables_dir)
    kinds = [
        ("accuracy_vs_prog_noise", lambda d, s: plot_accuracy_vs_noise(d, s, sigma)),
        ("accuracy_seeds", lambda d, s: plot_accuracy_seeds(per_seed, s)),
        ("cost_breakdown", plot_cost_breakdown),
        ("weights", plot_weights),
        ("sensitivity", lambda d, s: plot_sensitivity(sens, s)),
    ]
    if with_nas:
        kinds.append(("nas_pareto", plot_nas_pareto))
    figures: dict[str, Path] = {}
    for ds in datasets:
        for kind, fn in kinds:
            name = f"{kind}_{ds}"
            paths = save_figure(fn(data, ds), name, figures_dir, int(cfg["dpi"]))
            figures[name] = paths[0]
            written["figures"] += paths
    wt = load_times(results_dir)  # the jobs finished so far; None without benchmark files
    if wt is not None:
        write_text(tables_dir / "workflow_times.csv", rule_table(wt).to_csv(index=False, float_format="%.6g"))
        written["tables"].append(tables_dir / "workflow_times.csv")
    text = render_report(
        data,
        acc,
        cost,
        cfg,
        profile,
        figures,
        report_md,
        tables_dir,
        wt,
        sens,
        attribution,
        comparisons=comparisons,
        per_seed=per_seed,
        notes=notes,
    )
    write_text(report_md, text)
    written["report"].append(report_md)
    log.info(
        "%d table files, %d figure files and %s in %.1f s (%d seed(s))",
        len(written["tables"]),
        len(written["figures"]),
        report_md,
        time.time() - t0,
        len(seeds),
    )
    return Built(written, acc, cost, nas, per_seed, comparisons, data["training"])
