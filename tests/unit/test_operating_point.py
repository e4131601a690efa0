"""tools/operating_point.py: the same device levels on another preset's device, the column currents by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.unit.test_energy import LEVELS, one_layer

spec = importlib.util.spec_from_file_location(
    "operating_point", Path(__file__).resolve().parents[2] / "tools" / "operating_point.py"
)
operating_point = importlib.util.module_from_spec(spec)
spec.loader.exec_module(operating_point)


def test_the_levels_on_another_device_by_hand():
    """One dense layer (4 driven rows, 6 used columns of 2-bit levels) mapped on neurosim_v13, read on rram_wan2022
    (1-40 uS, 0.2 V): column j carries 0.2 V x sum_i (1 + level_ij x 13) uS; the largest level sum is 6 (column
    2), so 0.2 x (4 x 1 + 6 x 13) = 16.4 uA; on its own device 0.5 x (4 x 1.111 + 6 x 55.185) = 167.8 uA."""
    arrays, mapping = one_layer("neurosim_v13")
    wan = operating_point.on_device(arrays, mapping, "rram_wan2022")
    assert wan["max_column_current_ua"] == pytest.approx(0.2 * (4 * 1.0 + LEVELS.sum(0).max() * 13.0))
    assert wan["max_column_current_ua"] == pytest.approx(16.4)
    sums = LEVELS.sum(0)
    mean_used = 0.2 * (4 * 1.0 + sums * 13.0).mean()
    assert wan["mean_column_current_ua"] == pytest.approx(mean_used)
    own = operating_point.on_device(arrays, mapping, "neurosim_v13")
    g_min, dg = 166.6667 / 150, (166.6667 - 166.6667 / 150) / 3
    assert own["max_column_current_ua"] == pytest.approx(0.5 * (4 * g_min + 6 * dg), rel=1e-6)
    assert own["max_column_current_ua"] == pytest.approx(mapping["total"]["max_column_current_ua"], rel=1e-6)
