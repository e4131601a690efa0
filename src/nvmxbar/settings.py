"""Typed settings: frozen dataclasses built once from the validated config, passed to the core, training and search.

A config key leads to its code in two hops: ``chip.tile.rows`` -> :class:`nvmxbar.chip.Tile` ->
:func:`nvmxbar.core.schemes.map_network`; ``evaluate_noise.sweep.prog_sigma`` -> :class:`NoiseModel` ->
:class:`nvmxbar.core.noise.Perturbation`. Every default lives in the config schema
(nvmxbar/resources/config.schema.yaml, equal to config.yaml: tests/unit/test_defaults.py): the builders here read
validated sections, in which every key is present, and fill nothing in.

A rule's ``params`` are the settings its stage consumes, as plain data (:func:`params`), read back strictly in the
job (:func:`from_params`): so a config key reruns exactly the jobs whose settings hold it.

One noise-model type, :class:`NoiseModel`, serves the noise sweep (``evaluate_noise.sweep``) and the search's
score (``nas_unipolar.score``): scales of the chip's device noise (nvmxbar.devices.DeviceNoise). Hardware-aware
training (``quant.train_noise``) is a regularizer of its own, a fraction of the weight range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .chip import Chip
from .noise_settings import DRIFT_COMPENSATIONS as DRIFT_COMPENSATIONS
from .noise_settings import NOISE_CSV_COLUMNS as NOISE_CSV_COLUMNS
from .noise_settings import NOISE_KEYS as NOISE_KEYS
from .noise_settings import STUCK_TOLERANCE as STUCK_TOLERANCE
from .noise_settings import ConverterParts as ConverterParts
from .noise_settings import Drift as Drift
from .noise_settings import MonteCarlo as MonteCarlo
from .noise_settings import NoiseModel as NoiseModel
from .noise_settings import Score as Score
from .noise_settings import noise_grid as noise_grid
from .typed import from_params as from_params
from .typed import params as params

#: The deployments, in the order of the attribution stack: the float baseline (per-layer scales, 8-bit weights
#: bit-sliced), perlayer (trained at device precision with per-layer scales), uniform (+ one shared scale), signed
#: (uniform scaling on the searched unipolar architecture, signed weights: + the smaller network) and unipolar
#: (+ one device per weight).
VARIANTS = ("baseline", "perlayer", "uniform", "signed", "unipolar")


@dataclass(frozen=True)
class BaselineMap:
    """The float baseline's mapping (``map_crossbar.baseline_*``, ``calibration_samples``): weight bits
    bit-sliced onto the devices, its converters (``dac_bits``, ``adc_bits``: null in the config = the chip's), the
    training inputs that calibrate its per-layer DAC and ADC ranges, how its slices combine, the DAC-, ADC- and
    weight-bit fits, the encodings tried and the pricing that picks the cheapest (nvmxbar.stages.map_crossbar)."""

    weight_bits: int
    dac_bits: int
    adc_bits: int
    calibration_samples: int
    dac_fit: bool  # map_crossbar fits the fewest DAC bits (the ADC off) that keep the float accuracy, first
    adc_fit: bool  # map_crossbar fits the fewest ADC bits that keep the float accuracy (validation split)
    weight_fit: bool  # ... and the fewest weight bits
    fit_tolerance_pct: float
    slice_combination: str  # pow2 (a shift per slice) | free (a multiply per code)
    encodings: tuple[str, ...]  # differential | offset; map_network maps the first, map_crossbar fits each
    pricing: Pricing  # estimate_cost's, to price the fitted candidates


@dataclass(frozen=True)
class MapSettings:
    """``map_crossbar``: the chip, the bias placement, and (the float baseline only) its bit slicing. The other
    variants' mappings carry ``baseline`` None, so that no baseline key reruns them (:meth:`for_variant`)."""

    chip: Chip
    bias: str  # row (a driven crossbar row) | digital (added after the ADC)
    baseline: BaselineMap | None

    @classmethod
    def from_config(cls, map_cfg: dict, chip: Chip, pricing: Pricing) -> MapSettings:  # pricing: the baseline's
        return cls(
            chip=chip,
            bias=map_cfg["bias"],
            baseline=BaselineMap(
                weight_bits=int(map_cfg["baseline_weight_bits"]),
                dac_bits=int(map_cfg["baseline_dac_bits"] or chip.dac_bits),
                adc_bits=int(map_cfg["baseline_adc_bits"] or chip.adc_bits),
                calibration_samples=int(map_cfg["calibration_samples"]),
                dac_fit=bool(map_cfg["baseline_dac_fit"]),
                adc_fit=bool(map_cfg["baseline_adc_fit"]),
                weight_fit=bool(map_cfg["baseline_weight_fit"]),
                fit_tolerance_pct=float(map_cfg["baseline_fit_tolerance_pct"]),
                slice_combination=map_cfg["baseline_slice_combination"],
                encodings=tuple(map_cfg["baseline_encodings"]),
                pricing=pricing,
            ),
        )

    def for_variant(self, variant: str) -> MapSettings:
        """What mapping ``variant`` reads: the baseline's slicing only for the baseline."""
        return self if variant == "baseline" else replace(self, baseline=None)

    def baseline_chip(self) -> Chip:
        """The baseline's chip: the same array, drive, subtraction and ADC sharing, its own converter bits (its
        ADC-to-DAC ratio is a per-layer rescale: free)."""
        if self.baseline is None:
            raise ValueError("these mapping settings are a quantized variant's: they hold no baseline slicing")
        b = self.baseline
        return self.chip.with_converters(dac_bits=b.dac_bits, adc_bits=b.adc_bits, adc_ratio="free")


def per_model(value: Any, variant: str, bits: int | None, dataset: str | None = None) -> float:
    """``quant.train_noise`` or ``quant.train_wires`` of one quantized model: one number for every model, or a
    mapping keyed by ``b<bits>`` (every variant at those bits), ``<variant>/b<bits>`` (that model) and
    ``<dataset>/<variant>/b<bits>`` (that model on ``dataset`` alone), the most specific winning; a model the
    mapping does not name trains without it (0). The float baseline never trains with either."""
    if variant == "baseline":
        return 0.0
    if isinstance(value, dict):
        keys = ([f"{dataset}/{variant}/b{bits}"] if dataset else []) + [f"{variant}/b{bits}", f"b{bits}"]
        return float(next((value[k] for k in keys if k in value), 0.0))
    return float(value)


@dataclass(frozen=True)
class TrainWires:
    """Hardware-aware training against IR drop (``quant.train_wires``, as aihwkit trains with its forward's
    non-idealities): at every epoch's start the network is mapped onto ``chip`` (biases placed by ``bias``), the
    simulator's IR-drop model gives each weight's error at ``scale`` x the chip's wires, and the epoch trains on
    the quantized weights plus that error (straight through: :mod:`nvmxbar.training.wire_aware`)."""

    scale: float  # x the chip's wire resistances (evaluate_noise's wire_scale)
    chip: Chip
    bias: str  # map_crossbar.bias

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"quant.train_wires {self.scale}: a wire scale > 0 (a model without it trains without)")

    @classmethod
    def from_config(
        cls, dataset: str, variant: str, bits: int | None, quant_cfg: dict, chip: Chip, map_cfg: dict
    ) -> TrainWires | None:
        """The ``quant.train_wires`` of ``dataset``'s model ``variant``/b``bits`` on this chip; None where it is 0
        (unnamed) or the model is float."""
        scale = per_model(quant_cfg["train_wires"], variant, bits, dataset)
        return cls(scale, chip, map_cfg["bias"]) if scale else None

    def map_settings(self) -> MapSettings:
        """How the network is mapped to find its wire error: as map_crossbar maps a quantized variant."""
        return MapSettings(self.chip, self.bias, None)


def on_gpu(setting: str, cuda_available: bool) -> bool:
    """Whether a ``train.accelerator`` (auto, cpu, gpu) or ``device`` (auto, cpu, cuda) setting runs on a CUDA GPU,
    given whether one is visible: gpu/cuda always (a cluster's nodes may have one where this process has none),
    auto when one is visible."""
    return setting in ("gpu", "cuda") or (setting == "auto" and cuda_available)


@dataclass(frozen=True)
class QuantSettings:
    """The uniform-scale quantizer of one model (:class:`nvmxbar.core.quant.UniformQuantizer`): the training knobs of
    ``quant`` and the part of the chip training simulates (converters, drive, row tile)."""

    weight_bits: int
    dac_bits: int
    adc_bits: int
    weight_fullscale: float
    act_fullscale: float
    adc_fullscale: float
    learn_scales: bool
    adc_tile_rows: int
    train_noise: float  # hardware-aware training: a noise sigma, fraction of the weight range (0 = off)
    input_mode: str  # the chip's (Chip.input_mode): bit_serial trains the passes
    adc_ratio: str  # the chip's (Chip.adc_ratio): pow2 ties the ADC full-scale to the DAC's; perlayer: free
    per_layer: bool  # variant perlayer: a weight, DAC and ADC full-scale per layer (PerLayerQuantizer)

    @classmethod
    def from_config(cls, variant: str, bits: int | None, quant_cfg: dict, chip: Chip) -> QuantSettings | None:
        """None for the float baseline. ``quant_cfg`` is the validated ``quant`` section (its train_noise a
        number or a per-model mapping; its adc_tile_rows null = the chip's tile rows)."""
        if variant == "baseline":
            return None
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
        tile_rows = quant_cfg["adc_tile_rows"]
        return cls(
            weight_bits=int(bits),
            dac_bits=chip.dac_bits,
            adc_bits=chip.adc_bits,
            weight_fullscale=float(quant_cfg["weight_fullscale"]),
            act_fullscale=float(quant_cfg["act_fullscale"]),
            adc_fullscale=float(quant_cfg["adc_fullscale"]),
            learn_scales=bool(quant_cfg["learn_scales"]),
            adc_tile_rows=int(chip.tile.rows if tile_rows is None else tile_rows),
            train_noise=per_model(quant_cfg["train_noise"], variant, bits),
            input_mode=chip.input_mode,
            # per-layer scales: no shared ADC-to-DAC ratio (a rescale per output)
            adc_ratio="free" if variant == "perlayer" else chip.adc_ratio,
            per_layer=variant == "perlayer",
        )

    def quantizer_kwargs(self) -> dict[str, Any]:
        """The quantizer's keyword arguments, as model.pt stores them and the model's hash sees them (the
        tile rows and the training noise only when on, so that models trained without them keep their hash)."""
        q: dict[str, Any] = {
            "weight_bits": self.weight_bits,
            "dac_bits": self.dac_bits,
            "adc_bits": self.adc_bits,
            "weight_fullscale": self.weight_fullscale,
            "act_fullscale": self.act_fullscale,
            "adc_fullscale": self.adc_fullscale,
            "learn_scales": self.learn_scales,
        }
        if self.adc_tile_rows:
            q["adc_tile_rows"] = self.adc_tile_rows
        if self.train_noise:
            q["train_noise"] = self.train_noise
        if self.input_mode != "multibit":
            q["input_mode"] = self.input_mode
        if self.adc_ratio != "free":
            q["adc_ratio"] = self.adc_ratio
        if self.per_layer:
            q["per_layer"] = True
        return q


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation from the float baseline: loss = (1 - alpha) CE + alpha T^2 KL."""

    alpha: float
    temperature: float


@dataclass(frozen=True)
class Recipe:
    """``train.<dataset>``: the Lightning training recipe of one model."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    select: str  # last | best_val
    fit_on: str  # train | train+val
    augment: bool
    distill: Distill | None  # None = off (and for the float baseline, the teacher)

    @classmethod
    def from_config(cls, train_cfg: dict, variant: str = "unipolar") -> Recipe:
        """``variant`` baseline never distills (it is the teacher): its recipe holds no distill settings."""
        d = train_cfg["distill"]
        distill = Distill(float(d["alpha"]), float(d["temperature"])) if float(d["alpha"]) > 0 else None
        return cls(
            int(train_cfg["epochs"]),
            int(train_cfg["batch_size"]),
            float(train_cfg["lr"]),
            float(train_cfg["weight_decay"]),
            float(train_cfg["label_smoothing"]),
            train_cfg["select"],
            train_cfg["fit_on"],
            bool(train_cfg["augment"]),
            None if variant == "baseline" else distill,
        )

    def params(self) -> dict[str, Any]:
        """The recipe as the model's hash and MLflow params see it (fit_on only when it is train+val)."""
        p = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "label_smoothing": self.label_smoothing,
            "select": self.select,
            "augment": self.augment,
        }
        if self.fit_on != "train":
            p["fit_on"] = self.fit_on
        return p


@dataclass(frozen=True)
class Pricing:
    """How ``estimate_cost`` prices counted components and operations: constants, converter family, node, cell
    (what the search's area objective needs too)."""

    constants: str | None  # None = the packaged constants
    family: str
    tech_nm: int | float  # as configured (cost.json's notes print it)
    cell: str
    adc_time_share: bool

    @classmethod
    def from_config(cls, cost_cfg: dict) -> Pricing:
        return cls(
            cost_cfg["constants"] or None,
            cost_cfg["family"],
            cost_cfg["tech_nm"],
            cost_cfg["cell"],
            bool(cost_cfg["adc_time_share"]),
        )


@dataclass(frozen=True)
class CostSettings:
    """``estimate_cost``: the pricing, and how the cell read energy is measured (``cell_activity`` measured |
    upper_bound, over ``activity_samples`` training inputs)."""

    pricing: Pricing
    cell_activity: str
    activity_samples: int

    @classmethod
    def from_config(cls, cost_cfg: dict) -> CostSettings:
        return cls(Pricing.from_config(cost_cfg), cost_cfg["cell_activity"], int(cost_cfg["activity_samples"]))
