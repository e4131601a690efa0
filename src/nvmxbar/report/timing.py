"""Where the workflow's time went, as REPORT.md shows it: per rule, the sums of the Snakemake benchmark files that
rule report declares as inputs (:func:`read_benchmark`, :func:`job_rows`, :func:`rule_table`,
:func:`times_section`). The critical path (from Snakemake's metadata) is not the report's:
``python benchmarks/workflow_times.py <results folder>``, which reads its files with these functions.

A benchmark file: ``<results>/benchmarks/<rule>/<wildcard path>.tsv``, Snakemake's columns ``s`` (wall seconds),
``max_rss`` (MB), ``cpu_time`` (seconds) and others; ``NA`` where it could not sample the process; several rows
(``repeat()``) add up."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .formatting import fmt_duration, markdown

JOB_ROW = ("rule", "wall_s", "cpu_s", "max_rss_mb", "repeats")
RULE_COLUMNS = ("rule", "jobs", "wall_s_total", "wall_s_mean", "wall_s_max", "cpu_s_total", "max_rss_mb_max")


def read_benchmark(path: str | Path, rule: str) -> dict[str, Any]:
    """One job's benchmark file: rule, wall_s, cpu_s, max_rss_mb (NaN where Snakemake wrote NA), repeats. A
    ValueError names the file when it holds no row or no wall time."""
    path = Path(path)
    try:
        t = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"benchmark file {path}: unreadable ({err})") from None
    if "s" not in t.columns or t.empty:
        raise ValueError(f"benchmark file {path}: no benchmark row (columns {list(t.columns)})")
    num = {c: pd.to_numeric(t[c], errors="coerce") for c in ("s", "cpu_time", "max_rss") if c in t.columns}
    nan = pd.Series([math.nan])
    if num["s"].isna().all():
        raise ValueError(f"benchmark file {path}: no wall time in column s")
    if "rule_name" in t.columns and isinstance(t.rule_name.iloc[0], str):  # --benchmark-extended
        rule = t.rule_name.iloc[0]
    return {
        "rule": rule,
        "wall_s": float(num["s"].sum()),
        "cpu_s": float(num.get("cpu_time", nan).sum(min_count=1)),
        "max_rss_mb": float(num.get("max_rss", nan).max()),
        "repeats": len(t),
    }


def job_rows(files: dict[str, Iterable[str | Path]]) -> pd.DataFrame:
    """One row per declared benchmark file (``files``: rule -> its jobs' files)."""
    rows = [read_benchmark(p, rule) for rule, paths in files.items() for p in paths]
    return pd.DataFrame(rows, columns=list(JOB_ROW))


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, wall_s total / mean / max, cpu_s total (NaN when no job has one), max_rss_mb max; by
    wall total, largest first."""
    g = jobs.groupby("rule", sort=False)
    t = pd.DataFrame(
        {
            "jobs": g.size(),
            "wall_s_total": g.wall_s.sum(),
            "wall_s_mean": g.wall_s.mean(),
            "wall_s_max": g.wall_s.max(),
            "cpu_s_total": g.cpu_s.sum(min_count=1),
            "max_rss_mb_max": g.max_rss_mb.max(),
        }
    ).reset_index()
    return t.sort_values(["wall_s_total", "rule"], ascending=[False, True], ignore_index=True)[list(RULE_COLUMNS)]


def duration(v: float) -> str:
    """'3.2 s' under 10 s, else as :func:`.formatting.fmt_duration`; '' for NaN."""
    return "" if pd.isna(v) else f"{v:.1f} s" if v < 10 else fmt_duration(v)


def times_section(table: pd.DataFrame, bench_dir: Path, rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md's "Where the time went": the per-rule sums of the declared benchmark files."""
    heads = ["rule", "jobs", "wall time", "mean", "max", "CPU time", "max RSS (MB)"]
    rows = [
        [r.rule, str(r.jobs), duration(r.wall_s_total), duration(r.wall_s_mean), duration(r.wall_s_max)]
        + [duration(r.cpu_s_total), "" if pd.isna(r.max_rss_mb_max) else f"{r.max_rss_mb_max:,.0f}"]
        for r in table.itertuples()
    ]
    return [
        "## Where the time went",
        "",
        f"Per rule, the sums of the {int(table.jobs.sum())} Snakemake benchmark files of the jobs whose outputs this "
        f"report reads (`{rel(bench_dir)}`; a job not rerun keeps its earlier times): the jobs' wall times add up "
        f"to {duration(table.wall_s_total.sum())}. The critical path and the whole run's wall time, from Snakemake's "
        "metadata: `python benchmarks/workflow_times.py <results folder>`.",
        "",
        markdown(heads, rows),
    ]
