"""The workflow configuration: profiles, schema defaults, validation errors naming the key, typed settings."""

import logging

import pytest
import yaml
from conftest import REPO

from nvmxbar import config, settings
from nvmxbar.chip import Chip
from nvmxbar.settings import QuantSettings


def load(**over):
    return config.load(REPO / "config.yaml", over)


def test_default_config_is_valid_and_profile_selects_values():
    full, smoke = load(), load(profile="smoke")
    assert full["train"]["har"]["epochs"] > smoke["train"]["har"]["epochs"] >= 1
    assert full["prepare_data"]["har"]["limit"]["train"] is None
    assert smoke["prepare_data"]["har"]["limit"]["train"] > 0
    assert full["device_bits"] == [2, 4] and set(full["variants"]) == {
        "baseline",
        "perlayer",
        "uniform",
        "signed",
        "unipolar",
    }
    assert full["nas_unipolar"]["trials"] > smoke["nas_unipolar"]["trials"] >= 1
    assert full["data_dir"] == "data"


def test_defaults_are_filled_from_the_schema():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    del raw["quant"], raw["chip"], raw["seed"], raw["prepare_data"]
    cfg = config.validate(raw)
    assert cfg["chip"]["dac_bits"] == 4 and cfg["quant"]["learn_scales"] is True
    assert cfg["seed"] == 0 and cfg["prepare_data"]["har"]["val_subjects"] == 4


def test_every_schema_property_has_a_description():
    schema = yaml.safe_load(config.SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub or "$ref" in sub, f"{path}{name} has no description"
            walk(sub, f"{path}{name}.")

    walk(schema, "")
    for name, sub in schema["$defs"].items():
        walk(sub, f"$defs.{name}.")


@pytest.mark.parametrize(
    "override, key",
    [
        ({"epochz": 3}, "'epochz'"),
        ({"train": {"har": {"epochs": 0}}}, "train.har.epochs"),
        ({"train": {"har": {"lr": "fast"}}}, "train.har.lr"),
        ({"chip": {"adc_bits": 1}}, "chip.adc_bits"),
        ({"device_bits": [2, 99]}, "device_bits.1"),
        ({"datasets": ["mnist"]}, "datasets.0"),
        ({"variants": ["baseline", "ternary"]}, "variants.1"),
        ({"prepare_data": {"cifar10": {"val_fraction": 1.5}}}, "prepare_data.cifar10.val_fraction"),
        ({"model": {"har": {"conv": [32], "hidden": [16], "kernel_size": [3, 5]}}}, "model.har.kernel_size"),
        ({"train": {"har": {"epochs": {"full": 3, "smok": 1}}}}, "train.har.epochs"),
        ({"profile": "huge"}, "profile"),
        ({"model": {"har": {"conv": [], "hidden": [16], "colour": 1}}}, "model.har.colour"),
        ({"quant": {"train_noise": {"4bit": 0.02}}}, "quant.train_noise"),
        ({"quant": {"train_noise": {"unipolar/b4": 1.5}}}, "quant.train_noise"),
        ({"train": {"har": {"fit_on": "val"}}}, "train.har.fit_on"),
        ({"train": {"cifar10": {"fit_on": "train+val", "select": "best_val"}}}, "train.cifar10.fit_on"),
        ({"evaluate_noise": {"drift": {"compensation": True}}}, "evaluate_noise.drift.compensation"),
        ({"evaluate_noise": {"drift": {"compensation": "mean"}}}, "evaluate_noise.drift.compensation"),
        ({"estimate_cost": {"tech_nm": 5}}, "estimate_cost.tech_nm"),
        ({"estimate_cost": {"cell": "crossbar"}}, "estimate_cost.cell"),
        ({"evaluate_noise": {"sweep": {"drift_t_s": [0, 0.5, 10]}}}, "evaluate_noise.sweep.drift_t_s"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [0, 1, 1]}, "seeds"),
        ({"seeds": [0, -1]}, "seeds.1"),
        ({"seeds": 3}, "seeds"),
        ({"train": {"num_threads": 0}}, "train.num_threads"),
        ({"cifar10_on_cpu": "maybe"}, "cifar10_on_cpu"),
    ],
)
def test_malformed_config_is_rejected_with_the_key_named(override, key):
    with pytest.raises(config.ConfigError) as err:
        load(**override)
    assert key in str(err.value)


def test_seeds_are_chosen_by_profile_and_threads_are_fixed():
    """Five training seeds in the full profile, one in smoke; every training runs at one torch thread whatever
    --cores is (CPU results are bitwise reproducible per seed and thread count)."""
    assert load()["seeds"] == [0, 1, 2, 3, 4] and load(profile="smoke")["seeds"] == [0]
    assert load(seeds=[7])["seeds"] == [7] and load()["seed"] == 0  # `seed` is the split and the search's seed
    assert load()["train"]["num_threads"] == 1


def test_stuck_fractions_over_one_in_any_sweep_setting_are_rejected_naming_them():
    """stuck_min and stuck_max are fractions of the same devices: a setting of the Cartesian product whose sum
    exceeds 1 stops validation (before any job), naming the values; a sum of exactly 1 is allowed."""
    with pytest.raises(config.ConfigError, match="evaluate_noise.sweep") as err:
        load(evaluate_noise={"sweep": {"stuck_min": [0.0, 0.6], "stuck_max": [0.3, 0.5]}})
    msg = str(err.value)
    assert "stuck_min 0.6 with stuck_max 0.5 (sum 1.1)" in msg
    assert "stuck_max 0.3" not in msg and "stuck_min 0.0" not in msg  # only the offending combination
    cfg = load(evaluate_noise={"sweep": {"stuck_min": [0.0, 0.7], "stuck_max": [0.0, 0.3]}})
    assert cfg["evaluate_noise"]["sweep"]["stuck_min"] == [0.0, 0.7]


def test_drift_compensation_is_named_and_defaults_to_the_chips_own_reference_read():
    assert load()["evaluate_noise"]["drift"]["compensation"] == "global"
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    del raw["evaluate_noise"]["drift"]["compensation"]
    assert config.validate(raw)["evaluate_noise"]["drift"]["compensation"] == "global"
    for mode in ("none", "global", "column", "oracle"):
        cfg = load(evaluate_noise={"drift": {"compensation": mode}})
        assert settings.MonteCarlo.from_config(cfg["evaluate_noise"]).models[0].drift.compensation == mode


def test_engineered_input_needs_an_mlp():
    with pytest.raises(config.ConfigError, match="model.har.conv"):
        load(prepare_data={"har": {"input_form": "engineered"}})
    cfg = load(prepare_data={"har": {"input_form": "engineered"}}, model={"har": {"conv": [], "hidden": [64]}})
    assert cfg["model"]["har"]["conv"] == []


def test_adc_tile_rows_other_than_the_crossbar_tiles_warns(caplog):
    def warned(**over):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nvmxbar.config"):
            cfg = load(**over)
        return cfg, any(
            r.levelno == logging.WARNING and "quant.adc_tile_rows" in r.getMessage() for r in caplog.records
        )

    assert warned(quant={"adc_tile_rows": 64})[1]
    cfg, warns = warned(quant={"adc_tile_rows": 64}, chip={"tile": {"rows": 64}})
    assert cfg["quant"]["adc_tile_rows"] == 64 and not warns
    cfg, warns = warned()
    # the default (null) trains as mapped: the ADC row tile is chip.tile.rows
    assert cfg["quant"]["adc_tile_rows"] is None and not warns
    chip = Chip.from_config(cfg["chip"])
    assert QuantSettings.from_config("uniform", 2, cfg["quant"], chip).adc_tile_rows == chip.tile.rows == 128


def test_config_hash_is_stable_and_sensitive():
    a = {"x": 1, "y": [1, 2]}
    assert config.config_hash(a) == config.config_hash({"y": [1, 2], "x": 1})
    assert config.config_hash(a) != config.config_hash({"x": 2, "y": [1, 2]})


def test_command_line_strings_are_read_as_yaml_scalars():
    cfg = load(
        download="false",
        seed="7",
        train={"har": {"epochs": "3", "lr": "1e-3"}},
        prepare_data={"har": {"limit": {"train": "null"}}},
    )
    assert cfg["download"] is False and cfg["seed"] == 7
    assert cfg["train"]["har"]["epochs"] == 3 and cfg["train"]["har"]["lr"] == 0.001
    assert cfg["prepare_data"]["har"]["limit"]["train"] is None


def test_train_noise_is_set_per_model_by_bits_or_by_variant_and_bits():
    cfg = load(quant={"train_noise": {"b4": 0.01, "unipolar/b4": 0.02}})
    q, m = cfg["quant"], Chip.from_config(cfg["chip"])
    assert settings.per_model(q["train_noise"], "unipolar", 4) == 0.02  # the model's own key wins
    assert settings.per_model(q["train_noise"], "uniform", 4) == 0.01  # b<bits>: every variant
    assert settings.per_model(q["train_noise"], "unipolar", 2) == 0.0  # not named: off
    assert settings.per_model(0.03, "uniform", 2) == 0.03  # one number: every quantized model
    assert settings.per_model(0.03, "baseline", None) == 0.0  # the float net has no devices
    assert QuantSettings.from_config("unipolar", 4, q, m).quantizer_kwargs()["train_noise"] == 0.02
    # off: the model hash is unchanged
    assert "train_noise" not in QuantSettings.from_config("unipolar", 2, q, m).quantizer_kwargs()


def test_every_schema_key_has_a_description_and_no_yaml_slip():
    """The schema is where users read what a key does and its default: every property has a description, and
    no flow mapping was cut at an unquoted comma (which YAML turns into a stray key with a null value)."""
    import yaml

    from nvmxbar.config import SCHEMA

    schema = yaml.safe_load(SCHEMA.read_text())
    missing, slips = [], []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if v is None and " " in str(k):
                    slips.append(f"{path}/{k}")
                if k == "properties":
                    missing.extend(
                        f"{path}/{name}" for name, sub in v.items() if not {"description", "$ref"} & set(sub)
                    )
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(schema, "")
    assert not slips and not missing, (slips, missing)
