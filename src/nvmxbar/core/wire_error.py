"""The weight error IR drop leaves a network: map it, run the simulator's IR-drop model (:mod:`.tile_wires`) on ideal
devices, and read each weight's effective value back in the network's own units.

The circuit is linear in its inputs, so a tile under IR drop still computes a matrix product, with every used cell's
conductance replaced by its transfer conductance (and a one-device column's reference by its own). What each
converted signal sums per unit input is thus an effective weight code: the mapped integer code without wires, a
real number with them. Its difference to the ideal code, times the layer's weight step, is the weight's error; a
bias row's, times its drive (the DAC full-scale A), the bias's. Hardware-aware training adds these errors to the
quantized weights (:mod:`nvmxbar.training.wire_aware`), as aihwkit trains through the non-idealities of its forward.
"""

from __future__ import annotations

import copy

import torch

from ..settings import MapSettings
from .networks import Net
from .schemes import map_network
from .simulator import Simulator


@torch.no_grad()
def weight_errors(
    net: Net, bits: int, settings: MapSettings, scale: float
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per weight layer of ``net`` (a quantized network), mapped onto ``bits``-bit devices of ``settings.chip``:
    (the error of every weight, shaped as the layer's weight; that of its bias, or None without a bias row), in the
    network's units, with ideal devices on wires of ``scale`` x the chip's. Float32 on the CPU; ``net`` untouched."""
    ref = copy.deepcopy(net).cpu().eval()
    sim = Simulator(*map_network(ref, bits, settings))
    out = []
    for i, (layer, spec) in enumerate(zip(ref.layers, sim.layers, strict=True)):
        if spec["slices"] != 1:
            raise ValueError(
                f"{spec['name']}: wire errors of bit-sliced weights ({spec['slices']} slices) are not modelled"
            )
        g = (sim.levels[i].double() + sim.g_off)[None]  # (1, K, columns [+ references]), dG units
        ideal = sim.effective(i, g)[0]
        wired = sim.effective(i, *sim.wired(i, g.float(), scale))[0].double()
        d = (wired - ideal) * spec["weight_step"]  # (K, outputs): each matrix row's error per output
        kw = int(spec["weight_rows"])
        dw = d[:kw].T.reshape(layer.weight.shape).float()
        db = None
        if spec["bias_mode"] == "row":  # the +A row, then (one device per weight) the -A row
            drive = torch.tensor([1.0, -1.0][: spec["bias_rows"]], dtype=d.dtype)
            db = (drive @ d[kw : kw + spec["bias_rows"]] * spec["dac_fullscale"]).float()
        out.append((dw, db))
    return out
