"""The unipolar search space: architectures and per-layer sign groups an Optuna trial samples
(``nas_unipolar.space.<dataset>``), known architectures enqueued first, and the hardware (devices, tiles, area)
of an architecture, known before training."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..config import ConfigError
from ..core import networks
from ..core.cost import estimate
from ..core.cost_units import load_constants
from ..core.schemes import map_network
from ..settings import MapSettings, Pricing, QuantSettings

POLARITY_MODES = ("positive", "row_groups", "col_groups")


def polarity_spec(mode: str) -> dict[str, int]:
    """A layer's sign groups for a polarity mode (see nvmxbar.core.groups.polarity_groups): ``positive`` = every
    weight >= 0; ``row_groups`` = the first half of the input channels positive, the second negative (each half
    on its own tiles); ``col_groups`` = the first half of the outputs positive, the second negative (sign flips
    after the ADC; a negative hidden output is cut by the next ReLU, so it mainly suits the classifier)."""
    if mode == "positive":
        return {"sign": 1, "row_groups": 1, "col_groups": 1}
    if mode == "row_groups":
        return {"sign": 1, "row_groups": 2, "col_groups": 1}
    if mode == "col_groups":
        return {"sign": 1, "row_groups": 1, "col_groups": 2}
    raise ValueError(f"unknown polarity mode '{mode}' (known: {', '.join(POLARITY_MODES)})")


def sample_model(trial, space: dict, base: dict) -> dict[str, Any]:
    """The model config of one trial (same keys as config ``model.<dataset>`` plus ``polarity``)."""
    blocks = trial.suggest_categorical("blocks", space["blocks"])
    conv, kernels = [], []
    for i in range(blocks):
        w = trial.suggest_categorical(f"width{i}", space["widths"])
        k = trial.suggest_categorical(f"kernel{i}", space["kernel_sizes"])
        pools = space["pools_per_block"]
        p = trial.suggest_categorical(f"pools{i}", pools) if len(pools) > 1 else pools[0]
        conv += [w] * space["convs_per_block"] + ["M"] * p
        kernels += [k] * space["convs_per_block"]
    splits = space["input_split"]
    split = trial.suggest_categorical("input_split", splits) if len(splits) > 1 else splits[0]
    hidden = trial.suggest_categorical("hidden", space["hidden"])
    modes = space["polarity"]
    n_layers = len(kernels) + (1 if hidden else 0) + 1
    pol = []
    for i in range(n_layers):
        mode = trial.suggest_categorical(f"polarity{i}", modes) if len(modes) > 1 else modes[0]
        pol.append(polarity_spec(mode))
    return {
        "conv": conv,
        "kernel_size": kernels,
        "hidden": [hidden] if hidden else [],
        "dropout": base["dropout"],
        "bias": base["bias"],
        "input_split": bool(split),
        "polarity": pol,
    }


def enqueue_params(model: dict, space: dict) -> dict[str, Any]:
    """The Optuna parameters of a known architecture (config ``space.<dataset>.enqueue`` entry: ``conv``,
    ``kernel_size``, optionally ``hidden``, ``input_split`` and ``polarity``, a mode or one per layer), so that the
    search evaluates it first (Optuna's ``enqueue_trial``). Raises ValueError when it is not in ``space``."""

    def pick(name, value, choices):
        if value not in choices:
            raise ValueError(f"{name} {value!r} is not among the search space's choices {choices}")
        return value

    conv, cpb = list(model["conv"]), int(space["convs_per_block"])
    ks = model["kernel_size"]
    n_conv = sum(1 for c in conv if c != "M")
    ks = list(ks) if isinstance(ks, list) else [ks] * n_conv
    if len(ks) != n_conv:
        raise ValueError(f"kernel_size has {len(ks)} entries for {n_conv} convolutions")
    params: dict[str, Any] = {}
    i = b = 0
    while i < len(conv):
        widths = conv[i : i + cpb]
        if len(widths) < cpb or "M" in widths or len(set(widths)) != 1:
            raise ValueError(f"conv {conv}: block {b} is not {cpb} convolution(s) of one width then 2x pools")
        kernels = ks[b * cpb : (b + 1) * cpb]
        if len(set(kernels)) != 1:
            raise ValueError(f"kernel_size {ks}: block {b} mixes kernel sizes {kernels}")
        i += cpb
        pools = 0
        while i < len(conv) and conv[i] == "M":
            pools, i = pools + 1, i + 1
        params[f"width{b}"] = pick("width", widths[0], space["widths"])
        params[f"kernel{b}"] = pick("kernel size", kernels[0], space["kernel_sizes"])
        pool_choices = space["pools_per_block"]
        pick("pools per block", pools, pool_choices)
        if len(pool_choices) > 1:
            params[f"pools{b}"] = pools
        b += 1
    params["blocks"] = pick("blocks", b, space["blocks"])
    split_choices = space["input_split"]
    split = pick("input_split", bool(model.get("input_split", False)), split_choices)
    if len(split_choices) > 1:
        params["input_split"] = split
    hidden = list(model.get("hidden", []))
    if len(hidden) > 1:
        raise ValueError(f"hidden {hidden}: the search space has at most one dense layer")
    params["hidden"] = pick("hidden", hidden[0] if hidden else 0, space["hidden"])
    n_layers = b * cpb + len(hidden) + 1
    pol = model.get("polarity", space["polarity"][0])
    pol = [pol] * n_layers if isinstance(pol, str) else list(pol)
    if len(pol) != n_layers:
        raise ValueError(f"polarity: {len(pol)} modes for {n_layers} weight layers")
    if len(space["polarity"]) > 1:
        params.update({f"polarity{j}": pick("polarity", m, space["polarity"]) for j, m in enumerate(pol)})
    else:
        for m in pol:
            pick("polarity", m, space["polarity"])
    return params


def check_enqueue(cfg: dict) -> None:
    """Every ``nas_unipolar.space.<dataset>.enqueue`` entry lies in its space (ConfigError naming it otherwise)."""
    for ds, space in cfg["nas_unipolar"]["space"].items():
        for i, model in enumerate(space["enqueue"]):
            try:
                enqueue_params(model, space)
            except ValueError as e:
                raise ConfigError(f"config key 'nas_unipolar.space.{ds}.enqueue[{i}]': {e}") from None


def hardware_of(
    model_cfg: dict, in_shape: list[int], num_classes: int, quant: QuantSettings, ms: MapSettings, pricing: Pricing
) -> dict[str, float]:
    """Devices, tiles and area of an architecture mapped as unipolar at ``quant.weight_bits`` (weights do not
    matter)."""
    q = replace(quant, weight_fullscale=1.0, act_fullscale=1.0, adc_fullscale=1.0)  # counts need no calibration
    arch = networks.make_arch(in_shape, num_classes, model_cfg)
    net = networks.build(arch, q.quantizer_kwargs()).eval()
    with torch.no_grad():
        _, mapping = map_network(net, q.weight_bits, ms)
    c = estimate(
        mapping,
        load_constants(pricing.constants),
        family=pricing.family,
        tech_nm=pricing.tech_nm,
        cell=pricing.cell,
        adc_time_share=pricing.adc_time_share,
    )
    t = mapping["total"]
    return {
        "area_um2": float(c["total"]["area_um2"]),
        "energy_pj": float(c["total"]["energy_pj_per_inference"]),
        "devices": int(t["devices"]),
        "tiles": int(t["tiles"]),
        "sign_flips": int(t["sign_flips"]),
    }
