"""Stage `map_crossbar`: trained network -> device levels and conductances on R x C tiles, plus the counts
of every component (mapping.json). Also the tile-level simulator that `evaluate_noise` drives.

Matrices: a convolution unrolls to rows = in-channels x kernel (F.unfold order), columns = out-channels;
a linear layer is its transposed weight. A bias is one more row driven at the DAC full-scale
(``bias: row``) or added digitally after the ADC (``bias: digital``).

Physical columns: output n, slice s, pair member p sit at column ``(n * S + s) * P + p`` (p = 0 holds the
positive part G+, p = 1 the negative part G-), so a differential pair is never split across tiles when
C is even. Device levels are integers 0 .. 2^b - 1; G = G_min + level * (G_max - G_min) / (2^b - 1).

Schemes:
* uniform: weight codes already on the device grid (-(2^b-1)..2^b-1): one slice, one global weight,
  DAC and ADC full-scale, no per-layer rescale.
* baseline: float weights quantized after training with a per-layer scale to ``baseline_weight_bits``
  (signed), magnitudes bit-sliced into S = ceil(bits / b) b-bit digits (shift-and-add), per-layer DAC and
  ADC ranges calibrated on training data, and a per-layer digital rescale of every output.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .models import Net, pool
from .quant import polarity_groups, row_tiles, to_int, weight_bounds

README = """nvmxbar crossbar.npz
Per weight layer i (in network order): 
  L{i}.G_us        float32 (row_tiles, col_tiles, R, C): programmed conductance of every cell in microsiemens;
                   unused cells are at G_min.
  L{i}.levels      int16 (row_tiles, col_tiles, R, C): device level 0..2^b-1 of every cell (G = G_min + level*dG).
  L{i}.used        bool (row_tiles, col_tiles, R, C): the cell holds part of a weight.
  L{i}.row_index   int32 (row_tiles * R,): the matrix row driven on each physical row (-1 = unused).
  L{i}.sign        int8 (row_tiles, col_tiles, C): sign applied digitally to each column's ADC output (+1, or
                   -1 for a negative unipolar group: one sign flip per group, not per weight).
  L{i}.codes       int32 (matrix rows, outputs): the signed integer weights before slicing.
Matrix rows are in-channels x kernel (F.unfold order), then the bias row(s) if bias: row (bipolar: one row
driven at +DAC full-scale; unipolar: a +full-scale and a -full-scale row, so the bias keeps its sign).
Physical row p of the layer is tile p // R, tile row p % R; unipolar sign groups of rows start on a new tile.
Physical column (n*S + s)*P + p sits in tile col // C at tile column col % C, for output n, weight slice s
(most significant last: weight = sum_s level_s * 2^(b*s)), pair member p (0 = G+, 1 = G-; P = 1 for
unipolar). mapping.json gives R, C, S, P, G_min, G_max, the scales and the counts.
"""


# ------------------------------------------------------------------------------------- layer geometry
def layer_specs(net: Net, in_shape: list[int]) -> list[dict[str, Any]]:
    """Per weight layer: kind, matrix rows/cols, kernel and padding, output positions (MVMs per inference)."""
    specs, shape = [], list(in_shape)
    for i, layer in enumerate(net.layers):
        if i < net.n_conv:
            k = layer.kernel_size
            spec = {"kind": f"conv{net.dims}d", "kernel": list(k), "padding": list(layer.padding),
                    "in_channels": layer.in_channels, "outputs": layer.out_channels,
                    "weight_rows": layer.in_channels * math.prod(k), "mvms": math.prod(shape[1:])}
            shape = [layer.out_channels] + [s // 2 ** net.pool_after[i] for s in shape[1:]]
        else:
            spec = {"kind": "linear", "kernel": [], "padding": [], "in_channels": layer.in_features,
                    "outputs": layer.out_features, "weight_rows": layer.in_features, "mvms": 1}
            shape = [layer.out_features]
        spec.update(name=f"layers.{i}", index=i, pool=int(net.pool_after[i]), has_bias=layer.bias is not None,
                    input_split=bool(i == 0 and net.input_split))
        specs.append(spec)
    return specs


def unfold(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Layer input -> matrix rows: (B * positions, weight_rows) for a convolution, (B, rows) for a dense layer."""
    if spec["kind"] == "linear":
        return x.flatten(1)
    if spec["kind"] == "conv1d":
        cols = F.unfold(x[:, :, None, :], (1, spec["kernel"][0]), padding=(0, spec["padding"][0]))
    else:
        cols = F.unfold(x, tuple(spec["kernel"]), padding=tuple(spec["padding"]))
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def fold(y: torch.Tensor, spec: dict, batch: int, in_spatial: list[int]) -> torch.Tensor:
    """Matrix outputs back to the layer's output tensor."""
    if spec["kind"] == "linear":
        return y
    return y.reshape(batch, *in_spatial, -1).movedim(-1, 1)


def weight_matrix(layer: torch.nn.Module) -> torch.Tensor:
    """(rows, outputs): rows in F.unfold order."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1).t()


# ------------------------------------------------------------------------------------------ mapping
def _tiles(rows_of_levels: np.ndarray, R: int, C: int, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    K, cols = rows_of_levels.shape
    rt, ct = math.ceil(K / R), math.ceil(cols / C)
    lev = np.full((rt * R, ct * C), fill, dtype=np.int16)
    used = np.zeros((rt * R, ct * C), dtype=bool)
    lev[:K, :cols], used[:K, :cols] = rows_of_levels, True
    to_t = lambda a: a.reshape(rt, R, ct, C).transpose(0, 2, 1, 3).copy()  # noqa: E731
    return to_t(lev), to_t(used)


def _unipolar_tiles(codes: np.ndarray, weight_shape, spec: dict, R: int, C: int):
    """One device per weight (P = 1). Each row group of one sign starts on its own row tiles (a tile's columns
    sum every row, so two signs never share a tile column); the bias rows join the last row group.
    Returns levels, used, row_index (physical row -> matrix row or -1) and the per-tile column signs."""
    rb, cb, signs = polarity_groups(weight_shape, spec)
    K, N = codes.shape
    rb = rb[:-1] + [K]  # the bias rows (if any) belong to the last group
    ct = math.ceil(N / C)
    tiles = row_tiles(weight_shape, spec, K - math.prod(int(k) for k in weight_shape[1:]), R)  # the one placement rule
    rt = tiles[-1] + 1
    row_index = np.full(rt * R, -1, dtype=np.int32)
    sign_rows = np.ones((rt, ct * C), dtype=np.int8)
    for g in range(len(rb) - 1):  # a group's rows run on from its first tile
        first, last = tiles[rb[g]], tiles[rb[g + 1] - 1]
        row_index[first * R: first * R + rb[g + 1] - rb[g]] = np.arange(rb[g], rb[g + 1])
        col_sign = np.ones(ct * C, dtype=np.int8)
        for j in range(len(cb) - 1):
            col_sign[cb[j]:cb[j + 1]] = signs[g][j]
        sign_rows[first:last + 1] = col_sign
    expected = np.repeat(sign_rows, R, axis=0)[row_index >= 0][:, :N]  # the sign every used cell must carry
    placed = codes[row_index[row_index >= 0]]
    if (placed * expected < 0).any():
        raise ValueError("unipolar mapping: a weight has the wrong sign for its group (model and polarity disagree)")
    lev = np.zeros((rt * R, ct * C), dtype=np.int16)
    used = np.zeros((rt * R, ct * C), dtype=bool)
    lev[row_index >= 0, :N] = np.abs(placed)
    used[row_index >= 0, :N] = True
    to_t = lambda a: a.reshape(rt, R, ct, C).transpose(0, 2, 1, 3).copy()  # noqa: E731
    return to_t(lev), to_t(used), row_index, sign_rows.reshape(rt, ct, C)


def _group_rows(weight_shape, spec: dict, rows: int) -> list[int]:
    rb, _, _ = polarity_groups(weight_shape, spec)
    sizes = [rb[g + 1] - rb[g] for g in range(len(rb) - 1)]
    sizes[-1] += rows - rb[-1]  # bias rows
    return sizes


def _negative_groups(sign_t: np.ndarray, used_t: np.ndarray) -> int:
    """Sign-flip units: per tile, one per contiguous run of used negative columns (a group)."""
    n = 0
    col_used = used_t.any(axis=2)  # (rt, ct, C)
    for t in np.ndindex(sign_t.shape[:2]):
        neg = (sign_t[t] < 0) & col_used[t]
        n += int(neg[0]) + int(((~neg[:-1]) & neg[1:]).sum())
    return n


def _slices(codes: np.ndarray, bits: int, n_slices: int) -> np.ndarray:
    """Signed integer codes (K, N) -> device levels (K, N*S*2): magnitude digits base 2^b, sign by pair member."""
    mag, base = np.abs(codes).astype(np.int64), 2 ** bits
    out = np.zeros(codes.shape + (n_slices, 2), dtype=np.int16)
    for s in range(n_slices):
        digit = (mag // base ** s) % base
        out[..., s, 0] = np.where(codes > 0, digit, 0)
        out[..., s, 1] = np.where(codes < 0, digit, 0)
    return out.reshape(codes.shape[0], -1)


@torch.no_grad()
def _float_layer_inputs(net: Net, x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every weight layer of the float network (baseline calibration)."""
    inputs = []
    if net.input_split:
        x = torch.cat([x, -x], 1)
    for i, layer in enumerate(net.layers):
        if i == net.n_conv:
            x = x.flatten(1)
        inputs.append(x)
        x = layer(x)
        if i < len(net.layers) - 1:
            x = pool(F.relu(x), net.pool_after[i], net.dims)
    return inputs


def map_network(net: Net, doc: dict, cfg: dict, quant_cfg: dict, calib_x: torch.Tensor | None = None,
                device_bits: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Map a trained network. Returns (arrays for crossbar.npz, mapping.json document)."""
    R, C = int(cfg["rows"]), int(cfg["cols"])
    b = int(device_bits if device_bits is not None else doc["bits"])
    L = 2 ** b - 1
    g_max = float(cfg["g_max_us"])
    g_min = g_max / float(cfg["on_off_ratio"])
    bias_row = cfg.get("bias", "row") == "row"
    scheme = "baseline" if doc["quant"] is None else doc["variant"]
    specs = layer_specs(net, doc["arch"]["in_shape"])
    if scheme == "baseline":
        wbits = int(cfg["baseline_weight_bits"])
        S = math.ceil(wbits / b)
        dac_bits = int(cfg.get("baseline_dac_bits") or quant_cfg["dac_bits"])
        adc_bits = int(cfg.get("baseline_adc_bits") or quant_cfg["adc_bits"])
        if calib_x is None:
            raise ValueError("the baseline mapping needs calibration inputs (per-layer DAC ranges)")
        inputs = _float_layer_inputs(net, calib_x)
    else:
        q = net.quant
        S, dac_bits, adc_bits = 1, q.dac_bits, q.adc_bits
        if q.weight_bits != b:
            raise ValueError(f"model trained for {q.weight_bits}-bit devices cannot be mapped onto {b}-bit devices")
    P = 1 if scheme == "unipolar" else 2
    arrays = {"README": np.array(README)}
    layers = []
    for i, (layer, spec) in enumerate(zip(net.layers, specs)):
        w = weight_matrix(layer).double()
        bias = layer.bias.detach().double() if layer.bias is not None else None
        if scheme == "baseline":
            wmax = float(w.abs().max())
            levels_w = 2 ** (wbits - 1) - 1
            a_l = float(torch.quantile(inputs[i].abs().flatten()[:500_000].float(), 0.999)) or 1.0  # per-layer DAC
            w_scale = wmax / levels_w  # per-layer weight step
            codes = to_int(w, wmax, levels_w, -levels_w, levels_w)
            dac_fs = a_l
            if bias is not None and bias_row:
                bcodes = to_int(bias / a_l, wmax, levels_w, -levels_w, levels_w)
                codes = torch.cat([codes, bcodes[None]], 0)
            weight_fs, w_levels = wmax, levels_w
        else:
            W, A = q.weight_fullscale.item(), q.act_fullscale.item()
            mask = getattr(net, f"_pol{i}", None)
            lo, hi = weight_bounds(b, mask, layer.weight.shape)  # the training grid, sign groups included
            codes = to_int(layer.weight.detach().double(), W, L, lo, hi).reshape(layer.weight.shape[0], -1).t()
            if bias is not None and bias_row:
                bcodes = to_int(bias / A, W, L, -L, L)
                if P == 1:  # two rows driven at +A and -A: a signed bias in a one-sign column
                    rb, cb, signs = polarity_groups(layer.weight.shape, net.polarity[i])
                    col_sign = torch.tensor([signs[-1][j] for j in range(len(cb) - 1) for _ in range(cb[j], cb[j + 1])],
                                            dtype=bcodes.dtype)
                    lev_p, lev_m = (col_sign * bcodes).clamp(min=0), (-col_sign * bcodes).clamp(min=0)
                    codes = torch.cat([codes, (col_sign * lev_p)[None], (col_sign * lev_m)[None]], 0)
                else:
                    codes = torch.cat([codes, bcodes[None]], 0)
            w_scale, dac_fs, weight_fs, w_levels = W / L, A, W, L
        codes_np = codes.numpy().astype(np.int64)
        if P == 1:
            lev_t, used_t, row_index, sign_t = _unipolar_tiles(codes_np, layer.weight.shape, net.polarity[i], R, C)
        else:
            dev_levels = _slices(codes_np, b, S)
            lev_t, used_t = _tiles(dev_levels, R, C)
            row_index = np.full(lev_t.shape[0] * R, -1, dtype=np.int32)
            row_index[:codes_np.shape[0]] = np.arange(codes_np.shape[0])
            sign_t = np.ones((lev_t.shape[0], lev_t.shape[1], C), dtype=np.int8)
        arrays[f"L{i}.levels"] = lev_t
        arrays[f"L{i}.used"] = used_t
        arrays[f"L{i}.row_index"] = row_index
        arrays[f"L{i}.sign"] = sign_t
        arrays[f"L{i}.G_us"] = (g_min + lev_t.astype(np.float64) * (g_max - g_min) / L).astype(np.float32)
        arrays[f"L{i}.codes"] = codes_np.astype(np.int32)  # signed integer weights (rows, outputs), before slicing
        if bias is not None and not bias_row:
            arrays[f"L{i}.bias"] = bias.numpy().astype(np.float64)
        rows = codes_np.shape[0]
        bias_mode = ("row" if bias_row else "digital") if bias is not None else "none"
        layers.append({**spec, "rows": rows, "bias_mode": bias_mode, "bias_rows": (2 if P == 1 else 1) if bias_mode == "row" else 0,
                       "polarity": net.polarity[i] if P == 1 else None,
                       "row_groups": _group_rows(layer.weight.shape, net.polarity[i], rows) if P == 1 else [rows],
                       "negative_groups": _negative_groups(sign_t, used_t) if P == 1 else 0,
                       "negative_conversions_per_mvm": int(((sign_t < 0) & used_t.any(axis=2)).sum()),
                       "weight_fullscale": weight_fs, "weight_levels": w_levels, "weight_step": w_scale,
                       "dac_fullscale": dac_fs, "slices": S, "pair": P,
                       "row_tiles": lev_t.shape[0], "col_tiles": lev_t.shape[1]})
    mapping = {"dataset": doc["dataset"], "variant": doc["variant"], "bits": b, "scheme": scheme,
               "tile": {"rows": R, "cols": C},
               "device": {"bits": b, "levels": L + 1, "g_min_us": g_min, "g_max_us": g_max,
                          "on_off_ratio": float(cfg["on_off_ratio"])},
               "converters": {"dac_bits": dac_bits, "adc_bits": adc_bits, "adc_mux": int(cfg["adc_mux"]),
                              "input_mode": cfg.get("input_mode", "bit_serial")},
               "pair": P, "slices": S, "layers": layers}
    if P == 1:
        mapping["offset_correction"] = ("G_min offset removed digitally: G_min/dG x (sum of the tile's input codes) "
                                        "subtracted from every conversion (ISAAC-style), one subtractor per ADC")
    if scheme != "baseline":
        mapping["adc_fullscale"] = q.adc_fullscale.item()
    else:
        _calibrate_baseline_adc(net, arrays, mapping, calib_x)
    count(mapping)
    return arrays, mapping


def _calibrate_baseline_adc(net, arrays, mapping, calib_x) -> None:
    """Per-layer ADC range of the baseline: 99.9th percentile of |partial sums| (per tile, per slice)
    on the calibration inputs, through the ideal crossbar."""
    sim = Simulator(arrays, mapping)
    sim.forward(calib_x, adc=False, record=True)
    for spec, p in zip(mapping["layers"], sim.recorded):
        spec["adc_fullscale"] = float(p) if p > 0 else 1.0


def count(mapping: dict) -> None:
    """Fill per-layer and total component/operation counts (the counting rules of COSTMODEL.md)."""
    R, C = mapping["tile"]["rows"], mapping["tile"]["cols"]
    mux = mapping["converters"]["adc_mux"]
    baseline = mapping["scheme"] == "baseline"
    tot: dict[str, Any] = {k: 0 for k in ("devices", "tiles", "used_cells", "adcs", "dacs", "subtractors",
                                          "shift_add_units", "rescale_units", "sign_flips", "weights")}
    tot["pair"] = mapping.get("pair", 2)
    for spec in mapping["layers"]:
        K, N, S, P = spec["rows"], spec["outputs"], spec["slices"], spec["pair"]
        phys = N * S * P
        rt, ct = spec["row_tiles"], spec["col_tiles"]
        tiles = rt * ct
        signals_per_tile = C // P  # analog subtraction: one ADC input per pair
        adcs = tiles * math.ceil(signals_per_tile / mux)
        # P = 2: one analog subtractor per pair. P = 1: no pair; the G_min offset is removed digitally, one
        # subtractor per ADC (time-shared like it) and one subtraction per conversion.
        subtractors = tiles * signals_per_tile if P == 2 else adcs
        spec.update(physical_cols=phys, tiles=tiles, devices=tiles * R * C, used_cells=K * phys,
                    utilisation=K * phys / (tiles * R * C), adcs=adcs,
                    adc_conversions_per_mvm=N * S * rt, dacs=tiles * R, dac_activations_per_mvm=K * ct,
                    cell_reads_per_mvm=K * phys, subtractors=subtractors, subtractions_per_mvm=N * S * rt,
                    shift_adds_per_mvm=N * S * rt if (S > 1 or rt > 1) else 0,
                    shift_add_units=tiles * math.ceil(signals_per_tile / mux) if (S > 1 or rt > 1) else 0,
                    rescale_units=N if baseline else 0, rescales_per_mvm=N if baseline else 0,
                    sign_flips=spec.get("negative_groups", 0),
                    sign_flips_per_mvm=spec.get("negative_conversions_per_mvm", 0),
                    periphery_design=spec["name"] if baseline else "global",
                    weights=spec["weight_rows"] * N)
        for k in tot:
            tot[k] += spec[k]
    tot["utilisation"] = tot["used_cells"] / max(tot["devices"], 1)
    tot["periphery_designs"] = len({s["periphery_design"] for s in mapping["layers"]})
    mapping["total"] = tot


# ---------------------------------------------------------------------------------------- simulation
class Simulator:
    """Inference on mapped tiles. Conductances are handled in units of dG = (G_max - G_min)/(2^b - 1), so a
    programmed cell is ``g_off + level`` with ``g_off = G_min / dG``; non-idealities perturb that. With no
    perturbation the column currents are exact integers and the result equals the integer digital model."""

    def __init__(self, arrays: dict[str, np.ndarray], mapping: dict):
        self.mapping, self.layers = mapping, mapping["layers"]
        dev = mapping["device"]
        self.L = dev["levels"] - 1
        self.g_off = dev["g_min_us"] / ((dev["g_max_us"] - dev["g_min_us"]) / self.L)
        self.R, self.C = mapping["tile"]["rows"], mapping["tile"]["cols"]
        self.levels = [torch.from_numpy(arrays[f"L{i}.levels"].astype(np.float32)) for i in range(len(self.layers))]
        self.used = [torch.from_numpy(arrays[f"L{i}.used"]) for i in range(len(self.layers))]
        self.bias = [torch.from_numpy(arrays[f"L{i}.bias"]) if f"L{i}.bias" in arrays else None for i in range(len(self.layers))]
        self.row_index = [torch.from_numpy(arrays[f"L{i}.row_index"].astype(np.int64)) for i in range(len(self.layers))]
        self.sign = [torch.from_numpy(arrays[f"L{i}.sign"].astype(np.float32)) for i in range(len(self.layers))]
        conv = mapping["converters"]
        self.dac_levels = 2 ** conv["dac_bits"] - 1
        self.adc_levels = 2 ** (conv["adc_bits"] - 1) - 1
        self.recorded: list[float] = []
        self.activity: list[list[float]] | None = None  # read_activity's accumulators, one per layer

    def _adc_step(self, spec: dict) -> float:
        """ADC step in units of (weight step x DAC step): uniform = global Y/La; baseline = per-layer."""
        if self.mapping["scheme"] == "baseline":
            fs_units = spec["adc_fullscale"]  # already in integer (code x code) units
            return fs_units / self.adc_levels
        unit = spec["weight_step"] * spec["dac_fullscale"] / self.dac_levels
        return self.mapping["adc_fullscale"] / self.adc_levels / unit

    @torch.no_grad()
    def forward(self, x: torch.Tensor, perturb=None, adc: bool = True, record: bool = False) -> torch.Tensor:
        """x: normalised network input (B, ...). perturb(i, g) -> g with a leading instance axis (I, ...),
        applied to the conductances of layer i; None = ideal devices (I = 1). Returns logits (I, B, classes)."""
        self.recorded = []
        B = x.shape[0]
        h = x.double()[None]  # (I, B, ...)
        if self.layers[0].get("input_split"):  # the first layer's rows see [x, -x]
            h = torch.cat([h, -h], 2)
        for i, spec in enumerate(self.layers):
            I = h.shape[0]
            if spec["kind"] == "linear":
                h = h.flatten(2)
            spatial = list(h.shape[3:])
            first = i == 0
            # DAC: integer input codes
            a_step = spec["dac_fullscale"] / self.dac_levels
            lo = -self.dac_levels if first else 0
            u = torch.clamp(torch.round(h / a_step), lo, self.dac_levels)
            rows = torch.stack([unfold(u[k], spec) for k in range(I)])  # (I, Bm, weight_rows)
            if spec["bias_mode"] == "row":  # driven at +full-scale (and -full-scale: the unipolar bias pair)
                drive = torch.tensor([float(self.dac_levels), -float(self.dac_levels)][: spec.get("bias_rows", 1)])
                rows = torch.cat([rows, drive.expand(*rows.shape[:-1], -1).to(rows.dtype)], -1)
            y = self._mvm(i, rows, spec, perturb, adc, record)  # (I', Bm, N) in weight-step x DAC-step units
            unit = spec["weight_step"] * a_step
            y = y * unit
            if self.bias[i] is not None:
                y = y + self.bias[i]
            h = torch.stack([fold(y[k], spec, B, spatial) for k in range(y.shape[0])])
            if i < len(self.layers) - 1:
                h = torch.relu(h)
                if spec["pool"]:
                    flat = pool(h.flatten(0, 1), int(spec["pool"]), 1 if spec["kind"] == "conv1d" else 2)
                    h = flat.reshape(h.shape[0], B, *flat.shape[1:])
        return h

    @torch.no_grad()
    def read_activity(self, x: torch.Tensor, bs: int = 256) -> list[dict[str, float]]:
        """What the inputs actually read, per layer and per MVM (ideal devices): sum over driven rows of
        a_r x (the row's used-cell conductance, uS), averaged over the MVMs of ``x``. ``bit_serial``: a_r = the
        number of 1-bits of the row's input code (one pass per bit; a negative code drives -V, same energy);
        ``multibit``: a_r = (code / full code)^2 (one pass). Times V_read^2 t_read it is the cell read energy."""
        dev = self.mapping["device"]
        dg = (dev["g_max_us"] - dev["g_min_us"]) / self.L
        self._row_g = [((lev * dg + dev["g_min_us"]) * used).sum(dim=(1, 3)) for lev, used in zip(self.levels, self.used)]
        self.activity = [[0.0, 0.0, 0] for _ in self.layers]
        try:
            for a in range(0, len(x), bs):
                self.forward(x[a:a + bs])
            return [{"bit_serial": s / n, "multibit": m / n, "mvms_measured": n, "samples": len(x)}
                    for s, m, n in self.activity]
        finally:
            self.activity = None

    def _mvm(self, i: int, rows: torch.Tensor, spec: dict, perturb, adc: bool, record: bool) -> torch.Tensor:
        R, C, S, P = self.R, self.C, spec["slices"], spec["pair"]
        lev = self.levels[i]  # (rt, ct, R, C) float32: integer sums stay exact below 2^24
        rt, ct = lev.shape[:2]
        I, Bm, K = rows.shape
        ext = torch.cat([rows.float(), torch.zeros(I, Bm, 1)], -1)  # index -1 (unused physical row) reads the 0
        xin = ext[..., self.row_index[i]].reshape(I, Bm, rt, R)
        if self.activity is not None:
            code = xin[0].abs().round().long()  # (Bm, rt, R)
            ones = sum((code >> k) & 1 for k in range(max(1, self.dac_levels.bit_length())))
            acc = self.activity[i]
            acc[0] += float((ones.double() * self._row_g[i]).sum())
            acc[1] += float(((code.double() / self.dac_levels) ** 2 * self._row_g[i]).sum())
            acc[2] += Bm
        if perturb is None:
            # ideal devices: exact integer currents (levels and inputs are integers; G_min cancels in the pair)
            cur = torch.einsum("ibrk,rckn->ibrcn", xin, lev)
        else:
            g = perturb(i, lev + self.g_off)  # (I, rt, ct, R, C) perturbed conductances, dG units
            if I == 1 and g.shape[0] > 1:
                xin = xin.expand(g.shape[0], -1, -1, -1)
            # one einsum over the perturbed array; the nominal G_min offset cancels in the pair (or against
            # the reference column), its perturbation does not
            cur = torch.einsum("ibrk,irckn->ibrcn", xin, g - self.g_off)
            if getattr(perturb, "read_sigma", 0.0):
                var = torch.einsum("ibrk,irckn->ibrcn", xin ** 2, (g * perturb.read_sigma) ** 2)
                cur = cur + torch.randn(cur.shape, generator=perturb.generator, dtype=cur.dtype) * var.sqrt()
        # (I, Bm, rt, ct, C) -> per-column sign (unipolar groups) -> pairs -> analog subtraction
        if P == 1:
            cur = cur * self.sign[i].to(cur.dtype)  # (rt, ct, C); symmetric rounding: flip before or after the ADC
        cur = cur.reshape(*cur.shape[:3], ct * C)[..., : spec["outputs"] * S * P]
        cur = cur.reshape(*cur.shape[:3], spec["outputs"], S, P)
        diff = (cur[..., 0] - cur[..., 1] if P == 2 else cur[..., 0]).double()  # (I, Bm, rt, N, S)
        if record:
            self.recorded.append(float(torch.quantile(diff.abs().flatten()[:1_000_000].float(), 0.999)))
        if adc:
            step = self._adc_step(spec)
            diff = torch.clamp(torch.round(diff / step), -self.adc_levels, self.adc_levels) * step
        b = self.mapping["bits"]
        shifts = torch.tensor([float(2 ** (b * s)) for s in range(S)], dtype=diff.dtype)
        return (diff * shifts).sum(dim=(2, 4))  # digital shift-and-add over slices, sum over row tiles


def subset_index(total: int, n: int | None) -> np.ndarray:
    """Indices of ``n`` of ``total`` samples: all of them, or a fixed pseudo-random draw (seed 0) in split
    order. Not the first n: prepared CIFAR-10 splits are ordered by class, so their first n are one class."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).permutation(total)[:n])


def network_inputs(data_npz, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples (all if None; else :func:`subset_index`) of a prepared split as the network sees them
    (uint8 images scaled and normalised with the train statistics stored in the npz), and their labels."""
    with np.load(data_npz, allow_pickle=False) as d:
        idx = subset_index(len(d[f"y_{split}"]), n)
        x, y = torch.from_numpy(d[f"x_{split}"][idx]), torch.from_numpy(d[f"y_{split}"][idx]).long()
        if x.dtype == torch.uint8:
            mean = torch.tensor(d["norm_mean"]).reshape(1, -1, *[1] * (x.ndim - 2))
            x = (x.float() / 255.0 - mean) / torch.tensor(d["norm_std"]).reshape(mean.shape)
    return x.float(), y


def map_stage(*, model_path, model_metrics, data_npz, out_npz, out_json, dataset: str, variant: str, bits: int,
              cfg: dict, quant_cfg: dict, seed: int, experiment: str | None = None, rule: str = "map_crossbar") -> dict:
    """The whole map_crossbar rule: load model.pt, map, write crossbar.npz + mapping.json atomically, log a
    child run of the training run."""
    import time

    from . import tracking
    from .train import load_model

    t0 = time.time()
    net, doc = load_model(model_path)
    x, _ = network_inputs(data_npz, "train", int(cfg.get("calibration_samples", 512)))
    arrays, mapping = map_network(net, doc, cfg, quant_cfg, calib_x=x, device_bits=bits)
    mapping["variant"] = variant
    mapping["source_model"] = str(model_path)
    with tracking.atomic_path(out_npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    tracking.write_json(out_json, mapping)
    client, run_id = tracking.start_child_run(experiment, model_metrics, run_name=f"map_crossbar {dataset}/{variant}/b{bits}",
                                              rule=rule, params={"map_crossbar": cfg, "bits": bits}, dataset=dataset,
                                              variant=variant, bits=bits, seed=seed)
    if client:
        for k in ("devices", "tiles", "used_cells", "adcs", "dacs", "utilisation", "periphery_designs"):
            client.log_metric(run_id, k, float(mapping["total"][k]))
        client.log_artifact(run_id, str(out_json))
        client.set_terminated(run_id, "FINISHED")
    t = mapping["total"]
    print(f"[map_crossbar] {dataset}/{variant}/b{bits}: {t['tiles']} tiles, {t['devices']} devices "
          f"({t['utilisation']:.1%} used), {t['adcs']} ADCs in {time.time() - t0:.1f} s", flush=True)
    return mapping
