"""Where a workflow run's time went: the per-rule table of the jobs' Snakemake benchmark files, the total wall
time and the critical path (from Snakemake's metadata in <RESULTS_DIR>/../.snakemake; without it, the blocking
chain by time). Not a test.  Run: .venv/bin/python benchmarks/workflow_times.py results"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar.report import times  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", metavar="RESULTS_DIR", help="the workflow's results folder (e.g. results)")
    args = ap.parse_args(argv)
    d = Path(args.results_dir)
    if not d.is_dir():
        print(f"workflow_times: {d} does not exist or is not a folder", file=sys.stderr)
        return 2
    wt = times.load(d)
    if wt is None:
        print(
            f"workflow_times: {d} holds no benchmark files ({d / 'benchmarks'}/**/*.tsv): run the workflow, whose "
            "rules write them (benchmark: directives), first",
            file=sys.stderr,
        )
        return 2
    print(times.format_text(wt), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
