"""Typed settings: frozen dataclasses built once from the validated config (:func:`nvmxbar.config.validate`)
and passed to the physics core, training and search.

A config key leads to its code in two hops: ``map_crossbar.rows`` -> :attr:`MapSettings.tile` ->
:func:`nvmxbar.core.schemes.map_network`; ``evaluate_noise.sweep.prog_sigma`` -> :class:`NoiseModel` ->
:class:`nvmxbar.core.noise.Perturbation`. Every default lives in the config schema
(nvmxbar/resources/config.schema.yaml): the builders here read validated sections, in which every key is
present, and fill nothing in.

One noise-model type, :class:`NoiseModel`, serves the noise sweep (``evaluate_noise.sweep``), the search's
score (``nas_unipolar.score``) and hardware-aware training (``quant.train_noise``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

#: The non-idealities of a chip, in the order of noise.csv's columns.
NOISE_KEYS = ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "on_off_ratio", "drift_t_s")
#: How far stuck_min + stuck_max may exceed 1 by float rounding (0.7 + 0.3 and the like).
STUCK_TOLERANCE = 1e-9
#: ``evaluate_noise.drift.compensation``: how a chip undoes drift (:class:`Drift`).
DRIFT_COMPENSATIONS = ("none", "global", "column", "oracle")


@dataclass(frozen=True)
class Tile:
    """A crossbar sub-array: ``rows`` driven rows (R) by ``cols`` sensed columns (C)."""

    rows: int
    cols: int


@dataclass(frozen=True)
class Device:
    """The NVM device's conductance range (microsiemens)."""

    g_max_us: float
    on_off_ratio: float

    @property
    def g_min_us(self) -> float:
        return self.g_max_us / self.on_off_ratio


#: The deployments, in the order of the attribution stack: the float baseline (per-layer scales, 8-bit weights
#: bit-sliced), perlayer (trained at device precision with per-layer scales), uniform (+ one shared scale), signed
#: (uniform scaling on the searched unipolar architecture, signed weights: + the smaller network) and unipolar
#: (+ one device per weight).
VARIANTS = ("baseline", "perlayer", "uniform", "signed", "unipolar")
INPUT_MODES = ("multibit", "bit_serial")
SUBTRACTIONS = ("analog", "digital")
ADC_RATIOS = ("pow2", "free")


@dataclass(frozen=True)
class Circuit:
    """The circuit around the arrays, ONE description read by training's fake quantization
    (:class:`nvmxbar.core.quant.UniformQuantizer`), the simulator and the cost model (both through mapping.json's
    ``converters``, :meth:`converters`), so that the circuit whose accuracy is simulated is the circuit priced.

    * ``input_mode``: ``multibit`` = one pass of a ``dac_bits``-bit DAC per row and one ADC conversion per row
      tile's partial sum; ``bit_serial`` = ``dac_bits`` passes of 1-bit drivers, bit j of every input code in pass
      j, each pass's partial sums converted, then shift-added (x 2^j).
    * ``subtraction``: ``analog`` = a pair's G+ - G- (a one-device column's G_min offset: a reference column of
      G_min cells) subtracted before the ADC; ``digital`` = after it (twice the conversions for a pair; a
      one-device column converted with its offset).
    * ``adc_ratio`` (uniform scaling): ``pow2`` = ADC step / next DAC step a power of two (a shift between
      layers); ``free`` = an independent ADC full-scale (a multiply per output, priced).
    """

    input_mode: str
    dac_bits: int
    adc_bits: int
    adc_mux: int
    subtraction: str
    adc_ratio: str

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("input_mode", self.input_mode, INPUT_MODES),
            ("subtraction", self.subtraction, SUBTRACTIONS),
            ("adc_ratio", self.adc_ratio, ADC_RATIOS),
        ):
            if value not in allowed:
                raise ValueError(f"circuit {name} '{value}': expected one of {list(allowed)}")

    @property
    def passes(self) -> int:
        """Array reads (and conversions of every partial sum) per MVM: dac_bits bit-serial, 1 multi-bit."""
        return self.dac_bits if self.input_mode == "bit_serial" else 1

    @property
    def driver_bits(self) -> int:
        return 1 if self.input_mode == "bit_serial" else self.dac_bits

    def converters(self) -> dict[str, Any]:
        """mapping.json's ``converters`` block: what the simulator simulates and the cost model prices."""
        return {
            "dac_bits": self.dac_bits,
            "adc_bits": self.adc_bits,
            "adc_mux": self.adc_mux,
            "input_mode": self.input_mode,
            "subtraction": self.subtraction,
            "adc_ratio_mode": self.adc_ratio,
        }


@dataclass(frozen=True)
class MapSettings:
    """``map_crossbar``: tiles, device, bias placement, the circuit and the baseline's bit slicing."""

    tile: Tile
    device: Device
    bias: str  # row (a driven crossbar row) | digital (added after the ADC)
    circuit: Circuit  # the uniform-scale variants' circuit (converters of quant)
    baseline_weight_bits: int
    baseline_dac_bits: int  # resolved: map_crossbar.baseline_dac_bits, else quant.dac_bits
    baseline_adc_bits: int
    calibration_samples: int
    baseline_adc_fit: bool = False  # map_crossbar tries more ADC bits until the baseline keeps its float accuracy
    baseline_fit_tolerance_pct: float = 1.0

    @classmethod
    def from_config(cls, map_cfg: dict, quant_cfg: dict) -> MapSettings:
        return cls(
            tile=Tile(int(map_cfg["rows"]), int(map_cfg["cols"])),
            device=Device(float(map_cfg["g_max_us"]), float(map_cfg["on_off_ratio"])),
            bias=map_cfg["bias"],
            circuit=circuit_for(quant_cfg, map_cfg),
            baseline_weight_bits=int(map_cfg["baseline_weight_bits"]),
            baseline_dac_bits=int(map_cfg["baseline_dac_bits"] or quant_cfg["dac_bits"]),
            baseline_adc_bits=int(map_cfg["baseline_adc_bits"] or quant_cfg["adc_bits"]),
            calibration_samples=int(map_cfg["calibration_samples"]),
            baseline_adc_fit=bool(map_cfg.get("baseline_adc_fit", False)),
            baseline_fit_tolerance_pct=float(map_cfg.get("baseline_fit_tolerance_pct", 1.0)),
        )

    @property
    def adc_mux(self) -> int:
        return self.circuit.adc_mux

    @property
    def input_mode(self) -> str:
        return self.circuit.input_mode

    def baseline_circuit(self) -> Circuit:
        """The baseline's circuit: the same drive, subtraction and ADC sharing, its own converter bits (its
        ADC-to-DAC ratio is a per-layer rescale, whatever adc_ratio says)."""
        return replace(self.circuit, dac_bits=self.baseline_dac_bits, adc_bits=self.baseline_adc_bits, adc_ratio="free")


def circuit_for(quant_cfg: dict, map_cfg: dict | None) -> Circuit:
    """The circuit from the validated ``quant`` section (converter bits, adc_ratio) and ``map_crossbar`` (input
    mode, subtraction, ADC sharing). A rule that hands training only the model's ``quant`` section puts
    ``input_mode`` and ``subtraction`` into it (workflow/rules/common.smk quant_cfg); then ``map_cfg`` may be None
    (the ADC sharing does not change what training computes)."""
    src = map_cfg if map_cfg is not None else quant_cfg
    for key in ("input_mode", "subtraction"):
        if key not in src:
            raise ValueError(f"circuit: '{key}' missing: pass the map_crossbar section")
    return Circuit(
        input_mode=src["input_mode"],
        dac_bits=int(quant_cfg["dac_bits"]),
        adc_bits=int(quant_cfg["adc_bits"]),
        adc_mux=int(map_cfg["adc_mux"]) if map_cfg is not None else 1,
        subtraction=src["subtraction"],
        adc_ratio=quant_cfg.get("adc_ratio", "pow2"),
    )


@dataclass(frozen=True)
class Drift:
    """Conductance drift G(t) = G(t0) (t/t0)^-nu, nu ~ N(nu, nu_std) per device. ``compensation`` (one of
    DRIFT_COMPENSATIONS): ``global`` / ``column`` rescale by what an all-ones reference read gives at t0 and at t
    (one gain per chip and layer / per physical column, estimated on the chip's own devices), ``oracle`` by the
    exact mean drift (t/t0)^nu, ``none`` not at all (nvmxbar.core.noise.Perturbation)."""

    t0_s: float
    nu: float
    nu_std: float
    compensation: str

    def __post_init__(self) -> None:
        if self.compensation not in DRIFT_COMPENSATIONS:  # the old booleans too (true: oracle, false: none)
            raise ValueError(
                f"drift compensation {self.compensation!r}: one of {', '.join(DRIFT_COMPENSATIONS)} "
                f"(the old true was the oracle mean gain; global is the chip's own reference read)"
            )

    @classmethod
    def from_config(cls, drift_cfg: dict) -> Drift:
        return cls(
            float(drift_cfg["t0_s"]),
            float(drift_cfg["nu"]),
            float(drift_cfg["nu_std"]),
            drift_cfg["compensation"],
        )


@dataclass(frozen=True)
class NoiseModel:
    """The non-idealities of one population of chips. 0 (None for ``on_off_ratio``: the mapped device's)
    switches one off. Sigmas are fractions: programming noise of the conductance range G_max - G_min, read
    noise of the conductance."""

    prog_sigma: float
    read_sigma: float
    stuck_min: float
    stuck_max: float
    on_off_ratio: float | None
    drift_t_s: float
    drift: Drift | None  # the drift model; None where nothing drifts (drift_t_s must then be 0)

    def __post_init__(self) -> None:
        if self.drift_t_s and self.drift is None:
            raise ValueError(f"drift_t_s {self.drift_t_s}: a drift time needs a drift model")
        if self.drift_t_s and self.drift_t_s < self.drift.t0_s:
            raise ValueError(
                f"drift_t_s {self.drift_t_s} is before the drift model's t0_s {self.drift.t0_s}: G(t) = G(t0) "
                f"(t/t0)^-nu starts at t0 (0 = no drift)"
            )
        stuck = (self.stuck_min or 0.0) + (self.stuck_max or 0.0)
        if stuck > 1.0 + STUCK_TOLERANCE:
            raise ValueError(
                f"stuck_min {self.stuck_min} + stuck_max {self.stuck_max} = {stuck:g} > 1: both are fractions of "
                f"the same devices"
            )

    @classmethod
    def programming(cls, sigma: float, drift: Drift | None = None) -> NoiseModel:
        """Programming noise alone (the search's score, hardware-aware training)."""
        return cls(float(sigma), 0.0, 0.0, 0.0, None, 0.0, drift)

    @property
    def ideal(self) -> bool:
        return not any(getattr(self, k) for k in NOISE_KEYS)

    def setting(self) -> dict[str, Any]:
        """The six non-idealities as noise.csv records them."""
        return {k: getattr(self, k) for k in NOISE_KEYS}


def noise_grid(sweep: dict[str, list], drift: Drift) -> list[NoiseModel]:
    """``evaluate_noise.sweep``: the Cartesian product of its lists, in NOISE_KEYS order."""
    return [NoiseModel(*combo, drift=drift) for combo in itertools.product(*(sweep[k] for k in NOISE_KEYS))]


@dataclass(frozen=True)
class MonteCarlo:
    """``evaluate_noise``: chips per setting and how they are batched; ``models`` is the sweep."""

    instances: int
    samples: int | None
    batch_size: int
    instance_chunk: int
    models: tuple[NoiseModel, ...]

    @classmethod
    def from_config(cls, noise_cfg: dict) -> MonteCarlo:
        drift = Drift.from_config(noise_cfg["drift"])
        return cls(
            int(noise_cfg["instances"]),
            noise_cfg["samples"],
            int(noise_cfg["batch_size"]),
            int(noise_cfg["instance_chunk"]),
            tuple(noise_grid(noise_cfg["sweep"], drift)),
        )


@dataclass(frozen=True)
class Score:
    """``nas_unipolar.score``: a trained trial's validation accuracy on the mapped crossbar under ``noise``
    (``noise.prog_sigma`` 0 = the trained network's own accuracy), over ``chips`` chips."""

    noise: NoiseModel
    chips: int
    samples: int | None

    @classmethod
    def from_config(cls, score_cfg: dict, drift_cfg: dict | None = None) -> Score:
        """The score never drifts (programming noise alone): ``drift_cfg`` is kept for callers that pass it."""
        drift = Drift.from_config(drift_cfg) if drift_cfg else None
        return cls(
            NoiseModel.programming(score_cfg["prog_sigma"], drift),
            int(score_cfg["chips"]),
            score_cfg["samples"],
        )

    @property
    def noisy(self) -> bool:
        return self.noise.prog_sigma > 0


def train_noise_for(value: Any, variant: str, bits: int | None) -> float:
    """``quant.train_noise`` of one quantized model: one number for every model, or a mapping keyed by
    ``b<bits>`` (every variant at those bits) and ``<variant>/b<bits>`` (that model; it wins); a model the
    mapping does not name trains without noise. The float baseline is never trained with noise."""
    if variant == "baseline":
        return 0.0
    if isinstance(value, dict):
        return float(value.get(f"{variant}/b{bits}", value.get(f"b{bits}", 0.0)))
    return float(value or 0.0)


def quant_for(quant_cfg: dict, variant: str, bits: int | None) -> dict:
    """The ``quant`` section as one model sees it (``train_noise`` resolved to its number), so that a rule's
    params change only when that model's settings do."""
    return {**quant_cfg, "train_noise": train_noise_for(quant_cfg["train_noise"], variant, bits)}


def adc_tile_rows(quant_cfg: dict, map_cfg: dict | None) -> int:
    """The row tile of the ADC in training: ``quant.adc_tile_rows`` when set on purpose (0 = one conversion of
    the whole sum), else the tile the network is mapped onto (``map_crossbar.rows``)."""
    value = quant_cfg["adc_tile_rows"]
    if value is None and map_cfg is None:
        raise ValueError("quant.adc_tile_rows is null (= map_crossbar.rows): pass the map_crossbar section")
    return int(map_cfg["rows"] if value is None else value)


def on_gpu(setting: str, cuda_available: bool) -> bool:
    """Whether a ``train.accelerator`` (auto, cpu, gpu) or ``device`` (auto, cpu, cuda) setting runs on a CUDA GPU,
    given whether one is visible: gpu/cuda always (a cluster's nodes may have one where this process has none),
    auto when one is visible."""
    return setting in ("gpu", "cuda") or (setting == "auto" and cuda_available)


@dataclass(frozen=True)
class QuantSettings:
    """The uniform-scale quantizer of one model (:class:`nvmxbar.core.quant.UniformQuantizer`)."""

    weight_bits: int
    dac_bits: int
    adc_bits: int
    weight_fullscale: float
    act_fullscale: float
    adc_fullscale: float
    learn_scales: bool
    adc_tile_rows: int
    train_noise: NoiseModel | None  # hardware-aware training: programming noise on the weights
    input_mode: str = "multibit"  # the circuit's (Circuit.input_mode): bit_serial trains the passes
    adc_ratio: str = "free"  # the circuit's (Circuit.adc_ratio): pow2 ties the ADC full-scale to the DAC's
    per_layer: bool = False  # variant perlayer: a weight, DAC and ADC full-scale per layer (PerLayerQuantizer)

    @classmethod
    def from_config(
        cls, variant: str, bits: int | None, quant_cfg: dict, map_cfg: dict | None = None
    ) -> QuantSettings | None:
        """None for the float baseline. ``quant_cfg`` is the validated ``quant`` section (its train_noise a
        number or a per-model mapping; its adc_tile_rows resolved, or null with ``map_cfg``, the
        ``map_crossbar`` section, giving the tile)."""
        if variant == "baseline":
            return None
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
        sigma = train_noise_for(quant_cfg["train_noise"], variant, bits)
        circuit = circuit_for(quant_cfg, map_cfg)
        if variant == "perlayer":  # per-layer scales: no shared ADC-to-DAC ratio (a rescale per output)
            circuit = replace(circuit, adc_ratio="free")
        return cls(
            int(bits),
            int(quant_cfg["dac_bits"]),
            int(quant_cfg["adc_bits"]),
            float(quant_cfg["weight_fullscale"]),
            float(quant_cfg["act_fullscale"]),
            float(quant_cfg["adc_fullscale"]),
            bool(quant_cfg["learn_scales"]),
            adc_tile_rows(quant_cfg, map_cfg),
            NoiseModel.programming(sigma) if sigma else None,
            circuit.input_mode,
            circuit.adc_ratio,
            variant == "perlayer",
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
        if self.train_noise is not None:
            q["train_noise"] = self.train_noise.prog_sigma
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
    def from_config(cls, train_cfg: dict) -> Recipe:
        d = train_cfg.get("distill")  # absent when the rule strips it (no teacher: the model's hash is unchanged)
        distill = Distill(float(d["alpha"]), float(d["temperature"])) if d and float(d["alpha"]) > 0 else None
        return cls(
            int(train_cfg["epochs"]),
            int(train_cfg["batch_size"]),
            float(train_cfg["lr"]),
            float(train_cfg["weight_decay"]),
            float(train_cfg["label_smoothing"]),
            train_cfg["select"],
            train_cfg.get("fit_on", "train"),
            bool(train_cfg["augment"]),
            distill,
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
class CostSettings:
    """``estimate_cost``: converter family, node, cell, and how the cell read energy is measured."""

    constants: str | None  # None = the packaged constants
    family: str
    tech_nm: int | float  # as configured (cost.json's notes print it)
    cell: str
    cell_activity: str  # measured | upper_bound
    activity_samples: int
    adc_time_share: bool

    @classmethod
    def from_config(cls, cost_cfg: dict) -> CostSettings:
        return cls(
            cost_cfg["constants"] or None,
            cost_cfg["family"],
            cost_cfg["tech_nm"],
            cost_cfg["cell"],
            cost_cfg["cell_activity"],
            int(cost_cfg["activity_samples"]),
            bool(cost_cfg["adc_time_share"]),
        )
