"""Monte Carlo accuracy of the mapped crossbars under device non-idealities.

Each setting of the sweep (the Cartesian product of the lists in config ``evaluate_noise.sweep``) draws
``instances`` chips at once (vectorised along a leading instance axis, no Python loop per instance). The noise is
the chip's device's (``sim.chip.device.noise``, from its preset: nvmxbar.devices), scaled by the setting:
programming noise G' = clip(G + prog_sigma x sigma(G) x N(0, 1), 0, G_max) with sigma(G) at each cell's target
level (0: a conductance is non-negative; G_max: the device's highest state), stuck-at-G_min and stuck-at-G_max
devices, a finite ON/OFF ratio, the device's drift G(t) = G(t0) (t/t0)^-nu with nu = |N(mean(G), std(G))| per
device; read noise, read_sigma x q(G) x G per cell (q at the programmed conductance, as aihwkit), is redrawn at
every inference (exactly, as a Gaussian on each column current with variance sum_i V_i^2 s_i^2; a one-device
tile's reference column read once per MVM and subtracted from every column of the tile: the simulator). Every
setting can be switched off (0; on_off_ratio null keeps the device's). A drift time on a device without a drift
model, or read noise on one without read noise, is an error (never a silent no-op).

Drift compensation (``evaluate_noise.drift.compensation``) is what a chip can measure, as aihwkit's
GlobalDriftCompensation does: right after programming (t0) and again at read time t it applies an all-ones
reference input and rescales by the ratio of the two readings. The readings see the chip's own devices
(programming errors, stuck cells, per-device nu, one read-noise draw each), so the gain is an estimate:
``global`` one gain per chip and layer (sum of all its column reads), ``column`` one per physical column
(a row tile's column). ``oracle`` multiplies each device by its exact mean drift (t/t0)^nu_mean(G); ``none``
leaves the drift.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..settings import ConverterParts, MonteCarlo, NoiseModel
from .converter_params import ConverterErrors
from .simulator import Simulator

log = logging.getLogger(__name__)


class Perturbation:
    """Draws ``instances`` perturbed copies of each layer's conductances once (cached: a chip keeps its
    programming errors), and carries the read noise (:meth:`read_std`) and generator for the simulator. It sees only
    conductances (the used cells of a layer, in dG units: sim.L levels above sim.g_off = G_min / dG) and the
    device (``sim.chip.device``: its G range and noise, in microsiemens): no layout, no network. Draws are made on
    the CPU with ``generator``."""

    def __init__(
        self,
        model: NoiseModel,
        instances: int,
        sim: Simulator,
        generator: torch.Generator,
        converter_parts: ConverterParts | None = None,
    ) -> None:
        self.m, self.n, self.sim, self.generator = model, instances, sim, generator
        self.wire_scale = model.wire_scale  # read by Simulator.chips, as the converter errors (None: ideal)
        parts = converter_parts or ConverterParts()  # None: every error as cited
        errors = ConverterErrors.load().scaled(model.adc_error_scale).weighted(parts)
        self.converter_errors = None if errors.ideal else errors
        self.device = device = sim.chip.device
        self.dg_us = (device.g_max_us - device.g_min_us) / sim.L  # one level step, microsiemens
        if model.read_sigma and device.noise.read is None:
            raise ValueError(
                f"read_sigma {model.read_sigma}: device preset {device.preset} has no read noise (a scale of nothing); "
                "use 0 or a preset with read noise"
            )
        if model.drift_t_s:
            drift = device.noise.drift
            if drift is None:
                raise ValueError(
                    f"drift_t_s {model.drift_t_s}: device preset {device.preset} has no drift model; use 0 or a "
                    "preset that drifts"
                )
            if model.drift_t_s < drift.t0_s:
                raise ValueError(
                    f"drift_t_s {model.drift_t_s} is before device preset {device.preset}'s drift t0_s "
                    f"{drift.t0_s}: G(t) = G(t0) (t/t0)^-nu starts at t0 (0 = no drift)"
                )
        self.cache: dict[int, torch.Tensor] = {}
        self.read_rel: dict[int, torch.Tensor] = {}  # per layer: read_sigma x q(programmed G), (chips, K, columns)

    def __call__(self, i: int, g: torch.Tensor) -> torch.Tensor:
        if i in self.cache:
            return self.cache[i]
        L, gen, m, noise = self.sim.L, self.generator, self.m, self.device.noise
        g_off = self.sim.g_off
        if m.on_off_ratio:
            g_off = L / (float(m.on_off_ratio) - 1.0)  # G_min = G_max / ratio, in dG units
        top = g_off + L  # G_max, dG units
        target = g.detach().to("cpu", torch.float32)  # (K, columns): each cell's programmed target
        if m.on_off_ratio:
            target = target - self.sim.g_off + g_off
        x = (target.double() / top).numpy()  # G / G_max of each cell's target
        out = target.expand(self.n, *target.shape).clone()
        if m.prog_sigma:
            sigma = torch.from_numpy(self.device.prog_sigma_us(x) / self.dg_us).float()  # dG units, per cell
            out += torch.randn(out.shape, generator=gen) * (float(m.prog_sigma) * sigma)
            out.clamp_(0.0, top)
        if m.stuck_min or m.stuck_max:
            r = torch.rand(out.shape, generator=gen)
            p0, p1 = float(m.stuck_min or 0.0), float(m.stuck_max or 0.0)
            out = torch.where(r < p0, torch.full_like(out, g_off), out)
            out = torch.where((r >= p0) & (r < p0 + p1), torch.full_like(out, top), out)
        if m.read_sigma:  # q at the programmed conductance (aihwkit), times the conductance read
            q = noise.read.relative((out.double() / top).numpy())
            self.read_rel[i] = float(m.read_sigma) * torch.from_numpy(q).float()
        if m.drift_t_s:
            d = noise.drift
            ratio = float(m.drift_t_s) / d.t0_s
            mean, std = torch.from_numpy(d.nu_mean(x)).float(), torch.from_numpy(d.nu_std(x)).float()
            nu = (mean + std * torch.randn(out.shape, generator=gen)).abs()
            drifted = out * ratio ** (-nu)
            if m.drift.compensation == "oracle":
                drifted = drifted * ratio**mean  # each device's exact mean drift: no chip knows it
            elif m.drift.compensation in ("global", "column"):
                drifted = drifted * self.drift_gain(i, out, drifted)
            elif m.drift.compensation != "none":
                raise ValueError(f"unknown drift compensation '{m.drift.compensation}' (none, global, column, oracle)")
            out = drifted
        self.cache[i] = out
        return out

    def read_std(self, i: int, g: torch.Tensor) -> torch.Tensor | None:
        """Per cell, the read noise's sigma in dG units for the chips' conductances ``g`` of layer i (drawn by
        :meth:`__call__` first): read_sigma x q(programmed G) x G; None without read noise."""
        rel = self.read_rel.get(i)
        return None if rel is None else rel.to(g) * g.abs()

    def reference_read(self, i: int, g: torch.Tensor) -> torch.Tensor:
        """What each physical column of layer i reads for an all-ones input: (chips, row tiles, columns) sums of
        ``g`` (chips, K, columns) over each row tile's rows (``sim.tiles``; all K rows where the simulator gives
        none), with one draw of read noise (sqrt(sum s^2) per column, s = :meth:`read_std`) when it is on."""
        group = self.row_tile(i, g.shape[-2]).to(g.device)
        sums = g.new_zeros(g.shape[0], int(group.max()) + 1, g.shape[-1]).index_add_(1, group, g)
        s = self.read_std(i, g)
        if s is not None:
            sq = g.new_zeros(sums.shape).index_add_(1, group, s * s)
            sums = sums + torch.randn(sums.shape, generator=self.generator).to(g) * sq.sqrt()
        return sums

    def drift_gain(self, i: int, programmed: torch.Tensor, drifted: torch.Tensor) -> torch.Tensor:
        """The compensation gain the chip estimates from its reference reads at t0 (``programmed``) and at t
        (``drifted``), broadcastable to them: ``global`` (chips, 1, 1), ``column`` (chips, K, columns), each
        physical column's gain on its cells. A reading of 0 at t keeps gain 1."""
        r0, rt = self.reference_read(i, programmed), self.reference_read(i, drifted)
        if self.m.drift.compensation == "global":
            r0, rt = r0.sum((1, 2), keepdim=True), rt.sum((1, 2), keepdim=True)
        gain = torch.where(rt > 0, r0 / rt.clamp(min=torch.finfo(rt.dtype).tiny), torch.ones_like(rt))
        if self.m.drift.compensation == "global":
            return gain
        return gain[:, self.row_tile(i, programmed.shape[-2]).to(gain.device), :]

    def row_tile(self, i: int, rows: int) -> torch.Tensor:
        """(K,) the row tile each matrix row of layer i is driven in (``sim.tiles``); rows no tile names (all of
        them where the simulator gives no tiles) form one more group."""
        tiles = getattr(self.sim, "tiles", None)
        group = torch.full((rows,), -1, dtype=torch.long)
        for t, (a, e) in enumerate(tiles[i] if tiles else []):
            group[a:e] = t
        group[group < 0] = int(group.max()) + 1
        return group


def batch_for(mapping: dict, chips: int, budget: int = 16_000_000) -> int:
    """A batch size whose largest unfolded layer input (batch x MVMs x rows, for ``chips`` chips) stays within
    ``budget`` values: 1 to 1024."""
    per_sample = max(int(s["mvms"]) * int(s["rows"]) for s in mapping["layers"]) * max(1, chips)
    return int(min(1024, max(1, budget // per_sample)))


def _batches(n: int, size: int) -> Iterator[slice]:
    for a in range(0, n, size):
        yield slice(a, min(a + size, n))


def evaluate(
    sim: Simulator,
    x: torch.Tensor,
    y: torch.Tensor,
    mc: MonteCarlo,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """One row per noise model of ``mc.models``: accuracy mean/std/percentiles over ``mc.chips(model)`` chips
    (the model's six non-idealities first); over one chip where nothing is drawn per chip (wires alone: every chip
    the same, ``instances`` 1). Setting k draws from generator seed ``seed * 1000 + k``.
    ``progress(done, total)`` is called after every simulated batch (the stage shows it; the core prints nothing)."""
    rows = []
    grid = list(mc.models)
    chunk, bs = mc.instance_chunk, mc.batch_size
    total = sum(math.ceil(mc.chips(m) / chunk) for m in grid) * math.ceil(len(x) / bs)
    done = 0

    def step(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    noise = sim.chip.device.noise
    for k, model in enumerate(grid):
        n_inst, t0 = mc.chips(model), time.perf_counter()
        model = model.on_device(noise.drift is not None, noise.read is not None)  # the realistic chip on this device
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        correct = []
        setting = model.setting()
        if model.ideal:  # nothing perturbed: every chip is the ideal one
            hits = sum(int((sim.forward(x[sl])[0].argmax(-1) == y[sl]).sum()) for sl in _batches(len(x), bs))
            correct.append(torch.full((n_inst,), hits / len(x), dtype=torch.float64))
            step(math.ceil(n_inst / chunk) * math.ceil(len(x) / bs))
        n_sim = n_inst if model.drawn else 1  # chips that cannot differ (wires alone): one of them simulated
        if not correct and n_sim < n_inst:
            step((math.ceil(n_inst / chunk) - 1) * math.ceil(len(x) / bs))  # the chunks it spares
        for a in range(0, n_sim if not correct else 0, chunk):
            m = min(chunk, n_sim - a)
            chips = sim.chips(Perturbation(model, m, sim, gen, mc.converter_parts))  # drawn once, for every batch
            hits = torch.zeros(m, dtype=torch.float64)
            for sl in _batches(len(x), bs):
                logits = sim.forward(x[sl], perturb=chips)
                hits += (logits.argmax(-1) == y[sl]).sum(-1).double().cpu()
                step()
            correct.append(hits / len(x))
        acc = torch.cat(correct).numpy()
        std = float(acc.std(ddof=1)) if len(acc) > 1 and np.ptp(acc) > 0 else 0.0
        rows.append(
            {
                **setting,
                "accuracy_mean": float(acc.mean()),
                "accuracy_std": std,
                "accuracy_p5": float(np.percentile(acc, 5)),
                "accuracy_p50": float(np.percentile(acc, 50)),
                "accuracy_p95": float(np.percentile(acc, 95)),
                "instances": int(len(acc)),
            }
        )
        took = time.perf_counter() - t0  # benchmarks/noise_setting_times.py reads it from the job logs
        log.info("%s: accuracy %.4f +- %.4f (%d chips, %.2f s)", setting, acc.mean(), rows[-1]["accuracy_std"],
                 len(acc), took)  # fmt: skip
    return rows


@torch.no_grad()
def ideal_accuracy(
    sim: Simulator, x: torch.Tensor, y: torch.Tensor, adc: bool = True, bs: int = 512, dac: bool = True
) -> float:
    hits = 0
    for sl in _batches(len(x), bs):
        hits += int((sim.forward(x[sl], adc=adc, dac=dac)[0].argmax(-1) == y[sl]).sum())
    return hits / len(x)


def loss_breakdown(sim: Simulator, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The ideal crossbar's accuracy as the circuit's quantizers are switched on one after the other: the mapped
    weights alone (exact analog inputs and column sums), then the DAC, then the ADC (= the ideal crossbar). A
    bit-serial circuit has no exact-input variant: its first step is then absent."""
    out = {}
    if sim.passes == 1:
        out["weights"] = ideal_accuracy(sim, x, y, adc=False, dac=False)
    out["dac"] = ideal_accuracy(sim, x, y, adc=False)
    out["adc"] = ideal_accuracy(sim, x, y, adc=True)
    return out
