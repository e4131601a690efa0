"""Benchmark: the IR-drop transfer matrices (nvmxbar.core.ir_drop.effective_conductance) of a Monte Carlo population
of tiles, against a plain batched matmul of the same tiles. A population of chips x tiles of size x size cells, G
uniform in [0.1, 1] x g_on (float32 in), r_row = r_col = r_wire, ideal driver and sense, read (a) with all columns
active at once, (b) in mux phases: phase k reads columns k, k + phases, k + 2 phases, ... (the others float), one
transfer matrix per chip, tile and phase. For scale, (c) one float32 matmul of every tile with `inputs` input vectors
(what the simulator does per input with W in place of G). Prints a table; not a test.

Run: .venv/bin/python benchmarks/ir_drop_speed.py [--chips 25] [--tiles 10] [--size 128] [--phases 8]
     [--inputs 2000] [--threads 2] [--device auto] [--g-on 1e-4] [--r-wire 0.93]
Tiny: --chips 1 --tiles 2 --size 16 --phases 2 --inputs 50 --threads 1
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar.core.ir_drop import effective_conductance  # noqa: E402
from nvmxbar.core.tensors import auto_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chips", type=int, default=25)
    ap.add_argument("--tiles", type=int, default=10, help="tiles per chip")
    ap.add_argument("--size", type=int, default=128, help="rows = columns of a tile")
    ap.add_argument("--phases", type=int, default=8, help="mux phases (columns per phase = size / phases)")
    ap.add_argument("--inputs", type=int, default=2000, help="input vectors per tile for the matmul")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--g-on", type=float, default=1e-4, help="siemens: G uniform in [0.1, 1] x g_on")
    ap.add_argument("--r-wire", type=float, default=0.93, help="ohms per row and column segment (NeuroSim 22 nm)")
    args = ap.parse_args()
    if min(args.chips, args.tiles, args.size, args.phases, args.inputs, args.threads) < 1:
        ap.error("--chips, --tiles, --size, --phases, --inputs and --threads: at least 1")
    if args.size % args.phases:
        ap.error(f"--phases must divide --size ({args.size})")
    torch.set_num_threads(args.threads)
    device = auto_device(args.device)
    gen = torch.Generator().manual_seed(0)
    n, P = args.size, args.phases
    G = ((0.1 + 0.9 * torch.rand(args.chips, args.tiles, n, n, generator=gen)) * args.g_on).to(device)
    x = torch.rand(args.chips * args.tiles, args.inputs, n, generator=gen).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t

    r = args.r_wire
    effective_conductance(G[:1, :1], torch.arange(n), r, r)  # warm-up (torch's first calls)
    full, t_full = timed(lambda: effective_conductance(G, torch.arange(n), r, r))
    # phase k: columns k, k + P, ...; G (chips, tiles, P, R, n / P), positions (P, n / P) broadcast over chips, tiles
    Gp = G.reshape(args.chips, args.tiles, n, n // P, P).permute(0, 1, 4, 2, 3).contiguous()
    pos = torch.arange(n).reshape(n // P, P).T
    mux, t_mux = timed(lambda: effective_conductance(Gp, pos, r, r))
    Gm = G.reshape(-1, n, n)
    _, t_mm = timed(lambda: torch.bmm(x, Gm))  # once to warm up
    t_mm = min(timed(lambda: torch.bmm(x, Gm))[1] for _ in range(3))

    def deficit(W: torch.Tensor, G: torch.Tensor) -> float:  # all rows at one voltage: mean over columns
        return (1 - W.double().sum(-2) / G.double().sum(-2)).mean().item()

    print(
        f"IR drop: {args.chips} chips x {args.tiles} tiles of {n} x {n}, G uniform in [0.1, 1] x {args.g_on:g} S "
        f"(float32), r_row = r_col = {r:g} Ohm, {torch.get_num_threads()} threads, {device}"
    )
    print(
        f"{'case':<24} {'problems':>8} {'R x n':>11} {'rhs':>4} {'iterations':>10} {'residual':>9} {'seconds':>9} "
        f"{'deficit':>8}"
    )
    for name, out, g, t in (("all columns", full, G, t_full), (f"{P} mux phases", mux, Gp, t_mux)):
        R, c = g.shape[-2:]
        its = out.iterations
        print(
            f"{name:<24} {its.numel():>8} {f'{R} x {c}':>11} {min(R, c):>4} {f'{its.min()}-{its.max()}':>10} "
            f"{out.residual.max().item():>9.2e} {t:>9.3g} {100 * deficit(out.W, g):>7.1f}%"
        )
    print(
        f"{f'matmul, {args.inputs} inputs':<24} {Gm.shape[0]:>8} {f'{n} x {n}':>11} {'-':>4} {'-':>10} {'-':>9} "
        f"{t_mm:>9.3g} {'-':>8}"
    )


if __name__ == "__main__":
    main()
