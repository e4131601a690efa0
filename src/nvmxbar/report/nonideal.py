"""IR drop and converter error over the seeds: how each deployment's accuracy moves as the chip's wires
(``wire_scale``) and its converters' errors (``adc_error_scale``) scale from 0 (the ideal chip) up, one at a time
(``evaluate_noise.extra``), and on the realistic chip (``evaluate_noise.realistic``); all accuracies on the test
split, fractions in [0, 1].

* :func:`per_seed` -> one row per deployment, seed and condition (the ideal chip: the sweep's all-zero row);
* :func:`nonideal_table` -> tables/nonideal.csv: per deployment and condition, the mean and std over the seeds of
  each seed's mean over chips, the chips' own spread, and the loss against the ideal chip with a paired 95 % t
  interval (the same seed's network on both);
* :func:`comparisons` -> tables/nonideal_comparisons.csv: per condition, a − b for :data:`PAIRS`, of the accuracy and
  of the loss against the ideal chip, paired over the seeds where a and b deploy the same trained network
  (``signed`` and ``unipolar``), else Welch;
* :func:`section`: REPORT.md's "IR drop and converter error"."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..noise_settings import NOISE_KEYS
from ..stats import LEVEL, paired, summary, welch
from .accuracy import verdict_text
from .formatting import markdown, num, pct_pm
from .seeds import DEPLOYMENT

#: The two scaled non-idealities: (noise.csv column, label).
AXES = {"wire_scale": "wires", "adc_error_scale": "converters"}
IDEAL, REALISTIC = "ideal chip", "realistic chip"
#: Compared a − b; True: the two deploy the same trained network at a seed (paired over the seeds).
PAIRS = ((("unipolar", "signed"), True), (("unipolar", "uniform"), False), (("uniform", "perlayer"), False))
PER_SEED_COLUMNS = (*DEPLOYMENT, "seed", "condition", "axis", "scale", "accuracy", "chip_std", "instances")
TABLE_COLUMNS = (
    *DEPLOYMENT,
    "condition",
    "axis",
    "scale",
    "n_seeds",
    "mean",
    "std",
    "chip_std_mean",
    "instances",
    "loss",
    "loss_low",
    "loss_high",
    "loss_beyond",
)
COMPARISON_COLUMNS = (
    "dataset",
    "bits",
    "condition",
    "a",
    "b",
    "quantity",
    "test",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "n",
    "beyond_seed_spread",
)


def _condition(r: pd.Series) -> tuple[str, str, float] | None:
    """(condition, axis, scale) of a noise.csv row: the ideal chip (every non-ideality off), one axis scaled alone
    (the others off), or the realistic chip; None for any other row (the programming-noise sweep)."""
    setting = r.get("setting", "sweep")
    if setting == "realistic":
        return REALISTIC, "realistic", math.nan
    on = [k for k in NOISE_KEYS if k != "on_off_ratio" and not pd.isna(r[k]) and float(r[k]) != 0.0]
    on += ["on_off_ratio"] if "on_off_ratio" in r and not pd.isna(r["on_off_ratio"]) else []
    if not on:
        return IDEAL, "ideal", 0.0
    if len(on) == 1 and on[0] in AXES:
        return f"{AXES[on[0]]} x{float(r[on[0]]):g}", AXES[on[0]], float(r[on[0]])
    return None


def per_seed(noise: pd.DataFrame) -> pd.DataFrame:
    """One row per deployment, seed and condition of noise.csv (:func:`_condition`); empty when noise.csv holds no
    wire or converter setting."""
    rows = []
    for _, r in noise.iterrows():
        c = _condition(r)
        if c is not None:
            rows.append(
                {
                    **{k: r[k] for k in DEPLOYMENT},
                    "seed": int(r.get("seed", 0)),
                    "condition": c[0],
                    "axis": c[1],
                    "scale": c[2],
                    "accuracy": float(r.accuracy_mean),
                    "chip_std": float(r.accuracy_std),
                    "instances": int(r.instances),
                }
            )
    out = pd.DataFrame(rows, columns=list(PER_SEED_COLUMNS)).drop_duplicates([*DEPLOYMENT, "seed", "condition"])
    return out if (out.axis.isin(AXES.values()) | (out.axis == "realistic")).any() else out.iloc[:0]


def _order(df: pd.DataFrame) -> pd.DataFrame:
    rank = {"ideal": 0, "wires": 1, "converters": 2, "realistic": 3}
    first = {v: i for i, v in enumerate(dict.fromkeys(df.variant))}  # the variants in the run's order
    df = df.assign(_r=df.axis.map(rank), _v=df.variant.map(first))
    return df.sort_values(["dataset", "bits", "_v", "_r", "scale"], kind="stable").drop(columns="_v")


def _losses(g: pd.DataFrame, ideal: pd.DataFrame) -> pd.Series:
    """Per seed, the condition's accuracy minus the ideal chip's (the seeds both have)."""
    both = g.set_index("seed").accuracy.to_frame("a").join(ideal.set_index("seed").accuracy.rename("i"), how="inner")
    return both.a - both.i


def nonideal_table(ps: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    rows = []
    for (ds, v, b, cond), g in ps.groupby([*DEPLOYMENT, "condition"], sort=False):
        ideal = ps[(ps.dataset == ds) & (ps.variant == v) & (ps.bits == b) & (ps.condition == IDEAL)]
        mean, std, n = summary(g.accuracy)
        loss = _losses(g, ideal)
        p = paired([0.0] * len(loss), list(loss), level)
        rows.append(
            {
                "dataset": ds,
                "variant": v,
                "bits": b,
                "condition": cond,
                "axis": g.axis.iloc[0],
                "scale": g.scale.iloc[0],
                "n_seeds": n,
                "mean": mean,
                "std": std,
                "chip_std_mean": summary(g.chip_std)[0],
                "instances": int(g.instances.min()),
                "loss": p["diff"],
                "loss_low": p["low"],
                "loss_high": p["high"],
                "loss_beyond": p["beyond"],
            }
        )
    return _order(pd.DataFrame(rows, columns=list(TABLE_COLUMNS))).drop(columns="_r").reset_index(drop=True)


def comparisons(ps: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    rows = []
    for (ds, b, cond), g in ps.groupby(["dataset", "bits", "condition"], sort=False):
        for (va, vb), same_network in PAIRS:
            a, bb = g[g.variant == va], g[g.variant == vb]
            if a.empty or bb.empty:
                continue
            ideal = ps[(ps.dataset == ds) & (ps.bits == b) & (ps.condition == IDEAL)]
            qa = {"accuracy": a.set_index("seed").accuracy, "loss": _losses(a, ideal[ideal.variant == va])}
            qb = {"accuracy": bb.set_index("seed").accuracy, "loss": _losses(bb, ideal[ideal.variant == vb])}
            for q in ("accuracy", "loss") if cond != IDEAL else ("accuracy",):
                row = {
                    "dataset": ds,
                    "bits": b,
                    "condition": cond,
                    "a": va,
                    "b": vb,
                    "quantity": q,
                    "mean_a": qa[q].mean(),
                    "mean_b": qb[q].mean(),
                }
                if same_network:
                    seeds = sorted(set(qa[q].index) & set(qb[q].index))
                    p = paired(list(qb[q][seeds]), list(qa[q][seeds]), level)
                    row |= {
                        "test": "paired",
                        "diff": p["diff"],
                        "ci_low": p["low"],
                        "ci_high": p["high"],
                        "n": p["n"],
                        "beyond_seed_spread": p["beyond"],
                    }
                else:
                    w = welch(qa[q], qb[q], level)
                    row |= {
                        "test": "Welch",
                        "diff": w["diff"],
                        "ci_low": w["ci_low"],
                        "ci_high": w["ci_high"],
                        "n": min(w["n_a"], w["n_b"]),
                        "beyond_seed_spread": w["beyond_seed_spread"],
                    }
                rows.append(row)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _ci(low: float, high: float) -> str:
    return "n<2: none" if pd.isna(low) else f"[{100 * low:+.2f}, {100 * high:+.2f}]"


def display_table(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "condition",
        "accuracy (%)",
        "chip std (%)",
        "loss vs ideal chip (points)",
        "95 % CI",
        "n",
        "verdict",
    ]
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            r.condition,
            pct_pm(r.mean, r.std),
            num(".2f")(100 * r.chip_std_mean),
            "" if r.condition == IDEAL else num("+.2f")(100 * r.loss),
            "" if r.condition == IDEAL else _ci(r.loss_low, r.loss_high),
            str(r.n_seeds),
            "" if r.condition == IDEAL else verdict_text(r.loss_beyond),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def display_comparisons(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "bits",
        "condition",
        "a − b",
        "quantity",
        "a (%)",
        "b (%)",
        "difference (points)",
        "95 % CI",
        "test (n)",
        "verdict",
    ]
    rows = [
        [
            r.dataset,
            str(r.bits),
            r.condition,
            f"{r.a} − {r.b}",
            r.quantity if r.quantity == "accuracy" else "loss vs ideal chip",
            num(".2f")(100 * r.mean_a),
            num(".2f")(100 * r.mean_b),
            num("+.2f")(100 * r.diff),
            _ci(r.ci_low, r.ci_high),
            f"{r.test} ({r.n})",
            verdict_text(r.beyond_seed_spread),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def _sentence(c: pd.DataFrame, cond: str, a: str, b: str, q: str) -> str | None:
    r = c[(c.condition == cond) & (c.a == a) & (c.b == b) & (c.quantity == q)]
    if r.empty:
        return None
    r = r.iloc[0]
    return f"{100 * r['diff']:+.2f} points {_ci(r.ci_low, r.ci_high)} ({verdict_text(r.beyond_seed_spread)})"


def section(table: pd.DataFrame, comp: pd.DataFrame, tables_dir: Path, rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md's "IR drop and converter error": what was simulated, the answers in sentences per dataset and
    bits, and the two tables."""
    if table is None or table.empty:
        return []
    L = ["## IR drop and converter error", ""]
    L.append(
        "Each deployment on its ideal chip (every non-ideality off), then with ONE of the chip's wires (IR drop: "
        "`wire_scale` x `chip.wires`) or its converters' errors (ADCs and row DACs: `adc_error_scale` x "
        "`resources/converter_errors.yaml`) switched on, and on the realistic chip (`evaluate_noise.realistic`: the "
        "preset's programming and read noise, drift at one day with global compensation, wires and converters "
        "together). Accuracy: per seed the mean over the simulated chips, then mean ± std over the seeds; the loss "
        f"against the ideal chip is paired over the seeds (the same network) with its {int(LEVEL * 100)} % t "
        "interval; it counts only when the interval excludes 0."
    )
    L.append("")
    for (ds, b), g in comp.groupby(["dataset", "bits"], sort=False):
        for cond in dict.fromkeys(g.condition):
            if cond == IDEAL:
                continue
            parts = []
            for (a, bb), _ in PAIRS:
                s = _sentence(g, cond, a, bb, "loss")
                if s:
                    parts.append(f"`{a}` − `{bb}` loss {s}")
            if parts:
                L.append(f"- {ds}, {b}-bit devices, {cond}: " + "; ".join(parts) + ".")
    L.append("")
    L.append(markdown(*display_table(table)))
    L.append(
        f"Tables: `{rel(tables_dir / 'nonideal.csv')}`; the differences between deployments (accuracy and "
        f"loss, each condition): `{rel(tables_dir / 'nonideal_comparisons.csv')}` (also `.md`, `.tex`)."
    )
    L.append("")
    return L
