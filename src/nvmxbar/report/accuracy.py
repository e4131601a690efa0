"""The accuracy tables over seeds (all accuracies as fractions in [0, 1]):

* :func:`per_seed_table` -> tables/accuracy_per_seed.csv: one row per deployment and seed;
* :func:`accuracy_table` -> tables/accuracy.csv: one row per deployment, ``<quantity>_mean`` and
  ``<quantity>_std`` over the seeds (ddof=1; NaN with one seed) beside the paper's figure;
* :func:`comparisons_table` -> tables/comparisons.csv: differences of means between deployments with a 95 % Welch
  confidence interval, and whether it excludes 0 (``beyond_seed_spread``).

Their Markdown/LaTeX views (percent, "mean ± std"): :func:`display_accuracy` etc.; :func:`seeds_section` and
:func:`comparisons_section` are REPORT.md's paragraphs on them."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..stats import LEVEL, summary, welch
from .formatting import markdown, num, pct_pm, points_ci
from .paper import paper_accuracy
from .seeds import DEPLOYMENT
from .seeds import seeds_text as _seeds_text
from .tables import reference_row

#: The accuracies of accuracy.csv (each as <quantity>_mean and <quantity>_std): the trained model's (the float
#: network for baseline rows), its validation accuracy, the loss breakdown of the ideal crossbar (mapped weights
#: alone, + DAC, + ADC = ideal crossbar) and the noisy crossbar at the reference programming noise.
QUANTITIES = (
    "test_accuracy",
    "val_accuracy",
    "weights_only_accuracy",
    "with_dac_accuracy",
    "ideal_crossbar_accuracy",
    "noisy_accuracy",
    "realistic_chip",
)
PER_SEED_COLUMNS = (
    *DEPLOYMENT,
    "seed",
    *QUANTITIES,
    "noisy_accuracy_std",
    "noisy_instances",
    "realistic_chip_chip_std",
    "threads",
    "ref_prog_sigma",
    "noise_test_samples",
)
#: Deployments compared (a − b) at the same dataset and device bits, where both ran.
PAIRS = (("unipolar", "uniform"), ("unipolar", "baseline"), ("uniform", "baseline"))
COMPARED = ("test_accuracy", "ideal_crossbar_accuracy", "noisy_accuracy")
#: The float network (the baseline's trained model) is compared with every deployment under this name.
FLOAT = "float"
COMPARISON_COLUMNS = (
    "dataset",
    "bits",
    "a",
    "b",
    "quantity",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "n_a",
    "n_b",
    "beyond_seed_spread",
    "note",
)
QUANTITY_LABELS = {
    "test_accuracy": "trained model",
    "ideal_crossbar_accuracy": "ideal crossbar",
    "noisy_accuracy": "noisy crossbar",
}


def realistic_row(noise: pd.DataFrame, dataset: str, variant: str, bits: int, seed: int) -> pd.Series | None:
    """noise.csv's realistic-chip row of one deployment and seed (evaluate_noise.realistic), None without one."""
    if "setting" not in noise.columns:
        return None
    keep = (
        (noise.dataset == dataset) & (noise.variant == variant) & (noise.bits == bits) & (noise.setting == "realistic")
    )
    nz = noise[keep & (noise.seed == seed)] if "seed" in noise.columns else noise[keep]
    return None if nz.empty else nz.iloc[0]


def per_seed_table(data: dict[str, pd.DataFrame], reference_prog_sigma: float) -> pd.DataFrame:
    """One row per deployment (dataset x variant x bits) and seed: the trained model's test and validation accuracy
    (the float network for the baseline), the loss breakdown and the ideal crossbar (noise_summary.json), the noisy
    crossbar at the swept programming noise nearest ``reference_prog_sigma`` (mean and std across the simulated
    chips of that seed), and the thread count of the training (metrics.json)."""
    tr = data["training"].set_index(["dataset", "model", "seed"])
    summ = data["noise_summary"].set_index([*DEPLOYMENT, "seed"])
    rows = []
    for r in data["mapping"].itertuples():
        ref = reference_row(data["noise"], r.dataset, r.variant, r.bits, reference_prog_sigma, r.seed)
        real = realistic_row(data["noise"], r.dataset, r.variant, r.bits, r.seed)
        t, sm = tr.loc[(r.dataset, r.model, r.seed)], summ.loc[(r.dataset, r.variant, r.bits, r.seed)]
        rows.append(
            {
                "dataset": r.dataset,
                "variant": r.variant,
                "bits": r.bits,
                "seed": r.seed,
                "test_accuracy": float(t.test_accuracy),
                "val_accuracy": float(t.val_accuracy),
                "weights_only_accuracy": float(sm.weights_only_accuracy),
                "with_dac_accuracy": float(sm.with_dac_accuracy),
                "ideal_crossbar_accuracy": float(sm.ideal_crossbar_accuracy),
                "noisy_accuracy": float(ref.accuracy_mean),
                "noisy_accuracy_std": float(ref.accuracy_std),
                "noisy_instances": int(ref.instances),
                "realistic_chip": math.nan if real is None else float(real.accuracy_mean),
                "realistic_chip_chip_std": math.nan if real is None else float(real.accuracy_std),
                "threads": None if pd.isna(t.threads) else int(t.threads),
                "ref_prog_sigma": float(ref.prog_sigma),
                "noise_test_samples": sm.samples,
            }
        )
    return pd.DataFrame(rows, columns=list(PER_SEED_COLUMNS))


def accuracy_table(
    data: dict[str, pd.DataFrame], reference_prog_sigma: float, per_seed: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per deployment: every quantity of :data:`QUANTITIES` as mean and std over the seeds (fractions),
    n_seeds and the seeds, the within-seed spread across chips (``noisy_chip_std_mean``: the chips' std averaged
    over the seeds), the chips per seed, the programming noise used and the paper's figure (a fraction) where one
    exists. ``per_seed``: :func:`per_seed_table`'s, when already built."""
    ps = per_seed_table(data, reference_prog_sigma) if per_seed is None else per_seed
    rows = []
    for (ds, v, b), g in ps.groupby(DEPLOYMENT, sort=False):
        row: dict[str, Any] = {"dataset": ds, "variant": v, "bits": b, "n_seeds": len(g), "seeds": _seeds_text(g.seed)}
        for q in QUANTITIES:
            mean, std, _ = summary(g[q])
            row[f"{q}_mean"], row[f"{q}_std"] = mean, std
        paper, note = paper_accuracy(ds, v, b)
        row.update(
            noisy_chip_std_mean=summary(g.noisy_accuracy_std)[0],
            realistic_chip_chip_std_mean=summary(g.realistic_chip_chip_std)[0],
            noisy_instances=int(g.noisy_instances.min()),
            ref_prog_sigma=float(g.ref_prog_sigma.iloc[0]),
            noise_test_samples=g.noise_test_samples.iloc[0],
            paper_accuracy=paper / 100.0,
            paper_note=note,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons_table(per_seed: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per dataset and device bits, mean(a) − mean(b) with its Welch confidence interval at ``level`` over the
    seeds: for :data:`PAIRS` and for the float network (the baseline's trained model, a = 'float') against every
    deployment, each for the trained model, the ideal and the noisy crossbar (:data:`COMPARED`; for a = 'float'
    the float network's test accuracy against the deployment's quantity). Only deployments that ran."""
    rows = []
    for (ds, b), g in per_seed.groupby(["dataset", "bits"], sort=False):
        present = list(dict.fromkeys(g.variant))
        by = {v: g[g.variant == v] for v in present}
        for va, vb in PAIRS:
            if va in by and vb in by:
                for q in COMPARED:
                    rows.append(
                        {"dataset": ds, "bits": b, "a": va, "b": vb, "quantity": q} | welch(by[va][q], by[vb][q], level)
                    )
        if "baseline" in by:
            flt = by["baseline"]["test_accuracy"]
            for v in present:
                for q in COMPARED:
                    if v == "baseline" and q == "test_accuracy":
                        continue  # the float network against itself
                    w = welch(flt, by[v][q], level)
                    w["note"] = "; ".join(x for x in ("a: the float network's test accuracy", w["note"]) if x)
                    rows.append({"dataset": ds, "bits": b, "a": FLOAT, "b": v, "quantity": q} | w)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


# ----------------------------------------------------------------------------------------------- display
def display_accuracy(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "seeds (n)",
        "trained model (%)",
        "mapped weights (%)",
        "+ DAC (%)",
        "ideal crossbar: + ADC (%)",
        "prog. noise (x device σ(G))",
        "noisy crossbar (%)",
        "chips per seed",
        "realistic chip (%; chip std)",
        "paper (%)",
    ]
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            f"{r.seeds} ({r.n_seeds})",
            pct_pm(r.test_accuracy_mean, r.test_accuracy_std),
            pct_pm(r.weights_only_accuracy_mean, r.weights_only_accuracy_std),
            pct_pm(r.with_dac_accuracy_mean, r.with_dac_accuracy_std),
            pct_pm(r.ideal_crossbar_accuracy_mean, r.ideal_crossbar_accuracy_std),
            format(r.ref_prog_sigma, "g"),
            pct_pm(r.noisy_accuracy_mean, r.noisy_accuracy_std),
            str(r.noisy_instances),
            "n/a"
            if pd.isna(r.realistic_chip_mean)
            else f"{pct_pm(r.realistic_chip_mean, r.realistic_chip_std)}; {100 * r.realistic_chip_chip_std_mean:.2f}",
            num("g")(100 * r.paper_accuracy),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def display_per_seed(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = [
        "dataset",
        "variant",
        "bits",
        "seed",
        "trained model (%)",
        "validation (%)",
        "ideal crossbar (%)",
        "noisy crossbar (%, mean ± std over chips)",
        "chips",
        "threads",
    ]
    pct = lambda v: num(".2f")(100 * v)  # noqa: E731
    rows = [
        [
            r.dataset,
            r.variant,
            str(r.bits),
            str(r.seed),
            pct(r.test_accuracy),
            pct(r.val_accuracy),
            pct(r.ideal_crossbar_accuracy),
            pct_pm(r.noisy_accuracy, r.noisy_accuracy_std),
            str(r.noisy_instances),
            num("g")(r.threads),
        ]
        for r in t.itertuples()
    ]
    return heads, rows


def display_comparisons(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    heads = ["dataset", "bits", "a − b", "quantity", "a (%)", "b (%)", "difference (points)", "95 % CI", "n", "verdict"]
    rows = []
    for r in t.itertuples():
        rows.append(
            [
                r.dataset,
                str(r.bits),
                f"{r.a} − {r.b}",
                QUANTITY_LABELS.get(r.quantity, r.quantity) + (" (a: the float network)" if r.a == FLOAT else ""),
                num(".2f")(100 * r.mean_a),
                num(".2f")(100 * r.mean_b),
                points_ci(r.diff, math.nan, math.nan),
                "n<2: none" if pd.isna(r.ci_low) else f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]",
                f"{r.n_a} / {r.n_b}",
                verdict_text(r.beyond_seed_spread),
            ]
        )
    return heads, rows


def verdict_text(beyond: Any) -> str:
    if beyond is None or (isinstance(beyond, float) and math.isnan(beyond)):
        return "no interval (n<2)"
    return "beyond the seed spread" if bool(beyond) else "within the seed spread"


# ----------------------------------------------------------------------------------------------- REPORT.md
def seed_value(mean: float, std: float, n: int, digits: int = 1) -> str:
    """A percentage over seeds as REPORT.md states it: 'mean of n = 5 seeds: 92.8 ± 0.4 %' (one seed: '92.8 %
    (one seed, no spread)')."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if n < 2 or std is None or math.isnan(std):
        return f"{100 * mean:.{digits}f} % (one seed, no spread)"
    return f"mean of n = {n} seeds: {100 * mean:.{digits}f} ± {100 * std:.{digits}f} %"


def seeds_section(per_seed: pd.DataFrame, seeds: list[int], tables_dir: Path, rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md's "Seeds": which seeds, what they move and what not, and the thread count of the trainings."""
    thr = per_seed.threads.dropna().astype(int) if len(per_seed) else pd.Series(dtype=int)
    if thr.empty:
        threads = "metrics.json records no thread count (trained before the count was recorded)."
    elif thr.nunique() == 1:
        threads = f"Every training ran on {int(thr.iloc[0])} thread(s) (metrics.json `threads`)."
    else:
        counts = ", ".join(f"{n} thread(s): {k} row(s)" for n, k in thr.value_counts().sort_index().items())
        threads = (
            f"**The trainings did not all run on the same number of threads** (metrics.json `threads`; {counts} of "
            "the per-seed table): a seed's numbers are reproducible only at its own thread count."
        )
    return [
        "## Seeds",
        "",
        f"Every deployed model was trained, mapped, noise-evaluated and costed at {len(seeds)} seed(s): "
        f"{', '.join(map(str, seeds))} (config `seeds`). The split into training, validation and test data "
        "(the validation and test subjects) is fixed by the workflow's `seed` and is the same for every seed; the "
        "seeds move the initialisation, the order of the training data and the simulated chips drawn. "
        f"{threads} Tables give the mean ± std over the seeds (std with n − 1; none with one seed); each seed's "
        f"numbers are in `{rel(tables_dir / 'accuracy_per_seed.csv')}`.",
        "",
    ]


def comparisons_section(comp: pd.DataFrame, tables_dir: Path, rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md: the differences between deployments with their confidence intervals."""
    L = [
        "## Differences between deployments",
        "",
        f"Differences of the seed means (a − b, in percentage points) with a {100 * LEVEL:g} % Welch t confidence "
        "interval over the seeds. **A difference counts only when its confidence interval excludes 0** (*beyond the "
        "seed spread*); with one seed on either side there is no interval and no difference can be claimed. "
        "`float`: the float network's test accuracy against the deployment's quantity.",
        "",
    ]
    if comp.empty:
        return L + ["No two deployments of one dataset and device resolution to compare.", ""]
    L.append(markdown(*display_comparisons(comp)))
    L += [f"Table: `{rel(tables_dir / 'comparisons.csv')}` (also `.md`, `.tex`).", ""]
    return L
