"""REPORT.md's verdicts on the paper's claims (:func:`verdict`, :func:`claims`).

One of four words per claim:

* **reproduced**: a measured number (the mean over the seeds) is within the tolerance of the paper's figure,
  |mean − paper| <= tolerance, AND the 95 % t confidence interval of that mean lies inside paper ± tolerance: the
  agreement holds across the seed spread. It needs at least two seeds (one seed has no interval);
* **not reproduced**: compared, and either outside the tolerance or, within it, with a confidence interval that
  reaches beyond paper ± tolerance (or no interval: one seed);
* **run**: what the claim needs ran, but it states no number to compare (e.g. "4-bit and 2-bit devices");
* **not measured**: the run the claim needs is not in this report.

Tolerances: config ``report.accuracy_tolerance_pct`` (points of accuracy) and ``report.cost_tolerance_pct``
(points of saving), both ways (a saving far beyond the paper's rests on another cost model or baseline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from ..stats import LEVEL, summary
from .paper import COMBINED_VARIANTS, DATASET_NAMES, PAPER_FIGURES

REPRODUCED, NOT_REPRODUCED, RUN, NOT_MEASURED = "reproduced", "not reproduced", "run", "not measured"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict and the numbers it rests on (percent; NaN where there is none)."""

    word: str
    mean: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    why: str = ""

    def text(self) -> str:
        """'**word**' with the reason in brackets."""
        return f"**{self.word}**" + (f" ({self.why})" if self.why else "")


def mean_ci(values: Iterable[float], level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite ``values``: the t confidence interval of the mean at ``level``; NaN bounds
    with fewer than two values."""
    mean, std, n = summary(values)
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n) if std > 0 else 0.0
    return mean, mean - half, mean + half, n


def verdict(values: Iterable[float], paper: float, tol: float) -> Verdict:
    """The verdict on per-seed ``values`` (percent) against the paper's figure with tolerance ``tol`` (points)."""
    mean, lo, hi, n = mean_ci(values)
    if n == 0:
        return Verdict(NOT_MEASURED, why="no number in this report")
    gap = mean - paper
    where = f"{abs(gap):.1f} points {'above' if gap >= 0 else 'below'} the paper's"
    if abs(gap) > tol:
        return Verdict(NOT_REPRODUCED, mean, lo, hi, n, f"{where}, outside ± {tol:g}")
    if n < 2:
        return Verdict(NOT_REPRODUCED, mean, lo, hi, n, f"{where}, but one seed: no confidence interval")
    ci = f"95 % CI [{lo:.1f}, {hi:.1f}]"
    if lo < paper - tol or hi > paper + tol:
        return Verdict(NOT_REPRODUCED, mean, lo, hi, n, f"{where}, but the {ci} reaches beyond {paper:g} ± {tol:g}")
    return Verdict(REPRODUCED, mean, lo, hi, n, f"{where}, {ci} inside {paper:g} ± {tol:g}")


def coverage(what: str, wanted: dict, ran: Iterable) -> Verdict:
    """A claim with no number ("datasets X and Y", "4-bit and 2-bit devices"): *run* when every ``wanted`` key
    ran, else *not measured* naming the missing ones."""
    ran = set(ran)
    missing = [label for key, label in wanted.items() if key not in ran]
    if missing:
        return Verdict(NOT_MEASURED, why=f"no {', '.join(missing)} {what} in this report")
    return Verdict(RUN, why=f"every {what} ran; the claim states no number to compare")


def seed_savings(cost: pd.DataFrame, variant: str, dataset: str, bits: int, column: str) -> list[float]:
    """Per seed, the % saving of ``variant`` over the baseline of the same seed and bits (``column``: area_um2 or
    energy_pj of the collected cost frame)."""
    here = cost[(cost.dataset == dataset) & (cost.bits == bits)]
    base = here[here.variant == "baseline"].set_index("seed")[column]
    dep = here[here.variant == variant].set_index("seed")[column]
    return [100.0 * (1.0 - float(dep[s]) / float(base[s])) for s in dep.index if s in base.index and base[s]]


def claims(data: dict[str, pd.DataFrame], per_seed: pd.DataFrame, cost: pd.DataFrame | None, cfg: dict) -> list[str]:
    """REPORT.md's "The paper's claims": the rule, then one line per claim with its verdict."""
    meta = data["meta"].iloc[0]
    datasets, bits = list(meta.datasets), list(meta.bits)
    tol_a, tol_c = float(cfg["accuracy_tolerance_pct"]), float(cfg["cost_tolerance_pct"])
    out = [
        "Verdicts: *reproduced* = our number, the mean over the seeds, is within the tolerance of the paper's figure "
        f"(|mean − paper| ≤ {tol_a:g} points of accuracy, {tol_c:g} points of saving: config "
        "`report.accuracy_tolerance_pct`, `report.cost_tolerance_pct`) AND the 95 % t confidence interval of that "
        "mean lies inside paper ± tolerance (so at least two seeds); *not reproduced* = compared, and outside the "
        "tolerance, or inside it with an interval reaching beyond it (or none: one seed); *run* = what the claim "
        "needs ran, and it states no number to compare; *not measured* = the run it needs is not in this report.",
        "",
    ]
    names = {"har": "HAR", "cifar10": "CIFAR-10"}
    v = coverage("dataset", names, datasets)
    out.append(f"- **Datasets CIFAR-10 and HAR**: ran {', '.join(names.get(d, d) for d in datasets)} — {v.text()}.")
    v = coverage("device resolution", {4: "4-bit", 2: "2-bit"}, [int(b) for b in bits])
    out.append(f"- **4-bit and 2-bit devices**: ran {', '.join(f'{b}-bit' for b in bits)} — {v.text()}.")
    t = data["training"]
    p = PAPER_FIGURES["har_float_accuracy"]
    base = t[(t.dataset == "har") & (t.model == "baseline")].test_accuracy
    v = verdict(100 * base.astype(float), p["value"], tol_a)
    out.append(f"- **HAR, floating point: {p['value']:g} %** ({p['source']}): " + _measured(v, "our float baseline"))
    p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
    rows = per_seed[(per_seed.dataset == "har") & (per_seed.variant == "unipolar") & (per_seed.bits == 2)]
    v = verdict(100 * rows.ideal_crossbar_accuracy.astype(float), p["value"], tol_a)
    out.append(
        f"- **HAR, 2-bit devices, only-positive weights: up to {p['value']:g} %** ({p['source']}): "
        + _measured(v, "our `unipolar` 2-bit network on the ideal crossbar")
    )
    real = rows.realistic_chip.astype(float).dropna() if "realistic_chip" in rows else rows.iloc[:0]
    if len(real):  # the same claim on the realistic chip (evaluate_noise.realistic)
        v = verdict(100 * real, p["value"], tol_a)
        out.append(
            "  - the same on the **realistic chip** (the preset's programming and read noise, drift at one day, "
            "wires and converter error): " + _measured(v, "the same networks on the realistic chip")
        )
    for key, v1key, column, what in (
        ("area_combined", "area_unipolar_v1", "area_um2", "area"),
        ("energy_combined", "power_v1", "energy_pj", "energy"),
    ):
        p, p1 = PAPER_FIGURES[key], PAPER_FIGURES[v1key]
        head = (
            f"- **{what.capitalize()}, both techniques combined: up to {p['value']:g} %** ({p['source']}; "
            f"{p1['text']}: {p1['value']:g} %, {p1['source']}): "
        )
        best = _best_combined(data.get("cost"), column, datasets, bits)
        if best is None:
            out.append(head + Verdict(NOT_MEASURED, why="no combined (`unipolar`) deployment with cost.json").text())
            continue
        (ds, b), savings = best
        v = verdict(savings, p["value"], tol_c)
        where = f"our best combined (`unipolar`) {what} saving, {DATASET_NAMES.get(ds, ds)} on {b}-bit devices"
        out.append(head + _measured(v, where))
    return out


def _best_combined(cost: pd.DataFrame | None, column: str, datasets: list, bits: list):
    """The combined deployment with the largest mean saving and its per-seed savings; None when none ran."""
    if cost is None or not len(cost):
        return None
    found = [
        ((ds, int(b)), seed_savings(cost, variant, ds, int(b), column))
        for variant in COMBINED_VARIANTS
        for ds in datasets
        for b in bits
    ]
    found = [f for f in found if f[1]]
    return max(found, key=lambda f: summary(f[1])[0]) if found else None


def _measured(v: Verdict, what: str) -> str:
    if v.word == NOT_MEASURED:
        return v.text() + "."
    spread = "one seed" if v.n < 2 else f"n = {v.n} seeds, 95 % CI [{v.ci_low:.1f}, {v.ci_high:.1f}] %"
    return f"{what}: {v.mean:.1f} % ({spread}) — {v.text()}."
