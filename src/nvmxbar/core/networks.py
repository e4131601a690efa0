"""Plain nn.Module networks: a small convolutional net (1-D for HAR windows, 2-D VGG-style for CIFAR-10)
or an MLP (no convolutions), built from a JSON-able architecture dict, optionally quantized with
:class:`nvmxbar.core.quant.UniformQuantizer`.

Every weight layer is mappable onto a crossbar: a convolution unrolls to a (kernel x in-channels) by
out-channels matrix, a linear layer is the matrix itself. Max-pooling and ReLU are digital and act on
ADC codes. There is no batch-norm and no per-layer scale; under uniform scaling the ADC output (full-scale
Y) is re-quantized by the next layer's DAC (full-scale A), one global ratio for every layer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .groups import expand_polarity, polarity_mask, row_tiles, tile_span
from .quant import PerLayerQuantizer, UniformQuantizer

#: 2-D convolutions on the CPU in NHWC memory (channels_last): oneDNN's convolutions, forward and backward, run
#: faster on it (benchmarks/train_throughput.py --no-channels-last measures the other); the values are the same up
#: to the order of float sums.
CPU_CHANNELS_LAST = True


def make_arch(in_shape: list[int], num_classes: int, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The architecture dict stored in model.pt: everything needed to rebuild the network."""
    arch = {"in_shape": [int(s) for s in in_shape], "num_classes": int(num_classes)}
    arch.update({k: model_cfg[k] for k in ("conv", "kernel_size", "hidden", "dropout", "bias")})
    if model_cfg.get("input_split"):
        arch["input_split"] = True
    if model_cfg.get("polarity") is not None:
        arch["polarity"] = expand_polarity(model_cfg["polarity"], n_weight_layers(model_cfg))
    return arch


def n_weight_layers(model_cfg: dict[str, Any]) -> int:
    return sum(1 for c in model_cfg["conv"] if c != "M") + len(model_cfg.get("hidden", [])) + 1


class Net(nn.Module):
    """conv: list of out-channels or "M" (2x max-pool; "M", "M" = 4x); hidden: widths of the dense layers before
    the classifier. input_split: the first layer sees [x, -x] (twice the input channels), so that a layer of
    one-sign weights can still weigh an input either way (see :meth:`_forward`)."""

    def __init__(
        self,
        in_shape: list[int],
        num_classes: int,
        conv: list,
        kernel_size: int | list[int] = 3,
        hidden: list[int] = (),
        dropout: float = 0.0,
        bias: bool = True,
        quantizer: UniformQuantizer | PerLayerQuantizer | None = None,
        polarity: list[dict] | None = None,
        input_split: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape, self.dims = list(in_shape), len(in_shape) - 1
        if self.dims not in (0, 1, 2):
            raise ValueError(f"in_shape {in_shape}: expected (features,), (channels, length) or (channels, H, W)")
        if conv and self.dims == 0:
            raise ValueError("a convolutional architecture needs an input with channels (conv: [] gives an MLP)")
        n_conv = sum(1 for c in conv if c != "M")
        ks = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size] * n_conv
        if len(ks) != n_conv:
            raise ValueError(f"kernel_size has {len(ks)} entries for {n_conv} convolutions")
        Conv = nn.Conv1d if self.dims == 1 else nn.Conv2d
        self.layers = nn.ModuleList()
        self.pool_after: list[int] = []  # number of 2x max-pools after each weight layer
        self.input_split = bool(input_split)
        ch, size, k_iter = in_shape[0] * (2 if self.input_split else 1), list(in_shape[1:]), iter(ks)
        for c in conv:
            if c == "M":
                if not self.layers:
                    raise ValueError("'M' (max-pool) must follow a convolution")
                self.pool_after[-1] += 1
                size = [s // 2 for s in size]
                if min(size) < 1:
                    raise ValueError(f"conv {conv}: too many 'M' (max-pools) for input {in_shape}")
                continue
            k = next(k_iter)
            self.layers.append(Conv(ch, int(c), k, padding=k // 2, bias=bias))
            self.pool_after.append(0)
            ch = int(c)
        self.n_conv = len(self.layers)
        flat = ch * int(torch.tensor(size).prod().item()) if size else ch
        for h in list(hidden) + [num_classes]:
            self.layers.append(nn.Linear(flat, int(h), bias=bias))
            self.pool_after.append(0)
            flat = int(h)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        self.dropout = float(dropout)
        self.quant = quantizer
        self._plans: dict[tuple, dict[str, Any]] = {}  # row tiles of each layer as index tensors (_tile_plan)
        self.wire_errors: list[tuple] | None = None  # per layer (weight, bias) errors IR drop leaves, in training
        # Unipolar: one +1/-1 mask per weight layer (fixed by the architecture, rebuilt from it, not saved).
        self.polarity = expand_polarity(polarity, len(self.layers)) if polarity is not None else None
        if self.polarity is not None and quantizer is None:
            raise ValueError("a polarity constraint needs a quantizer (the unipolar variant is quantized)")
        for i, layer in enumerate(self.layers):
            mask = polarity_mask(layer.weight.shape, self.polarity[i]) if self.polarity else None
            self.register_buffer(f"_pol{i}", mask, persistent=False)
            if mask is None:
                continue
            with torch.no_grad():  # start inside the constraint; |w| keeps Kaiming's spread (see _sparse_init)
                layer.weight.copy_(layer.weight.abs() * mask)
        if quantizer is not None:
            if quantizer.per_layer:  # each layer's LSQ gradient scale counts its own weights
                for i, layer in enumerate(self.layers):
                    quantizer[i]._n_weights = layer.weight.numel()
            else:
                quantizer._n_weights = sum(layer.weight.numel() for layer in self.layers)
            if bool(quantizer.calibrated):  # full-scales given: the weight grid is known now
                self._sparse_init()

    def _one_sign_on_relu(self, i: int) -> bool:
        """Layer i has one sign throughout and non-negative (ReLU) inputs."""
        mask = getattr(self, f"_pol{i}")
        return i > 0 and mask is not None and bool((mask == mask.flatten()[0]).all())

    @torch.no_grad()
    def _sparse_init(self) -> None:
        """Start every one-sign layer on ReLU inputs sparse, on the shared weight grid.

        Such a layer's outputs all move with its inputs' common mode, scaled by the layer's weight sum. With
        Kaiming's spread (or anything dense on a grid whose step the other layers set) that gain is ~fan_in x
        step, and the next DAC saturates: the network does not train (measured: 0.18 on HAR). Here a fraction
        p = 1 / (fan_in x step) of the weights starts at one step (the rest just below half a step, so that
        they round to 0 yet move freely): a common-mode gain of 1."""
        for i, layer in enumerate(self.layers):
            if not self._one_sign_on_relu(i):
                continue
            q = self.quant[i]
            step = float(q.weight_fullscale) / q.w_levels
            w, mask = layer.weight, getattr(self, f"_pol{i}")
            p = min(1.0, 1.0 / (w[0].numel() * step))
            on = (torch.rand(w.shape) < p).float()
            w.copy_(step * (on + 0.4 * torch.rand(w.shape)) * mask)

    @torch.no_grad()
    def project_polarity(self) -> None:
        """Unipolar: put every latent weight back on its group's side of zero (after each optimiser step), so
        a weight that crossed zero sits at 0, where the quantizer's gradient reaches it again. The quantized
        weights obey the sign constraint exactly at every step anyway (the quantizer clamps per group)."""
        if self.polarity is None:
            return
        for i, layer in enumerate(self.layers):
            mask = getattr(self, f"_pol{i}")
            layer.weight.copy_(torch.where(layer.weight * mask < 0, torch.zeros_like(layer.weight), layer.weight))

    def _tile_plan(self, i: int, w: torch.Tensor, spec: dict | None, n_bias: int) -> dict[str, Any]:
        """How layer i's crossbar rows fall into row tiles (groups.row_tiles), for :meth:`_tiled_mvm` (cached per
        tile size, device and dtype). The first ``Tw`` of the ``T`` tiles hold weight rows (the others, bias rows
        only): ``ranges`` (first slot, first channel, count) the block of input channels each of them touches,
        placed at slots ``t * c_max`` (:func:`gather_channels`); ``mask`` (Tw, 1, c_max, kernel...) which of those
        channels' kernel taps are the tile's rows; ``bias_tiles`` the tile of each bias row."""
        key = (i, self.quant.adc_tile_rows, n_bias, w.device, w.dtype)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        C, kernel = w.shape[1], tuple(w.shape[2:])
        per_ch = math.prod(kernel)
        tiles = row_tiles(w.shape, spec, n_bias, self.quant.adc_tile_rows)
        K, T, Tw = C * per_ch, max(tiles) + 1, tiles[C * per_ch - 1] + 1
        if set(tiles[:K]) != set(range(Tw)):
            raise AssertionError(f"layer {i}: tiles without weight rows before the last weight row: {tiles}")
        spans = [tile_span(tiles.index(t), K - tiles[:K][::-1].index(t), per_ch, K) for t in range(Tw)]
        c_max = max(c1 - c0 for c0, c1, _ in spans)
        mask = torch.zeros(Tw, c_max, per_ch)
        for t, (c0, c1, m) in enumerate(spans):
            mask[t, : c1 - c0] = m
        plan = {
            "T": T,
            "Tw": Tw,
            "c_max": c_max,
            "ranges": tuple((t * c_max, c0, c1 - c0) for t, (c0, c1, _) in enumerate(spans)),
            "mask": mask.reshape(Tw, 1, c_max, *kernel).to(device=w.device, dtype=w.dtype),
            "bias_tiles": tiles[K:],
            "tile_ids": torch.arange(T, device=w.device)[:, None],
        }
        self._plans[key] = plan
        return plan

    def _tiled_mvm(
        self, i: int, layer: nn.Module, xq: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
    ) -> torch.Tensor:
        """Layer i's quantized outputs as the crossbar computes them: every row tile's partial sum through
        the ADC, then added up digitally. Row tiles as schemes.map_network places rows (groups.row_tiles);
        a bias row belongs to its tile (unipolar: the +A row carries a bias of the column's sign, the -A
        row one of the other sign).

        The tiles with weight rows in one operation: the input channels each of them touches are gathered side by
        side once, a tile's weight is the layer's weight on its channels masked to its rows, one grouped
        convolution (groups = tiles; a batched matmul for a dense layer) gives every tile's partial sums, one ADC
        call converts them all and adds them up (in tile order: the floats of a loop over the tiles). A tile of
        bias rows alone adds the ADC of its bias, a constant per output."""
        q, spec = self.quant[i], (self.polarity[i] if self.polarity else None)
        n_bias = 0 if b is None else (2 if spec is not None else 1)
        plan = self._tile_plan(i, w, spec, n_bias)
        T, Tw, c_max, conv = plan["T"], plan["Tw"], plan["c_max"], i < self.n_conv
        if T == 1:  # the layer fits one tile: one conversion of the whole sum
            return q.adc(layer._conv_forward(xq, w, b) if conv else F.linear(xq, w, b))
        O = w.shape[0]
        bt = None
        if b is not None:
            if spec is None:
                b_tile = torch.full_like(b, plan["bias_tiles"][0], dtype=torch.long)
            else:  # the column's sign: +A row (index K) when sign x b > 0, -A row (K + 1) otherwise
                col = getattr(self, f"_pol{i}").reshape(O, -1)[:, -1]
                b_tile = torch.where(col * b > 0, plan["bias_tiles"][0], plan["bias_tiles"][1])
            bt = torch.where(plan["tile_ids"] == b_tile, b, torch.zeros_like(b))  # (T, O): each tile's share
        bw = None if bt is None else bt[:Tw]
        if Tw == 1:  # all weight rows in the first tile, the bias rows (some) in the next
            xg, wg = xq, w
        else:
            xg = gather_channels(xq, plan["ranges"], Tw * c_max)  # (B, Tw * c_max, ...)
            wg = gather_channels(w, plan["ranges"], Tw * c_max).unflatten(1, (Tw, c_max)).transpose(0, 1)
            wg = wg * plan["mask"]  # (Tw, O, c_max, kernel...): each tile's rows
        if conv:
            wg = wg.reshape(Tw * O, -1, *w.shape[2:])
            parts = layer_conv(layer, xg, wg, None if bw is None else bw.reshape(-1), Tw)  # (B, Tw * O, ...)
            parts = parts.unflatten(1, (Tw, O)).movedim(1, 0)  # (Tw, B, O, ...), a view
        else:
            xg = xg.unflatten(1, (Tw, -1)).transpose(0, 1)  # (Tw, B, c_max)
            wt = wg.reshape(Tw, O, -1).transpose(1, 2)  # (Tw, c_max, O)
            parts = torch.bmm(xg, wt) if bw is None else torch.baddbmm(bw[:, None], xg, wt)  # (Tw, B, O)
        y = q.adc_tiles(parts)
        if Tw < T:  # tiles of bias rows alone: each the ADC of a constant per output, then added
            n, shape = parts[0][0].numel(), (1, 1, O) + (1,) * (parts.dim() - 3)
            for t in range(Tw, T):
                y = y + q.adc_tiles(bt[t].reshape(shape), n)[0]
        return y

    def weight_layers(self) -> list[nn.Module]:
        return list(self.layers)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Set the quantizer's full-scales that are still 0 from one batch (called once, before training)."""
        q = self.quant
        if q is None or bool(q.calibrated):
            return
        if not q.per_layer:  # the shared weight and DAC full-scales from every layer's weights and the input
            q.calibrate([layer.weight for layer in self.layers], x)
            self._sparse_init()
        self._forward(x, observe=True)  # ADC full-scales (per-layer: each layer's weight and DAC ones too)
        for qi in q.layers if q.per_layer else [q]:
            qi.calibrated.fill_(True)
            if qi.adc_ratio == "pow2":
                qi.tie_adc()
        q.calibrated.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is not None and not bool(self.quant.calibrated):
            self.calibrate(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor, observe: bool = False) -> torch.Tensor:
        last = len(self.layers) - 1
        if self.input_split:  # [x, -x]: one-sign weights on these rows realise any signed first-layer filter
            x = torch.cat([x, -x], 1)
        if CPU_CHANNELS_LAST and self.n_conv and self.dims == 2 and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        for i, layer in enumerate(self.layers):
            if i == self.n_conv:
                x = x.flatten(1)
            if self.quant is None:
                y = layer(x)
            else:
                q = self.quant[i]
                if observe and self.quant.per_layer:  # this layer's own weight and DAC full-scales
                    q.calibrate([layer.weight], x)
                xq = q.dac(x, signed=(i == 0))
                w, b = q.weight(layer.weight, getattr(self, f"_pol{i}")), q.bias(layer.bias)
                if self.training and self.wire_errors:  # hardware-aware: the wires' errors (training/wire_aware.py)
                    dw, db = self.wire_errors[i]
                    w, b = w + dw, b if db is None else b + db
                serial = q.passes > 1 and not observe
                if serial:  # bit-serial: the passes on the batch axis; a bias row sees every bit of the full code
                    xq, b = q.bit_planes(xq), None if b is None else b / q.dac_levels
                if q.adc_tile_rows and not observe:
                    y = self._tiled_mvm(i, layer, xq, w, b)
                else:
                    y = layer._conv_forward(xq, w, b) if i < self.n_conv else F.linear(xq, w, b)
                    if observe:
                        q.observe_output(y)
                    y = q.adc(y)
                if serial:
                    y = q.shift_add(y)
            if i == last:
                break
            x = pool(F.relu(y), self.pool_after[i], self.dims)
            if self.dropout and i >= self.n_conv:
                x = F.dropout(x, self.dropout, self.training)
        return y


def pool(x: torch.Tensor, times: int, dims: int) -> torch.Tensor:
    """``times`` successive 2x max-pools (digital, on ADC codes)."""
    for _ in range(times):
        x = F.max_pool1d(x, 2) if dims == 1 else F.max_pool2d(x, 2)
    return x


class _GatherChannels(torch.autograd.Function):
    """The row tiles' input channels (or weight columns) side by side (dim 1): slots ``[dst, dst + n)`` hold channels
    ``[src, src + n)`` for every ``(dst, src, n)`` of ``ranges``, the other slots of the ``width`` are zero.
    Contiguous block copies (fast in both memory formats), and a backward that adds the gradient back block by
    block: deterministic, unlike index_select's backward (index_add) on a GPU, and faster than its channel by
    channel loop on the CPU."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, ranges: tuple, width: int) -> torch.Tensor:
        ctx.ranges, ctx.shape = ranges, x.shape
        ctx.fmt = (
            torch.channels_last
            if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = torch.empty((x.shape[0], width, *x.shape[2:]), dtype=x.dtype, device=x.device, memory_format=ctx.fmt)
        end = 0
        for dst, src, n in ranges:
            if dst > end:
                out[:, end:dst].zero_()
            out[:, dst : dst + n].copy_(x[:, src : src + n])
            end = dst + n
        if width > end:
            out[:, end:].zero_()
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        gx = torch.empty(ctx.shape, dtype=g.dtype, device=g.device, memory_format=ctx.fmt).zero_()
        for dst, src, n in ctx.ranges:
            gx[:, src : src + n] += g[:, dst : dst + n]
        return gx, None, None


def gather_channels(x: torch.Tensor, ranges: tuple, width: int) -> torch.Tensor:
    """Blocks of channels of ``x`` side by side, zero elsewhere, see :class:`_GatherChannels`."""
    return _GatherChannels.apply(x, ranges, width)


def layer_conv(
    layer: nn.Module, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, groups: int = 1
) -> torch.Tensor:
    """``layer``'s convolution (its stride, padding, dilation) with the weight ``w``, bias ``b`` and ``groups``."""
    conv = F.conv1d if isinstance(layer, nn.Conv1d) else F.conv2d
    return conv(x, w, b, layer.stride, layer.padding, layer.dilation, groups)


def build(arch: dict[str, Any], quant: dict[str, Any] | None = None) -> Net:
    """Network from an architecture dict and, for quantized variants, the quantizer settings
    (``weight_bits``, ``dac_bits``, ``adc_bits``, optional full-scales and ``learn_scales``)."""
    kw = {k: arch[k] for k in ("conv", "kernel_size", "hidden", "dropout", "bias")}
    quantizer = None
    if quant and quant.get("per_layer"):  # one quantizer per weight layer (variant perlayer)
        quantizer = PerLayerQuantizer(n_weight_layers(kw), **{k: v for k, v in quant.items() if k != "per_layer"})
    elif quant:
        quantizer = UniformQuantizer(**quant)
    return Net(
        arch["in_shape"],
        arch["num_classes"],
        quantizer=quantizer,
        polarity=arch.get("polarity"),
        input_split=bool(arch.get("input_split", False)),
        **kw,
    )
