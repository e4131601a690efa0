"""The non-idealities a chip population is evaluated under (``evaluate_noise``, ``nas_unipolar.score``): typed
settings built from the validated config, as :mod:`nvmxbar.settings` (which re-exports them) builds the others."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

#: The non-idealities of a chip, in the order of noise.csv's columns.
_CHIP_NOISE = "prog_sigma read_sigma stuck_min stuck_max on_off_ratio drift_t_s wire_scale adc_error_scale"
NOISE_KEYS = tuple(_CHIP_NOISE.split())
#: noise.csv's columns: the non-idealities, the kind of setting, then the accuracy across the chips.
NOISE_CSV_COLUMNS = (*NOISE_KEYS, "setting", "accuracy_mean", "accuracy_std", "accuracy_p5", "accuracy_p50",
                     "accuracy_p95", "instances")  # fmt: skip
#: How far stuck_min + stuck_max may exceed 1 by float rounding (0.7 + 0.3 and the like).
STUCK_TOLERANCE = 1e-9
#: ``evaluate_noise.drift.compensation``: how a chip undoes drift (:class:`Drift`).
DRIFT_COMPENSATIONS = ("none", "global", "column", "oracle")


@dataclass(frozen=True)
class Drift:
    """How a chip undoes drift (the drift itself, t0 and nu(G), is the device's: nvmxbar.devices.DriftModel).
    ``compensation`` (one of DRIFT_COMPENSATIONS): ``global`` / ``column`` rescale by what an all-ones reference read
    gives at t0 and at t (one gain per chip and layer / per physical column, estimated on the chip's own devices),
    ``oracle`` by each device's exact mean drift (t/t0)^nu_mean(G), ``none`` not at all
    (nvmxbar.core.noise.Perturbation)."""

    compensation: str

    def __post_init__(self) -> None:
        if self.compensation not in DRIFT_COMPENSATIONS:  # the old booleans too (true: oracle, false: none)
            raise ValueError(
                f"drift compensation {self.compensation!r}: one of {', '.join(DRIFT_COMPENSATIONS)} "
                f"(the old true was the oracle mean gain; global is the chip's own reference read)"
            )

    @classmethod
    def from_config(cls, drift_cfg: dict) -> Drift:
        return cls(drift_cfg["compensation"])


@dataclass(frozen=True)
class NoiseModel:
    """The non-idealities of one population of chips. 0 (None for ``on_off_ratio``: the mapped device's)
    switches one off. ``prog_sigma`` and ``read_sigma`` are scales of the chip's device noise (the preset's,
    nvmxbar.devices.DeviceNoise): 1 = the measured device, programming noise sigma(G) at each cell's target and
    read noise q(G) x G per read; ``stuck_min``/``stuck_max`` fractions of the devices; ``drift_t_s`` the time
    after programming at which the device's drift model is read (at least its t0); ``wire_scale`` a scale of the
    chip's wires (IR drop), ``adc_error_scale`` of the converter errors (nvmxbar/resources/converter_errors.yaml)."""

    prog_sigma: float
    read_sigma: float
    stuck_min: float
    stuck_max: float
    on_off_ratio: float | None
    drift_t_s: float
    drift: Drift | None  # the drift compensation; None where nothing drifts (drift_t_s must then be 0)
    wire_scale: float = 0.0  # x the chip's wires (IR drop); 0 = ideal wires
    adc_error_scale: float = 0.0  # x the converter errors; 0 = ideal converters
    kind: str = "sweep"  # noise.csv's ``setting``: the sweep's product, an ``extra`` setting, or the ``realistic`` chip

    def __post_init__(self) -> None:
        if self.drift_t_s and self.drift is None:
            raise ValueError(f"drift_t_s {self.drift_t_s}: a drift time needs a drift compensation setting")
        for k in ("prog_sigma", "read_sigma", "drift_t_s", "wire_scale", "adc_error_scale"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} {getattr(self, k)}: must be at least 0 (0 = off)")
        stuck = (self.stuck_min or 0.0) + (self.stuck_max or 0.0)
        if stuck > 1.0 + STUCK_TOLERANCE:
            raise ValueError(
                f"stuck_min {self.stuck_min} + stuck_max {self.stuck_max} = {stuck:g} > 1: both are fractions of "
                f"the same devices"
            )

    @classmethod
    def programming(cls, sigma: float, drift: Drift | None = None) -> NoiseModel:
        """Programming noise alone, ``sigma`` x the device's sigma(G) (the search's score)."""
        return cls(float(sigma), 0.0, 0.0, 0.0, None, 0.0, drift)

    @property
    def ideal(self) -> bool:
        return not any(getattr(self, k) for k in NOISE_KEYS)

    @property
    def drawn(self) -> bool:
        """Whether its chips differ from one another: something is drawn per chip (device noise, stuck devices,
        drift, converters). Wires and the ON/OFF ratio alone make every chip the same one."""
        return any(getattr(self, k) for k in ("prog_sigma", "read_sigma", "stuck_min", "stuck_max", "drift_t_s",
                                              "adc_error_scale"))  # fmt: skip

    def setting(self) -> dict[str, Any]:
        """The non-idealities as noise.csv records them, and which kind of setting it is."""
        return {**{k: getattr(self, k) for k in NOISE_KEYS}, "setting": self.kind}

    def on_device(self, drifts: bool, reads: bool) -> NoiseModel:
        """The realistic chip on a device: its drift time and read noise where the device has them, 0 where it has
        none (noise.csv records what was simulated); any other setting as it is."""
        if self.kind != "realistic":
            return self
        return replace(self, drift_t_s=self.drift_t_s if drifts else 0.0, read_sigma=self.read_sigma if reads else 0.0)


def one_setting(values: dict[str, Any], drift: Drift, kind: str) -> NoiseModel:
    """A setting named by some non-idealities (``evaluate_noise.extra``' items, ``realistic``), the rest off."""
    unknown = sorted(set(values) - set(NOISE_KEYS))
    if unknown:
        raise ValueError(f"evaluate_noise.{kind}: unknown non-idealities {unknown}; known: {list(NOISE_KEYS)}")
    off = {k: None if k == "on_off_ratio" else 0.0 for k in NOISE_KEYS}
    return NoiseModel(**{**off, **values}, drift=drift, kind=kind)


def noise_grid(sweep: dict[str, list], drift: Drift) -> list[NoiseModel]:
    """``evaluate_noise.sweep``: the Cartesian product of its lists, in NOISE_KEYS order."""
    return [
        NoiseModel(**dict(zip(NOISE_KEYS, combo, strict=True)), drift=drift)
        for combo in itertools.product(*(sweep[k] for k in NOISE_KEYS))
    ]


@dataclass(frozen=True)
class ConverterParts:
    """Multipliers of each cited converter error (``evaluate_noise.converter_parts``, on top of ``adc_error_scale``;
    the names of nvmxbar.core.converter_params.ConverterErrors): 1 = as cited, 0 = that error off. The SAR's unit
    capacitor mismatch (its INL and DNL), the comparator offset, the finite op-amp gain's error, the per-ADC
    reference gain, the kT/C noise per conversion, the row DAC's unit-element mismatch."""

    cap_sigma: float = 1.0
    comparator_sigma: float = 1.0
    gain_mean: float = 1.0
    gain_sigma: float = 1.0
    thermal_sigma: float = 1.0
    dac_sigma: float = 1.0

    @classmethod
    def from_config(cls, parts_cfg: dict) -> ConverterParts:
        return cls(
            cap_sigma=parts_cfg["cap_sigma"],
            comparator_sigma=parts_cfg["comparator_sigma"],
            gain_mean=parts_cfg["gain_mean"],
            gain_sigma=parts_cfg["gain_sigma"],
            thermal_sigma=parts_cfg["thermal_sigma"],
            dac_sigma=parts_cfg["dac_sigma"],
        )

    def __post_init__(self) -> None:
        for k, v in vars(self).items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v == float("inf"):
                raise ValueError(f"evaluate_noise.converter_parts.{k} = {v!r}: a finite multiplier >= 0 (0 = off)")


@dataclass(frozen=True)
class MonteCarlo:
    """``evaluate_noise``: chips per setting and how they are batched; ``models`` is the sweep, then the extra
    settings and the realistic chip, which ``extra_instances`` chips each (None: ``instances``)."""

    instances: int
    samples: int | None
    batch_size: int
    instance_chunk: int
    models: tuple[NoiseModel, ...]
    extra_instances: int | None = None
    converter_parts: ConverterParts = ConverterParts()

    def chips(self, model: NoiseModel) -> int:
        """Chips simulated for ``model``: ``instances`` in the sweep, ``extra_instances`` beside it."""
        return self.instances if model.kind == "sweep" or self.extra_instances is None else self.extra_instances

    @classmethod
    def from_config(cls, noise_cfg: dict) -> MonteCarlo:
        """The sweep's product, then ``extra``'s settings one by one, then the ``realistic`` chip (null: none)."""
        drift = Drift.from_config(noise_cfg["drift"])
        models = noise_grid(noise_cfg["sweep"], drift) + [one_setting(e, drift, "extra") for e in noise_cfg["extra"]]
        if noise_cfg["realistic"] is not None:
            models.append(one_setting(noise_cfg["realistic"], drift, "realistic"))
        return cls(
            int(noise_cfg["instances"]),
            noise_cfg["samples"],
            int(noise_cfg["batch_size"]),
            int(noise_cfg["instance_chunk"]),
            tuple(models),
            None if noise_cfg["extra_instances"] is None else int(noise_cfg["extra_instances"]),
            ConverterParts.from_config(noise_cfg["converter_parts"]),
        )


@dataclass(frozen=True)
class Score:
    """``nas_unipolar.score``: a trained trial's validation accuracy on the mapped crossbar under ``noise``
    (``noise.prog_sigma`` x the device's sigma(G); 0 = the trained network's own accuracy), over ``chips`` chips."""

    noise: NoiseModel
    chips: int
    samples: int | None

    @classmethod
    def from_config(cls, score_cfg: dict) -> Score:
        """The score never drifts: programming noise alone."""
        return cls(
            NoiseModel.programming(score_cfg["prog_sigma"]),
            int(score_cfg["chips"]),
            score_cfg["samples"],
        )

    @property
    def noisy(self) -> bool:
        return self.noise.prog_sigma > 0
