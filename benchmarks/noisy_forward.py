"""Benchmark: the crossbar simulator against the floor of its arithmetic. One noisy forward of a 561 x 256 layer
(uniform, 2-bit devices, 128 x 128 tiles) at batch 512, for 1 and 25 chips. The floor per chip is one float32
matmul of the layer's own weight shape (512 x 561 @ 561 x 256), plus one more when read noise is on.
Prints figures; not a test.  Run: .venv/bin/python benchmarks/noisy_forward.py [--threads 2] [--device auto]"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.networks import build  # noqa: E402
from nvmxbar.core.schemes import map_network  # noqa: E402
from nvmxbar.core.simulator import Simulator, auto_device  # noqa: E402
from nvmxbar.settings import Device, Drift, MapSettings, NoiseModel, Tile  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--device", default="auto")
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
device = auto_device(args.device)
ARCH = {"in_shape": [561], "num_classes": 256, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0, "bias": True}
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
net = build(ARCH, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
x = torch.randn(512, 561)
net.train()
net(x)
net.eval()
arrays, mapping = map_network(net, 2, MAP)
sim = Simulator(arrays, mapping, device=device)
drift = Drift(t0_s=1.0, nu=0.05, nu_std=0.01, compensation="global")
MODELS = {
    "programming noise": NoiseModel(0.02, 0.0, 0.0, 0.0, None, 0, drift),
    "all six non-idealities, read noise on": NoiseModel(0.02, 0.01, 0.001, 0.001, None, 1e4, drift),
}


def sync() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_of(fn, repeats: int = args.repeats) -> float:
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times[1:]) if len(times) > 1 else times[0]


xd = x.to(device)
W = torch.randn(561, 256, device=device)
one_matmul = best_of(lambda: xd @ W)
print(
    f"layer 561 x 256 on {mapping['total']['tiles']} tiles of 128 x 128 (uniform, 2-bit), batch 512, "
    f"{torch.get_num_threads()} threads, {device}"
)
print(f"floor: one float32 matmul 512 x 561 @ 561 x 256 = {one_matmul * 1e3:.2f} ms")
print(f"ideal devices (exact integer sums): {best_of(lambda: sim.forward(x)) * 1e3:.2f} ms")
for name, model in MODELS.items():
    matmuls = 2 if model.read_sigma else 1
    print(f"{name}: floor {matmuls} matmul(s) per chip = {matmuls * one_matmul * 1e3:.2f} ms")
    for n in (1, 25):
        gen = torch.Generator().manual_seed(0)
        draw = best_of(lambda: sim.chips(noise.Perturbation(model, n, sim, gen)), 3)  # noqa: B023
        chips = sim.chips(noise.Perturbation(model, n, sim, gen))
        fwd = best_of(lambda: sim.forward(x, perturb=chips))  # noqa: B023
        per_chip = fwd / n
        print(
            f"  {n:2d} chip(s): {fwd * 1e3:8.2f} ms per forward, {per_chip * 1e3:6.2f} ms per chip = "
            f"{per_chip / (matmuls * one_matmul):4.2f} x the floor (drawing the chips, once: {draw / n * 1e3:.2f} ms per chip)"
        )
