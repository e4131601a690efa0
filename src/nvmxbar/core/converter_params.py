"""The converters' error magnitudes (:class:`ConverterErrors`), loaded from package data
nvmxbar/resources/converter_errors.yaml (every number with its source): the parameters of the models of
:mod:`nvmxbar.core.converter_error` (ADC) and :mod:`nvmxbar.core.dac_error` (row DAC)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .cost_units import check_sources

#: The packaged constants (ConverterErrors.load's default).
DEFAULT_ERRORS = resources.files("nvmxbar.resources") / "converter_errors.yaml"
#: The largest converter resolution: a bank holds 2^bits thresholds or levels per instance.
MAX_BITS = 16


def check_bits(bits: Any) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"converter bits {bits!r}: an integer 1 .. {MAX_BITS}")
    return bits


# ------------------------------------------------------------------------------------------ constants
def _value(doc: dict, dotted: str) -> float:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"converter constants: missing '{dotted}'")
        node = node[part]
    value = node["value"] if isinstance(node, dict) else node
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"converter constant '{dotted}' = {value!r}: a finite number")
    return float(value)


@dataclass(frozen=True)
class ConverterErrors:
    """The converters' error magnitudes (dimensionless). ``cap_sigma``: relative sigma of the SAR's unit capacitor
    (a capacitor of 2^k units: cap_sigma / sqrt(2^k)); ``comparator_sigma``: comparator offset sigma relative to the
    ADC's full-scale span (2^bits LSB); ``gain_mean``: the deterministic relative gain error (finite op-amp gain,
    1 / (1 + 1/A) - 1 <= 0); ``gain_sigma``: per-ADC random relative gain error (reference); ``thermal_sigma``:
    kT/C noise of ONE unit capacitor relative to the full scale, sqrt(k T / C_u) / V_FS (an ADC of b bits:
    :meth:`thermal_lsb`); ``dac_sigma``: relative sigma of the row DAC's unit element. All 0: ideal converters."""

    cap_sigma: float = 0.0
    comparator_sigma: float = 0.0
    gain_mean: float = 0.0
    gain_sigma: float = 0.0
    thermal_sigma: float = 0.0
    dac_sigma: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"converter error {f.name} = {v!r}: a finite number")
            if f.name != "gain_mean" and v < 0:
                raise ValueError(f"converter error {f.name} = {v}: a sigma cannot be negative")
        if self.gain_mean <= -1:
            raise ValueError(f"converter error gain_mean = {self.gain_mean}: a gain error above -1 (a positive gain)")

    @classmethod
    def from_dict(cls, doc: Any) -> ConverterErrors:
        """From a converter_errors.yaml document (every number ``{value, source}``, checked): the unit capacitor's
        sigma, the comparator offset over the full scale, the finite op-amp gain's error, the reference sigma, the
        kT/C noise of one unit capacitor over the full scale and the DAC element's sigma."""
        if not isinstance(doc, dict):
            raise ValueError("converter constants: expected a mapping (adc, dac, physics)")
        check_sources(doc, what="converter constant")
        fs_v = _value(doc, "adc.full_scale_v")
        cap_ff, temp_k = _value(doc, "adc.cap_unit_ff"), _value(doc, "adc.temperature_k")
        if fs_v <= 0 or cap_ff <= 0 or temp_k < 0:
            raise ValueError(
                f"converter constants: full_scale_v {fs_v}, cap_unit_ff {cap_ff} must be > 0, temperature_k {temp_k} "
                ">= 0"
            )
        gain = 10 ** (_value(doc, "adc.opamp_gain_db") / 20)
        kt = _value(doc, "physics.boltzmann_j_per_k") * temp_k
        return cls(
            cap_sigma=_value(doc, "adc.cap_unit_sigma"),
            comparator_sigma=_value(doc, "adc.comparator_offset_mv") * 1e-3 / fs_v,
            gain_mean=1 / (1 + 1 / gain) - 1,
            gain_sigma=_value(doc, "adc.reference_sigma"),
            thermal_sigma=math.sqrt(kt / (cap_ff * 1e-15)) / fs_v,
            dac_sigma=_value(doc, "dac.unit_sigma"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> ConverterErrors:
        """The constants of ``path`` (default: the packaged nvmxbar/resources/converter_errors.yaml)."""
        p = Path(path) if path else DEFAULT_ERRORS
        return cls.from_dict(yaml.safe_load(p.read_text()))

    def scaled(self, s: float) -> ConverterErrors:
        """Every sigma and the gain error times ``s`` (0: ideal converters; 1: as loaded; 4: four times)."""
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s) or s < 0:
            raise ValueError(f"converter error scale {s!r}: a finite number >= 0")
        return ConverterErrors(**{f.name: getattr(self, f.name) * s for f in fields(self)})

    def weighted(self, parts: Any) -> ConverterErrors:
        """Each error times its multiplier in ``parts`` (an object with these fields, e.g.
        nvmxbar.settings.ConverterParts; 0 switches that error off)."""
        return ConverterErrors(**{f.name: getattr(self, f.name) * float(getattr(parts, f.name)) for f in fields(self)})

    def thermal_lsb(self, bits: int) -> float:
        """The input-referred kT/C noise sigma of a ``bits``-bit SAR per conversion, in its LSB:
        sqrt(k T / (2^b C_u)) / (V_FS / 2^b) = thermal_sigma x sqrt(2^b)."""
        return self.thermal_sigma * math.sqrt(2 ** check_bits(bits))

    @property
    def adc_ideal(self) -> bool:
        """No ADC error (the row DAC's aside)."""
        return all(getattr(self, f.name) == 0 for f in fields(self) if f.name != "dac_sigma")

    @property
    def ideal(self) -> bool:
        """No error at all (converters equal to round + clamp)."""
        return all(getattr(self, f.name) == 0 for f in fields(self))
