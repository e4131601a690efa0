"""Where the workflow's time went (benchmarks/workflow_times.py, nvmxbar.report.timing): Snakemake benchmark files
and metadata written by hand in Snakemake's own formats, the critical path against the longest chain by count,
the fallback without metadata, the report's table and section, and one tiny real Snakemake run."""

import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nvmxbar.report import timing

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "workflow_times.py"
_spec = importlib.util.spec_from_file_location("workflow_times", SCRIPT)
times = sys.modules["workflow_times"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(times)
T0 = 1_790_000_000.0
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"

# (benchmark path under benchmarks/ without .tsv, rule, start, end, wall_s, cpu_s, max_rss, inputs, outputs, log?)
# Two chains end at report: prepare -> train baseline -> report (3 jobs, 115 s) and the 7-job architecture-search
# chain prepare -> search -> finalist -> nas -> train unipolar -> map -> report (90 s): the critical path is the
# shorter one by count.
D = "results/data/har.npz"
N = "results/har/unipolar/b2/nas"
JOBS = [
    ("prepare_data/har", "prepare_data", 0, 10, 10.0, 9.0, 300.0, [], [D, "results/data/har.json"], True),
    ("train/har/baseline", "train", 10, 110, 100.0, 190.0, 900.0, [D], ["results/har/baseline/model.pt"], True),
    ("nas_unipolar_search/har/b2/worker0", "nas_unipolar_search", 10, 30, 20.0, 20.0, 500.0, [D],
     [f"{N}/worker0.json"], True),
    ("nas_unipolar_finalist/har/b2/rank0_rep0", "nas_unipolar_finalist", 30, 50, 20.0, 20.0, 400.0,
     [f"{N}/worker0.json", D], [f"{N}/finalists/rank0_rep0.json"], True),
    ("nas_unipolar/har/b2", "nas_unipolar", 50, 60, 10.0, 10.0, 200.0,
     [f"{N}/worker0.json", f"{N}/finalists/rank0_rep0.json"], [f"{N}/arch.json", f"{N}/trials.csv"], True),
    ("train/har/unipolar/b2", "train", 60, 80, 20.0, None, 800.0, [D, f"{N}/arch.json"],
     ["results/har/unipolar/b2/model.pt", "results/har/unipolar/b2/metrics.json"], True),
    # no log in its metadata: matched by rule and end time
    ("map_crossbar/har/unipolar/b2", "map_crossbar", 110, 115, 5.0, 4.0, 600.0,
     ["results/har/unipolar/b2/model.pt", D], ["results/har/unipolar/b2/crossbar.npz"], False),
    ("report", "report", 115, 120, 5.0, 5.0, 700.0,
     ["results/har/baseline/model.pt", "results/har/unipolar/b2/crossbar.npz"], ["results/report/REPORT.md"], True),
]  # fmt: skip


def bench_row(s: float, cpu: float | None, rss: float | None) -> str:
    """One row as Snakemake's BenchmarkRecord.to_tsv writes it (floats with 2 decimals, NA when not sampled)."""
    na = lambda v: "NA" if v is None else f"{v:.2f}"  # noqa: E731
    h = f"{int(s) // 3600}:{int(s) % 3600 // 60:02d}:{int(s) % 60:02d}"
    return "\t".join([f"{s:.2f}", h, na(rss), na(rss and rss * 2), na(rss), na(rss), "0.00", "1.00", "95.00", na(cpu)])


def write_bench(results: Path, rel: str, rows: list[str], mtime: float | None = None) -> Path:
    p = results / "benchmarks" / f"{rel}.tsv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEADER + "\n" + "".join(r + "\n" for r in rows))
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def write_meta(workdir: Path, output: str, rec: dict) -> None:
    """One record as Snakemake 9 writes it: .snakemake/metadata/<urlsafe base64 of the output path>."""
    d = workdir / ".snakemake" / "metadata"
    d.mkdir(parents=True, exist_ok=True)
    (d / base64.urlsafe_b64encode(output.encode()).decode()).write_text(json.dumps(rec))


def fake_run(root: Path, with_metadata: bool = True) -> Path:
    """<root>/results/benchmarks/... for JOBS (file mtime = job end + 0.3 s) and, optionally, the metadata."""
    results = root / "results"
    for n, (rel, rule, start, end, wall, cpu, rss, inputs, outputs, has_log) in enumerate(JOBS):
        write_bench(results, rel, [bench_row(wall, cpu, rss)], mtime=T0 + end + 0.3)
        if not with_metadata:
            continue
        log = [f"results/logs/{rel}.log"] if has_log else []
        for k, out in enumerate(outputs):
            rec = {
                "rule": rule,
                "input": inputs,
                "log": log,
                "shellcmd": None,
                "params": [],
                "record_format_version": 6,
                "job_hash": 1000 + n,
                "starttime": T0 + start,
                "endtime": T0 + end - 0.01 * (len(outputs) - 1 - k),  # each output's mtime: the last one ends the job
                "incomplete": False,
                "input_checksums": {},
            }
            write_meta(root, out, rec)
    # a stale record of an output no benchmarked job made, and an unreadable one: both ignored
    write_meta(root, "results/old/thing.txt", {"rule": "gone", "input": [], "starttime": T0, "endtime": T0 + 1})
    if with_metadata:
        (root / ".snakemake" / "metadata" / "not-base64!").write_text("{")
    return results


def names(wt: times.WorkflowTimes, path: list[int]) -> list[str]:
    return [f"{r.rule} {r.job}".strip() for r in wt.jobs.iloc[path].itertuples()]


@pytest.fixture
def results(tmp_path) -> Path:
    return fake_run(tmp_path)


def test_benchmark_files_one_row_per_job(tmp_path):
    r = tmp_path / "results"
    write_bench(r, "train/har/uniform/b4", [bench_row(3.0, 2.0, 100.0), bench_row(5.0, 4.0, 150.0)])  # repeat(2)
    write_bench(r, "map_crossbar/har/uniform/b4", [bench_row(1.5, None, None)])  # too fast to sample: NA
    write_bench(r, "report", [bench_row(2.0, 1.0, 50.0)])
    (r / "benchmarks" / "broken.tsv").write_text("")
    b, skipped = times.read_benchmarks(r)
    b = b.set_index(["rule", "job"])
    assert b.loc[("train", "har/uniform/b4")][["wall_s", "cpu_s", "max_rss_mb", "repeats"]].tolist() == [
        8.0,
        6.0,
        150.0,
        2,
    ]
    m = b.loc[("map_crossbar", "har/uniform/b4")]
    assert m.wall_s == 1.5 and pd.isna(m.cpu_s) and pd.isna(m.max_rss_mb)
    assert b.loc[("report", "")].wall_s == 2.0  # a rule without wildcards: benchmarks/<rule>.tsv
    assert len(skipped) == 1 and "broken.tsv" in skipped[0]


def test_metadata_gives_times_and_edges(results):
    wt = times.load(results)
    assert wt.edges_known and (wt.jobs.timed_by == "metadata").all()
    assert len(wt.jobs) == len(JOBS)
    j = wt.jobs.set_index(["rule", "job"])
    assert j.loc[("train", "har/unipolar/b2")].start == T0 + 60 and j.loc[("train", "har/unipolar/b2")].end == T0 + 80
    assert j.loc[("map_crossbar", "har/unipolar/b2")].end == T0 + 115  # matched by end time, not by log
    edges = {(names(wt, [a])[0], names(wt, [b])[0]) for a, b in wt.edges}
    assert ("prepare_data har", "train har/baseline") in edges
    assert ("nas_unipolar har/b2", "train har/unipolar/b2") in edges
    assert ("train har/baseline", "report") in edges and ("map_crossbar har/unipolar/b2", "report") in edges
    assert ("prepare_data har", "report") not in edges  # report reads no prepare_data output
    assert len(edges) == 12
    assert wt.total_wall_s == pytest.approx(120.0)
    assert wt.job_wall_sum_s == pytest.approx(190.0)


def test_rule_table_sums(results):
    t = times.rule_table(times.load(results).jobs)
    assert list(t.columns) == list(timing.RULE_COLUMNS)
    assert t.rule.iloc[0] == "train" and list(t.wall_s_total) == sorted(t.wall_s_total, reverse=True)
    tr = t.set_index("rule").loc["train"]
    assert tr.jobs == 2 and tr.wall_s_total == 120.0 and tr.wall_s_mean == 60.0 and tr.wall_s_max == 100.0
    assert tr.cpu_s_total == 190.0  # the NA of one job does not count
    assert tr.max_rss_mb_max == 900.0
    assert t.jobs.sum() == len(JOBS) and t.wall_s_total.sum() == pytest.approx(190.0)


def test_critical_path_is_the_longest_in_time_not_in_jobs(results):
    wt = times.load(results)
    path = times.critical_path(wt)
    assert names(wt, path) == ["prepare_data har", "train har/baseline", "report"]
    assert times.path_table(wt, path).wall_s.sum() == pytest.approx(115.0)
    text = times.format_text(wt)
    assert "Total wall time: 120.0 s" in text and "Sum of job wall times: 190.0 s" in text
    assert "Critical path total: 115.0 s over 3 jobs" in text
    assert "unknown" not in text


def test_without_metadata_blocking_chain_by_time(tmp_path):
    wt = times.load(fake_run(tmp_path, with_metadata=False))
    assert not wt.edges_known and (wt.jobs.timed_by == "benchmark file").all()
    j = wt.jobs.set_index(["rule", "job"])
    assert j.loc[("report", "")].end == pytest.approx(T0 + 120.3)  # the file's mtime
    assert j.loc[("report", "")].start == pytest.approx(T0 + 115.3)  # minus its wall time
    assert wt.total_wall_s == pytest.approx(120.0)
    # from report (started 115.3): map_crossbar ended at 115.3, started 110.3; train baseline ended 110.3 ...
    path = times.critical_path(wt)
    assert names(wt, path) == ["prepare_data har", "train har/baseline", "map_crossbar har/unipolar/b2", "report"]
    text = times.format_text(wt)
    assert "dependency edges unknown" in text.lower() and "Blocking chain total: 120.0 s over 4 jobs" in text


def test_cli_prints_table_total_and_path(results):
    out = subprocess.run([sys.executable, str(SCRIPT), str(results)], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("rule "))
    assert lines[head + 1].split()[:3] == ["train", "2", "120.0"]
    assert "Total wall time: 120.0 s" in out.stdout and "Critical path total: 115.0 s" in out.stdout


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_cli_exits_with_a_message(tmp_path, case):
    d = tmp_path / "results"
    if case == "empty":
        (d / "benchmarks").mkdir(parents=True)
    out = subprocess.run([sys.executable, str(SCRIPT), str(d)], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert str(d) in out.stderr and ("does not exist" if case == "missing" else "no benchmark files") in out.stderr


def test_report_section_sums_the_declared_benchmark_files(tmp_path):
    """REPORT.md's "Where the time went": per rule, the sums of the files rule report declares (no metadata)."""
    fake_run(tmp_path)
    bench = tmp_path / "results" / "benchmarks"
    files = {"train": sorted((bench / "train").rglob("*.tsv")), "prepare_data": [bench / "prepare_data/har.tsv"]}
    t = timing.rule_table(timing.job_rows(files))
    assert list(t.columns) == list(timing.RULE_COLUMNS) and list(t.rule) == ["train", "prepare_data"]
    assert t.set_index("rule").loc["train", "jobs"] == 2 and t.wall_s_total.sum() == pytest.approx(130.0)
    sec = "\n".join(timing.times_section(t, bench, str))
    assert "| train | 2 | 2.0 min | 60 s | 100 s | 3.2 min | 900 |" in sec and "3 Snakemake benchmark files" in sec
    assert "benchmarks/workflow_times.py" in sec and "Critical path" not in sec
    (bench / "prepare_data/har.tsv").write_text(HEADER + "\n")
    with pytest.raises(ValueError, match="prepare_data/har.tsv: no benchmark row"):
        timing.job_rows(files)
