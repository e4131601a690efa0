"""The chip: ONE typed description of the hardware a network is trained for, mapped onto, simulated on and priced.

Built once from the validated ``chip:`` config section (:meth:`Chip.from_config`), written into mapping.json (the
whole chip) and model.pt (the part training simulates, :meth:`Chip.trained`), and read back strictly
(:meth:`Chip.from_dict`): a missing or unknown field is an error naming it, never a default. Quantities derived from
it (the input passes, the driver bits, the device's G_min) are its methods, computed here and nowhere else.

* ``tile``: an R x C sub-array (rows driven, columns sensed).
* ``device``: the NVM device, resolved from a preset of measured devices (``preset``, package data
  nvmxbar/resources/devices.yaml, every number with its source): its conductance range (G_max and the ON/OFF ratio,
  G_min = G_max / ratio) and read voltage; the config may override each (null = the preset's).
* ``dac_bits``, ``adc_bits``: the row drivers' and the column converters' resolution (signed ADC).
* ``adc_ratio``: ``pow2`` = ADC step / next DAC step a power of two (a shift between layers); ``free`` = an
  independent ADC full-scale (a multiply per output, priced).
* ``adc_mux``: column signals sharing one ADC.
* ``input_mode``: ``multibit`` = one pass of a ``dac_bits``-bit DAC; ``bit_serial`` = ``dac_bits`` passes of 1-bit
  drivers, bit j of every input code in pass j, each pass's partial sums converted, then shift-added (x 2^j).
* ``subtraction``: ``analog`` = a pair's G+ - G- (a one-device column's G_min offset: a reference column of G_min
  cells) subtracted before the ADC; ``digital`` = after it (twice the conversions for a pair; a one-device column
  converted with its offset).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from functools import cache
from importlib import resources
from typing import Any

import yaml

INPUT_MODES = ("multibit", "bit_serial")
SUBTRACTIONS = ("analog", "digital")
ADC_RATIOS = ("pow2", "free")


class ChipError(ValueError):
    """A chip description that is incomplete, has unknown fields, or values out of their domain."""


def passes(input_mode: str, dac_bits: int) -> int:
    """Array reads (and conversions of every partial sum) per MVM: ``dac_bits`` bit-serial, 1 multi-bit. The one
    place the pass count is computed (the quantizer, the simulator, the layout and the cost model call it)."""
    if input_mode not in INPUT_MODES:
        raise ChipError(f"input_mode {input_mode!r}: expected one of {list(INPUT_MODES)}")
    return int(dac_bits) if input_mode == "bit_serial" else 1


def _strict(cls: type, d: Any, where: str) -> dict:
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


@dataclass(frozen=True)
class Tile:
    """A crossbar sub-array: ``rows`` driven rows (R) by ``cols`` sensed columns (C)."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        if int(self.rows) < 1 or int(self.cols) < 1:
            raise ChipError(f"tile {self.rows} x {self.cols}: rows and cols must be at least 1")


@cache
def load_presets() -> dict[str, dict[str, Any]]:
    """The device presets (nvmxbar/resources/devices.yaml): name -> {key: value}, every number checked to carry a
    source (a ChipError names a number without one)."""
    doc = yaml.safe_load((resources.files("nvmxbar.resources") / "devices.yaml").read_text())
    out: dict[str, dict[str, Any]] = {}
    for name, preset in doc.items():
        out[name] = {}
        for key, node in preset.items():
            if isinstance(node, dict) and "value" in node:
                if not str(node.get("source") or "").strip():
                    raise ChipError(f"device preset {name}.{key}: a value without a source")
                out[name][key] = node["value"]
            elif isinstance(node, (int, float)) and not isinstance(node, bool):
                raise ChipError(f"device preset {name}.{key} = {node}: write it as {{value: ..., source: ...}}")
            else:
                out[name][key] = node
    return out


PRESETS = tuple(load_presets())


@dataclass(frozen=True)
class Device:
    """The NVM device, resolved from its ``preset`` (:func:`load_presets`): conductance range (microsiemens) and
    read voltage (the voltage across a cell driven at the DAC full-scale)."""

    preset: str
    g_max_us: float
    on_off_ratio: float
    v_read_v: float

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ChipError(f"device preset {self.preset!r}: expected one of {list(PRESETS)}")
        if not self.g_max_us > 0 or not self.on_off_ratio > 1:
            raise ChipError(f"device g_max_us {self.g_max_us}, on_off_ratio {self.on_off_ratio}: need > 0 and > 1")
        if not self.v_read_v > 0:
            raise ChipError(f"device v_read_v {self.v_read_v}: need > 0")

    @classmethod
    def from_config(cls, device_cfg: dict) -> Device:
        """The ``chip.device`` section: its ``preset`` with every non-null key overriding the preset's value."""
        name = device_cfg["preset"]
        if name not in PRESETS:
            raise ChipError(f"chip.device.preset {name!r}: expected one of {list(PRESETS)}")
        preset = load_presets()[name]
        over = {k: v for k, v in device_cfg.items() if k != "preset" and v is not None}
        return cls(preset=name, **{f.name: float(over.get(f.name, preset[f.name])) for f in fields(cls)[1:]})

    @property
    def g_min_us(self) -> float:
        return self.g_max_us / self.on_off_ratio


@dataclass(frozen=True)
class Chip:
    """The hardware (module docstring): tile, device, converters, input drive, subtraction and ADC sharing."""

    tile: Tile
    device: Device
    dac_bits: int
    adc_bits: int
    adc_ratio: str
    adc_mux: int
    input_mode: str
    subtraction: str

    #: The fields training simulates (with ``tile.rows``, the row tile each partial sum is converted over): a change
    #: of any other field (ADC sharing, subtraction, the device's range, the tile's columns) retrains nothing.
    TRAINED = ("dac_bits", "adc_bits", "adc_ratio", "input_mode")

    def __post_init__(self) -> None:
        for name, allowed in (
            ("input_mode", INPUT_MODES),
            ("subtraction", SUBTRACTIONS),
            ("adc_ratio", ADC_RATIOS),
        ):
            if getattr(self, name) not in allowed:
                raise ChipError(f"chip {name} {getattr(self, name)!r}: expected one of {list(allowed)}")
        for name in ("dac_bits", "adc_bits", "adc_mux"):
            if int(getattr(self, name)) < 1:
                raise ChipError(f"chip {name} {getattr(self, name)}: must be at least 1")

    # ------------------------------------------------------------------ derived quantities
    @property
    def passes(self) -> int:
        """Array reads (and conversions of every partial sum) per MVM (:func:`passes`)."""
        return passes(self.input_mode, self.dac_bits)

    @property
    def driver_bits(self) -> int:
        """Resolution of a row driver: 1 bit-serial, ``dac_bits`` multi-bit."""
        return 1 if self.input_mode == "bit_serial" else self.dac_bits

    @property
    def rescales(self) -> bool:
        """Whether an ADC code needs a multiply before it drives the next layer (adc_ratio free)."""
        return self.adc_ratio != "pow2"

    # ------------------------------------------------------------------ building and reading back
    @classmethod
    def from_config(cls, chip_cfg: dict) -> Chip:
        """From the validated ``chip`` section (every key present: the schema requires them)."""
        return cls.from_dict({**chip_cfg, "device": asdict(Device.from_config(chip_cfg["device"]))}, "config key 'chip'")

    @classmethod
    def from_dict(cls, d: Any, where: str = "chip") -> Chip:
        """Strictly from :meth:`to_dict`'s form: a missing or unknown field is a :class:`ChipError` naming it."""
        d = _strict(cls, d, where)
        return cls(
            tile=Tile(**{k: int(v) for k, v in _strict(Tile, d["tile"], f"{where}.tile").items()}),
            device=Device(
                **{k: v if k == "preset" else float(v) for k, v in _strict(Device, d["device"], f"{where}.device").items()}
            ),
            dac_bits=int(d["dac_bits"]),
            adc_bits=int(d["adc_bits"]),
            adc_ratio=str(d["adc_ratio"]),
            adc_mux=int(d["adc_mux"]),
            input_mode=str(d["input_mode"]),
            subtraction=str(d["subtraction"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The whole chip as mapping.json stores it (and a rule's params see it)."""
        return asdict(self)

    def trained(self) -> dict[str, Any]:
        """The part of the chip training simulates, as model.pt stores it and the train rule's params see it."""
        return {"tile_rows": self.tile.rows, **{k: getattr(self, k) for k in self.TRAINED}}

    def check_trained(self, trained: Any, where: str) -> None:
        """Raise :class:`ChipError` unless a model's ``trained`` chip (model.pt) is this chip's training part, naming
        every field that differs (the model must be retrained for this chip)."""
        want = self.trained()
        if not isinstance(trained, dict) or set(trained) != set(want):
            raise ChipError(f"{where}: its chip {trained!r} is not a trained-chip record with {sorted(want)}")
        diff = [f"{k} {trained[k]!r} (the chip has {want[k]!r})" for k in want if trained[k] != want[k]]
        if diff:
            raise ChipError(
                f"{where}: trained for another chip: {'; '.join(diff)}. Retrain it: the chip's converters, drive "
                "and row tile are part of the training"
            )

    def with_converters(self, *, dac_bits: int, adc_bits: int, adc_ratio: str) -> Chip:
        """The same array, drive, subtraction and ADC sharing with other converters (the baseline's fitted bits,
        a per-layer-scaled network's free ratio)."""
        return replace(self, dac_bits=int(dac_bits), adc_bits=int(adc_bits), adc_ratio=adc_ratio)
