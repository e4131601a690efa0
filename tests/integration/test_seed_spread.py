"""benchmarks/seed_spread.py as a user runs it: arms compared on HAR subject folds of a small real subset (smoke
profile, 2 epochs), paired by (fold, seed), with no test accuracy unless --show-test; and the requests it refuses
before any training."""

import csv
import json
import re
import subprocess
import sys

import pytest

from integration._helpers import REPO
from nvmxbar.stats import paired

TOOL = REPO / "benchmarks" / "seed_spread.py"


@pytest.fixture(scope="module")
def results(har_small, tmp_path_factory):
    """A results folder holding only what the tool reads for a uniform model: data/har.{npz,json}."""
    res = tmp_path_factory.mktemp("results")
    (res / "data").mkdir()
    for name in ("har.npz", "har.json"):
        (res / "data" / name).symlink_to(har_small / name)
    return res


def spread(results, cwd, *args, dataset="har", timeout=240):
    """Run the tool on ``results`` (uniform, 2-bit devices, smoke profile) from ``cwd``."""
    cmd = [sys.executable, str(TOOL), str(results), dataset, "uniform", "2", "--profile", "smoke", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_arms_are_compared_on_validation_folds_pair_by_pair_without_test(results, tmp_path):
    arms = ["--arm", "ref", "--arm", "lr01", "train.har.lr=0.01"]
    p = spread(results, tmp_path, *arms, "--folds", "1", "2", "--seeds", "0", "--jobs", "2", "--csv", "rows.csv")
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert not re.search("test", out, re.IGNORECASE), out  # not a column, not a mean, not a word
    assert "WARNING" not in p.stderr

    # one row per (arm, fold, seed), on the table and in the CSV
    table = re.findall(r"^(ref|lr01)\s+([12])\s+0\s+2\s", out, re.MULTILINE)
    assert sorted(table) == [("lr01", "1"), ("lr01", "2"), ("ref", "1"), ("ref", "2")], out
    rows = list(csv.DictReader(open(tmp_path / "rows.csv")))
    assert {(r["arm"], r["fold"], r["seed"]) for r in rows} == {(a, f, "0") for a in ("ref", "lr01") for f in "12"}
    assert not any("test" in c for c in rows[0]), rows[0].keys()
    assert {"val_trained", "val_xbar"} <= set(rows[0])

    # each fold validates on its own group of whole subjects, none of them the workflow's validation subjects
    held = set(json.loads((results / "data" / "har.json").read_text())["val_subjects"])
    groups = {r["fold"]: frozenset(map(int, r["val_subjects"].split())) for r in rows}
    assert len(groups["1"]) == len(held) == len(groups["2"]) and not groups["1"] & groups["2"]
    assert not (groups["1"] | groups["2"]) & held

    # per arm: mean +- std over n=2 runs; the paired difference of lr01 to ref, as the rows give it
    for arm in ("ref", "lr01"):
        assert re.search(rf"^  {arm}\s+val_trained \d\.\d{{4}} \+- \d\.\d{{4}} .*n=2$", out, re.MULTILINE), out
    num = r"([+-]\d\.\d{4})"
    line = re.search(rf"^  lr01\s+val_xbar\s+{num}\s+\[{num}, {num}\]\s+n=2\s+(.*)$", out, re.MULTILINE)
    assert line, out
    by = {(r["arm"], r["fold"]): float(r["val_xbar"]) for r in rows}
    expect = paired([by["ref", f] for f in "12"], [by["lr01", f] for f in "12"])
    assert float(line[1]) == pytest.approx(expect["diff"], abs=1e-4)
    assert float(line[2]) == pytest.approx(expect["low"], abs=1e-4)
    assert line[4] == ("beyond the fold/seed spread" if expect["beyond"] else "within the spread")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]  # scratch removed, nothing else left behind


def test_show_test_labels_its_columns_and_warns_first(results, tmp_path):
    p = spread(results, tmp_path, "--folds", "1", "--seeds", "0", "--jobs", "1", "--show-test")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.startswith("WARNING (--show-test): the test split must not inform any choice"), p.stderr[:500]
    header = next(line for line in p.stdout.splitlines() if re.match(r"arm\s+fold\s+seed", line))
    assert header.split()[-3:] == ["|", "test_trained", "test_xbar"], header
    assert re.search(r"^config\s+1\s+0\s+2\s.*\|\s+\d\.\d{4}\s+\d\.\d{4}$", p.stdout, re.MULTILINE), p.stdout
    assert "test split, to REPORT only" in p.stdout


@pytest.mark.parametrize(
    "dataset, args, problem",
    [
        ("cifar10", ["--folds", "1", "2"], "cifar10 has no subject ids"),
        ("har", ["--arm", "ref", "--arm", "all", "train.har.fit_on=train+val"], "fit_on=train+val trains on the"),
        ("har", ["--folds", "1", "5"], "hold the same subjects"),
    ],
    ids=["cifar10-folds", "fit-on-train-val", "folds-ran-out"],
)
def test_refused_before_any_training(results, tmp_path, dataset, args, problem):
    p = spread(results, tmp_path, *args, "--scratch", "scratch", dataset=dataset, timeout=120)
    assert p.returncode != 0 and problem in p.stderr, p.stderr[-2000:]
    assert "trained in" not in p.stderr and not (tmp_path / "scratch" / "runs").exists()
