"""IR drop and converter error over seeds (nvmxbar.report.nonideal): noise.csv's ideal-chip, one-at-a-time and
realistic rows into tables/nonideal.csv (losses against the ideal chip with paired intervals) and
tables/nonideal_comparisons.csv (paired for the same network, Welch otherwise), the figure and REPORT.md's lines."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nvmxbar.noise_settings import NOISE_CSV_COLUMNS
from nvmxbar.report import nonideal
from nvmxbar.report.figure_accuracy_vs_nonideal import plot
from nvmxbar.report.nonideal import IDEAL, REALISTIC

SEEDS = [0, 1, 2, 3, 4]
#: per variant: ideal-chip accuracy, loss per unit wire scale, loss per unit converter scale
TRUTH = {
    "unipolar": (0.93, 0.004, 0.002),
    "signed": (0.925, 0.010, 0.002),
    "uniform": (0.92, 0.02, 0.001),
    "perlayer": (0.93, 0.02, 0.006),
}
JITTER = [0.0, 0.001, -0.001, 0.002, -0.002]  # a per-seed wobble of the losses (so the intervals have width)


def row(v, seed, kind="sweep", acc=0.9, **on):
    r = {k: 0.0 for k in NOISE_CSV_COLUMNS if k not in ("setting",)}
    r |= {"on_off_ratio": None, "setting": kind, "accuracy_mean": acc, "accuracy_std": 0.004, "instances": 25}
    return {"dataset": "har", "variant": v, "bits": 2, "seed": seed, **r, **on}


def noise_frame():
    rows = []
    for v, (ideal, lw, la) in TRUTH.items():
        for s in SEEDS:
            base = ideal + 0.003 * (s - 2)  # the seed moves the network's accuracy; the losses are paired on it
            j = JITTER[s]
            rows += [row(v, s, acc=base), row(v, s, acc=base - 0.05, prog_sigma=1.0)]  # the sweep's 0 and 1
            rows += [row(v, s, "extra", base - lw * w - j, wire_scale=w) for w in (1.0, 4.0)]
            rows += [row(v, s, "extra", base - la * a - j, adc_error_scale=a) for a in (1.0, 4.0)]
            rows.append(
                row(
                    v,
                    s,
                    "realistic",
                    base - lw - la - 0.01,
                    prog_sigma=1.0,
                    read_sigma=1.0,
                    drift_t_s=86400,
                    wire_scale=1.0,
                    adc_error_scale=1.0,
                )
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def conditions():
    return nonideal.per_seed(noise_frame())


def test_every_condition_is_found_and_the_prog_noise_sweep_is_not(conditions):
    assert set(conditions.condition) == {
        "ideal chip",
        "wires x1",
        "wires x4",
        "converters x1",
        "converters x4",
        "realistic chip",
    }
    assert len(conditions) == 4 * 5 * 6
    assert conditions[conditions.condition == "wires x4"].scale.eq(4.0).all()


def test_losses_against_the_ideal_chip_are_paired_over_the_seeds(conditions):
    t = nonideal.nonideal_table(conditions).set_index(["variant", "condition"])
    for v, (ideal, lw, la) in TRUTH.items():
        assert t.loc[(v, "ideal chip"), "mean"] == pytest.approx(ideal)
        assert t.loc[(v, "ideal chip"), "std"] == pytest.approx(0.003 * np.std([-2, -1, 0, 1, 2], ddof=1))
        assert t.loc[(v, "wires x4"), "loss"] == pytest.approx(-4 * lw)
        assert t.loc[(v, "converters x1"), "loss"] == pytest.approx(-la)
        assert t.loc[(v, "realistic chip"), "loss"] == pytest.approx(-lw - la - 0.01)
        half = stats.t.ppf(0.975, 4) * np.std(JITTER, ddof=1) / math.sqrt(5)  # the seed offsets cancel in pairs
        r = t.loc[(v, "wires x1")]
        assert (r.loss_low, r.loss_high) == pytest.approx((-lw - half, -lw + half))
        assert r.loss_beyond == (lw > half) and r.n_seeds == 5 and r.instances == 25
    assert list(t.reset_index().condition[:6]) == [
        "ideal chip",
        "wires x1",
        "wires x4",
        "converters x1",
        "converters x4",
        "realistic chip",
    ]


def test_unipolar_against_signed_is_paired_and_the_others_welch(conditions):
    c = nonideal.comparisons(conditions).set_index(["condition", "a", "b", "quantity"])
    r = c.loc[("wires x4", "unipolar", "signed", "loss")]
    assert r.test == "paired" and r["diff"] == pytest.approx(4 * (0.010 - 0.004)) and r.beyond_seed_spread
    assert r.ci_low == pytest.approx(r.ci_high)  # the same wobble on both: the paired difference has no spread
    r = c.loc[("converters x1", "uniform", "perlayer", "loss")]
    want = stats.ttest_ind([-0.001 - j for j in JITTER], [-0.006 - j for j in JITTER], equal_var=False)
    assert r.test == "Welch" and r["diff"] == pytest.approx(0.005) and r.n == 5
    assert r.beyond_seed_spread == bool(want.pvalue < 0.05)
    r = c.loc[("ideal chip", "unipolar", "uniform", "accuracy")]
    offsets = [0.003 * (s - 2) for s in SEEDS]  # the same seed spread on both sides (0.47 points)
    want = stats.ttest_ind([0.93 + o for o in offsets], [0.92 + o for o in offsets], equal_var=False)
    assert r["diff"] == pytest.approx(0.01) and r.beyond_seed_spread == bool(want.pvalue < 0.05)
    assert ("ideal chip", "unipolar", "uniform", "loss") not in c.index


def test_the_report_section_and_figure(conditions, tmp_path):
    t, c = nonideal.nonideal_table(conditions), nonideal.comparisons(conditions)
    text = "\n".join(nonideal.section(t, c, tmp_path, str))
    assert "## IR drop and converter error" in text
    assert "- har, 2-bit devices, wires x4: `unipolar` − `signed` loss +2.40 points [+2.40, +2.40] (beyond" in text
    assert "| har | unipolar | 2 | wires x4 | 91.40 ± 0.54 | 0.40 | -1.60 | [-1.80, -1.40] | 5 | beyond the" in text
    assert nonideal.section(t.iloc[:0], c, tmp_path, str) == []
    fig = plot(t, "har", list(TRUTH), [2])
    assert len(fig.axes) == 6 and all(len(ax.lines) >= 4 for ax in fig.axes)  # the full row, then the zoom
    assert [lab.get_text() for lab in fig.axes[0].get_xticklabels()] == ["0", "1", "4"]
    low, high = fig.axes[3].get_ylim()  # the zoom: the chip as cited and the realistic one, not the 4 x stress
    near = t[t.condition.isin([IDEAL, REALISTIC]) | (t.scale.astype(float) <= 1)]
    assert low <= 100 * float((near["mean"] - near["std"]).min()) and high >= 100 * float(near["mean"].max())
