"""Every script in benchmarks/ runs against today's code, on a tiny setting, and prints its figures.

The scripts read what the workflow writes, so a real Snakemake run (smoke profile, HAR, uniform 2-bit devices,
seeds 0 and 1, CIFAR-10 prepared on a 256/64/64-image subset) makes their results folder: that is why this test
lives in the workflow tier. Each script then runs as a user runs it (a subprocess, its tiny arguments from TINY),
must exit 0 and print its header and rows, whose numbers are parsed and checked (finite, positive, in range, and
equal to what the results folder holds where it prints it). A script in benchmarks/ without an entry in TINY fails
the test: a new benchmark cannot rot unnoticed either.
"""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from nvmxbar import config
from nvmxbar.core import networks

BENCH = REPO / "benchmarks"
SMK = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml")]
SEEDS = (0, 1)
CIFAR_LIMIT = {"train": 256, "val": 64, "test": 64}
#: What the workflow builds for the scripts: seed 0's noise sweep (recorded time), seed 1 mapped only (no sweep).
TARGETS = (
    "results/har/uniform/b2/seed0/noise_summary.json",
    "results/har/uniform/b2/seed1/crossbar.npz",
    "results/data/cifar10.npz",
)
NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf)"


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_dir) -> Path:
    """A results folder made by the real workflow's stages (prepare_data, train, map_crossbar, evaluate_noise)."""
    work = tmp_path_factory.mktemp("bench")
    limit = ", ".join(f"{k}: {v}" for k, v in CIFAR_LIMIT.items())
    cmd = SMK + ["-d", str(work), "--cores", "2", "--config", "profile=smoke", "datasets=[har,cifar10]"]
    cmd += ["variants=[uniform]", f"seeds=[{','.join(map(str, SEEDS))}]", f"data_dir={data_dir}", "download=false"]
    cmd += [f"prepare_data={{cifar10: {{limit: {{{limit}}}}}}}", "--", *TARGETS]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    one_device(work / "results", work / "onedevice")
    return work / "results"


def one_device(results: Path, out: Path) -> None:
    """A results folder beside ``results`` holding one mapped one-device (unipolar) HAR deployment, seed 0: the
    smoke config's network with all-positive weights and the input split, its full-scales calibrated on training
    windows, mapped by the workflow's own mapping (the scripts that study the reference column read it)."""
    import torch

    from nvmxbar import files
    from nvmxbar.chip import Chip
    from nvmxbar.core.schemes import map_network
    from nvmxbar.data.arrays import network_inputs
    from nvmxbar.settings import MapSettings, Pricing, QuantSettings

    cfg = config.load(REPO / "config.yaml", {"profile": "smoke"})
    (out / "data").mkdir(parents=True)
    for name in ("har.npz", "har.json"):
        (out / "data" / name).symlink_to(results / "data" / name)
    chip = Chip.from_config(cfg["chip"])
    quant = QuantSettings.from_config("unipolar", 2, cfg["quant"], chip).quantizer_kwargs()
    x, _ = network_inputs(results / "data" / "har.npz", "train", 64)
    model = {**cfg["model"]["har"], "polarity": "positive", "input_split": True}
    torch.manual_seed(0)
    net = networks.build(networks.make_arch(list(x.shape[1:]), 6, model), quant).train()
    net(x)  # calibrates the shared full-scales
    ms = MapSettings.from_config(cfg["map_crossbar"], chip, Pricing.from_config(cfg["estimate_cost"]))
    arrays, mapping = map_network(net.eval(), 2, ms.for_variant("unipolar"))
    d = out / "har" / "unipolar" / "b2" / "seed0"
    d.mkdir(parents=True)
    np.savez(d / "crossbar.npz", **arrays)
    files.write_json(d / "mapping.json", mapping)


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(NUM, text)]


def finite_positive(values: list[float], what: str) -> None:
    assert values and all(math.isfinite(v) and v > 0 for v in values), f"{what}: {values}"


def line(out: str, pattern: str) -> re.Match:
    """The one line of ``out`` matching ``pattern`` (from its start)."""
    found = [m for m in (re.match(pattern, s) for s in out.splitlines()) if m]
    assert len(found) == 1, f"{len(found)} lines match {pattern!r} in:\n{out}"
    return found[0]


# ------------------------------------------------------------------ each script: its tiny arguments and its figures
def check_cifar10_probe(out: str, results: Path) -> None:
    doc = json.loads(out.strip().splitlines()[-1])
    assert (doc["arm"], doc["seed"], doc["epochs"]) == ("shallow_positive", 0, 1)
    (epoch,) = doc["curve"]  # one row per epoch
    assert math.isfinite(epoch["train_loss"]) and epoch["train_loss"] > 0
    assert 0 <= epoch["train_acc"] <= 1 and 0 <= epoch["val_acc"] <= 1
    # the script's own evaluation of the fitted (last-epoch) network is the curve's last validation accuracy
    assert doc["val"] == pytest.approx(epoch["val_acc"], abs=1e-4)
    assert doc["s"] > 0


def check_ir_drop_speed(out: str, results: Path) -> None:
    head = r"IR drop: 1 chips x 2 tiles of 16 x 16, G uniform in \[0.1, 1\] x 0.0001 S \(float32\), "
    line(out, head + r"r_row = r_col = 0.93 Ohm, 1 threads, \w+$")
    line(out, r"case\s+problems\s+R x n\s+rhs\s+iterations\s+residual\s+seconds\s+deficit$")
    deficits = []
    for name, problems, shape, rhs in (("all columns", 2, "16 x 16", 16), ("2 mux phases", 4, "16 x 8", 8)):
        row = line(out, rf"{name}\s+(\d+)\s+{shape}\s+(\d+)\s+(\d+)-(\d+)\s+({NUM})\s+({NUM})\s+({NUM})%$")
        assert (int(row[1]), int(row[2])) == (problems, rhs), row[0]
        assert 1 <= int(row[3]) <= int(row[4]) <= 200 and 0 < float(row[5]) <= 1e-6, row[0]  # the default rtol
        finite_positive([float(row[6]), float(row[7])], f"seconds and deficit of {name}")
        deficits.append(float(row[7]))
    assert deficits[1] < deficits[0] < 100  # a phase's rows carry half the current
    finite_positive([float(line(out, rf"matmul, 50 inputs\s+2\s+16 x 16\s+-\s+-\s+-\s+({NUM})\s+-$")[1])], "matmul")


def check_ir_drop_check(out: str, results: Path) -> None:
    """The smoke run's uniform 2-bit deployments (seed 0 only) under rram_wan2022: every layer's fast-model error under
    the bound, a measurable IR drop."""
    line(out, r"wires x 1; error: fast model against the exact solve; IR drop: exact against ideal wires$")
    rows = re.findall(
        rf"^\| (har/uniform/b2/seed\d) \| rram_wan2022 \| (\S+) \| 1 \| ({NUM}) \| ({NUM}) \| ({NUM}) %", out, re.M
    )
    mapping = json.loads((results / "har" / "uniform" / "b2" / "seed0" / "mapping.json").read_text())
    assert [r[1] for r in rows] == [lay["name"] for lay in mapping["layers"]] and {r[0] for r in rows} == {
        "har/uniform/b2/seed0"
    }
    for _, _, worst, mean, drop in rows:
        assert 0 <= float(mean) <= float(worst) <= 1e-5 and 0 < float(drop) < 100
    assert float(line(out, rf"largest relative error ({NUM}) \(bound 1e-05\)$")[1]) == max(float(r[2]) for r in rows)


def check_layer_activity(out: str, results: Path) -> None:
    cfg = config.load(REPO / "config.yaml", {"profile": "full"})
    n_layers = networks.n_weight_layers(cfg["model"]["cifar10"])
    assert out.startswith("cifar10, 2-bit weights, polarity row_groups\nat initialisation:\n"), out[:300]
    init, after = out.split("at initialisation:\n")[1].split("after 2 steps (lr 0.003):\n")
    pct, val = r"\s*(\d+\.\d)%", rf"\s*({NUM})"
    row = rf"  L(\d+)  inputs != 0{pct}  weights != 0{pct}  outputs > 0{pct}  mean{val}  std{val}$"
    for block in (init, after):
        rows = [re.match(row, s) for s in block.splitlines() if s.startswith("  L")]
        assert all(rows) and [int(m[1]) for m in rows] == list(range(n_layers)), block
        for m in rows:
            assert all(0 <= float(m[k]) <= 100 for k in (2, 3, 4)) and math.isfinite(float(m[5]))
            assert math.isfinite(float(m[6])) and float(m[6]) >= 0
    steps = re.findall(rf"^step (\d+): loss ({NUM})  logits == 0\s*(\d+\.\d)%  grad ({NUM})$", init, re.MULTILINE)
    assert [int(s[0]) for s in steps] == [0, 1], init
    finite_positive([float(s[1]) for s in steps], "losses")
    assert all(math.isfinite(float(s[3])) and float(s[3]) >= 0 for s in steps)


def check_noise_sweep(out: str, results: Path) -> None:
    head = line(out, r"har: timed on (\d+) test samples, 2 chips; full-profile sweep = (\d+) settings \((\d+) noisy\)")
    with np.load(results / "data" / "har.npz") as d:
        assert int(head[1]) == min(32, len(d["y_test"]))
    assert int(head[2]) > int(head[3]) > 0
    line(out, r"model\s+tiles\s+devices\s+recorded sweep\s+1 setting, 2 chips, \d+\s+us/chip-sample\s+sweep")
    # one row per deployment and seed: every mapped model of the folder, by its <variant>/b<bits>/seed<s>
    rows = {}
    for s in out.splitlines():
        m = re.match(rf"(\S+/b\d+/seed\d+)\s+(\d+)\s+(\d+)\s+({NUM})s\s+({NUM})s\s+({NUM})\s+({NUM})s$", s)
        if m:
            rows[m[1]] = m
    mapped = sorted(p.parent for p in results.glob("har/*/b*/seed*/crossbar.npz"))
    assert (
        sorted(rows) == [str(d.relative_to(results / "har")) for d in mapped] == [f"uniform/b2/seed{s}" for s in SEEDS]
    )
    recorded = 0.0
    for d in mapped:
        m = rows[str(d.relative_to(results / "har"))]
        total = json.loads((d / "mapping.json").read_text())["total"]
        assert (int(m[2]), int(m[3])) == (total["tiles"], total["devices"])
        summary = d / "noise_summary.json"
        if summary.exists():  # the sweep's recorded wall time; nan where the sweep has not run (seed 1)
            recorded += json.loads(summary.read_text())["wall_time_s"]
            assert float(m[4]) == pytest.approx(json.loads(summary.read_text())["wall_time_s"], abs=0.051)
        else:
            assert m[4] == "nan"
        finite_positive([float(m[k]) for k in (5, 6, 7)], f"timing of {m[1]}")
    last = line(out, rf"all\s+({NUM})s\s+({NUM})s$")
    assert float(last[1]) == pytest.approx(recorded, abs=0.051)
    assert float(last[2]) == pytest.approx(sum(float(m[7]) for m in rows.values()), rel=1e-3, abs=0.2)


def check_noisy_forward(out: str, results: Path) -> None:
    head = line(out, r"layer 561 x 256 on (\d+) tiles of 128 x 128 \(uniform, 2-bit, (\w+)\), batch 16, \d+ threads")
    assert int(head[1]) > 0
    floor = float(line(out, rf"floor: one float32 matmul 16 x 561 @ 561 x 256 = ({NUM}) ms$")[1])
    ideal = float(line(out, rf"ideal devices \(exact integer sums\): ({NUM}) ms$")[1])
    finite_positive([floor, ideal], "floor, ideal")
    chip_row = re.compile(
        rf"\s+(\d+) chip\(s\):\s+({NUM}) ms per forward,\s+({NUM}) ms per chip =\s+({NUM}) x the floor "
        rf"\(drawing the chips, once: ({NUM}) ms per chip\)$"
    )
    for name, matmuls in (("programming noise", 1), ("all six non-idealities, read noise on", 2)):
        block = out.split(f"{name}: floor {matmuls} matmul(s) per chip = ")[1].splitlines()
        assert float(block[0].removesuffix(" ms")) == pytest.approx(matmuls * floor, abs=2e-3)
        rows = [chip_row.match(s) for s in block[1:3]]
        assert all(rows) and [int(m[1]) for m in rows] == [1, 2], block
        for m in rows:
            finite_positive([float(m[k]) for k in (2, 3, 4, 5)], f"{name}, {m[1]} chips")
            assert float(m[3]) == pytest.approx(float(m[2]) / int(m[1]), abs=2e-3)
    block = out.split("the six, wires and converter error on: floor 2 matmul(s) per chip = ")[1].splitlines()
    assert [int(chip_row.match(s)[1]) for s in block[1:3]] == [1, 2], block
    ratios = out.split("wires and converter error on, against the same forward without them:")[1].splitlines()[1:3]
    for n, r in zip((1, 2), ratios, strict=True):
        finite_positive([float(line(r, rf"\s+{n} chip\(s\):\s+({NUM}) x$")[1])], f"ratio at {n} chips")


def check_seed_spread(out: str, results: Path) -> None:
    assert out.startswith("har/uniform/b2, profile smoke, set train.har.epochs=1: 1 arm(s) x 1 fold(s) x 1 seed(s)")
    cols = r"val_trained\s+val_xbar\s+val_noisy\s+val_wires\s+val_realistic\s+area_mm2\s+energy_nj\s+i_max_ua"
    line(out, rf"arm\s+fold\s+seed\s+epoch\s+train_s\s+{cols}$")
    row = line(out, rf"config\s+0\s+0\s+1\s+({NUM})" + rf"\s+({NUM})" * 8 + "$")
    finite_positive([float(row[k]) for k in (1, 7, 8, 9)], "train_s, area, energy and current")
    assert all(0 <= float(row[k]) <= 1 for k in (2, 3, 4, 5, 6)), row[0]
    assert 0.001 < float(row[7]) < 1 and 0.1 < float(row[8]) < 1000, row[0]  # mm^2 and nJ of a small HAR network
    assert 1 < float(row[9]) < 10_000, row[0]  # uA: 128 rows of cells up to 40 uS at 0.2 V draw at most 1 mA
    mean = line(out, rf"  config val_trained ({NUM}) \+- nan   val_xbar ({NUM}) .*n=1$")  # one run: no spread
    assert (float(mean[1]), float(mean[2])) == (float(row[2]), float(row[3]))


def check_reference_column(out: str, results: Path) -> None:
    assert out.startswith("test accuracy (%) of the one-device deployments of "), out[:200]
    line(out, r"deployment\s+seed\s+ideal\s+last\s+first\s+middle$")
    row = line(out, rf"har/unipolar/b2\s+0\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})$")
    assert all(0 <= float(row[k]) <= 100 for k in (1, 2, 3, 4)), row[0]
    for where in ("first", "middle"):
        line(out, rf"    {where} - last: [+-]{NUM} points no interval \(one seed\)$")  # the smoke run: seed 0 alone


def check_train_throughput(out: str, results: Path) -> None:
    assert out.startswith("CIFAR-10 training throughput, batch 8, "), out[:200]
    line(out, r"net\s+variant\s+img/s\s+best\s+ms/step\s+first step$")
    for variant in ("uniform", "unipolar"):
        step = line(out, rf"cifar\s+{variant}\s+({NUM})\s+({NUM})\s+({NUM})\s+({NUM})s$")
        finite_positive([float(step[k]) for k in (1, 2, 3, 4)], f"steps of {variant}")
        assert float(step[2]) >= float(step[1])  # the best step is at least the median one
        epoch = line(out, rf"{variant}\s+(\S+)\s+({NUM})\s+({NUM})\s+({NUM})s$")
        finite_positive([float(epoch[k]) for k in (2, 3, 4)], f"epoch of {variant}")
        secs, rate = float(epoch[2]), float(epoch[3])  # img/s = 64 images / s, s printed to 0.1
        assert 64 / (secs + 0.05) - 0.05 <= rate <= (64 / (secs - 0.05) if secs > 0.05 else math.inf) + 0.05
    line(out, r"epoch of the workflow's training \(config train.cifar10, 64 synthetic images \+ 32 val\):$")
    mc = line(
        out,
        rf"Monte Carlo: CIFAR network, uniform 2-bit on (\d+) tiles of 128x128, 2 chips at prog_sigma "
        rf"1.0, batch 8: ({NUM}) chip-images/s",
    )
    finite_positive([float(mc[1]), float(mc[2])], "Monte Carlo")


def check_workflow_times(out: str, results: Path) -> None:
    tsv = sorted((results / "benchmarks").rglob("*.tsv"))
    line(out, rf"Jobs with a benchmark file under {re.escape(str(results / 'benchmarks'))}: {len(tsv)}$")
    line(out, r"rule\s+jobs\s+wall_s total")
    for rule in ("prepare_data", "train", "map_crossbar", "evaluate_noise"):
        jobs = sum(1 for p in tsv if p.relative_to(results / "benchmarks").parts[0] == rule)
        row = line(out, rf"{rule}\s+(\d+)\s+(.*)$")
        assert int(row[1]) == jobs > 0
        finite_positive(numbers(row[2]), f"{rule}'s times")
    finite_positive([float(line(out, rf"Total wall time: ({NUM}) s")[1])], "total wall time")


def check_noise_setting_times(out: str, results: Path) -> None:
    logs = sorted((results / "logs" / "evaluate_noise").rglob("*.log"))
    head = line(out, rf"(\d+) evaluate_noise jobs, (\d+) settings; run CPU ({NUM}) s")
    assert int(head[1]) == len(logs) > 0 and int(head[2]) >= 3 * len(logs)  # the sweep, an extra, the realistic chip
    for kind in ("sweep", "extra", "realistic"):
        assert re.search(rf"^{kind}\s", out, re.M), f"no {kind} row"
    growth = line(out, rf"the extra settings and the realistic chip: ({NUM}) CPU s; the run without them ({NUM}) s; "
                       rf"growth ({NUM}) %")  # fmt: skip
    finite_positive([float(growth[k]) for k in (1, 2, 3)], "the extras share")


#: script -> (its tiny arguments, "{results}" standing for the results folder; the check of what it prints)
TINY = {
    "cifar10_probe.py": ("{results}/data/cifar10.npz shallow_positive --epochs 1", check_cifar10_probe),
    "ir_drop_check.py": ("{results} --tiles 1 --presets rram_wan2022", check_ir_drop_check),
    "ir_drop_speed.py": ("--chips 1 --tiles 2 --size 16 --phases 2 --inputs 50 --threads 1", check_ir_drop_speed),
    "layer_activity.py": (
        "{results}/data/cifar10.npz --polarity row_groups --steps 2 --batch 16",
        check_layer_activity,
    ),
    "noise_setting_times.py": ("{results}", check_noise_setting_times),
    "noise_sweep.py": ("{results} har --chips 2 --samples 32 --threads 1", check_noise_sweep),
    "noisy_forward.py": ("--batch 16 --chips 1 2 --repeats 2 --threads 1 --wires-and-converters", check_noisy_forward),
    "seed_spread.py": (
        "{results} har uniform 2 --profile smoke --seeds 0 --jobs 1 --noise 0.02 --chips 2 --set train.har.epochs=1 "
        "--realistic --cost",
        check_seed_spread,
    ),
    "reference_column.py": ("{results}/../onedevice --samples 64", check_reference_column),
    "train_throughput.py": (
        "--device cpu --threads 1 --nets cifar --variants uniform unipolar --steps 1 --batch 8 --epoch-images 64 "
        "--val-images 32 --mc-chips 2 --mc-batch 8",
        check_train_throughput,
    ),
    "workflow_times.py": ("{results}", check_workflow_times),
}
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))


def test_every_benchmark_has_a_tiny_run():
    assert SCRIPTS and set(TINY) == set(SCRIPTS), (
        f"benchmarks/ without a tiny run in TINY: {sorted(set(SCRIPTS) - set(TINY))}; "
        f"TINY entries without a script: {sorted(set(TINY) - set(SCRIPTS))}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_and_prints_its_figures(script, results, tmp_path):
    assert script in TINY, f"benchmarks/{script} has no tiny argument list in TINY (tests/workflow/test_benchmarks.py)"
    args, check = TINY[script]
    cmd = [sys.executable, str(BENCH / script), *(a.format(results=results) for a in args.split())]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    check(p.stdout, results)


@pytest.mark.parametrize(
    "script, args, problem",
    [
        ("noise_sweep.py", ["{tmp}", "har"], "har.npz not found: run the workflow (rules prepare_data, map_crossbar)"),
        ("noisy_forward.py", ["--chips", "0"], "--repeats, --batch and --chips: at least 1"),
    ],
    ids=["noise-sweep-empty-folder", "noisy-forward-no-chips"],
)
def test_benchmark_refuses_bad_input_clearly(script, args, problem, tmp_path):
    cmd = [sys.executable, str(BENCH / script), *(a.format(tmp=tmp_path) for a in args)]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and problem in p.stderr, p.stderr[-2000:]
    assert not p.stdout, p.stdout  # no table, not even its header
