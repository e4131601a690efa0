"""Benchmark: CIFAR-10 training throughput on whatever device it finds (cuda when present). Prints figures; not a
test. Three parts:

1. steps: images/s of one forward, backward and AdamW step on a batch of --batch (128) synthetic images, for the config's
   CIFAR network and the large search network (six 128-channel 3x3 convolutions), float and quantized with the
   per-row-tile ADC over 128 rows (config.yaml's chip on 128 x 128 tiles, its converters and drive, as the workflow
   trains them): uniform (4-bit weights) and unipolar (2-bit weights, all positive, the first layer fed [x, -x]: the
   CIFAR-10 search space);
2. epoch (``--epoch-images N``, 0 = skip): seconds per epoch of the workflow's own training (nvmxbar.training.fit:
   Lightning, the DataModule holding the images on the device, the batch augmentation, the validation pass, the
   precision of nvmxbar.training.fit.trainer_flags) over N synthetic uint8 images, also scaled to the 45,000
   training images of the full profile;
3. Monte Carlo (``--mc-chips K``, 0 = skip): noisy-crossbar inference of the CIFAR network mapped on 2-bit devices,
   K chips at programming noise 1.0 (x the device's sigma(G)) at once, in chip-images/s (what evaluate_noise and the search score run).

Run: .venv/bin/python benchmarks/train_throughput.py [--threads 2] [--device cpu|cuda] [--steps 5] [--batch 128]
     [--nets cifar big] [--variants float uniform unipolar] [--compile] [--no-channels-last]
     [--epoch-images 45000] [--val-images 1000] [--mc-chips 25] [--mc-batch 256]
Tiny: --nets cifar --steps 1 --batch 8 --epoch-images 64 --val-images 32 --mc-chips 2 --mc-batch 8

``--compile`` measures torch.compile (mode default; its compile time shows in the first step), ``--no-channels-last``
the CPU convolutions in NCHW memory (nvmxbar.core.networks.CPU_CHANNELS_LAST off).
"""

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.chip import Chip  # noqa: E402
from nvmxbar.core import networks, noise  # noqa: E402
from nvmxbar.core.schemes import map_network  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.data.datamodule import NpzDataModule  # noqa: E402
from nvmxbar.settings import MapSettings, NoiseModel, Pricing, QuantSettings, Recipe  # noqa: E402
from nvmxbar.training.fit import fit  # noqa: E402

FULL_TRAIN_IMAGES = 45_000  # CIFAR-10's training split in the full profile (50,000 less val_fraction 0.1)

BIG = {"conv": [128, 128, "M", 128, 128, "M", 128, 128, "M"], "kernel_size": 3, "hidden": [256]}
#: variant -> (quantized variant and device bits, or None for float; model keys over the network's)
VARIANTS = {
    "float": (None, {}),
    "uniform": (("uniform", 4), {}),
    "unipolar": (("unipolar", 2), {"polarity": "positive", "input_split": True}),
}


def full_config() -> dict:
    """config.yaml at the full profile, on config.yaml's chip with 128 x 128 tiles (the per-row-tile ADC over 128
    rows: quant.adc_tile_rows null = the chip's tile rows)."""
    return config.load(ROOT / "config.yaml", {"profile": "full", "chip": {"tile": {"rows": 128, "cols": 128}}})


def quantizer(variant: str, bits: int | None = None) -> dict | None:
    """The quantizer keyword arguments the workflow trains ``variant`` with (None: float), at ``bits`` if given."""
    if VARIANTS[variant][0] is None:
        return None
    cfg = full_config()
    name, default_bits = VARIANTS[variant][0]
    q = QuantSettings.from_config(name, bits or default_bits, cfg["quant"], Chip.from_config(cfg["chip"]))
    return q.quantizer_kwargs()


def cifar_model() -> dict:
    """model.cifar10 of config.yaml (conv [32, 32, M, 64, 64, M, 128, 128, M], hidden [256], kernel 3)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text())["model"]["cifar10"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_cfg: dict, variant: str, args, device: torch.device) -> tuple[float, float, float]:
    """(median images/s, best images/s, first step in s) over ``args.steps`` steps after the first one (which
    calibrates a quantized network's full-scales and, with --compile, compiles)."""
    quant, extra = quantizer(variant), VARIANTS[variant][1]
    cfg = {"dropout": 0.3, "bias": True, **model_cfg, **extra}
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


def synthetic_npz(path: Path, n_train: int, n_val: int) -> Path:
    """A prepared-dataset file (as prepare_data writes it) of random uint8 32x32 images and labels."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_val)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n)
    np.savez(
        path,
        class_names=np.array([f"c{i}" for i in range(10)]),
        norm_mean=np.full(3, 0.47),
        norm_std=np.full(3, 0.25),
        **arrays,
    )
    return path


def epoch_seconds(variant: str, n_images: int, accelerator: str, n_val: int = 1000) -> tuple[float, str]:
    """Seconds of one epoch (training over ``n_images`` and the validation pass over ``n_val``) of the workflow's
    fit(), and the precision it used. The recipe is config.yaml's train.cifar10 (batch, augmentation) for one epoch."""
    cfg = full_config()
    recipe = dataclasses.replace(Recipe.from_config(cfg["train"]["cifar10"]), epochs=1, distill=None)
    quant, extra = quantizer(variant), VARIANTS[variant][1]
    model = {"dropout": 0.3, "bias": True, **cifar_model(), **extra}
    with tempfile.TemporaryDirectory() as tmp:
        dm = NpzDataModule(synthetic_npz(Path(tmp) / "d.npz", n_images, n_val), recipe.batch_size, recipe.augment)
        torch.manual_seed(0)
        net = networks.build(networks.make_arch([3, 32, 32], 10, model), quant)
        fitted = fit(net, dm, recipe, ckpt_dir=Path(tmp) / "ck", accelerator=accelerator)
    return fitted.fit_s, fitted.precision


def mc_throughput(chips: int, device: torch.device, batch: int = 256, repeats: int = 3) -> tuple[float, int]:
    """(chip-images/s, tiles) of the noisy forward of the CIFAR network, uniform 2-bit, mapped on 128x128 tiles:
    ``chips`` chips drawn at programming noise 1.0 (the device's sigma(G)), one batch of ``batch`` images through all of them."""
    cfg = full_config()
    torch.manual_seed(0)
    net = networks.build(
        networks.make_arch([3, 32, 32], 10, {"dropout": 0.3, "bias": True, **cifar_model()}), quantizer("uniform", 2)
    )
    x = torch.randn(batch, 3, 32, 32)
    net.train()
    net(x)  # calibrates the full-scales
    net.eval()
    settings = MapSettings.from_config(
        cfg["map_crossbar"], Chip.from_config(cfg["chip"]), Pricing.from_config(cfg["estimate_cost"])
    ).for_variant("uniform")
    arrays, mapping = map_network(net, 2, settings)
    sim = Simulator(arrays, mapping, device=device)
    model = NoiseModel.programming(1.0)
    chips_drawn = sim.chips(noise.Perturbation(model, chips, sim, torch.Generator().manual_seed(0)))
    times = []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        sim.forward(x, perturb=chips_drawn)
        sync(device)
        times.append(time.perf_counter() - t0)
    return chips * batch / min(times[1:]), int(mapping["total"]["tiles"])


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
    ap.add_argument(
        "--epoch-images",
        type=int,
        default=None,
        help="images of the timed epoch, 0 = skip (default: 45000 on cuda, 2000 on cpu)",
    )
    ap.add_argument("--val-images", type=int, default=1000, help="validation images of the timed epoch (default 1000)")
    ap.add_argument("--mc-chips", type=int, default=25, help="chips of the Monte Carlo part, 0 = skip (default 25)")
    ap.add_argument("--mc-batch", type=int, default=256, help="images of the Monte Carlo forward (default 256)")
    args = ap.parse_args()
    if min(args.batch, args.steps, args.val_images, args.mc_batch) < 1 or args.mc_chips < 0:
        ap.error("--batch, --steps, --val-images and --mc-batch: at least 1; --mc-chips: 0 (skip) or more")
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
                f"{name:6s} {variant:9s} {med:8.1f} {best:8.1f} {1e3 * args.batch / med:8.0f} {first:10.3f}s",
                flush=True,
            )
    n_epoch = args.epoch_images if args.epoch_images is not None else (45_000 if device.type == "cuda" else 2000)
    if n_epoch:
        for name in ("nvmxbar", "lightning.pytorch", "lightning.fabric"):  # the figures only
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
        print(
            f"\nepoch of the workflow's training (config train.cifar10, {n_epoch} synthetic images + {args.val_images} val):"
        )
        print(f"{'variant':9s} {'precision':10s} {'s/epoch':>8s} {'img/s':>8s} {'s per 45k-image epoch':>22s}")
        for variant in args.variants:
            secs, precision = epoch_seconds(
                variant, n_epoch, "gpu" if device.type == "cuda" else "cpu", args.val_images
            )
            print(
                f"{variant:9s} {precision:10s} {secs:8.1f} {n_epoch / secs:8.1f} "
                f"{secs * FULL_TRAIN_IMAGES / n_epoch:21.1f}s",
                flush=True,
            )
    if args.mc_chips:
        rate, tiles = mc_throughput(args.mc_chips, device, args.mc_batch)
        print(
            f"\nMonte Carlo: CIFAR network, uniform 2-bit on {tiles} tiles of 128x128, {args.mc_chips} chips at "
            f"prog_sigma 1.0, batch {args.mc_batch}: {rate:.0f} chip-images/s ({device})"
        )


if __name__ == "__main__":
    main()
