"""tools/operating_point.py: the same device levels on another preset's device, the column currents by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import SMALL_ARCH, chip_of, map_settings, small_net

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


pa_spec = importlib.util.spec_from_file_location(
    "preset_accuracy", Path(__file__).resolve().parents[2] / "tools" / "preset_accuracy.py"
)
preset_accuracy = importlib.util.module_from_spec(pa_spec)
pa_spec.loader.exec_module(preset_accuracy)


def test_preset_accuracy_swaps_the_device_alone_and_scale_0_is_the_ideal_crossbar():
    """tools/preset_accuracy.py: another preset's device under the same levels; at noise scale 0 every chip is the
    ideal crossbar (its accuracy exactly), and the device's own noise moves it."""
    import torch

    from nvmxbar.core import noise
    from nvmxbar.core.schemes import map_network
    from nvmxbar.core.simulator import Simulator

    net, x = small_net(SMALL_ARCH, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6, "adc_ratio": "pow2"})
    arrays, mapping = map_network(net, 2, map_settings(rows=64, cols=32, **chip_of(net)).for_variant("uniform"))
    with torch.no_grad():
        y = net(x).argmax(-1)
    pcm = preset_accuracy.on_preset(mapping, "pcm_aihwkit")
    assert pcm["chip"]["device"]["preset"] == "pcm_aihwkit" and pcm["chip"]["device"]["g_max_us"] == 25.0
    assert {k: v for k, v in pcm["chip"].items() if k not in ("device", "wires")} == {
        k: v for k, v in mapping["chip"].items() if k not in ("device", "wires")
    }
    # the per-cell wires kept, the switches sized for the new device's R_on: 0.25 x 40 kOhm / 32 columns, / 64 rows
    w, old = pcm["chip"]["wires"], mapping["chip"]["wires"]
    assert (w["row_ohm_per_cell"], w["col_ohm_per_cell"]) == (old["row_ohm_per_cell"], old["col_ohm_per_cell"])
    assert (w["driver_ohm"], w["sense_ohm"]) == pytest.approx((0.25 * 40e3 / 32, 0.25 * 40e3 / 64))
    assert {k: v for k, v in pcm.items() if k != "chip"} == {k: v for k, v in mapping.items() if k != "chip"}
    ideal = noise.ideal_accuracy(Simulator(arrays, pcm), x, y)
    assert preset_accuracy.accuracy(arrays, pcm, x, y, 0.0, 3, 0) == ideal
    noisy = preset_accuracy.accuracy(arrays, pcm, x, y, 4.0, 3, 0)
    assert 0.0 <= noisy <= 1.0 and noisy != ideal
    torch.testing.assert_close(
        torch.tensor(ideal), torch.tensor(noise.ideal_accuracy(Simulator(arrays, mapping), x, y))
    )
