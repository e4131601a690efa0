"""Benchmark: CIFAR-10 training throughput in images/s (forward, backward and AdamW step on a batch of 128 synthetic
images) of the config's CIFAR network and of the large search network (six 128-channel 3x3 convolutions), float and
quantized with the per-row-tile ADC (quant.adc_tile_rows 128): uniform (4-bit weights) and unipolar (2-bit weights,
two row groups). Prints figures; not a test.

Run: .venv/bin/python benchmarks/train_throughput.py [--threads 2] [--device cpu|cuda] [--steps 5]
     [--nets cifar big] [--variants float uniform unipolar] [--compile] [--no-channels-last]

``--compile`` measures torch.compile (mode default; its compile time shows in the first step), ``--no-channels-last``
the CPU convolutions in NCHW memory (nvmxbar.core.networks.CPU_CHANNELS_LAST off).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar.core import networks  # noqa: E402

BIG = {"conv": [128, 128, "M", 128, 128, "M", 128, 128, "M"], "kernel_size": 3, "hidden": [256]}
QUANT = {"dac_bits": 4, "adc_bits": 6, "adc_tile_rows": 128}
VARIANTS = {
    "float": (None, None),
    "uniform": ({**QUANT, "weight_bits": 4}, None),
    "unipolar": ({**QUANT, "weight_bits": 2}, {"sign": 1, "row_groups": 2, "col_groups": 1}),
}


def cifar_model() -> dict:
    """model.cifar10 of config.yaml (conv [32, 32, M, 64, 64, M, 128, 128, M], hidden [256], kernel 3)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text())["model"]["cifar10"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_cfg: dict, variant: str, args, device: torch.device) -> tuple[float, float, float]:
    """(median images/s, best images/s, first step in s) over ``args.steps`` steps after the first one (which
    calibrates a quantized network's full-scales and, with --compile, compiles)."""
    quant, polarity = VARIANTS[variant]
    cfg = {"dropout": 0.3, "bias": True, **model_cfg}
    if polarity is not None:
        cfg["polarity"] = polarity
    torch.manual_seed(0)
    net = networks.build(networks.make_arch([3, 32, 32], 10, cfg), quant).to(device).train()
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=device, generator=gen)
    y = torch.randint(0, 10, (args.batch,), device=device, generator=gen)
    net(x)  # calibration of the full-scales (quantized)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    fwd = torch.compile(net) if args.compile else net
    times = []
    for _ in range(args.steps + 1):
        sync(device)
        t0 = time.perf_counter()
        loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times[1:]), args.batch / min(times[1:]), times[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU (default 2)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps after the first (default 5)")
    ap.add_argument("--nets", nargs="+", default=["cifar", "big"], choices=["cifar", "big"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (mode default)")
    ap.add_argument("--no-channels-last", action="store_true", help="CPU convolutions in NCHW memory")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    networks.CPU_CHANNELS_LAST = not args.no_channels_last
    device = torch.device(args.device)
    where = f"{device}" + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else "")
    extras = [s for s, on in (("torch.compile", args.compile), ("NCHW", args.no_channels_last)) if on]
    print(f"CIFAR-10 training throughput, batch {args.batch}, {where}{', ' + ', '.join(extras) if extras else ''}")
    print(f"{'net':6s} {'variant':9s} {'img/s':>8s} {'best':>8s} {'ms/step':>8s} {'first step':>11s}")
    for name in args.nets:
        model_cfg = cifar_model() if name == "cifar" else BIG
        for variant in args.variants:
            med, best, first = measure(model_cfg, variant, args, device)
            print(
                f"{name:6s} {variant:9s} {med:8.1f} {best:8.1f} {1e3 * args.batch / med:8.0f} {first:10.1f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
