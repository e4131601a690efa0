"""Rule ``report_sensitivity``: the savings over the baseline with one cost-model assumption moved at a time
(:mod:`nvmxbar.report.sensitivity`), from the declared mapping.json and cost.json of the paper's techniques and
the baseline (tables/sensitivity.csv and .md)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..report.collect import keyed
from ..report.sensitivity import build_sensitivity
from ..report.sensitivity_text import write_sensitivity
from ..settings import Pricing

log = logging.getLogger(__name__)


def run(
    mapping: Sequence[str],
    cost: Sequence[str],
    keys: Iterable[Iterable],
    *,
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    seeds: Iterable[int],
    pricing: Pricing | None,
    csv: str | Path,
    md: str | Path,
) -> list[Path]:
    """``mapping`` and ``cost``: the declared files, ``keys`` their (dataset, variant, bits, seed) in order;
    ``pricing``: rule estimate_cost's (None: as the first cost.json states)."""
    keys = list(keys)
    files: dict = {}
    for name, paths in (("mapping.json", mapping), ("cost.json", cost)):
        for key, path in keyed(keys, paths).items():
            files.setdefault(key, {})[name] = path
    table = build_sensitivity(files, datasets, variants, bits, seeds, pricing)
    log.info("sensitivity: %d rows from %d deployments", len(table), len(files))
    return write_sensitivity(table, csv, md)
