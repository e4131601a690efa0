"""Diagnosis: does a quantized network stay alive? Builds a network of the config (2-bit weights, the
chip's DAC/ADC), calibrates it on one batch, trains ``--steps`` plain AdamW steps (constant lr, the batch
augmentation) and prints, at initialisation and after training, each weight layer's share of non-zero
inputs, of positive ADC outputs and the outputs' mean and std on one batch. A layer at 0 % positive outputs
zeroes everything after it (docs/FINDINGS.md, "Why the CIFAR-10 sign-group networks sit at chance").
Prints figures; not a test. Uses the training split only.

Run: .venv/bin/python benchmarks/layer_activity.py results/data/cifar10.npz --polarity row_groups [--steps 10]
     [--lr 0.003] [--input-split] [--bits 2] [--batch 128] [--threads 1] [--shared-tiles]
Tiny: .venv/bin/python benchmarks/layer_activity.py results/data/cifar10.npz --steps 2 --batch 16

``--shared-tiles`` probes a circuit the workflow does not build: one-sign weights whose sign alternates from input
channel to input channel (``row_groups`` = the layer's input channels), every tile holding both signs, the negative
rows driven with inverted DAC voltages, so each tile's ADC converts a centred sum as in a signed tile. Training
only (the tiles ignore the sign groups); neither the simulator nor the cost model has this layout.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.chip import Chip  # noqa: E402
from nvmxbar.core import networks  # noqa: E402
from nvmxbar.data.datamodule import NpzDataModule, augment  # noqa: E402
from nvmxbar.search.space import POLARITY_MODES, polarity_spec  # noqa: E402
from nvmxbar.settings import QuantSettings  # noqa: E402


@torch.no_grad()
def layer_rows(net: networks.Net, x: torch.Tensor) -> list[str]:
    """One line per weight layer: its DAC inputs and ADC outputs on batch ``x`` (the network's own forward)."""
    rows, h = [], torch.cat([x, -x], 1) if net.input_split else x
    for i, layer in enumerate(net.layers):
        if i == net.n_conv:
            h = h.flatten(1)
        q = net.quant[i]
        xq = q.dac(h, signed=(i == 0))
        w = q.weight(layer.weight, getattr(net, f"_pol{i}"))
        y = net._tiled_mvm(i, layer, xq, w, q.bias(layer.bias))
        rows.append(
            f"  L{i}  inputs != 0 {(xq != 0).float().mean():6.1%}  weights != 0 {(w != 0).float().mean():6.1%}  "
            f"outputs > 0 {(y > 0).float().mean():6.1%}  mean {y.mean():8.3f}  std {y.std():7.3f}"
        )
        if i == len(net.layers) - 1:
            break
        h = networks.pool(F.relu(y), net.pool_after[i], net.dims)
    return rows


def shared_tiles(arch: dict) -> dict:
    """Every layer after the first: one sign group per input channel (alternating signs), and row tiles that ignore
    the groups (both signs in one tile). Patches nvmxbar.core.networks.row_tiles for this process."""
    probe = networks.build({k: v for k, v in arch.items() if k != "polarity"}, None)
    groups = [{"sign": 1, "row_groups": int(layer.weight.shape[1])} for layer in probe.layers[1:]]
    rt = networks.row_tiles
    networks.row_tiles = lambda shape, spec, bias_rows, tile_rows: rt(shape, None, bias_rows, tile_rows)
    return {**arch, "polarity": [arch["polarity"][0], *groups]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("npz", help="a prepared dataset (results/data/<dataset>.npz)")
    ap.add_argument("--polarity", choices=["none", *POLARITY_MODES], default="row_groups")
    ap.add_argument("--input-split", action="store_true", help="first layer: [x, -x], all-positive weights")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shared-tiles", action="store_true", help="alternating-sign input channels sharing tiles")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config.load(ROOT / "config.yaml", {"profile": "full"})
    dm = NpzDataModule(args.npz, args.batch)
    dataset = "cifar10" if dm.is_image else "har"
    model = dict(cfg["model"][dataset])
    n = networks.n_weight_layers(model)
    if args.polarity != "none":
        model["polarity"] = [polarity_spec(args.polarity)] * n
    if args.input_split:
        model["input_split"] = True
        model["polarity"] = [polarity_spec("positive")] + model.get("polarity", [polarity_spec("positive")] * n)[1:]
    quant = QuantSettings.from_config("uniform", args.bits, cfg["quant"], Chip.from_config(cfg["chip"]))
    torch.manual_seed(0)
    arch = networks.make_arch(dm.in_shape, len(dm.class_names), model)
    if args.shared_tiles:
        arch = shared_tiles(arch)
    net = networks.build(arch, quant.quantizer_kwargs())
    x_all, y_all = dm.tensors("train")
    probe = dm.normalise(x_all[: args.batch])
    net.train()
    net(probe)  # calibrates the full-scales
    print(f"{dataset}, {args.bits}-bit weights, polarity {args.polarity}{' + input split' if args.input_split else ''}")
    print("at initialisation:", *layer_rows(net, probe), sep="\n")
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=cfg["train"][dataset]["weight_decay"])
    order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))
    for step in range(args.steps):
        idx = order[(step * args.batch) % len(x_all) :][: args.batch]
        x = dm.normalise(x_all[idx])
        logits = net(augment(x) if dm.is_image else x)
        loss = F.cross_entropy(logits, y_all[idx], label_smoothing=cfg["train"][dataset]["label_smoothing"])
        opt.zero_grad()
        loss.backward()
        grad = torch.sqrt(sum((p.grad**2).sum() for p in net.parameters() if p.grad is not None))
        opt.step()
        net.project_polarity()
        print(f"step {step}: loss {loss.item():.4f}  logits == 0 {(logits == 0).float().mean():6.1%}  grad {grad:.3g}")
    print(f"after {args.steps} steps (lr {args.lr}):", *layer_rows(net, probe), sep="\n")


if __name__ == "__main__":
    main()
