"""A mapped design on another device, for the cost model (the sensitivity table's rows ``device``, ``on_off_ratio``
and ``r_on_ohm``, :mod:`.sensitivity`): the chip's device replaced in a copy of mapping.json and the cell activity
that priced cost.json repriced exactly.

The measured read conductance per MVM of a layer (cost.json ``read_g_us_per_mvm``,
:meth:`nvmxbar.core.simulator.Simulator.read_activity`) is S = sum over driven rows of a_r x the row's used-cell
conductance. Every cell sits at G_min + level x dG (dG = (G_max - G_min) / L), so S = A G_min + dG x (sum of a_r x
the rows' levels), A = sum of a_r x the rows' number of used cells (``read_cells_per_mvm``). The levels are the
mapping's, not the device's: under another device (G_min', dG')

    S' = A G_min' + (S - A G_min) / dG x dG'.

Without A (a cost.json older than ``read_cells_per_mvm``) S can only be repriced when G_min and dG scale by one
factor (the on-resistance row: the ON/OFF ratio kept), S' = k S; otherwise :class:`NotRepriceable`. A layer's mean
conductance (``mean_conductance_us``, the upper bound's per-cell G) is the same sum with A = 1. Only the cost moves:
the accuracy is not re-simulated with the other device's noise.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict

from ..devices import WIRE_PRESETS, Device, Wires, load_presets
from .collect import converters

#: The device fields the cost model reads (and a preset sets).
DEVICE_FIELDS = Device.OVERRIDABLE  # g_max_us, on_off_ratio, v_read_v
MODES = ("bit_serial", "multibit")  # the input modes a read conductance is measured for


class NotRepriceable(ValueError):
    """The measured activity cannot be repriced under the other device: cost.json lacks ``read_cells_per_mvm``."""


#: chip.wires as the shipped config leaves it: the first preset, every value its own or its sizing rule.
SHIPPED_WIRES = {"preset": WIRE_PRESETS[0], **dict.fromkeys(Wires.OVERRIDABLE), "reference_column": "last"}


def preset_device(name: str) -> dict:
    """A preset's whole device as mapping.json's chip stores it (:func:`dataclasses.asdict` of the
    :class:`~nvmxbar.devices.Device`)."""
    return asdict(Device.from_config({"preset": name}))


def preset_of(device: dict, rel: float = 1e-6) -> str | None:
    """The preset a mapping.json device IS: its ``preset`` when its G_max, ON/OFF ratio and read voltage are the
    preset's (within ``rel``), None when the run overrode one of them."""
    p = load_presets().get(device.get("preset"))
    if p is None or not all(math.isclose(float(device[k]), float(p[k]), rel_tol=rel) for k in DEVICE_FIELDS):
        return None
    return device["preset"]


def levels(mapping: dict) -> int:
    """L: the top level of the mapping's devices (levels - 1)."""
    dev = mapping.get("device") or {}
    return int(dev["levels"]) - 1 if "levels" in dev else 2 ** int(mapping["bits"]) - 1


def range_of(device: dict, L: int) -> tuple[float, float]:
    """(G_min, dG) of a device dict at L levels above G_min, microsiemens."""
    g_min = float(device["g_max_us"]) / float(device["on_off_ratio"])
    return g_min, (float(device["g_max_us"]) - g_min) / L


def reprice(s: float, a: float | None, old: tuple[float, float], new: tuple[float, float]) -> float:
    """A read conductance ``s`` with G_min coefficient ``a`` from the device (G_min, dG) ``old`` to ``new``."""
    if a is not None:
        return a * new[0] + (s - a * old[0]) / old[1] * new[1]
    k = new[0] / old[0]
    if math.isclose(new[1] / old[1], k, rel_tol=1e-12):
        return s * k
    raise NotRepriceable(
        "cost.json has no read_cells_per_mvm (rerun estimate_cost): the measured read activity cannot be repriced "
        "at another ON/OFF ratio"
    )


def set_device(mapping: dict, device: dict) -> None:
    """Put ``device`` (mapping.json's device form, or any dict with G_max, ON/OFF ratio and read voltage) on the
    mapping's chip, in place: the layers' measured read conductance and mean conductance repriced with it."""
    chip_dev = converters(mapping)["device"]
    L = levels(mapping)
    old, new = range_of(chip_dev, L), range_of(device, L)
    for layer in mapping["layers"]:
        if "mean_conductance_us" in layer:
            layer["mean_conductance_us"] = reprice(float(layer["mean_conductance_us"]), 1.0, old, new)
        read = layer.get("read_g_us_per_mvm") or {}
        cells = layer.get("read_cells_per_mvm") or {}
        for mode in MODES:
            if mode in read:
                read[mode] = reprice(float(read[mode]), cells.get(mode), old, new)
    chip_dev.update({k: device[k] for k in chip_dev if k in device})


def on_preset(mapping: dict, preset: str) -> dict:
    """A copy of mapping.json with its device replaced by ``preset``'s (the device levels stay) and its chip's wires
    resolved for that device: the per-cell wires kept, the driver and sense switches sized for its R_on; a mapping
    older than chip.wires gets the shipped config's wires."""
    m = copy.deepcopy(mapping)
    chip = m["chip"]
    chip["device"] = preset_device(preset)
    wires = (
        {**SHIPPED_WIRES, **chip["wires"], "driver_ohm": None, "sense_ohm": None} if "wires" in chip else SHIPPED_WIRES
    )
    tile = chip["tile"]
    chip["wires"] = asdict(Wires.from_config(wires, Device.from_dict(chip["device"]), tile["rows"], tile["cols"]))
    return m
