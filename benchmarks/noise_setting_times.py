"""What the settings beside the programming-noise sweep cost a workflow run: evaluate_noise's seconds per setting kind
(the sweep, the extra settings, the realistic chip), read from its job logs, against the run's CPU time from the
jobs' benchmark files. The DAG's growth from the extras and the realistic chip is their CPU seconds over the run's
CPU without them (each job's CPU split by its settings' wall shares: evaluate_noise runs one thread). Not a test.

Run: .venv/bin/python benchmarks/noise_setting_times.py results
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_times import read_benchmarks  # noqa: E402

#: noise.evaluate's line per setting: "{setting dict}: accuracy A +- S (N chips, T s)"
LINE = re.compile(r"(\{.*\}): accuracy [0-9.]+ \+- [0-9.]+ \((\d+) chips, ([0-9.]+) s\)")


def setting_rows(results: Path) -> pd.DataFrame:
    """One row per (job, setting): job (its log path under logs/evaluate_noise), kind, the non-idealities on,
    chips, seconds."""
    rows = []
    for log in sorted((results / "logs" / "evaluate_noise").rglob("*.log")):
        for m in LINE.finditer(log.read_text(errors="replace")):
            s = ast.literal_eval(m.group(1))
            on = ", ".join(f"{k} {v:g}" for k, v in s.items() if k != "setting" and v not in (0, 0.0, None))
            rows.append({"job": str(log.relative_to(results / "logs" / "evaluate_noise").with_suffix("")),
                         "kind": s.get("setting", "sweep"), "setting": on or "ideal", "chips": int(m.group(2)),
                         "seconds": float(m.group(3))})  # fmt: skip
    return pd.DataFrame(rows, columns=["job", "kind", "setting", "chips", "seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    args = ap.parse_args(argv)
    rows = setting_rows(args.results)
    if rows.empty:
        print(f"no evaluate_noise log with per-setting times under {args.results}/logs", file=sys.stderr)
        return 2
    bench, _ = read_benchmarks(args.results)
    cpu = pd.to_numeric(bench.cpu_s, errors="coerce").fillna(0.0)
    total_cpu = float(cpu.sum())
    noise = bench[bench.rule == "evaluate_noise"].assign(cpu=cpu)
    jobs = rows.groupby("job").seconds.sum().rename("logged")
    share = rows.join(jobs, on="job").assign(frac=lambda d: d.seconds / d.logged)
    share = share.merge(noise[["job", "cpu"]], on="job", how="left").assign(cpu_s=lambda d: d.frac * d.cpu)
    print(f"{rows.job.nunique()} evaluate_noise jobs, {len(rows)} settings; run CPU {total_cpu:.0f} s "
          f"({len(bench)} jobs, evaluate_noise {float(noise.cpu.sum()):.0f} s)\n")  # fmt: skip
    by = share.groupby(["kind", "setting"], sort=False).agg(jobs=("job", "nunique"), chips=("chips", "max"),
                                                             wall_s=("seconds", "sum"), cpu_s=("cpu_s", "sum"))  # fmt: skip
    print(by.round(1).to_string())
    beside = float(share[share.kind != "sweep"].cpu_s.sum())
    print(f"\nthe extra settings and the realistic chip: {beside:.0f} CPU s; the run without them "
          f"{total_cpu - beside:.0f} s; growth {100 * beside / max(total_cpu - beside, 1e-9):.1f} %")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
