"""The operating point of every deployment of a results folder under each device preset: the largest and mean column
current at full drive, the array power and the column-current limit, from crossbar.npz's device levels (the same
levels on another device: G = G_min + level x (G_max - G_min) / (2^b - 1)) through
:func:`nvmxbar.core.layout.column_currents`, the function that writes mapping.json's. Mean over the seeds.

    .venv/bin/python tools/operating_point.py results                 # every preset, markdown
    .venv/bin/python tools/operating_point.py results --presets rram_wan2022 neurosim_v13 --csv op.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nvmxbar.core.layout import column_currents  # noqa: E402
from nvmxbar.devices import PRESETS  # noqa: E402
from nvmxbar.report.device_repricing import on_preset  # noqa: E402

COLUMNS = ("max_column_current_ua", "mean_column_current_ua", "array_power_uw", "column_current_limit_ua")


def deployments(results: Path) -> Iterator[tuple[Path, dict, dict[str, np.ndarray]]]:
    """Every mapped deployment of a results folder: (its mapping.json path, the document, crossbar.npz's arrays)."""
    for mp in sorted(results.glob("*/*/*/seed*/mapping.json")) + sorted(results.glob("*/*/seed*/mapping.json")):
        npz = mp.with_name("crossbar.npz")
        if npz.exists():
            with np.load(npz) as z:
                yield mp, json.loads(mp.read_text()), {k: z[k] for k in z.files}


def on_device(arrays: dict[str, np.ndarray], mapping: dict, preset: str) -> dict:
    """mapping.json's ``total`` operating point with the same device levels on ``preset``'s device."""
    m = on_preset(mapping, preset)
    g_max = m["chip"]["device"]["g_max_us"]
    g_min = g_max / m["chip"]["device"]["on_off_ratio"]
    dg = (g_max - g_min) / (m["device"]["levels"] - 1)
    arr = {k: v for k, v in arrays.items() if not k.endswith(".G_us")}
    for i in range(len(m["layers"])):
        arr[f"L{i}.G_us"] = g_min + arrays[f"L{i}.levels"].astype(np.float64) * dg
    column_currents(arr, m)
    return {k: m["total"][k] for k in (*COLUMNS, "column_current_within_limit")}


def table(results: Path, presets: list[str]) -> pd.DataFrame:
    """One row per dataset, variant, bits and preset: the operating point, mean over the seeds (n)."""
    rows = []
    for _, mapping, arrays in deployments(results):
        for preset in presets:
            point = on_device(arrays, mapping, preset)
            rows.append(
                {
                    "dataset": mapping["dataset"],
                    "variant": mapping["variant"],
                    "bits": mapping["bits"],
                    "preset": preset,
                    **point,
                }
            )
    if not rows:
        raise SystemExit(f"{results}: no mapping.json with its crossbar.npz under <dataset>/<variant>/...")
    df = pd.DataFrame(rows)
    keys = ["dataset", "variant", "bits", "preset"]
    agg = df.groupby(keys, sort=False).agg(
        **{k: (k, "mean") for k in COLUMNS},
        within_limit=("column_current_within_limit", "all"),
        n=("variant", "size"),
    )
    return agg.reset_index()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="a results folder (its <dataset>/<variant>/.../seed<s>/mapping.json)")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    args = ap.parse_args(argv)
    t = table(args.results, args.presets)
    if args.csv:
        t.to_csv(args.csv, index=False)
    show = t.copy()
    show["max_column_current_ua"] = show["max_column_current_ua"].map(lambda v: f"{v:,.0f}")
    show["mean_column_current_ua"] = show["mean_column_current_ua"].map(lambda v: f"{v:,.0f}")
    show["array_power_uw"] = show["array_power_uw"].map(lambda v: f"{v / 1000:,.1f} mW")
    show["column_current_limit_ua"] = show["column_current_limit_ua"].map(lambda v: f"{v:,.0f}")
    print(show.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
