"""The workflow configuration: profile selection, JSON-schema validation with defaults, and the
config hash that identifies a stage's inputs.

A value written as ``{full: X, smoke: Y}`` is replaced by the entry ``profile`` selects. The resolved
config is then validated against the packaged schema nvmxbar/resources/config.schema.yaml, which holds every
key's description and default (the only place defaults live); every error names the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from .chip import Device
from .devices import load_wire_presets
from .settings import STUCK_TOLERANCE

log = logging.getLogger(__name__)

PROFILES = ("full", "smoke")
SCHEMA = resources.files("nvmxbar.resources") / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range. The message names the key."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _scalars(cfg: Any) -> Any:
    """`snakemake --config` passes nested values as strings ('false', '3', 'null'): read them as YAML scalars."""
    if isinstance(cfg, dict):
        return {k: _scalars(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [_scalars(v) for v in cfg]
    if isinstance(cfg, str):
        if re.fullmatch(r"(?i)true|false|null|~", cfg):
            return yaml.safe_load(cfg.lower())
        if re.fullmatch(r"[-+]?\d+", cfg):
            return int(cfg)
        if re.fullmatch(r"(?i)[-+]?(\d+\.\d*|\.\d+|\d+)(e[-+]?\d+)?", cfg):
            return float(cfg)
    return cfg


def select_profile(cfg: Any, profile: str, path: tuple = ()) -> Any:
    """Replace every {full: X, smoke: Y} mapping by the value of ``profile``."""
    if isinstance(cfg, dict):
        keys = set(cfg)
        if keys and keys & set(PROFILES) and not keys - set(PROFILES):
            if profile not in cfg:
                raise ConfigError(
                    f"config key '{_key(path)}': no value for profile '{profile}' (it gives {sorted(keys)})"
                )
            return select_profile(cfg[profile], profile, path)
        if keys & set(PROFILES) and len(keys - set(PROFILES)) and all(isinstance(k, str) for k in keys):
            odd = sorted(keys - set(PROFILES))
            raise ConfigError(
                f"config key '{_key(path)}': per-profile value with unknown profile(s) {odd}; "
                f"profiles are {list(PROFILES)}"
            )
        return {k: select_profile(v, profile, path + (k,)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [select_profile(v, profile, path + (i,)) for i, v in enumerate(cfg)]
    return cfg


def _with_defaults(cls, profile: str):
    """A validator class that fills a missing key with its schema default, itself resolved for ``profile`` (a
    default may be written {full: X, smoke: Y}, as in config.yaml)."""
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                ref = validator._resolver.lookup(sub["$ref"]).contents if "$ref" in sub else sub
                sub = sub if "default" in sub else ref
                if "default" not in sub:
                    continue
                default = select_profile(copy.deepcopy(sub["default"]), profile, (name,))
                if name not in instance:
                    instance[name] = default
                elif isinstance(instance[name], dict) and isinstance(default, dict) and "properties" in ref:
                    # a partial section (model: {har: {conv: [16]}}) keeps the default's other keys, as Snakemake's
                    # --config merges into config.yaml
                    instance[name] = deep_merge(default, instance[name])
        yield from validate_props(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


def _message(err) -> str:
    path = list(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        keys = ", ".join(f"'{_key(path + [k])}'" for k in extra)
        return f"unknown config key {keys} (allowed under '{_key(path)}': {', '.join(allowed)})"
    if err.validator == "required":
        return f"config key '{_key(path)}': {err.message}"
    return f"config key '{_key(path)}': {err.message}"


def validate(cfg: dict) -> dict:
    """Resolve the profile, fill defaults and validate. Returns a new dict; raises ConfigError."""
    if not isinstance(cfg, dict):
        raise ConfigError("the config must be a mapping of keys to values")
    schema = yaml.safe_load(SCHEMA.read_text())
    profile = cfg["profile"] if "profile" in cfg else schema["properties"]["profile"]["default"]
    if profile not in PROFILES:
        raise ConfigError(f"config key 'profile': '{profile}' is not one of {list(PROFILES)}")
    resolved = select_profile(_scalars(copy.deepcopy(cfg)), profile)
    Validator = _with_defaults(Draft202012Validator, profile)
    errors = sorted(Validator(schema).iter_errors(resolved), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [_message(e) for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(lines)))
    _check_semantics(resolved)
    return resolved


def _check_semantics(cfg: dict) -> None:
    """Checks across keys that JSON schema cannot express; raises ConfigError naming the key and values."""
    sweep = cfg["evaluate_noise"]["sweep"]
    bad = [(a, b) for a in sweep["stuck_min"] for b in sweep["stuck_max"] if a + b > 1 + STUCK_TOLERANCE]
    if bad:
        pairs = ", ".join(f"stuck_min {a} with stuck_max {b} (sum {a + b:g})" for a, b in bad)
        raise ConfigError(
            "config key 'evaluate_noise.sweep': stuck_min + stuck_max must be at most 1 in every setting (both are "
            f"fractions of the same devices), but the Cartesian product combines {pairs}"
        )
    device = Device.from_config(cfg["chip"]["device"])
    wires = cfg["chip"]["wires"]
    if wires["row_ohm_per_cell"] is None or wires["col_ohm_per_cell"] is None:
        p = load_wire_presets()[wires["preset"]]
        cost = cfg["estimate_cost"]
        if (float(p["tech_nm"]), p["cell"]) != (float(cost["tech_nm"]), cost["cell"]):
            raise ConfigError(
                f"config key 'chip.wires.preset': {wires['preset']} holds the wires of a {p['cell']} cell at "
                f"{p['tech_nm']:g} nm, but estimate_cost prices a {cost['cell']} cell at {cost['tech_nm']:g} nm; give "
                "chip.wires.row_ohm_per_cell and col_ohm_per_cell for that technology (ohms per cell)"
            )
    drift, times = device.noise.drift, [t for t in sweep["drift_t_s"] if t > 0]
    if times and drift is None:
        raise ConfigError(
            f"config key 'evaluate_noise.sweep.drift_t_s': {times}, but chip.device.preset {device.preset} has no "
            "drift model (nvmxbar/resources/devices.yaml); use [0] or a preset that drifts"
        )
    early = [t for t in times if t < drift.t0_s] if times else []
    if early:
        raise ConfigError(
            f"config key 'evaluate_noise.sweep.drift_t_s': {early} before chip.device.preset {device.preset}'s drift "
            f"t0_s ({drift.t0_s}); the drift model G(t) = G(t0) (t/t0)^-nu starts at t0 (0 = no drift)"
        )
    reads = [r for r in sweep["read_sigma"] if r > 0]
    if reads and device.noise.read is None:
        raise ConfigError(
            f"config key 'evaluate_noise.sweep.read_sigma': {reads}, but chip.device.preset {device.preset} has no "
            "read noise to scale (nvmxbar/resources/devices.yaml); use [0.0] or a preset with read noise"
        )
    tr, rows = cfg["quant"]["adc_tile_rows"], cfg["chip"]["tile"]["rows"]
    if tr is not None and tr != rows:  # on purpose: models trained for one tile size, mapped onto another
        log.warning(
            "config: quant.adc_tile_rows (%s) differs from chip.tile.rows (%s): the networks are trained "
            "for other row tiles than they are mapped onto, so the ideal crossbar will not equal the trained "
            "network",
            tr,
            rows,
        )
    for ds in cfg["datasets"]:
        m = cfg["model"][ds]
        n_conv = sum(1 for c in m["conv"] if c != "M")
        ks = m["kernel_size"]
        if isinstance(ks, list) and len(ks) != n_conv:
            raise ConfigError(f"config key 'model.{ds}.kernel_size': {len(ks)} entries for {n_conv} convolutions")
        if m["conv"] and m["conv"][0] == "M":
            raise ConfigError(f"config key 'model.{ds}.conv': must start with a convolution, not 'M'")
        t = cfg["train"][ds]
        if t["fit_on"] == "train+val" and t["select"] == "best_val":
            raise ConfigError(
                f"config key 'train.{ds}.fit_on': train+val trains on the validation split, so "
                f"select: best_val cannot choose an epoch by it; use select: last or fit_on: train"
            )
        if ds == "har" and m["conv"] and cfg["prepare_data"]["har"]["input_form"] == "engineered":
            raise ConfigError(
                "config key 'model.har.conv': the engineered (561-feature) input has no channels; "
                "use conv: [] (an MLP) or input_form: inertial"
            )


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config file, deep-merge ``overrides`` and validate."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if overrides:
        raw = deep_merge(raw, overrides)
    return validate(raw)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def config_hash(obj: Any) -> str:
    """Short, stable hash of a JSON-able config slice."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]
