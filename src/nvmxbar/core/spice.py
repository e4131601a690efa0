"""The tile of :mod:`nvmxbar.core.parasitics` as a SPICE netlist, and ngspice's solution of it: the independent
check of the exact solver (tests/integration/test_ngspice.py).

The netlist is written from the physical convention (parasitics' module docstring), not from the solver's matrix:
per row i a DC source ``VIN<i>`` (node ``d<i>``), the driver ``RD<i>``, the row segments ``RW<i>_<k>`` (the one
before active column k), the cells ``RC<i>_<k>`` (1/G; G = 0 cells are omitted), the column segments ``RB<i>_<k>``
(the one below b(i,k)), the sense resistances ``RT<k>``, and per column a 0 V source ``VS<k>`` from the sense node
``t<k>`` to ground: a virtual-ground ammeter, i(VS<k>) > 0 for current flowing into the sense node (ngspice-39
manual section 4.1: positive current flows from the positive node through the source). SPICE resistors must be
non-zero (manual section 3.3.1), so zero-ohm segments are not written: their two nodes are one. The control block
(manual sections 16.4.3, 17.5.98) runs the operating point and writes the sense currents with 15 digits:
``option numdgt=15``, ``op``, ``wrdata``, ``quit``; the pattern of docs/sources/irdrop.md section 4.3.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .parasitics import Wires, _check_inputs, _check_tile

#: The file the netlist's ``wrdata`` writes, in ngspice's working directory.
OUTPUT_FILE = "nvmxbar_currents.txt"


def _ohm(value: float) -> str:
    return repr(float(value))


def netlist(
    G: np.ndarray, V: np.ndarray, positions: np.ndarray | None, wires: Wires, title: str = "nvmxbar crossbar tile"
) -> str:
    """The SPICE text of a tile (G (R, n) siemens, V (R,) volts, positions (n,) or None for 0 .. n-1, wires ohms),
    whose run writes the n sense currents i(VS<k>) to :data:`OUTPUT_FILE` (:func:`run_ngspice` reads them)."""
    G, p = _check_tile(G, positions, wires)
    V = _check_inputs(V, G.shape[0])
    if V.ndim != 1:
        raise ValueError(f"V: one input vector (R,) per netlist, got shape {V.shape}")
    R, n = G.shape
    # physical elements (name, node, node, ohms); zero-ohm ones only merge their nodes
    elements: list[tuple[str, str, str, float]] = []
    for i in range(R):
        elements.append((f"RD{i}", f"d{i}", f"s{i}", wires.driver_ohm))
        for k in range(n):
            before = f"s{i}" if k == 0 else f"a{i}_{k - 1}"
            pitches = p[0] + 1 if k == 0 else p[k] - p[k - 1]
            elements.append((f"RW{i}_{k}", before, f"a{i}_{k}", pitches * wires.row_ohm))
    for k in range(n):
        for i in range(R):
            below = f"b{i + 1}_{k}" if i < R - 1 else f"u{k}"
            elements.append((f"RB{i}_{k}", f"b{i}_{k}", below, wires.col_ohm))
        elements.append((f"RT{k}", f"u{k}", f"t{k}", wires.sense_ohm))
    for i, k in zip(*np.nonzero(G > 0)):
        elements.append((f"RC{i}_{k}", f"a{i}_{k}", f"b{i}_{k}", 1.0 / G[i, k]))

    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.get(node, node) != node:
            node = parent[node]
        return node

    for _, x, y, ohm in elements:
        if ohm == 0:
            rx, ry = find(x), find(y)
            if rx != ry:  # the sources' terminals (d, t) name the merged node
                keep, drop = (ry, rx) if ry[0] in "dt" else (rx, ry)
                parent[drop] = keep
    lines = [f"* {title}"]
    lines += [f"VIN{i} d{i} 0 DC {_ohm(V[i])}" for i in range(R)]
    lines += [f"{name} {find(x)} {find(y)} {_ohm(ohm)}" for name, x, y, ohm in elements if ohm != 0]
    lines += [f"VS{k} t{k} 0 DC 0" for k in range(n)]
    probes = " ".join(f"i(VS{k})" for k in range(n))
    lines += [".control", "option numdgt=15", "set wr_vecnames", "set wr_singlescale", "op"]
    lines += [f"wrdata {OUTPUT_FILE} {probes}", "quit", ".endc", ".end", ""]
    return "\n".join(lines)


def run_ngspice(netlist_text: str, workdir: str | Path | None = None, timeout: float = 600) -> np.ndarray:
    """ngspice's column currents (amperes, > 0 into the sense nodes) of a :func:`netlist` text: ``ngspice -b`` in
    ``workdir`` (None: a temporary folder). RuntimeError, with ngspice's stderr tail, when ngspice is missing,
    fails, times out or writes no currents."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise RuntimeError("ngspice not found on PATH: install the Debian package `ngspice` (apt-get install ngspice)")
    with tempfile.TemporaryDirectory(prefix="nvmxbar-spice-") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tile.cir").write_text(netlist_text)
        out = folder / OUTPUT_FILE
        out.unlink(missing_ok=True)
        try:
            proc = subprocess.run(
                [exe, "-b", "tile.cir"], cwd=folder, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"ngspice ran past {timeout} s on {folder / 'tile.cir'}") from e
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"ngspice failed (exit {proc.returncode}, {out.name} {'written' if out.is_file() else 'missing'}); "
                f"stderr tail:\n{tail}"
            )
        table = np.atleast_2d(np.loadtxt(out, skiprows=1))
    if table.shape[0] != 1 or table.shape[1] < 2:
        raise RuntimeError(f"ngspice wrote an unexpected table of shape {table.shape} to {OUTPUT_FILE}")
    return table[0, 1:]
