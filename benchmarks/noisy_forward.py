"""Benchmark: the crossbar simulator against the floor of its arithmetic. One noisy forward of a 561 x 256 layer
(uniform, 2-bit devices, config.yaml's chip with 128 x 128 tiles and the pcm_aihwkit device, which has read noise
and drift) at batch 512, for 1 and 25 chips. The floor per chip is one float32 matmul of the layer's own weight
shape (512 x 561 @ 561 x 256), plus one more when read noise is on. Prints figures; not a test.

With --wires-and-converters, the all-six setting is timed again with the chip's wires (IR drop, wire_scale 1) and the
cited converter errors (adc_error_scale 1) on, in the same run: the ratio of the two forwards (issue 30's bound: 3x).

Run: .venv/bin/python benchmarks/noisy_forward.py [--threads 2] [--device auto] [--repeats 5] [--batch 512]
     [--chips 1 25] [--wires-and-converters]
Tiny: --batch 16 --chips 1 2 --repeats 2 --wires-and-converters
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.chip import Chip  # noqa: E402
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.networks import build  # noqa: E402
from nvmxbar.core.schemes import map_network  # noqa: E402
from nvmxbar.core.simulator import Simulator, auto_device  # noqa: E402
from nvmxbar.settings import Drift, MapSettings, NoiseModel, Pricing, QuantSettings  # noqa: E402

IN, OUT, TILE, BITS = 561, 256, 128, 2
ARCH = {"in_shape": [IN], "num_classes": OUT, "conv": [], "kernel_size": 3, "hidden": [], "dropout": 0.0, "bias": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5, help="timed forwards per figure, the best after the first")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--chips", type=int, nargs="+", default=[1, 25], help="chips simulated at once")
    ap.add_argument("--wires-and-converters", action="store_true", help="also time the all-six setting with IR drop "
                    "and converter error on (wire_scale 1, adc_error_scale 1), and print the ratio")  # fmt: skip
    args = ap.parse_args()
    if args.repeats < 1 or args.batch < 1 or min(args.chips) < 1:
        ap.error("--repeats, --batch and --chips: at least 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = auto_device(args.device)
    # config.yaml's chip (converters, device, drive) on the tile this benchmark is about
    # (pcm_aihwkit: the preset with read noise and drift, which the all-six setting switches on)
    over = {"chip": {"tile": {"rows": TILE, "cols": TILE}, "device": {"preset": "pcm_aihwkit"}}}
    cfg = config.load(ROOT / "config.yaml", over)
    chip = Chip.from_config(cfg["chip"])
    quant = QuantSettings.from_config("uniform", BITS, cfg["quant"], chip)
    settings = MapSettings.from_config(
        cfg["map_crossbar"], chip, Pricing.from_config(cfg["estimate_cost"])
    ).for_variant("uniform")
    net = build(ARCH, quant.quantizer_kwargs())
    x = torch.randn(args.batch, IN)
    net.train()
    net(x)  # calibrates the shared full-scales
    net.eval()
    arrays, mapping = map_network(net, BITS, settings)
    sim = Simulator(arrays, mapping, device=device)
    drift = Drift.from_config(cfg["evaluate_noise"]["drift"])  # the all-six setting drifts for 10^4 s
    models = {  # scales of the device's noise
        "programming noise": NoiseModel(1.0, 0.0, 0.0, 0.0, None, 0, drift),
        "all six non-idealities, read noise on": NoiseModel(1.0, 1.0, 0.001, 0.001, None, 1e4, drift),
    }
    if args.wires_and_converters:
        six = models["all six non-idealities, read noise on"]
        models["the six, wires and converter error on"] = replace(six, wire_scale=1.0, adc_error_scale=1.0)
    forwards: dict[str, dict[int, float]] = {}

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
    W = torch.randn(IN, OUT, device=device)
    one_matmul = best_of(lambda: xd @ W)
    print(
        f"layer {IN} x {OUT} on {mapping['total']['tiles']} tiles of {TILE} x {TILE} (uniform, {BITS}-bit, "
        f"{chip.input_mode}), batch {args.batch}, {torch.get_num_threads()} threads, {device}"
    )
    print(f"floor: one float32 matmul {args.batch} x {IN} @ {IN} x {OUT} = {one_matmul * 1e3:.3f} ms")
    print(f"ideal devices (exact integer sums): {best_of(lambda: sim.forward(x)) * 1e3:.3f} ms")
    for name, model in models.items():
        matmuls = 2 if model.read_sigma else 1
        print(f"{name}: floor {matmuls} matmul(s) per chip = {matmuls * one_matmul * 1e3:.3f} ms")
        for n in args.chips:
            gen = torch.Generator().manual_seed(0)
            draw = best_of(lambda: sim.chips(noise.Perturbation(model, n, sim, gen)), min(3, args.repeats))  # noqa: B023
            chips = sim.chips(noise.Perturbation(model, n, sim, gen))
            fwd = best_of(lambda: sim.forward(x, perturb=chips))  # noqa: B023
            forwards.setdefault(name, {})[n] = fwd
            per_chip = fwd / n
            print(
                f"  {n:2d} chip(s): {fwd * 1e3:8.3f} ms per forward, {per_chip * 1e3:7.3f} ms per chip = "
                f"{per_chip / (matmuls * one_matmul):5.2f} x the floor (drawing the chips, once: {draw / n * 1e3:.3f} ms per chip)"
            )
    if args.wires_and_converters:
        print("wires and converter error on, against the same forward without them:")
        base, wired = (
            forwards["all six non-idealities, read noise on"],
            forwards["the six, wires and converter error on"],
        )
        for n in args.chips:
            print(f"  {n:2d} chip(s): {wired[n] / base[n]:5.2f} x")


if __name__ == "__main__":
    main()
