"""REPORT.md: what was run, the seeds, the tables (accuracies as mean ± std over the seeds), the differences between
deployments with their confidence intervals, the improvements over the baseline, the unipolar architecture search
and one verdict per claim of the paper, made on the seed means (:func:`render_report`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .accuracy import comparisons_section, display_accuracy, seeds_section
from .device_claims import preset_claims
from .formatting import fmt_energy, markdown
from .headline import current_flags, headline_section
from .nonideal import section as nonideal_section
from .paper import COMBINED_VARIANTS, DATASET_NAMES, PAPER_REF, TECHNIQUES, VARIANT_DESCRIPTIONS
from .render_nas import nas_section
from .sensitivity_text import report_section as sensitivity_section
from .tables import display_attribution, display_cost
from .timing import times_section
from .verdicts import claims


def _pct(v: float) -> str:
    return f"{v:.1f} %"


def _fmt_area(v: float) -> str:
    return f"{v:,.0f} µm²"


def improvements(cost: pd.DataFrame) -> pd.DataFrame:
    return cost[(cost.variant != "baseline") & cost.area_improvement_pct.notna()]


def _span(x: pd.Series) -> str:
    """'12' when every seed agrees, else '12–20'."""
    v = sorted({int(a) for a in x.dropna()})
    return "?" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}–{v[-1]}"


def _training_text(model: str, g: pd.DataFrame) -> str:
    """One trained model over its seeds: epochs, the epoch model.pt holds and the best validation epoch."""
    head = f"`{model}` {_span(g.epochs)} epochs"
    if g.best_epoch.isna().all():
        return head
    n_test = "/".join(str(int(x)) for x in sorted(set(g.n_test.dropna())))
    return (
        f"{head} (model.pt = epoch {_span(g.selected_epoch)}, best validation epoch {_span(g.best_epoch)} over the "
        f"{len(g)} seed(s); test accuracy on {n_test} samples)"
    )


def wire_aware_lines(training: pd.DataFrame) -> list[str]:
    """The "What was run" line naming the models trained against IR drop (``quant.train_wires``), if any."""
    if "train_wires" not in training:
        return []
    wired = training[training.train_wires.notna()]
    if wired.empty:
        return []
    models = sorted({f"`{r.dataset}/{r.model}` at {r.train_wires:g} x" for r in wired.itertuples()})
    return [
        "- Trained against IR drop (`quant.train_wires`, x the chip's wires; every epoch trains on the weights the "
        "wires leave, see docs/DESIGN.md): " + ", ".join(models) + ". The others trained on ideal wires."
    ]


def device_lines(mapping: pd.DataFrame) -> list[str]:
    """'What was run': the device every deployment is mapped on (chip.device), and what the noise scales mean."""
    if "preset" not in mapping or mapping.empty:
        return []
    devs = mapping[["preset", "g_max_us", "on_off_ratio", "v_read_v"]].drop_duplicates()
    text = "; ".join(
        f"`{d.preset}` (G_max {d.g_max_us:g} µS, ON/OFF {d.on_off_ratio:g}, V_read {d.v_read_v:g} V)"
        for d in devs.itertuples()
    )
    return [
        f"- Device (config `chip.device`, mapping.json): {text}. Programming and read noise are swept as SCALES of "
        "this preset's measured σ(G) (0 = off, 1 = the measured device; `nvmxbar/resources/devices.yaml`)."
    ]


def baseline_lines(layers: pd.DataFrame, mapping: pd.DataFrame) -> list[str]:
    """'What was run': how each baseline's weights are quantized and stored, per dataset and device bits (per seed
    where the seeds' fits differ): sliced per sign onto differential pairs, or offset-encoded (c + 2^(wb-1) in
    unsigned slices, one device per slice)."""
    bl = layers[layers.variant == "baseline"]
    if not len(bl) or not bl.weight_levels.notna().all():
        return []
    mb = mapping[mapping.variant == "baseline"]
    parts = []
    for (ds, b), g in mb.groupby(["dataset", "bits"], sort=False):
        texts = []
        for r in g.itertuples():
            levels = bl[(bl.dataset == ds) & (bl.bits == b) & (bl.seed == r.seed)].weight_levels
            wb = getattr(r, "weight_bits", None)
            wb = int(math.log2(int(levels.max()) + 1)) + 1 if wb is None or pd.isna(wb) else int(wb)
            if getattr(r, "encoding", "") == "offset":
                texts.append(
                    f"{wb}-bit weights offset-encoded (code + {2 ** (wb - 1)} in {int(r.slices)} unsigned "
                    "slice(s), one device per slice, the offset subtracted digitally)"
                )
            else:
                texts.append(
                    f"{wb}-bit weights (±{2 ** (wb - 1) - 1}) in {int(r.slices)} slice(s) per sign (differential pairs)"
                )
        seeds = list(g.seed)
        text = (
            texts[0]
            if len(set(texts)) == 1
            else "; ".join(f"{t} (seed {s})" for t, s in zip(texts, seeds, strict=True))
        )
        parts.append(f"{DATASET_NAMES.get(ds, ds)} on {int(b)}-bit devices: {text}")
    return [
        "- Baseline deployment (mapping.json; encoding and bits fitted per seed, see *Headline*): weights quantized "
        "per layer, " + "; ".join(parts) + "."
    ]


def render_report(
    data: dict[str, pd.DataFrame],
    acc: pd.DataFrame,
    cost: pd.DataFrame,
    cfg: dict,
    profile: str | None,
    figures: dict[str, Path],
    report_path: Path,
    tables_dir: Path,
    times: pd.DataFrame | None = None,
    sensitivity: pd.DataFrame | None = None,
    attribution: pd.DataFrame | None = None,
    *,
    comparisons: pd.DataFrame | None = None,
    per_seed: pd.DataFrame | None = None,
    nonideal_tables: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    notes: Iterable[str] = (),
    bench_dir: Path | None = None,
) -> str:
    """The text of REPORT.md. ``acc``: the accuracy table (means over the seeds, :func:`.accuracy.accuracy_table`);
    ``cfg``: the validated ``report`` section (every key present); ``figures``: name -> PNG path, linked relative
    to ``report_path``'s folder, like the tables under ``tables_dir``; ``times``: the per-rule table of the declared
    benchmark files (:func:`.timing.rule_table`), None: no "Where the time went" section; ``sensitivity``: the table of
    :func:`.sensitivity.sensitivity_table`, None: no "Sensitivity of the savings" section; ``comparisons`` and
    ``per_seed``: :func:`.accuracy.comparisons_table` and :func:`.accuracy.per_seed_table`, None: no section on
    the differences between deployments, no "Seeds" section; ``nonideal_tables``: :mod:`.nonideal`'s table and
    comparisons, None: no "IR drop and converter error" section; ``notes``: lines added to "What was run" (e.g. a
    dataset the workflow left out); ``bench_dir``: the folder of the benchmark files (named in the times section)."""
    meta = data["meta"].iloc[0]
    datasets, variants, bits = list(meta.datasets), list(meta.variants), list(meta.bits)
    seeds = list(meta.seeds) if "seeds" in meta else sorted(set(data["training"].get("seed", [0])))
    tr, summ = data["training"], data["noise_summary"]
    rel = lambda p: os.path.relpath(Path(p).resolve(), report_path.parent.resolve())  # noqa: E731
    L: list[str] = []
    L += [
        "# Reproduction report",
        "",
        f"Paper: {PAPER_REF}. This file is generated by `nvmxbar.report` from the files under `results/`: every "
        "number is read from them, except the paper's published figures (`PAPER_FIGURES` in "
        "`src/nvmxbar/report/paper.py`, taken from the abstract, see `docs/DESIGN.md`).",
        "",
    ]
    # ---- what was run
    L += ["## What was run", ""]
    if profile:
        note = {
            "smoke": " (small subsets and a few epochs: it checks the pipeline end to end; its accuracies are "
            "not expected to reach the paper's)",
            "full": " (the paper-scale settings of config.yaml)",
        }.get(profile, "")
        L.append(f"- Profile: **{profile}**{note}.")
    L.append("- Datasets: " + ", ".join(f"{DATASET_NAMES.get(d, d)} (`{d}`)" for d in datasets) + ".")
    L += [f"- {note}" for note in notes]
    L.append("- Variants: " + "; ".join(f"`{v}` ({VARIANT_DESCRIPTIONS.get(v, 'see README')})" for v in variants) + ".")
    L.append("- Device resolutions: " + ", ".join(f"{b}-bit ({2**b} levels)" for b in bits) + ".")
    L.append(f"- Seeds: {', '.join(map(str, seeds))} (n = {len(seeds)}; every deployment at each, see *Seeds*).")
    L += wire_aware_lines(tr)
    L += device_lines(data["mapping"])
    L += baseline_lines(data["layers"], data["mapping"])
    for d in datasets:
        t = tr[tr.dataset == d]
        ep = ", ".join(_training_text(m, g) for m, g in t.groupby("model", sort=False))
        s = summ[summ.dataset == d]
        inst = sorted(set(data["noise"][data["noise"].dataset == d].instances.astype(int)))
        L.append(
            f"- {DATASET_NAMES.get(d, d)} training (metrics.json): {ep}. Crossbar accuracy on "
            f"{'/'.join(str(int(x)) for x in sorted(set(s.samples.dropna())))} test samples, noise Monte Carlo "
            f"with {'/'.join(map(str, inst))} simulated chips per setting."
        )
    if "cost" in data and len(data["cost"]):
        fams = sorted(set(data["cost"].family) - {""})
        L.append(f"- Cost model converter family: {', '.join(fams) if fams else 'not stated in cost.json'}.")
    sig = float(cfg["reference_prog_sigma"])
    used = sorted(set(acc.ref_prog_sigma))
    L.append(
        f"- Noisy accuracy at programming noise {sig:g} x the device preset's σ(G) (config "
        f"`report.reference_prog_sigma` = {sig:g}; 1 = the measured device); nearest swept value used: "
        + ", ".join(f"{u:g}" for u in used)
        + ", other non-idealities at their first swept value"
        + (
            ""
            if all(abs(u - sig) < 1e-12 for u in used)
            else " (**the sweep does not contain the reference value**: add it to `evaluate_noise.sweep.prog_sigma`)"
        )
        + "."
    )
    L.append("")
    if per_seed is not None:
        L += seeds_section(per_seed, seeds, tables_dir, rel)
    # ---- tables
    L += [
        "## Accuracy",
        "",
        "Accuracies in % on the test split, mean ± std over the seeds (n in the *seeds* column; std with n − 1, "
        "none with one seed). *trained model*: the float network for `baseline`, the quantization-aware network "
        "itself for quantized variants; *ideal crossbar*: the mapped network simulated on ideal devices and "
        "converters; *noisy crossbar*: per seed the mean over the simulated chips at the reference programming "
        "noise, then mean ± std over the seeds (the chips' own spread: `noisy_chip_std_mean` of accuracy.csv, each "
        "seed's in accuracy_per_seed.csv). `paper` only where the paper publishes a number for that row.",
        "",
    ]
    L.append(markdown(*display_accuracy(acc)))
    L.append(
        "The ideal crossbar's accuracy is broken down by switching the circuit's quantizers on one after the "
        "other (test split): the mapped weights alone (exact inputs, no ADC), then the DAC, then the ADC. For "
        "the baseline this is where its loss against the float network arises. A quantized variant was trained "
        "with its DAC and ADC in the loop and may rely on the ADC's clipping, so its first two columns can fall "
        "far below the last."
    )
    L.append("")
    L.append(
        f"Tables: `{rel(tables_dir / 'accuracy.csv')}` (also `.md`, `.tex`); each seed: "
        f"`{rel(tables_dir / 'accuracy_per_seed.csv')}`."
    )
    L.append("")
    if comparisons is not None:
        L += comparisons_section(comparisons, tables_dir, rel)
    if nonideal_tables is not None:
        L += nonideal_section(*nonideal_tables, tables_dir, rel)
    if cost is not None and len(cost):
        L += [
            "## Area and energy",
            "",
            "Per inference, from the parametric cost model (cost.json), mean over the seeds. Improvement = "
            "1 − value / baseline value at the same device bits (positive = smaller / lower). The paper's cost "
            "figures are for both techniques combined and appear beside the combined (`unipolar`) rows only.",
            "",
        ]
        L.append(markdown(*display_cost(cost)))
        L.append(f"Tables: `{rel(tables_dir / 'cost.csv')}` (also `.md`, `.tex`).")
        L.append("")
        L += current_flags(cost)
        L += headline_section(cost, data.get("baseline_fit", pd.DataFrame()), tables_dir, rel)
        L += ["## Improvements over the baseline (same device bits)", ""]
        imp = improvements(cost)
        if imp.empty:
            L.append("No variant besides the baseline (or no baseline) was run: nothing to compare.")
        base = cost[cost.variant == "baseline"].set_index(["dataset", "bits"])
        for r in imp.itertuples():
            bl = base.loc[(r.dataset, r.bits)]
            word_a = "smaller" if r.area_improvement_pct >= 0 else "larger"
            word_e = "lower" if r.energy_improvement_pct >= 0 else "higher"
            line = (
                f"- {DATASET_NAMES.get(r.dataset, r.dataset)}, {r.bits}-bit devices, `{r.variant}` "
                f"({TECHNIQUES.get(r.variant, r.variant)}) vs `baseline`: "
                f"area {_fmt_area(bl.area_um2)} → {_fmt_area(r.area_um2)} (**{_pct(r.area_improvement_pct)}** "
                f"{word_a}), energy {fmt_energy(bl.energy_pj_per_inference)} → "
                f"{fmt_energy(r.energy_pj_per_inference)} pJ per "
                f"inference (**{_pct(r.energy_improvement_pct)}** {word_e}); ADCs {bl.adcs:,} → {r.adcs:,}, "
                f"devices {bl.devices:,} → {r.devices:,}, periphery designs {bl.periphery_designs} → "
                f"{r.periphery_designs}"
            )
            if r.time_share_applied:
                line += " (ADCs time-shared across layers in this total)"
            elif not math.isnan(r.time_shared_area_um2):
                line += (
                    f"; with ADCs time-shared across layers {_fmt_area(r.time_shared_area_um2)} "
                    f"(**{_pct(r.time_shared_area_improvement_pct)}** vs the baseline)"
                )
            if not math.isnan(r.paper_area_improvement_pct):
                line += (
                    f"; the paper, both techniques combined: up to {r.paper_area_improvement_pct:g} % area, "
                    f"up to {r.paper_energy_improvement_pct:g} % energy"
                )
            L.append(line + ".")
        L.append("")
    if attribution is not None and len(attribution) and attribution.variant.nunique() > 1:
        L += [
            "## Where the savings come from (attribution)",
            "",
            "Each row changes one thing from the row before it: the step's own saving is against the step before, "
            "the other columns against the baseline. Accuracies: mean ± std over the seeds; a step's accuracy change "
            "(percentage points against the step before) with its 95 % Welch confidence interval counts only when "
            "that interval excludes 0. Rows of deployments this run did not include are absent.",
            "",
            markdown(*display_attribution(attribution)),
            f"Tables: `{rel(tables_dir / 'attribution.csv')}` (also `.md`, `.tex`).",
            "",
        ]
    if sensitivity is not None:
        L += sensitivity_section(sensitivity, COMBINED_VARIANTS[0], tables_dir, figures, rel)
    # ---- architecture search
    if "nas_arch" in data:
        L += nas_section(data, acc, cfg, tables_dir, figures, rel)
    # ---- claims
    L += ["## The paper's claims", ""]
    L += claims(data, per_seed if per_seed is not None else acc.iloc[:0], cost, cfg)
    L.append("")
    if sensitivity is not None:
        L += preset_claims(sensitivity, cfg)
    if times is not None:
        L += times_section(times, bench_dir, rel)
    # ---- figures
    L += ["## Figures", ""]
    for name, path in figures.items():
        L.append(f"![{name}]({rel(path)})")
        L.append("")
    return "\n".join(L).rstrip() + "\n"
