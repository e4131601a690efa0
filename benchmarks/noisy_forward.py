"""Benchmark: one noisy crossbar forward of a 561 x 256 layer at batch 512 (2 threads), per chip and for
10 chips at once. Prints figures; not a test.  Run: .venv/bin/python benchmarks/noisy_forward.py"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.networks import build  # noqa: E402
from nvmxbar.core.schemes import map_network  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.settings import Device, Drift, MapSettings, NoiseModel, Tile  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
ARCH = {"in_shape": [561], "num_classes": 256, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0, "bias": True}
QUANT = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6}
MAP = MapSettings(
    tile=Tile(128, 128),
    device=Device(166.67, 150.0),
    bias="row",
    adc_mux=8,
    input_mode="bit_serial",
    baseline_weight_bits=8,
    baseline_dac_bits=4,
    baseline_adc_bits=6,
    calibration_samples=512,
)
net = build(ARCH, QUANT)
x = torch.randn(512, 561)
net.train()
net(x)
net.eval()
arrays, mapping = map_network(net, 2, MAP)
sim = Simulator(arrays, mapping)
model = NoiseModel(
    prog_sigma=0.02,
    read_sigma=0.01,
    stuck_min=0.001,
    stuck_max=0.001,
    on_off_ratio=None,
    drift_t_s=0,
    drift=Drift(t0_s=1.0, nu=0.05, nu_std=0.01, compensation=True),
)
print(
    f"layer 561 x 256 -> {mapping['total']['tiles']} tiles of 128 x 128, batch 512, {torch.get_num_threads()} threads"
)
for chips in (1, 10):
    times = []
    for rep in range(4):
        pert = noise.Perturbation(model, chips, sim, torch.Generator().manual_seed(rep))
        t = time.perf_counter()
        sim.forward(x, perturb=pert)
        times.append(time.perf_counter() - t)
    best = min(times[1:])
    print(
        f"{chips:3d} chip(s): {best * 1e3:8.1f} ms per forward ({best / chips * 1e3:.1f} ms per chip), incl. drawing the chips"
    )
t = time.perf_counter()
sim.forward(x)
print(f"ideal (no perturbation): {(time.perf_counter() - t) * 1e3:.1f} ms")
