"""Shared fixtures of the three test tiers.

tests/unit: seconds each, no real data (synthetic fixtures); tests/integration: the real data copies, Lightning
training, an MLflow server; tests/workflow: real Snakemake runs; tests/cluster: real services started by the tests
(a SLURM cluster, PostgreSQL, concurrent writers, killed jobs). Each test gets its tier's marker from its folder
(`pytest -m unit`, or `make test-unit`). A test that needs the real data fails, naming what to set, when the data
is absent: it never skips silently.
"""

import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

# before torch loads OpenMP: idle threads sleep, so a test's pool does not starve a Snakemake job it started
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "src"))  # the package under test, even without `pip install -e .`
TIERS = ("unit", "integration", "workflow", "cluster")


def wait_until(ready: Callable[[], bool], timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Wait for an event only a poll can see (a server answering, a queue draining): ``ready()`` checked every
    50 ms until it holds (True), ``alive()`` stops holding or ``timeout`` seconds pass (False). The interval only
    bounds the latency; nothing is assumed to have happened after some time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        if ready():
            return True
        time.sleep(0.05)
    return False


def answers(url: str) -> bool:
    """Whether an HTTP server answers ``url`` with 200 (a refused or unready connection: False)."""
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


#: The order tests run in: the longest files first, so that with two workers (`make test`: pytest-xdist, whole
#: files) the workflow tier's smoke run starts at once and the rest fills the other worker.
RUN_ORDER = ("workflow", "cluster", "integration", "unit")


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS)
        tier = rel.parts[0] if len(rel.parts) > 1 else None
        if tier not in TIERS:
            raise pytest.UsageError(f"{rel}: every test lives in one tier folder: tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
    items.sort(key=lambda item: RUN_ORDER.index(Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]))


def real_data_dir() -> Path | None:
    """The real dataset copies: $NVMXBAR_DATA_DIR (a folder with uci_har/ and cifar10/)."""
    env = os.environ.get("NVMXBAR_DATA_DIR")
    return Path(env).resolve() if env and Path(env).is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data. Fails (not skips) when it is absent: integration and workflow tests need it."""
    d = real_data_dir()
    if d is None:
        pytest.fail(
            "real data not found: set NVMXBAR_DATA_DIR to a folder with uci_har/ and cifar10/ "
            f"(got {os.environ.get('NVMXBAR_DATA_DIR')!r}); `make test` and .ci/run set it for you",
            pytrace=False,
        )
    return d


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def rounding_bound(sim, y, g_max: float | None = None) -> float:
    """What rounding may move a crossbar simulation's outputs ``y`` by (Simulator ``sim``, its last layer; the
    earlier layers' errors are rounded away by the next DAC): the sums' eps (``sim.dtype``) x the roundings in a
    row (a column's rows, the pair or offset subtraction, the slices' shift-add, the row tiles' sum, the step, the
    bias) x the largest sum they round (every row driven at full code through a cell of ``g_max`` dG units,
    default G_max with its G_min offset, in network units), plus float64's rounding of |y| (the digital side)."""
    import torch

    spec = sim.layers[-1]
    steps = int(spec["rows"]) + 2 + int(spec["slices"]) + int(spec["row_tiles"]) + 2
    unit = spec["weight_step"] * spec["dac_fullscale"] / sim.dac_levels
    shift_add = sum(2 ** (sim.mapping["bits"] * k) for k in range(int(spec["slices"])))
    g = sim.L + sim.g_off if g_max is None else g_max
    largest = unit * sim.dac_levels * g * int(spec["rows"]) * shift_add
    return torch.finfo(sim.dtype).eps * steps * largest + torch.finfo(torch.float64).eps * float(y.abs().max())


def small_net(arch: dict, quant: dict | None, seed: int = 0, n: int = 256):
    """A tiny network in float64 on random inputs (9 x 32 windows); a quantized one has its shared
    full-scales calibrated by one training-mode forward. Returns (net in eval mode, inputs)."""
    import torch

    from nvmxbar.core.networks import build

    torch.manual_seed(seed)
    net = build(arch, quant).double()
    x = torch.randn(n, 9, 32, dtype=torch.float64)
    if quant:
        net.train()
        net(x)  # calibrate the shared full-scales
    return net.eval(), x


#: chip.wires of the shipped config (every value from its preset or sizing rule)
WIRES_CFG = {"preset": "neurosim_v13_22nm_1t1r", **dict.fromkeys(("row_ohm_per_cell", "col_ohm_per_cell"), None)}
WIRES_CFG |= {"driver_ohm": None, "sense_ohm": None, "reference_column": "last"}


def wires_of(device: dict, rows: int, cols: int) -> dict:
    """mapping.json's chip.wires for a hand-written chip: the shipped wires at ``device``'s R_on and the tile."""
    from dataclasses import asdict

    from nvmxbar.devices import Device, Wires

    return asdict(Wires.from_config(WIRES_CFG, Device.from_dict(device), rows, cols))


#: map_settings' keys that describe the chip (config section chip), in the flat form the tests write them.
CHIP_KEYS = {"rows": ("tile", "rows"), "cols": ("tile", "cols"), "g_max_us": ("device", "g_max_us")}
CHIP_KEYS |= {k: ("device", k) for k in ("preset", "on_off_ratio", "v_read_v")}
CHIP_KEYS |= {k: (k,) for k in ("dac_bits", "adc_bits", "adc_ratio", "adc_mux", "input_mode", "subtraction")}
CHIP_KEYS |= {"reference_column": ("wires", "reference_column")}


#: A small HAR-shaped network (9 channels x 32 samples, two convolutions, a hidden layer) for the unit tier.
SMALL_ARCH = {
    "in_shape": [9, 32],
    "num_classes": 6,
    "conv": [8, "M", 12, "M"],
    "kernel_size": 5,
    "hidden": [20],
    "dropout": 0.0,
    "bias": True,
}


def chip_of(net) -> dict:
    """The chip keys a quantized network was built for (its converters and drive), in map_settings' flat form."""
    q = getattr(net, "quant", None)
    if q is None:
        return {}
    ratio = "free" if getattr(q, "per_layer", False) else q.adc_ratio
    return {"dac_bits": q.dac_bits, "adc_bits": q.adc_bits, "adc_ratio": ratio, "input_mode": q.input_mode}


def map_settings(**over):
    """MapSettings of the shipped defaults (dac/adc bits 4/6), with ``over`` replacing keys: the chip's in their flat
    form (rows, cols, preset, g_max_us, on_off_ratio, v_read_v, dac_bits, adc_bits, adc_ratio, adc_mux, input_mode,
    subtraction) and map_crossbar's."""
    from nvmxbar import config
    from nvmxbar.chip import Chip
    from nvmxbar.settings import MapSettings, Pricing

    chip: dict = {}
    for k, path in CHIP_KEYS.items():
        if k in over:
            node = chip
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = over.pop(k)
    cfg = config.validate({"chip": chip, "map_crossbar": over})
    return MapSettings.from_config(
        cfg["map_crossbar"], Chip.from_config(cfg["chip"]), Pricing.from_config(cfg["estimate_cost"])
    )


def make_synthetic_npz(
    path: Path,
    n_train: int = 96,
    n_val: int = 48,
    n_test: int = 48,
    channels: int = 9,
    length: int = 32,
    classes: int = 3,
    seed: int = 0,
) -> Path:
    """A prepared-npz lookalike (float windows, normalised) of a learnable toy task: the class is the sign
    pattern of a channel's mean. With its .json provenance beside it."""
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        y = rng.integers(0, classes, n)
        x = rng.normal(0, 1, (n, channels, length)).astype(np.float32)
        x[np.arange(n), y % channels, :] += 2.0
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y.astype(np.int64)
    arrays["class_names"] = np.array([f"c{i}" for i in range(classes)])
    arrays["norm_mean"] = np.zeros(channels, np.float32)
    arrays["norm_std"] = np.ones(channels, np.float32)
    np.savez(path, **arrays)
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "source": {"sha256": "synthetic"},
                "counts": {s: int(len(arrays[f"y_{s}"])) for s in ("train", "val", "test")},
            }
        )
    )
    return path
