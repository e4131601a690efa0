"""Typed settings (nvmxbar.settings): noise models and their grid, the quantizer's keyword arguments (the model
hash sees them: they must equal what the code before the settings built), the ADC row tile, the recipe's params."""

import json
from dataclasses import replace

import pytest

from nvmxbar import config
from nvmxbar.chip import Chip
from nvmxbar.settings import (
    NOISE_KEYS,
    Drift,
    MonteCarlo,
    NoiseModel,
    QuantSettings,
    Recipe,
    TrainWires,
    from_params,
    noise_grid,
    params,
    per_model,
)

DRIFT = Drift(compensation="global")
OFF = {
    "prog_sigma": [0.0],
    "read_sigma": [0.0],
    "stuck_min": [0.0],
    "stuck_max": [0.0],
    "on_off_ratio": [None],
    "drift_t_s": [0],
    "wire_scale": [0.0],
    "adc_error_scale": [0.0],
}


def validated(**sections) -> dict:
    """A validated config (every default filled in) with ``sections`` given."""
    return config.validate(sections)


def old_quantizer_kwargs(variant: str, bits: int | None, quant_cfg: dict) -> dict | None:
    """What train.quant_settings built before the typed settings (its quant_cfg with adc_tile_rows resolved)."""
    if variant == "baseline":
        return None
    q = {
        "weight_bits": int(bits),
        "dac_bits": quant_cfg["dac_bits"],
        "adc_bits": quant_cfg["adc_bits"],
        "weight_fullscale": quant_cfg["weight_fullscale"],
        "act_fullscale": quant_cfg["act_fullscale"],
        "adc_fullscale": quant_cfg["adc_fullscale"],
        "learn_scales": quant_cfg["learn_scales"],
    }
    if quant_cfg.get("adc_tile_rows"):
        q["adc_tile_rows"] = quant_cfg["adc_tile_rows"]
    noise = per_model(quant_cfg.get("train_noise", 0.0), variant, bits)
    if noise:
        q["train_noise"] = noise
    # the circuit (issue 17): a bit-serial drive and a power-of-two ADC-to-DAC ratio are part of the model
    if quant_cfg.get("input_mode", "multibit") != "multibit":
        q["input_mode"] = quant_cfg["input_mode"]
    if quant_cfg.get("adc_ratio", "free") != "free":
        q["adc_ratio"] = quant_cfg["adc_ratio"]
    return q


# ------------------------------------------------------------------------------------------- noise models
def test_noise_model_ideal_and_setting():
    off = NoiseModel(0.0, 0.0, 0.0, 0.0, None, 0, DRIFT)
    assert off.ideal
    assert list(off.setting()) == [*NOISE_KEYS, "setting"] and off.setting()["setting"] == "sweep"
    assert off.setting() == {
        "prog_sigma": 0.0,
        "read_sigma": 0.0,
        "stuck_min": 0.0,
        "stuck_max": 0.0,
        "on_off_ratio": None,
        "drift_t_s": 0,
        "wire_scale": 0.0,
        "adc_error_scale": 0.0,
        "setting": "sweep",
    }
    for key, value in (
        ("prog_sigma", 0.1),
        ("read_sigma", 0.05),
        ("stuck_min", 0.01),
        ("stuck_max", 0.01),
        ("on_off_ratio", 10.0),
        ("drift_t_s", 3600.0),
        ("wire_scale", 1.0),
        ("adc_error_scale", 4.0),
    ):
        model = NoiseModel(**{**{k: off.setting()[k] for k in NOISE_KEYS}, key: value}, drift=DRIFT)
        assert not model.ideal, key
        assert model.setting()[key] == value
    assert NoiseModel.programming(0.0, DRIFT).ideal
    prog = NoiseModel.programming(0.05, DRIFT)
    assert not prog.ideal and prog.setting() == {**off.setting(), "prog_sigma": 0.05, "drift_t_s": 0.0}


def test_stuck_fractions_over_one_are_refused_by_the_noise_model():
    with pytest.raises(ValueError, match=r"stuck_min 0.6 \+ stuck_max 0.5 = 1.1 > 1"):
        NoiseModel(0.0, 0.0, 0.6, 0.5, None, 0, DRIFT)
    with pytest.raises(ValueError, match="stuck_min 0.6"):
        noise_grid({**OFF, "stuck_min": [0.0, 0.6], "stuck_max": [0.0, 0.5]}, DRIFT)
    assert NoiseModel(0.0, 0.0, 0.7, 0.3, None, 0, DRIFT).stuck_max == 0.3  # exactly 1 (up to rounding): allowed


def test_a_drift_time_needs_a_compensation_setting_and_scales_are_not_negative():
    """t0 is the device's (tests/unit/test_devices.py checks a drift time before it); the model refuses a drift
    time without a compensation setting and a negative scale."""
    with pytest.raises(ValueError, match="drift_t_s 10.0: a drift time needs a drift compensation"):
        NoiseModel(0.0, 0.0, 0.0, 0.0, None, 10.0, None)
    with pytest.raises(ValueError, match="prog_sigma -1.0: must be at least 0"):
        NoiseModel(-1.0, 0.0, 0.0, 0.0, None, 0, DRIFT)
    assert not NoiseModel(0.0, 0.0, 0.0, 0.0, None, 1.0, DRIFT).ideal


@pytest.mark.parametrize("compensation", [True, False, "mean", None])
def test_drift_compensation_must_be_one_of_the_named_modes(compensation):
    with pytest.raises(ValueError, match="none, global, column, oracle"):
        Drift(compensation)


def test_noise_grid_is_the_product_in_noise_keys_order():
    sweep = {**OFF, "prog_sigma": [0.0, 0.1], "stuck_max": [0.0, 0.05], "drift_t_s": [0, 1e6]}
    grid = noise_grid(sweep, DRIFT)
    assert [(m.prog_sigma, m.stuck_max, m.drift_t_s) for m in grid] == [
        (0.0, 0.0, 0),
        (0.0, 0.0, 1e6),
        (0.0, 0.05, 0),
        (0.0, 0.05, 1e6),
        (0.1, 0.0, 0),
        (0.1, 0.0, 1e6),
        (0.1, 0.05, 0),
        (0.1, 0.05, 1e6),
    ]  # the last key varies fastest
    assert all(m.drift == DRIFT and m.read_sigma == 0.0 and m.on_off_ratio is None for m in grid)
    assert grid[0].ideal and not any(m.ideal for m in grid[1:])


def test_monte_carlo_from_the_validated_section_fills_the_sweep_with_off():
    cfg = validated(
        evaluate_noise={
            "instances": 6,
            "sweep": {"prog_sigma": [0.0], "read_sigma": [0.0, 0.2]},
            "drift": {"compensation": "column"},
            "extra": [{"wire_scale": 4.0}],
            "realistic": None,
        }
    )["evaluate_noise"]
    mc = MonteCarlo.from_config(cfg)
    assert mc.instances == 6 and len(mc.models) == 3
    extra = mc.models.pop() if isinstance(mc.models, list) else mc.models[-1]
    assert extra.kind == "extra" and extra.setting() == {**{k: v[0] for k, v in OFF.items()}, "wire_scale": 4.0,
                                                          "setting": "extra"}  # fmt: skip
    mc = replace(mc, models=mc.models[:2])
    assert [m.setting() for m in mc.models] == [
        {**{k: v[0] for k, v in OFF.items()}, "read_sigma": s, "setting": "sweep"} for s in (0.0, 0.2)
    ]
    assert mc.models[0].drift == Drift("column")


# ------------------------------------------------------------------------------------------- quantizer
def test_adc_tile_rows_null_is_the_chips_tile_rows():
    cfg = validated(chip={"tile": {"rows": 64}})
    assert cfg["quant"]["adc_tile_rows"] is None
    chip = Chip.from_config(cfg["chip"])
    assert QuantSettings.from_config("uniform", 2, cfg["quant"], chip).adc_tile_rows == 64
    on_purpose = {**cfg["quant"], "adc_tile_rows": 0}  # an ablation: wins
    assert QuantSettings.from_config("uniform", 2, on_purpose, chip).adc_tile_rows == 0


@pytest.mark.parametrize("variant", ["uniform", "unipolar", "perlayer"])
@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize(
    "quant,chip",
    [
        ({}, {}),  # adc_tile_rows null = chip.tile.rows
        ({"adc_tile_rows": 0}, {}),
        ({"adc_tile_rows": 32, "train_noise": 0.05}, {"input_mode": "bit_serial"}),
        ({"train_noise": {"b2": 0.03, "unipolar/b2": 0.05}, "learn_scales": False}, {"adc_ratio": "free"}),
        ({"weight_fullscale": 0.5, "act_fullscale": 2.0, "adc_fullscale": 3.0}, {"dac_bits": 3, "adc_bits": 8}),
    ],
)
def test_quantizer_kwargs_equal_what_the_old_code_built(variant, bits, quant, chip):
    """The chip's converters and drive reach the quantizer unchanged: model.pt's quant and the model's hash are
    what the code before the chip section built from quant and map_crossbar."""
    cfg = validated(quant=quant, chip=chip)
    c = Chip.from_config(cfg["chip"])
    qs = QuantSettings.from_config(variant, bits, cfg["quant"], c)
    tile_rows = cfg["quant"]["adc_tile_rows"]
    old_cfg = {
        **cfg["quant"],
        "adc_tile_rows": c.tile.rows if tile_rows is None else tile_rows,
        "dac_bits": c.dac_bits,
        "adc_bits": c.adc_bits,
        "input_mode": c.input_mode,
        "adc_ratio": "free" if variant == "perlayer" else c.adc_ratio,
    }
    old = old_quantizer_kwargs(variant, bits, old_cfg)
    old.update({"per_layer": True} if variant == "perlayer" else {})
    assert qs.quantizer_kwargs() == old
    assert json.dumps(qs.quantizer_kwargs(), sort_keys=True) == json.dumps(old, sort_keys=True)  # the same hash
    assert QuantSettings.from_config("baseline", None, cfg["quant"], c) is None
    assert from_params(QuantSettings, params(qs)) == qs  # a rule's params give the job the same settings


def test_train_noise_resolution():
    value = {"b2": 0.03, "unipolar/b2": 0.05}
    assert per_model(value, "uniform", 2) == 0.03
    assert per_model(value, "unipolar", 2) == 0.05  # the model's own key wins
    assert per_model(value, "unipolar", 4) == 0.0  # not named: no noise
    assert per_model(0.02, "uniform", 4) == 0.02 and per_model(0.02, "baseline", None) == 0.0
    with pytest.raises(ValueError, match="variant"):
        QuantSettings.from_config("ternary", 2, validated()["quant"], Chip.from_config(validated()["chip"]))
    value = {"b2": 0.5, "unipolar/b2": 2.0, "har/unipolar/b2": 1.0}  # quant.train_wires: a dataset's model wins
    assert per_model(value, "unipolar", 2, "har") == 1.0 and per_model(value, "unipolar", 2, "cifar10") == 2.0
    assert per_model(value, "uniform", 2, "har") == 0.5 and per_model({"har/b2": 1.0}, "uniform", 2) == 0


def test_train_wires_of_the_shipped_config_reach_the_har_all_positive_2_bit_model_alone():
    """config.yaml trains HAR's unipolar/b2 against the chip's wires (chosen on HAR validation data); the other
    models and CIFAR-10's train without them; the settings carry the whole chip and the bias placement."""
    cfg = validated()
    chip = Chip.from_config(cfg["chip"])
    got = {
        (ds, v, b): TrainWires.from_config(ds, v, b, cfg["quant"], chip, cfg["map_crossbar"])
        for ds in ("har", "cifar10")
        for v, b in (("baseline", None), ("uniform", 2), ("unipolar", 2), ("unipolar", 4))
    }
    assert {k for k, w in got.items() if w is not None} == {("har", "unipolar", 2)}
    w = got["har", "unipolar", 2]
    assert w.scale == 1.0 and w.chip == chip and w.bias == cfg["map_crossbar"]["bias"]
    assert from_params(TrainWires, params(w)) == w  # the train rule's params give the job the same settings
    with pytest.raises(ValueError, match="a wire scale > 0"):
        TrainWires(0.0, chip, "row")


# ------------------------------------------------------------------------------------------- recipe
@pytest.mark.parametrize("fit_on", ["train", "train+val"])
def test_recipe_params_drop_fit_on_when_it_is_train(fit_on):
    cfg = validated(train={"har": {"fit_on": fit_on, "epochs": 3}, "cifar10": {}})["train"]["har"]
    r = Recipe.from_config(cfg)
    p = r.params()
    assert ("fit_on" in p) == (fit_on != "train")
    assert p.get("fit_on", "train") == fit_on
    expected = {
        k: cfg[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "select", "augment")
    }
    assert {k: v for k, v in p.items() if k != "fit_on"} == expected
    assert r.distill is None  # alpha 0 by default: off
