"""The report's figure kinds (each drawn by ``nvmxbar.report.figure_<kind>``, one report_figure job per kind): the
one list the workflow and the report read. No heavy import: the Snakefile reads it when it parses."""

from __future__ import annotations

from collections.abc import Iterable

#: The variant whose architecture is searched (results/{dataset}/unipolar/b{bits}/nas/).
NAS_VARIANT = "unipolar"
KINDS = ("accuracy_vs_prog_noise", "accuracy_vs_nonideal", "accuracy_seeds", "cost_breakdown", "weights", "sensitivity")
NAS_KIND = "nas_pareto"  # only with the searched variant


def figure_kinds(variants: Iterable[str]) -> list[str]:
    """The kinds the report draws for these variants (nas_pareto only with the searched unipolar variant)."""
    return [*KINDS, *([NAS_KIND] if NAS_VARIANT in list(variants) else [])]


def figure_names(datasets: Iterable[str], variants: Iterable[str] | None = None) -> list[str]:
    """Every figure's name (<kind>_<dataset>)."""
    return [f"{kind}_{ds}" for ds in datasets for kind in figure_kinds(variants or [])]
