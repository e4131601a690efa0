#!/usr/bin/env python3
"""Compare the numbers of two results folders (e.g. before and after a refactoring).

Compared, for every file present in either folder:
  */metrics.json, */noise_summary.json, */cost.json, */nas/arch.json, */nas/finalists/*.json: every number and string
  */mapping.json: every number (the totals and each layer's counts and scales)
  data/*.json: the provenance of the prepared splits
  */noise.csv, */nas/trials.csv, */nas/pareto.csv, tables/*.csv: every cell
Ignored: what differs from run to run by nature: wall and fit times, MLflow run ids (and group run ids), the file
paths a run records (VOLATILE below). Exit status 0 when everything compared is identical, 1 otherwise.

    python tools/compare_results.py results_before results_after [--tol 0] [--rename OLD=NEW ...]

``--rename OLD=NEW`` compares a key path of the before folder's JSON documents (a prefix, e.g.
``converters.adc_bits=chip.adc_bits`` or ``tile=chip.tile``) with NEW in the after folder: a field that moved when a
file's layout changed is still compared by value. ``OLD=-`` says the field was dropped on purpose (it is listed,
not counted as a difference).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path

JSON_GLOBS = (
    "*/**/metrics.json",
    "*/**/noise_summary.json",
    "*/**/cost.json",
    "*/**/mapping.json",
    "*/**/nas/arch.json",
    "*/**/nas/finalists/*.json",
    "data/*.json",
)
CSV_GLOBS = ("*/**/noise.csv", "*/**/nas/trials.csv", "*/**/nas/pareto.csv", "tables/*.csv")
#: Folders that hold copies (MLflow's artifact store) or no numbers (job logs, Snakemake's own state).
SKIP = ("mlartifacts", "logs", ".snakemake")
VOLATILE = re.compile(
    r"(wall_time|fit_time|_time_s$|time_s$|mlflow_run_id|mlflow_group_run_id|^storage$|source_model|^path$|"
    r"checksum_time|created|timestamp)"
)


def leaves(obj, prefix=""):
    """(key path, value) of every leaf of a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def volatile(key: str) -> bool:
    return any(VOLATILE.search(part) for part in re.split(r"[.\[\]]", key) if part)


def same(a, b, tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def cell(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def renamed(key: str, renames: dict[str, str]) -> str | None:
    """``key`` of the before folder as the after folder names it (None: dropped on purpose)."""
    for old, new in renames.items():
        if key == old or key.startswith(old + ".") or key.startswith(old + "["):
            return None if new == "-" else new + key[len(old) :]
    return key


def compare_json(a: Path, b: Path, tol: float, renames: dict[str, str] | None = None) -> list[str]:
    da = {}
    for k, v in leaves(json.loads(a.read_text())):
        k2 = renamed(k, renames or {})
        if k2 is not None:
            da[k2] = v
    db = dict(leaves(json.loads(b.read_text())))
    out = []
    for k in sorted(set(da) | set(db)):
        if volatile(k):
            continue
        if k not in da or k not in db:
            out.append(f"{k}: only in {'after' if k not in da else 'before'}")
        elif not same(da[k], db[k], tol):
            out.append(f"{k}: {da[k]!r} != {db[k]!r}")
    return out


def compare_csv(a: Path, b: Path, tol: float, renames: dict[str, str] | None = None) -> list[str]:
    ra, rb = list(csv.DictReader(a.open())), list(csv.DictReader(b.open()))
    if len(ra) != len(rb):
        return [f"{len(ra)} rows != {len(rb)} rows"]
    out = []
    for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
        for k in sorted(set(x) | set(y)):
            if volatile(k):
                continue
            if not same(cell(x.get(k, "<missing>")), cell(y.get(k, "<missing>")), tol):
                out.append(f"row {i} {k}: {x.get(k)!r} != {y.get(k)!r}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tol", type=float, default=0.0, help="relative tolerance for numbers (default 0: identical)")
    ap.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="a JSON key path that moved")
    args = ap.parse_args(argv)
    bad = [r for r in args.rename if r.count("=") != 1 or not r.split("=")[0]]
    if bad:
        ap.error(f"--rename takes OLD=NEW (NEW '-' = dropped), got {bad}")
    renames = dict(r.split("=") for r in args.rename)
    for d in (args.before, args.after):
        if not d.is_dir():
            ap.error(f"{d}: not a results folder")
    total = differing = 0
    for globs, fn in ((JSON_GLOBS, compare_json), (CSV_GLOBS, compare_csv)):
        rel = sorted(
            {
                p.relative_to(d)
                for d in (args.before, args.after)
                for g in globs
                for p in d.glob(g)
                if p.relative_to(d).parts[0] not in SKIP
            }
        )
        for r in rel:
            a, b = args.before / r, args.after / r
            total += 1
            if not (a.exists() and b.exists()):
                differing += 1
                print(f"DIFF {r}: only in {'before' if a.exists() else 'after'}")
                continue
            diffs = fn(a, b, args.tol, renames)
            if diffs:
                differing += 1
                print(f"DIFF {r}: {len(diffs)} value(s)")
                for d in diffs[:8]:
                    print(f"     {d}")
    by = {}
    for g in JSON_GLOBS + CSV_GLOBS:
        name = g.split("/")[-1]
        by[name] = len({p for p in args.before.glob(g) if p.relative_to(args.before).parts[0] not in SKIP})
    print("files compared: " + ", ".join(f"{n} {k}" for k, n in by.items() if n))
    if renames:
        print("renamed: " + ", ".join(f"{k} -> {v}" if v != "-" else f"{k} dropped" for k, v in renames.items()))
    print(f"{total} files, {total - differing} identical, {differing} differ (relative tolerance {args.tol})")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
