"""The deployed baseline as the report states it: its encoding and bits over the seeds (:func:`baseline_designs`),
from the collected ``mapping`` frame (mapping.json's ``encoding``, ``weight_bits``, the chip's DAC and ADC bits and
``baseline_adc_fit.reached``). map_crossbar fits each encoding's ADC and weight bits on the validation split and
deploys the cheapest (energy per inference, ties: area) of the candidates within the tolerance of the float
network's validation accuracy; none within: the most accurate (:func:`nvmxbar.stages.map_crossbar.fit_baseline`)."""

from __future__ import annotations

import pandas as pd

from .seeds import seeds_text


def design_text(row) -> str:
    """'offset, DAC 4 / ADC 8 / weights 10 bits' of one baseline mapping (a row of the ``mapping`` frame)."""
    bits = [f"DAC {int(row.dac_bits)}", f"ADC {int(row.adc_bits)}"]
    if row.weight_bits is not None and not pd.isna(row.weight_bits):
        bits.append(f"weights {int(row.weight_bits)}")
    enc = f"{row.encoding}, " if isinstance(row.encoding, str) and row.encoding else ""
    return f"{enc}{' / '.join(bits)} bits"


def reached_text(reached: pd.Series, seeds: pd.Series) -> str:
    """Whether the fit reached its tolerance over the seeds: 'yes', 'no', 'no (seeds 1 2)', or 'not fitted' (the
    configured bits, no fit)."""
    known = reached.notna()
    if not known.any():
        return "not fitted"
    missed = seeds[known & (reached != True)]  # noqa: E712 (an object column of True/False/None)
    if missed.empty:
        return "yes"
    return "no" if len(missed) == known.sum() else f"no (seeds {seeds_text(missed)})"


def baseline_designs(mapping: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and device bits: the deployed baseline's design (:func:`design_text`; per seed when the seeds'
    fits differ), whether its fit reached the tolerance (:func:`reached_text`) and its encodings."""
    cols = ["dataset", "bits", "baseline_design", "baseline_reached", "baseline_encodings"]
    base = mapping[mapping.variant == "baseline"] if len(mapping) else mapping
    if base.empty:
        return pd.DataFrame(columns=cols)
    for c, default in (("encoding", ""), ("weight_bits", None), ("fit_reached", None), ("seed", 0)):
        if c not in base.columns:
            base = base.assign(**{c: default})
    rows = []
    for (ds, b), g in base.groupby(["dataset", "bits"], sort=False):
        texts = [design_text(r) for r in g.itertuples()]
        if len(set(texts)) == 1:
            design = texts[0]
        else:
            design = "; ".join(f"{t} (seed {int(s)})" for t, s in zip(texts, g.seed, strict=True))
        encodings = sorted({e for e in g.encoding if isinstance(e, str) and e})
        rows.append([ds, int(b), design, reached_text(g.fit_reached, g.seed), ", ".join(encodings)])
    return pd.DataFrame(rows, columns=cols)
