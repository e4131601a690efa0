"""The NVM device: presets of measured devices and the models of their noise (the bottom layer: :mod:`nvmxbar.chip`
builds the chip on it).

A preset (package data nvmxbar/resources/devices.yaml, every number ``{value: ..., source: ...}``) gives the
conductance range, the read voltage and the device's noise (:class:`DeviceNoise`), each as a function of the
normalised target x = G / G_max:

* programming noise sigma(G) = (G_max / g_ref) x sum_k c_k x^k microsiemens, fitted at G_max = g_ref and scaled with
  G_max as aihwkit's noise models do (:class:`ProgNoise`);
* read noise relative to G per read, q(x) = factor x min(coef / max(x^exponent, 1e-3), cap) (:class:`ReadNoise`;
  a constant relative noise is exponent 0);
* drift G(t) = G(t0) (t / t0)^-nu with nu ~ |N(mean(x), std(x))| per device, mean and std each
  clamp(a ln x + b, lo, hi) (:class:`DriftModel`, :class:`LogClamp`; a constant is a = 0, lo = hi = b).

The formulas take floats or numpy arrays (the simulator's :class:`nvmxbar.core.noise.Perturbation` evaluates them
once per chip population). A resolved :class:`DeviceNoise` is written whole into mapping.json with the chip and
read back strictly (:meth:`DeviceNoise.from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

#: ln x is taken of max(x, this) (aihwkit's _ZERO_CLIP in its PCM drift fit).
LOG_X_FLOOR = 1e-7
#: x^exponent is floored at this in the read-noise fit (aihwkit pcm.py l.150).
READ_X_FLOOR = 1e-3


class ChipError(ValueError):
    """A chip description that is incomplete, has unknown fields, or values out of their domain."""


def strict(cls: type, d: Any, where: str) -> dict:
    """``d``'s fields for ``cls``: a mapping with exactly the dataclass's fields (ChipError naming what is wrong)."""
    if not isinstance(d, dict):
        raise ChipError(f"{where}: expected a mapping with {[f.name for f in fields(cls)]}, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    missing, unknown = [n for n in names if n not in d], sorted(set(d) - set(names))
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else []
        )
        raise ChipError(f"{where}: {'; '.join(parts)} (a chip field is never defaulted)")
    return d


def _floats(cls: type, d: Any, where: str) -> dict[str, float]:
    d = strict(cls, d, where)
    try:
        return {k: float(v) for k, v in d.items()}
    except (TypeError, ValueError) as e:
        raise ChipError(f"{where}: every field must be a number, got {d!r}") from e


@dataclass(frozen=True)
class ProgNoise:
    """Programming noise: sigma(x) = (g_max / g_ref_us) x sum_k coeffs_us[k] x^k microsiemens (lowest power first),
    x = G_target / g_max, fitted at G_max = ``g_ref_us``."""

    coeffs_us: tuple[float, ...]
    g_ref_us: float

    def __post_init__(self) -> None:
        if not self.coeffs_us or not self.g_ref_us > 0:
            raise ChipError(f"programming noise {self.coeffs_us} at g_ref_us {self.g_ref_us}: need coefficients, > 0")

    def sigma_us(self, x: Any, g_max_us: float) -> Any:
        """sigma at normalised targets ``x`` of a device whose G_max is ``g_max_us``, microsiemens."""
        x, s = np.asarray(x, dtype=np.float64), 0.0
        for c in reversed(self.coeffs_us):
            s = s * x + c
        return s * (g_max_us / self.g_ref_us)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ProgNoise:
        d = strict(cls, d, where)
        if not isinstance(d["coeffs_us"], (list, tuple)):
            raise ChipError(f"{where}.coeffs_us: expected a list of numbers, got {d['coeffs_us']!r}")
        return cls(tuple(float(c) for c in d["coeffs_us"]), float(d["g_ref_us"]))


@dataclass(frozen=True)
class ReadNoise:
    """Read noise relative to G, drawn at every read: q(x) = factor x min(coef / max(x^exponent, 1e-3), cap), x the
    programmed conductance / G_max (aihwkit's PCM 1/f fit; exponent 0 = a constant ``factor x min(coef, cap)``)."""

    coef: float
    exponent: float
    cap: float
    factor: float

    def __post_init__(self) -> None:
        if self.coef < 0 or self.exponent < 0 or not self.cap > 0 or self.factor < 0:
            raise ChipError(f"read noise {self}: need coef, exponent, factor >= 0 and cap > 0")

    def relative(self, x: Any) -> Any:
        """q at normalised conductances ``x``: the read noise's sigma / G."""
        x = np.abs(np.asarray(x, dtype=np.float64))
        return self.factor * np.minimum(self.coef / np.maximum(x**self.exponent, READ_X_FLOOR), self.cap)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ReadNoise:
        return cls(**_floats(cls, d, where))


@dataclass(frozen=True)
class LogClamp:
    """clamp(a ln x + b, lo, hi), x floored at 1e-7: a drift exponent's mean or spread as a function of x (a constant
    is a = 0, lo = hi = b)."""

    a: float
    b: float
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ChipError(f"{self}: need lo <= hi")

    def __call__(self, x: Any) -> Any:
        x = np.maximum(np.asarray(x, dtype=np.float64), LOG_X_FLOOR)
        return np.clip(self.a * np.log(x) + self.b, self.lo, self.hi)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> LogClamp:
        return cls(**_floats(cls, d, where))


@dataclass(frozen=True)
class DriftModel:
    """Drift G(t) = G(t0) (t / t0)^-nu for t >= t0 (seconds after programming), nu = |N(nu_mean(x), nu_std(x))| per
    device (aihwkit), x = G_target / G_max."""

    t0_s: float
    nu_mean: LogClamp
    nu_std: LogClamp

    def __post_init__(self) -> None:
        if not self.t0_s > 0 or self.nu_std.lo < 0:
            raise ChipError(f"drift t0_s {self.t0_s}, nu_std {self.nu_std}: need t0_s > 0 and a spread >= 0")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> DriftModel:
        d = strict(cls, d, where)
        return cls(
            float(d["t0_s"]),
            LogClamp.from_dict(d["nu_mean"], f"{where}.nu_mean"),
            LogClamp.from_dict(d["nu_std"], f"{where}.nu_std"),
        )


@dataclass(frozen=True)
class DeviceNoise:
    """The device's noise: programming noise, read noise (None: the preset has none) and drift (None: none)."""

    prog: ProgNoise
    read: ReadNoise | None
    drift: DriftModel | None

    @classmethod
    def from_dict(cls, d: Any, where: str = "noise") -> DeviceNoise:
        """Strictly from a preset's ``noise`` or :func:`dataclasses.asdict`'s form: a missing or unknown field is a
        :class:`ChipError` naming it."""
        d = strict(cls, d, where)
        return cls(
            ProgNoise.from_dict(d["prog"], f"{where}.prog"),
            None if d["read"] is None else ReadNoise.from_dict(d["read"], f"{where}.read"),
            None if d["drift"] is None else DriftModel.from_dict(d["drift"], f"{where}.drift"),
        )

    @classmethod
    def from_preset(cls, d: Any, where: str) -> DeviceNoise:
        """From a preset's ``noise`` (devices.yaml, sources stripped): its read noise written as ``q`` (coef,
        exponent, cap: one fit, one source) and ``factor``."""
        d = strict(cls, d, where)
        read = d["read"]
        if read is not None:
            if not isinstance(read, dict) or set(read) != {"q", "factor"} or not isinstance(read["q"], dict):
                raise ChipError(f"{where}.read: expected {{q: {{coef, exponent, cap}}, factor}} or null, got {read!r}")
            read = {**read["q"], "factor": read["factor"]}
        return cls.from_dict({**d, "read": read}, where)


def _sourced(node: Any, where: str) -> Any:
    """A preset's node with every ``{value, source}`` replaced by its value: a number, list or null written bare, or
    a value without a source, is a ChipError naming its key."""
    if isinstance(node, dict) and "value" in node:
        if set(node) != {"value", "source"} or not str(node.get("source") or "").strip():
            raise ChipError(f"device preset {where}: a value without a source (write {{value: ..., source: ...}})")
        return node["value"]
    if isinstance(node, dict):
        return {k: v if k == "description" else _sourced(v, f"{where}.{k}") for k, v in node.items()}
    raise ChipError(f"device preset {where} = {node!r}: write it as {{value: ..., source: ...}}")


def parse_presets(doc: Any) -> dict[str, dict[str, Any]]:
    """A devices.yaml document: name -> {key: value} with every number's source checked (:func:`_sourced`)."""
    if not isinstance(doc, dict) or not doc:
        raise ChipError("device presets: expected a mapping of preset names")
    return {name: _sourced(preset, name) for name, preset in doc.items()}


@cache
def load_presets() -> dict[str, dict[str, Any]]:
    """The device presets (nvmxbar/resources/devices.yaml): name -> {key: value}, every number checked to carry a
    source (a ChipError names a number without one)."""
    return parse_presets(yaml.safe_load((resources.files("nvmxbar.resources") / "devices.yaml").read_text()))


PRESETS = tuple(load_presets())


@dataclass(frozen=True)
class Device:
    """The NVM device, resolved from its ``preset`` (:func:`load_presets`): conductance range (microsiemens), read
    voltage (the voltage across a cell driven at the DAC full-scale) and noise (:class:`DeviceNoise`, the preset's;
    its sigma(G) scales with an overridden G_max)."""

    preset: str
    g_max_us: float
    on_off_ratio: float
    v_read_v: float
    noise: DeviceNoise

    #: The fields the config may override (``chip.device``; null = the preset's).
    OVERRIDABLE = ("g_max_us", "on_off_ratio", "v_read_v")

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ChipError(f"device preset {self.preset!r}: expected one of {list(PRESETS)}")
        if not self.g_max_us > 0 or not self.on_off_ratio > 1:
            raise ChipError(f"device g_max_us {self.g_max_us}, on_off_ratio {self.on_off_ratio}: need > 0 and > 1")
        if not self.v_read_v > 0:
            raise ChipError(f"device v_read_v {self.v_read_v}: need > 0")
        if not isinstance(self.noise, DeviceNoise):
            raise ChipError(f"device noise {self.noise!r}: expected a DeviceNoise")

    @classmethod
    def from_config(cls, device_cfg: dict) -> Device:
        """The ``chip.device`` section: its ``preset`` with every non-null key overriding the preset's value."""
        name = device_cfg["preset"]
        if name not in PRESETS:
            raise ChipError(f"chip.device.preset {name!r}: expected one of {list(PRESETS)}")
        preset = load_presets()[name]
        over = {k: v for k, v in device_cfg.items() if k != "preset" and v is not None}
        return cls(
            preset=name,
            **{k: float(over.get(k, preset[k])) for k in cls.OVERRIDABLE},
            noise=DeviceNoise.from_preset(preset["noise"], f"device preset {name}.noise"),
        )

    @classmethod
    def from_dict(cls, d: Any, where: str = "device") -> Device:
        """Strictly from :func:`dataclasses.asdict`'s form (mapping.json)."""
        d = strict(cls, d, where)
        return cls(
            preset=d["preset"],
            **{k: float(d[k]) for k in cls.OVERRIDABLE},
            noise=DeviceNoise.from_dict(d["noise"], f"{where}.noise"),
        )

    @property
    def g_min_us(self) -> float:
        return self.g_max_us / self.on_off_ratio

    def prog_sigma_us(self, x: Any) -> Any:
        """Programming noise sigma(G) at normalised targets x = G / G_max, microsiemens (scaled to this G_max)."""
        return self.noise.prog.sigma_us(x, self.g_max_us)


@cache
def load_wire_presets() -> dict[str, dict[str, Any]]:
    """The interconnect presets (nvmxbar/resources/wires.yaml): name -> {key: value}, every number with its source."""
    return parse_presets(yaml.safe_load((resources.files("nvmxbar.resources") / "wires.yaml").read_text()))


WIRE_PRESETS = tuple(load_wire_presets())


@dataclass(frozen=True)
class Wires:
    """The tile's interconnect, ohms: a wire segment per cell along a row (the driven line) and along a column (the
    sensed line), the row driver's output resistance and the column's sense path to its virtual ground (the mux
    switch). Resolved from a ``preset`` (:func:`load_wire_presets`, tied to a node and cell); the driver and sense
    resistances follow NeuroSim's switch sizing, ``switch_drop_fraction`` x R_on / (the cells the switch serves)."""

    preset: str
    row_ohm_per_cell: float
    col_ohm_per_cell: float
    driver_ohm: float
    sense_ohm: float
    #: Where a one-device tile's reference column sits along the rows (the drivers at the first column's end):
    #: ``last`` after the tile's C columns (the far end), ``first`` before them, ``middle`` at C / 2.
    reference_column: str

    #: The fields the config may override (``chip.wires``; null = the preset's, or its sizing rule).
    OVERRIDABLE = ("row_ohm_per_cell", "col_ohm_per_cell", "driver_ohm", "sense_ohm")
    REFERENCE_COLUMNS = ("last", "first", "middle")

    def __post_init__(self) -> None:
        if self.preset not in WIRE_PRESETS:
            raise ChipError(f"wires preset {self.preset!r}: expected one of {list(WIRE_PRESETS)}")
        if self.reference_column not in self.REFERENCE_COLUMNS:
            raise ChipError(f"wires reference_column {self.reference_column!r}: one of {list(self.REFERENCE_COLUMNS)}")
        for k in self.OVERRIDABLE:
            v = getattr(self, k)
            if not (isinstance(v, int | float) and np.isfinite(v) and v >= 0):
                raise ChipError(f"wires {k} {v!r}: a resistance in ohms, at least 0")

    @classmethod
    def from_config(cls, wires_cfg: dict, device: Device, rows: int, cols: int) -> Wires:
        """The ``chip.wires`` section: its ``preset`` with every non-null key overriding; a null driver or sense
        resistance is the preset's sizing rule at ``device``'s R_on over the tile's ``cols`` / ``rows`` cells."""
        name = wires_cfg["preset"]
        if name not in WIRE_PRESETS:
            raise ChipError(f"chip.wires.preset {name!r}: expected one of {list(WIRE_PRESETS)}")
        p = load_wire_presets()[name]
        r_on = 1e6 / device.g_max_us
        derived = {
            "row_ohm_per_cell": p["row_ohm_per_cell"],
            "col_ohm_per_cell": p["col_ohm_per_cell"],
            "driver_ohm": p["switch_drop_fraction"] * r_on / cols,
            "sense_ohm": p["switch_drop_fraction"] * r_on / rows,
        }
        over = {k: v for k, v in wires_cfg.items() if k in cls.OVERRIDABLE and v is not None}
        ref = wires_cfg["reference_column"]
        return cls(preset=name, **{k: float(over.get(k, derived[k])) for k in cls.OVERRIDABLE}, reference_column=ref)

    @classmethod
    def from_dict(cls, d: Any, where: str = "wires") -> Wires:
        """Strictly from :func:`dataclasses.asdict`'s form (mapping.json)."""
        d = strict(cls, d, where)
        return cls(
            preset=d["preset"], **{k: float(d[k]) for k in cls.OVERRIDABLE}, reference_column=d["reference_column"]
        )

    def technology(self) -> tuple[float, str]:
        """(node in nm, cell) the preset's wire constants hold for."""
        p = load_wire_presets()[self.preset]
        return float(p["tech_nm"]), str(p["cell"])
