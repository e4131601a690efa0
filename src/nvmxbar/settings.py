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
from dataclasses import dataclass
from typing import Any

#: The non-idealities of a chip, in the order of noise.csv's columns.
NOISE_KEYS = ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "on_off_ratio", "drift_t_s")


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


@dataclass(frozen=True)
class MapSettings:
    """``map_crossbar``: tiles, device, bias placement, converters and the baseline's bit slicing."""

    tile: Tile
    device: Device
    bias: str  # row (a driven crossbar row) | digital (added after the ADC)
    adc_mux: int
    input_mode: str  # bit_serial | multibit (the cost model's input drive)
    baseline_weight_bits: int
    baseline_dac_bits: int  # resolved: map_crossbar.baseline_dac_bits, else quant.dac_bits
    baseline_adc_bits: int
    calibration_samples: int

    @classmethod
    def from_config(cls, map_cfg: dict, quant_cfg: dict) -> MapSettings:
        return cls(
            tile=Tile(int(map_cfg["rows"]), int(map_cfg["cols"])),
            device=Device(float(map_cfg["g_max_us"]), float(map_cfg["on_off_ratio"])),
            bias=map_cfg["bias"],
            adc_mux=int(map_cfg["adc_mux"]),
            input_mode=map_cfg["input_mode"],
            baseline_weight_bits=int(map_cfg["baseline_weight_bits"]),
            baseline_dac_bits=int(map_cfg["baseline_dac_bits"] or quant_cfg["dac_bits"]),
            baseline_adc_bits=int(map_cfg["baseline_adc_bits"] or quant_cfg["adc_bits"]),
            calibration_samples=int(map_cfg["calibration_samples"]),
        )


@dataclass(frozen=True)
class Drift:
    """Conductance drift G(t) = G(t0) (t/t0)^-nu, nu ~ N(nu, nu_std) per device; ``compensation`` undoes the
    mean drift with one global gain."""

    t0_s: float
    nu: float
    nu_std: float
    compensation: bool

    @classmethod
    def from_config(cls, drift_cfg: dict) -> Drift:
        return cls(
            float(drift_cfg["t0_s"]),
            float(drift_cfg["nu"]),
            float(drift_cfg["nu_std"]),
            bool(drift_cfg["compensation"]),
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
    def from_config(cls, score_cfg: dict, drift_cfg: dict) -> Score:
        return cls(
            NoiseModel.programming(score_cfg["prog_sigma"], Drift.from_config(drift_cfg)),
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

    @classmethod
    def from_config(
        cls, variant: str, bits: int | None, quant_cfg: dict, map_cfg: dict | None = None
    ) -> QuantSettings | None:
        """None for the float baseline. ``quant_cfg`` is the validated ``quant`` section (its train_noise a
        number or a per-model mapping; its adc_tile_rows resolved, or null with ``map_cfg``, the
        ``map_crossbar`` section, giving the tile)."""
        if variant == "baseline":
            return None
        if variant not in ("uniform", "unipolar"):
            raise ValueError(f"unknown variant '{variant}' (known: baseline, uniform, unipolar)")
        sigma = train_noise_for(quant_cfg["train_noise"], variant, bits)
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
