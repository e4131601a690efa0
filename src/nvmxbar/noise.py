"""Stage `evaluate_noise`: Monte Carlo accuracy of the mapped crossbars under device non-idealities.

Each setting of the sweep (the Cartesian product of the lists in config ``evaluate_noise.sweep``) draws
``instances`` chips at once (vectorised along a leading instance axis, no Python loop per instance):
programming noise (Gaussian, sigma relative to the conductance range G_max - G_min), stuck-at-G_min and
stuck-at-G_max devices, a finite ON/OFF ratio, optional drift G(t) = G(t0) (t/t0)^-nu with per-device nu;
read noise is redrawn at every inference (exactly, as a Gaussian on each column current with variance
sum_i V_i^2 (sigma_read G_i)^2). Every setting can be switched off (0; on_off_ratio null keeps the device's).
"""
from __future__ import annotations

import itertools
import math
import sys
from typing import Any

import numpy as np
import torch

from .crossbar import Simulator, network_inputs

SETTING_KEYS = ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "on_off_ratio", "drift_t_s")


def settings_grid(sweep: dict[str, list]) -> list[dict[str, Any]]:
    keys = [k for k in SETTING_KEYS]
    values = [sweep.get(k, [0.0 if k != "on_off_ratio" else None]) for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


class Perturbation:
    """Draws ``instances`` perturbed copies of each layer's conductances once (cached: a chip keeps its
    programming errors), and carries the read-noise sigma and generator for the simulator."""

    def __init__(self, setting: dict, instances: int, sim: Simulator, generator: torch.Generator, drift: dict):
        self.s, self.n, self.sim, self.generator, self.drift = setting, instances, sim, generator, drift
        self.read_sigma = float(setting.get("read_sigma") or 0.0)
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, i: int, g: torch.Tensor) -> torch.Tensor:
        if i in self.cache:
            return self.cache[i]
        L, gen, s = self.sim.L, self.generator, self.s
        g_off = self.sim.g_off
        if s.get("on_off_ratio"):
            g_off = L / (float(s["on_off_ratio"]) - 1.0)  # G_min = G_max / ratio, in dG units
        base = g - self.sim.g_off + g_off
        out = base.expand(self.n, *g.shape).clone()
        if s.get("prog_sigma"):
            out += torch.randn(out.shape, generator=gen) * float(s["prog_sigma"]) * L
            out.clamp_(min=0.0)
        if s.get("stuck_min") or s.get("stuck_max"):
            r = torch.rand(out.shape, generator=gen)
            p0, p1 = float(s.get("stuck_min") or 0.0), float(s.get("stuck_max") or 0.0)
            out = torch.where(r < p0, torch.full_like(out, g_off), out)
            out = torch.where((r >= p0) & (r < p0 + p1), torch.full_like(out, g_off + L), out)
        if s.get("drift_t_s"):
            t, t0 = float(s["drift_t_s"]), float(self.drift["t0_s"])
            nu = (self.drift["nu"] + self.drift["nu_std"] * torch.randn(out.shape, generator=gen)).clamp(min=0.0)
            out = out * (max(t, t0) / t0) ** (-nu)
            if self.drift.get("compensation", True):
                out = out * (max(t, t0) / t0) ** self.drift["nu"]  # one global gain: the mean drift
        self.cache[i] = out
        return out


def _batches(n: int, size: int):
    for a in range(0, n, size):
        yield slice(a, min(a + size, n))


def evaluate(sim: Simulator, x: torch.Tensor, y: torch.Tensor, cfg: dict, seed: int, progress=True) -> list[dict]:
    """One row per setting: accuracy mean/std/percentiles over ``cfg['instances']`` chips."""
    rows = []
    grid = settings_grid(cfg["sweep"])
    n_inst, chunk = int(cfg["instances"]), int(cfg.get("instance_chunk", 10))
    bs = int(cfg.get("batch_size", 256))
    total = len(grid) * math.ceil(n_inst / chunk) * math.ceil(len(x) / bs)
    done = 0
    try:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="evaluate_noise", file=sys.stderr, disable=not progress, mininterval=5)
    except ImportError:  # pragma: no cover
        bar = None
    for k, setting in enumerate(grid):
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        correct = []
        if not any(setting.get(k) for k in SETTING_KEYS):  # nothing perturbed: every chip is the ideal one
            hits = sum(int((sim.forward(x[sl])[0].argmax(-1) == y[sl]).sum()) for sl in _batches(len(x), bs))
            correct.append(torch.full((n_inst,), hits / len(x), dtype=torch.float64))
            done += math.ceil(n_inst / chunk) * math.ceil(len(x) / bs)
            if bar is not None:
                bar.update(math.ceil(n_inst / chunk) * math.ceil(len(x) / bs))
        for a in range(0, n_inst if not correct else 0, chunk):
            m = min(chunk, n_inst - a)
            pert = Perturbation(setting, m, sim, gen, cfg["drift"])
            hits = torch.zeros(m)
            for sl in _batches(len(x), bs):
                logits = sim.forward(x[sl], perturb=pert)
                hits += (logits.argmax(-1) == y[sl]).sum(-1).double()
                done += 1
                if bar is not None:
                    bar.update(1)
            correct.append(hits / len(x))
        acc = torch.cat(correct).numpy()
        rows.append({**setting, "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 and np.ptp(acc) > 0 else 0.0,
                     "accuracy_p5": float(np.percentile(acc, 5)), "accuracy_p50": float(np.percentile(acc, 50)),
                     "accuracy_p95": float(np.percentile(acc, 95)), "instances": int(len(acc))})
        print(f"[evaluate_noise] {setting}: accuracy {acc.mean():.4f} +- {rows[-1]['accuracy_std']:.4f}",
              file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    return rows


@torch.no_grad()
def ideal_accuracy(sim: Simulator, x: torch.Tensor, y: torch.Tensor, adc: bool = True, bs: int = 512) -> float:
    hits = 0
    for sl in _batches(len(x), bs):
        hits += int((sim.forward(x[sl], adc=adc)[0].argmax(-1) == y[sl]).sum())
    return hits / len(x)


def noise_stage(*, crossbar_npz, mapping_json, data_npz, model_metrics, out_csv, dataset: str, variant: str, bits: int,
                cfg: dict, seed: int, experiment: str | None = None, threads: int = 1, rule: str = "evaluate_noise"):
    """The whole evaluate_noise rule: ideal and noisy crossbar accuracy, noise.csv (atomic), MLflow child run."""
    import csv
    import json
    import time
    from pathlib import Path

    from . import tracking

    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    mapping = json.loads(Path(mapping_json).read_text())
    with np.load(crossbar_npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    sim = Simulator(arrays, mapping)
    x, y = network_inputs(data_npz, "test", cfg.get("samples"))
    n = len(y)
    ideal = ideal_accuracy(sim, x, y, adc=True)
    rows = evaluate(sim, x, y, cfg, seed)
    cols = list(SETTING_KEYS) + ["accuracy_mean", "accuracy_std", "accuracy_p5", "accuracy_p50", "accuracy_p95", "instances"]
    with tracking.atomic_path(out_csv) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r[k] is None else r[k]) for k in cols})
    summary = {"ideal_crossbar_accuracy": ideal, "samples": int(n), "wall_time_s": round(time.time() - t0, 2)}
    tracking.write_json(Path(out_csv).with_name("noise_summary.json"), summary)
    client, run_id = tracking.start_child_run(experiment, model_metrics, run_name=f"evaluate_noise {dataset}/{variant}/b{bits}",
                                              rule=rule, params={"evaluate_noise": cfg, "bits": bits}, dataset=dataset,
                                              variant=variant, bits=bits, seed=seed)
    if client:
        client.log_metric(run_id, "ideal_crossbar_accuracy", ideal)
        for k, r in enumerate(rows):
            client.log_metric(run_id, "accuracy_mean", r["accuracy_mean"], step=k)
        client.log_artifact(run_id, str(out_csv))
        client.set_terminated(run_id, "FINISHED")
    print(f"[evaluate_noise] {dataset}/{variant}/b{bits}: ideal crossbar {ideal:.4f}, {len(rows)} settings "
          f"in {summary['wall_time_s']:.0f} s", file=sys.stderr, flush=True)
    return rows
