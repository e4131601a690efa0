"""Where a workflow run's time went: the per-rule table of the jobs' Snakemake benchmark files, the total wall
time and the critical path (from Snakemake's metadata in <RESULTS_DIR>/../.snakemake; without it, the blocking
chain by time). Not a test.  Run: .venv/bin/python benchmarks/workflow_times.py results

Every job's Snakemake benchmark file, its start and end, the dependencies between jobs, the critical path and a
per-rule table (:func:`load`, :func:`critical_path`, :func:`format_text`; one file is read by
:func:`nvmxbar.report.timing.read_benchmark`, whose per-rule sums REPORT.md shows).

* Benchmark files: ``<results>/benchmarks/<rule>/<wildcard path>.tsv`` (the rule's ``benchmark:`` directive
  mirrors its ``log:`` path ``<results>/logs/<rule>/<wildcard path>.log``; a file directly under benchmarks/ is
  a rule without wildcards, named by the file). Snakemake's columns: ``s`` (wall seconds), ``h:m:s``, ``max_rss``
  (MB), ``max_vms``, ``max_uss``, ``max_pss``, ``io_in``, ``io_out``, ``mean_load``, ``cpu_time`` (seconds);
  ``NA`` where it could not sample the process. Several rows (``repeat()``) add up.
* Start, end and dependencies: Snakemake's per-output metadata, ``<workdir>/.snakemake/metadata/<urlsafe base64
  of the output path>`` (JSON with ``rule``, ``input``, ``log``, ``starttime``, ``endtime``: the time the job
  started and the output file's mtime), the workdir being the results folder's parent. A job is matched to its
  metadata through its log path, else through its rule and the end time nearest its benchmark file's mtime.
  Without metadata a job ends at its benchmark file's mtime and starts ``wall_s`` earlier, and the dependencies
  are unknown: :func:`critical_path` then gives the *blocking chain* instead (from the last job to end, again and
  again the job that ended last before the current one started).

Files left by earlier runs count as they are: a job that was not rerun keeps its older times.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar.report.timing import read_benchmark, rule_table  # noqa: E402

BENCHMARK_COLUMNS = (
    "s",
    "h:m:s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
)
JOB_COLUMNS = ("rule", "job", "wall_s", "cpu_s", "max_rss_mb", "repeats", "start", "end", "timed_by", "benchmark")
#: A job without a log match takes the same-rule metadata whose end is nearest its benchmark file's mtime, if
#: nearer than this (the benchmark file is written just after the job's last output).
MATCH_TOLERANCE_S = 30.0
#: Slack for "ended before the current one started" in the blocking chain (benchmark wall times have 2 decimals).
CHAIN_SLACK_S = 0.05


@dataclass
class WorkflowTimes:
    """The jobs of a results folder. ``jobs``: one row per benchmarked job (:data:`JOB_COLUMNS`; ``start`` and
    ``end`` in epoch seconds, ``timed_by`` 'metadata' or 'benchmark file'), sorted by end. ``edges``: (upstream,
    downstream) row positions, or None when the dependencies of some job are unknown (no metadata)."""

    results_dir: Path
    jobs: pd.DataFrame
    edges: list[tuple[int, int]] | None
    skipped: list[str] = field(default_factory=list)  # benchmark files that could not be read, with why

    @property
    def edges_known(self) -> bool:
        return self.edges is not None

    @property
    def total_wall_s(self) -> float:
        """Last end - first start."""
        return float(self.jobs.end.max() - self.jobs.start.min())

    @property
    def job_wall_sum_s(self) -> float:
        return float(self.jobs.wall_s.sum())


# ------------------------------------------------------------------------------------------------ reading
def read_benchmarks(results_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Every ``<results_dir>/benchmarks/**/*.tsv``, one row per job: rule, job (the wildcard path), wall_s,
    cpu_s, max_rss_mb, repeats (:func:`nvmxbar.report.timing.read_benchmark`), benchmark (the file relative to
    ``results_dir``), mtime. Returns (the rows, the files that could not be read with why)."""
    results_dir = Path(results_dir)
    bench_dir = results_dir / "benchmarks"
    rows, skipped = [], []
    for path in sorted(bench_dir.rglob("*.tsv")) if bench_dir.is_dir() else []:
        rel = path.relative_to(bench_dir).with_suffix("")
        try:
            row = read_benchmark(path, rel.parts[0] if len(rel.parts) > 1 else rel.name)
            mtime = path.stat().st_mtime
        except (OSError, ValueError) as err:
            skipped.append(str(err))
            continue
        rows.append(
            {**row, "job": "/".join(rel.parts[1:]), "benchmark": str(path.relative_to(results_dir)), "mtime": mtime}
        )
    cols = ["rule", "job", "wall_s", "cpu_s", "max_rss_mb", "repeats", "benchmark", "mtime"]
    return pd.DataFrame(rows, columns=cols), skipped


def _norm(path: str, workdir: Path) -> str:
    """A path as the metadata names it, relative to the workdir."""
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path, workdir)
        except ValueError:
            pass
    return os.path.normpath(path)


def read_metadata(workdir: str | Path) -> list[dict]:
    """Snakemake's metadata under ``<workdir>/.snakemake/metadata``, grouped into jobs: dicts with rule, outputs,
    inputs, logs (paths relative to the workdir), start, end. Records that are incomplete, unreadable or without
    times are left out; no folder: []."""
    workdir = Path(workdir).resolve()
    meta_dir = workdir / ".snakemake" / "metadata"
    if not meta_dir.is_dir():
        return []
    jobs: dict[tuple, dict] = {}
    for path in meta_dir.rglob("*"):
        if not path.is_file():
            continue
        # long names are split into folders whose names start with '@' (snakemake.persistence)
        b64 = "".join(p.removeprefix("@") for p in path.relative_to(meta_dir).parts)
        try:
            output = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).decode()
            rec = json.loads(path.read_text())
            start, end = float(rec["starttime"]), float(rec["endtime"])
        except (OSError, ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            continue
        if rec.get("incomplete") or not rec.get("rule") or math.isnan(start) or math.isnan(end):
            continue
        inputs = tuple(sorted(_norm(p, workdir) for p in rec.get("input") or []))
        logs = tuple(sorted(_norm(p, workdir) for p in rec.get("log") or []))
        key = (rec["rule"], rec.get("job_hash"), inputs, logs)
        job = jobs.setdefault(
            key, {"rule": rec["rule"], "outputs": [], "inputs": inputs, "logs": logs, "start": start, "end": end}
        )
        job["outputs"].append(_norm(output, workdir))
        job["start"], job["end"] = min(job["start"], start), max(job["end"], end)
    return list(jobs.values())


def _match(bench: pd.DataFrame, meta: list[dict], results_dir: Path, workdir: Path) -> list[int | None]:
    """For each benchmark row, the index of its metadata job (or None): by log path, then by rule and end time."""
    by_log = {log: i for i, m in enumerate(meta) for log in m["logs"]}
    found: list[int | None] = [None] * len(bench)
    for k, b in enumerate(bench.itertuples()):
        log = Path(b.benchmark).relative_to("benchmarks").with_suffix(".log")
        log = _norm(str(results_dir / "logs" / log), workdir)
        if log in by_log:
            found[k] = by_log[log]
    taken = {i for i in found if i is not None}
    pairs = sorted(
        (abs(m["end"] - b.mtime), k, i)
        for k, b in enumerate(bench.itertuples())
        if found[k] is None
        for i, m in enumerate(meta)
        if i not in taken and m["rule"] == b.rule and abs(m["end"] - b.mtime) <= MATCH_TOLERANCE_S
    )
    for _, k, i in pairs:
        if found[k] is None and i not in taken:
            found[k] = i
            taken.add(i)
    return found


def _edges(found: list[int | None], meta: list[dict]) -> list[tuple[int, int]]:
    """(upstream, downstream) benchmark rows: a row's input made by another row's job, directly or through jobs
    without a benchmark file."""
    producer = {out: i for i, m in enumerate(meta) for out in m["outputs"]}
    row_of = {i: k for k, i in enumerate(found) if i is not None}
    edges = set()
    for k, i in enumerate(found):
        if i is None:
            continue
        todo, seen = list(meta[i]["inputs"]), {i}
        while todo:
            j = producer.get(todo.pop())
            if j is None or j in seen:
                continue
            seen.add(j)
            if j in row_of:
                edges.add((row_of[j], k))
            else:
                todo += meta[j]["inputs"]
    return sorted(edges)


def load(results_dir: str | Path) -> WorkflowTimes | None:
    """The jobs, times and dependencies of ``results_dir`` (see the module's doc); None when it holds no
    readable benchmark file."""
    results_dir = Path(results_dir)
    workdir = results_dir.resolve().parent
    bench, skipped = read_benchmarks(results_dir)
    if bench.empty:
        return None
    meta = read_metadata(workdir)
    found = _match(bench, meta, results_dir.resolve(), workdir)
    starts, ends, by, rules = [], [], [], []
    for b, i in zip(bench.itertuples(), found):
        if i is None:
            starts.append(b.mtime - b.wall_s)
            ends.append(b.mtime)
            by.append("benchmark file")
            rules.append(b.rule)
        else:
            starts.append(meta[i]["start"])
            ends.append(meta[i]["end"])
            by.append("metadata")
            rules.append(meta[i]["rule"])
    jobs = bench.assign(rule=rules, start=starts, end=ends, timed_by=by)
    edges = _edges(found, meta) if all(i is not None for i in found) else None
    order = sorted(range(len(jobs)), key=lambda k: (jobs.end.iloc[k], jobs.start.iloc[k], jobs.benchmark.iloc[k]))
    rank = {k: n for n, k in enumerate(order)}
    jobs = jobs.iloc[order].reset_index(drop=True)[list(JOB_COLUMNS)]
    if edges is not None:
        edges = sorted((rank[a], rank[b]) for a, b in edges)
    return WorkflowTimes(results_dir, jobs, edges, skipped)


# ------------------------------------------------------------------------------------------------ analysis
def last_job(wt: WorkflowTimes) -> int:
    """The row of the job that ended last (ties: the longer one)."""
    j = wt.jobs
    return max(range(len(j)), key=lambda k: (j.end.iloc[k], j.wall_s.iloc[k], -k))


def critical_path(wt: WorkflowTimes) -> list[int]:
    """Rows, first to last. With dependencies: the chain through them with the largest summed wall time that
    ends at the job that ended last. Without: the blocking chain (:func:`blocking_chain`)."""
    if wt.edges is None:
        return blocking_chain(wt)
    wall = wt.jobs.wall_s.tolist()
    preds: dict[int, list[int]] = defaultdict(list)
    succs: dict[int, list[int]] = defaultdict(list)
    for a, b in wt.edges:
        preds[b].append(a)
        succs[a].append(b)
    # longest path by wall time, in a topological order (Kahn); a cycle (stale metadata) leaves its nodes out
    indeg = {k: len(preds[k]) for k in range(len(wall))}
    todo = [k for k, d in indeg.items() if d == 0]
    best: dict[int, float] = {}
    via: dict[int, int | None] = {}
    while todo:
        k = todo.pop()
        done = [p for p in preds[k] if p in best]
        p = max(done, key=lambda p: (best[p], -p), default=None)
        best[k], via[k] = wall[k] + (best[p] if p is not None else 0.0), p
        for s in succs[k]:
            indeg[s] -= 1
            if indeg[s] == 0:
                todo.append(s)
    end = last_job(wt)
    if end not in best:
        return [end]
    path: list[int] = []
    node: int | None = end
    while node is not None:
        path.append(node)
        node = via[node]
    return path[::-1]


def blocking_chain(wt: WorkflowTimes) -> list[int]:
    """Rows, first to last: from the job that ended last, again and again the job that ended last before the
    current one started (within :data:`CHAIN_SLACK_S`)."""
    j = wt.jobs
    k = last_job(wt)
    chain = [k]
    while True:
        start = j.start.iloc[k]
        before = [n for n in range(len(j)) if n not in chain and j.end.iloc[n] <= start + CHAIN_SLACK_S]
        before = [n for n in before if j.end.iloc[n] < j.end.iloc[k]]
        if not before:
            return chain[::-1]
        k = max(before, key=lambda n: (j.end.iloc[n], j.wall_s.iloc[n], -n))
        chain.append(k)


def path_table(wt: WorkflowTimes, path: list[int]) -> pd.DataFrame:
    """The jobs of a path: rule, job, wall_s, start_s and end_s (seconds since the first job started)."""
    j, t0 = wt.jobs, wt.jobs.start.min()
    p = j.iloc[path]
    return pd.DataFrame(
        {"rule": p.rule, "job": p.job, "wall_s": p.wall_s, "start_s": p.start - t0, "end_s": p.end - t0}
    ).reset_index(drop=True)


def path_kind(wt: WorkflowTimes) -> str:
    return "critical path" if wt.edges_known else "blocking chain"


def path_note(wt: WorkflowTimes) -> str:
    """What :func:`critical_path` gave and why."""
    if wt.edges_known:
        return (
            "critical path: the chain of dependent jobs (Snakemake metadata) with the largest summed wall time, "
            "ending at the job that ended last"
        )
    n = int((wt.jobs.timed_by != "metadata").sum())
    return (
        f"dependency edges unknown ({n} of {len(wt.jobs)} jobs have no Snakemake metadata in "
        f"{wt.results_dir.resolve().parent / '.snakemake' / 'metadata'}; their times come from the benchmark "
        "files' mtimes): blocking chain instead, from the job that ended last, again and again the job that ended "
        "last before the current one started"
    )


# ------------------------------------------------------------------------------------------------ text
def _job_name(rule: str, job: str) -> str:
    return f"{rule} {job}" if job else rule


def format_text(wt: WorkflowTimes) -> str:
    """The per-rule table, the total wall time and the critical path (or blocking chain), as plain text."""
    t = rule_table(wt.jobs)
    na = lambda v, f: "NA" if pd.isna(v) else f.format(v)  # noqa: E731
    heads = ["rule", "jobs", "wall_s total", "wall_s mean", "wall_s max", "cpu_s total", "max_rss_mb max"]
    rows = [
        [r.rule, str(r.jobs)]
        + [f"{v:.1f}" for v in (r.wall_s_total, r.wall_s_mean, r.wall_s_max)]
        + [na(r.cpu_s_total, "{:.1f}"), na(r.max_rss_mb_max, "{:.0f}")]
        for r in t.itertuples()
    ]
    widths = [max(len(x) for x in col) for col in zip(heads, *rows)]
    line = lambda cells: "  ".join(  # noqa: E731
        f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths))
    )
    L = [f"Jobs with a benchmark file under {wt.results_dir / 'benchmarks'}: {len(wt.jobs)}", ""]
    L += [line(heads)] + [line(r) for r in rows]
    L.append("")
    source = (
        "Snakemake metadata"
        if (wt.jobs.timed_by == "metadata").all()
        else "Snakemake metadata and benchmark file mtimes"
        if (wt.jobs.timed_by == "metadata").any()
        else "benchmark file mtimes (estimate)"
    )
    L.append(f"Total wall time: {wt.total_wall_s:.1f} s (first job start to last job end; times from {source})")
    L.append(f"Sum of job wall times: {wt.job_wall_sum_s:.1f} s")
    L.append("")
    path = critical_path(wt)
    p = path_table(wt, path)
    note = path_note(wt)
    L.append(note[0].upper() + note[1:] + ":")
    width = max(len(_job_name(r.rule, r.job)) for r in p.itertuples())
    for r in p.itertuples():
        L.append(f"  {_job_name(r.rule, r.job):<{width}}  {r.wall_s:10.1f} s   (start {r.start_s:.1f} s)")
    total = float(p.wall_s.sum())
    share = f", {100 * total / wt.total_wall_s:.0f} % of the total wall time" if wt.total_wall_s > 0 else ""
    L.append(f"{path_kind(wt).capitalize()} total: {total:.1f} s over {len(p)} jobs{share}")
    if wt.skipped:
        L += ["", f"Unreadable benchmark files ({len(wt.skipped)}), left out:"] + [f"  {s}" for s in wt.skipped]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", metavar="RESULTS_DIR", help="the workflow's results folder (e.g. results)")
    args = ap.parse_args(argv)
    d = Path(args.results_dir)
    if not d.is_dir():
        print(f"workflow_times: {d} does not exist or is not a folder", file=sys.stderr)
        return 2
    wt = load(d)
    if wt is None:
        print(
            f"workflow_times: {d} holds no benchmark files ({d / 'benchmarks'}/**/*.tsv): run the workflow, whose "
            "rules write them (benchmark: directives), first",
            file=sys.stderr,
        )
        return 2
    print(format_text(wt), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
