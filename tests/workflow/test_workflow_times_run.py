"""benchmarks/workflow_times.py on a real Snakemake run: Snakemake's own benchmark files and metadata (the unit
tier, tests/unit/test_workflow_times.py, starts no Snakemake)."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("workflow_times", REPO / "benchmarks" / "workflow_times.py")
times = sys.modules["workflow_times"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(times)


def names(wt, path: list[int]) -> list[str]:
    return [f"{r.rule} {r.job}".strip() for r in wt.jobs.iloc[path].itertuples()]


TOY = """
rule all:
    input:
        "results/c/x.txt",


rule a:
    output:
        "results/a/{s}.txt",
    log:
        "results/logs/a/{s}.log",
    benchmark:
        "results/benchmarks/a/{s}.tsv"
    shell:
        "sleep 0.2; echo a > {output}"


rule b:
    input:
        "results/a/{s}.txt",
    output:
        "results/b/{s}.txt",
    benchmark:
        "results/benchmarks/b/{s}.tsv"
    shell:
        "sleep 0.2; cat {input} > {output}"


rule c:
    input:
        "results/a/{s}.txt",
        "results/b/{s}.txt",
    output:
        "results/c/{s}.txt",
    benchmark:
        "results/benchmarks/c/{s}.tsv"
    shell:
        "sleep 0.2; cat {input} > {output}"
"""


@pytest.mark.slow
def test_real_snakemake_run(tmp_path):
    """Snakemake's own benchmark files and metadata (rule b and c have no log: matched by end time)."""
    pytest.importorskip("snakemake")
    (tmp_path / "Snakefile").write_text(TOY)
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--quiet"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert any((tmp_path / ".snakemake" / "metadata").iterdir())
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "workflow_times.py"), "results"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Critical path total" in out.stdout and "over 3 jobs" in out.stdout, out.stdout
    wt = times.load(tmp_path / "results")
    assert wt.edges_known and (wt.jobs.timed_by == "metadata").all()
    assert names(wt, times.critical_path(wt)) == ["a x", "b x", "c x"]
    assert all(w >= 0.19 for w in wt.jobs.wall_s)
    assert wt.total_wall_s >= 0.6 - 0.05
    # the same folder without the metadata (copied elsewhere): times from the files, the blocking chain
    shutil.copytree(tmp_path / "results", tmp_path / "copy" / "results", copy_function=shutil.copy2)
    wt = times.load(tmp_path / "copy" / "results")
    assert not wt.edges_known and names(wt, times.critical_path(wt)) == ["a x", "b x", "c x"]
