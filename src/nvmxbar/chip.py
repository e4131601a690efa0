"""The chip: ONE typed description of the hardware a network is trained for, mapped onto, simulated on and priced.

Built once from the validated ``chip:`` config section (:meth:`Chip.from_config`), written into mapping.json (the
whole chip) and model.pt (the part training simulates, :meth:`Chip.trained`), and read back strictly
(:meth:`Chip.from_dict`): a missing or unknown field is an error naming it, never a default. Quantities derived from
it (the input passes, the driver bits, the device's G_min) are its methods, computed here and nowhere else.

* ``tile``: an R x C sub-array (rows driven, columns sensed).
* ``device``: the NVM device (:mod:`nvmxbar.devices`), resolved from a preset of measured devices (``preset``,
  package data nvmxbar/resources/devices.yaml, every number with its source): its conductance range (G_max and the
  ON/OFF ratio, G_min = G_max / ratio), read voltage, and noise (programming sigma(G), read noise, drift: what the
  simulator draws, recorded with the chip); the config may override the range and the voltage (null = the preset's).
* ``wires``: the tile's interconnect (:class:`nvmxbar.devices.Wires`): ohms per cell along a row and a column, from
  a preset tied to a node and cell (nvmxbar/resources/wires.yaml), and the row driver's and the sense path's series
  resistances (NeuroSim's switch sizing at the device's R_on); what the IR-drop model and the column-current limit
  read.
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

from dataclasses import asdict, dataclass, replace
from typing import Any

from .devices import PRESETS, ChipError, Device, DeviceNoise, Wires, load_presets
from .devices import strict as _strict

__all__ = ["PRESETS", "Chip", "ChipError", "Device", "DeviceNoise", "Tile", "Wires", "load_presets", "passes"]

INPUT_MODES = ("multibit", "bit_serial")
SUBTRACTIONS = ("analog", "digital")
ADC_RATIOS = ("pow2", "free")


def passes(input_mode: str, dac_bits: int) -> int:
    """Array reads (and conversions of every partial sum) per MVM: ``dac_bits`` bit-serial, 1 multi-bit. The one
    place the pass count is computed (the quantizer, the simulator, the layout and the cost model call it)."""
    if input_mode not in INPUT_MODES:
        raise ChipError(f"input_mode {input_mode!r}: expected one of {list(INPUT_MODES)}")
    return int(dac_bits) if input_mode == "bit_serial" else 1


@dataclass(frozen=True)
class Tile:
    """A crossbar sub-array: ``rows`` driven rows (R) by ``cols`` sensed columns (C)."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        if int(self.rows) < 1 or int(self.cols) < 1:
            raise ChipError(f"tile {self.rows} x {self.cols}: rows and cols must be at least 1")


@dataclass(frozen=True)
class Chip:
    """The hardware (module docstring): tile, device, converters, input drive, subtraction and ADC sharing."""

    tile: Tile
    device: Device
    wires: Wires
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
        device = Device.from_config(chip_cfg["device"])
        tile = chip_cfg["tile"]
        wires = Wires.from_config(chip_cfg["wires"], device, int(tile["rows"]), int(tile["cols"]))
        return cls.from_dict({**chip_cfg, "device": asdict(device), "wires": asdict(wires)}, "config key 'chip'")

    @classmethod
    def from_dict(cls, d: Any, where: str = "chip") -> Chip:
        """Strictly from :meth:`to_dict`'s form: a missing or unknown field is a :class:`ChipError` naming it."""
        d = _strict(cls, d, where)
        return cls(
            tile=Tile(**{k: int(v) for k, v in _strict(Tile, d["tile"], f"{where}.tile").items()}),
            device=Device.from_dict(d["device"], f"{where}.device"),
            wires=Wires.from_dict(d["wires"], f"{where}.wires"),
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
