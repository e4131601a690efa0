"""Diagnosis: how far does one CIFAR-10 network get in a few epochs? Trains it with the workflow's own fit() and
train.cifar10 recipe (2-bit weights for the quantized variants) on a prepared dataset and prints its per-epoch
curve and validation accuracy. Prints figures; not a test. Never reads the test split.

Run: .venv/bin/python benchmarks/cifar10_probe.py results/data/cifar10.npz ARM [--epochs 2] [--seed 0]
ARM: float | uniform | deep_positive (the configured network, all-positive, first layer split) | shallow_positive
(two 64-channel convolutions, each with a 2x pool, no dense layer, all-positive, first layer split). A subset as
in docs/FINDINGS.md: snakemake --cores 1 results/data/cifar10.npz --config
'prepare_data={cifar10: {limit: {train: 10000, val: 2000, test: 1000}}}'
Tiny (a 256/64/64-image subset): .venv/bin/python benchmarks/cifar10_probe.py results/data/cifar10.npz
shallow_positive --epochs 1
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.chip import Chip  # noqa: E402
from nvmxbar.core import networks  # noqa: E402
from nvmxbar.data.datamodule import NpzDataModule  # noqa: E402
from nvmxbar.settings import QuantSettings, Recipe  # noqa: E402
from nvmxbar.training.fit import fit  # noqa: E402
from nvmxbar.training.module import evaluate  # noqa: E402

POSITIVE = {"polarity": "positive", "input_split": True}
ARMS = {
    "float": ("baseline", {}),
    "uniform": ("uniform", {}),
    "deep_positive": ("unipolar", POSITIVE),
    "shallow_positive": ("unipolar", {**POSITIVE, "conv": [64, "M", 64, "M"], "hidden": []}),
}


class Curve(L.Callback):
    def __init__(self):
        self.rows = []

    def on_train_epoch_end(self, trainer, pl_module):
        m = trainer.callback_metrics
        self.rows.append({k: round(float(m[k]), 4) for k in ("train_loss", "train_acc", "val_acc") if k in m})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("npz")
    ap.add_argument("arm", choices=list(ARMS))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config.load(ROOT / "config.yaml", {"profile": "full"})
    chip = Chip.from_config(cfg["chip"])
    variant, extra = ARMS[args.arm]
    tc = {**cfg["train"]["cifar10"], "epochs": args.epochs}
    recipe = Recipe.from_config(tc)
    quant = QuantSettings.from_config("baseline" if variant == "baseline" else "uniform", 2, cfg["quant"], chip)
    L.seed_everything(args.seed, workers=True, verbose=False)
    dm = NpzDataModule(args.npz, recipe.batch_size, recipe.augment, args.seed, "train")
    arch = networks.make_arch(dm.in_shape, len(dm.class_names), {**cfg["model"]["cifar10"], **extra})
    net = networks.build(arch, quant.quantizer_kwargs() if quant else None)
    curve, t0 = Curve(), time.time()
    with tempfile.TemporaryDirectory() as d:
        fitted = fit(net, dm, recipe, ckpt_dir=d, accelerator="cpu", callbacks=[curve], log_prefix=f"{args.arm} ")
    val = evaluate(fitted.net, dm, "val")["accuracy"]
    print(
        json.dumps(
            {
                "arm": args.arm,
                "seed": args.seed,
                "epochs": args.epochs,
                "curve": curve.rows,
                "val": val,
                "s": round(time.time() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
