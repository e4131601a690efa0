"""The paper the report compares against: its reference, its published figures (the only numbers in the report's
outputs that are not read from results/) and the names and descriptions of datasets, variants and techniques."""

from __future__ import annotations

import math
from typing import Any

PAPER_REF = (
    'F. Garcia-Redondo, S. Das, G. Rosendale, "Training DNN IoT Applications for Deployment On Analog '
    'NVM Crossbars", arXiv 1910.13850 (IJCNN 2020)'
)
#: The only numbers in the outputs that are not read from results/: the paper's published figures (abstract).
PAPER_FIGURES: dict[str, dict[str, Any]] = {
    "har_float_accuracy": {
        "value": 95.0,
        "unit": "%",
        "text": "HAR, floating-point test accuracy",
        "source": "arXiv 1910.13850 v3 abstract",
    },
    "har_unipolar_b2_accuracy": {
        "value": 92.91,
        "unit": "%",
        "text": "HAR, 2-bit devices, only-positive weights: test accuracy (up to)",
        "source": "arXiv 1910.13850 v3 abstract",
    },
    "area_combined": {
        "value": 80.0,
        "unit": "%",
        "text": "area improvement, uniform scaling + unipolar (up to)",
        "source": "arXiv 1910.13850 v3 abstract",
    },
    "energy_combined": {
        "value": 45.0,
        "unit": "%",
        "text": "energy reduction, uniform scaling + unipolar (up to)",
        "source": "arXiv 1910.13850 v3 abstract",
    },
    "area_unipolar_v1": {
        "value": 67.0,
        "unit": "%",
        "text": "area improvement, unipolar weights alone",
        "source": "arXiv 1910.13850 v1 abstract",
    },
    "power_v1": {"value": 40.0, "unit": "%", "text": "power reduction", "source": "arXiv 1910.13850 v1 abstract"},
}
#: Variants whose cost rows carry the paper's combined (uniform scaling + unipolar) cost figures. The project's
#: unipolar variant is trained with the uniform-scale quantizer plus the sign constraint, i.e. both techniques.
COMBINED_VARIANTS = ("unipolar",)

DATASET_NAMES = {"har": "UCI HAR", "cifar10": "CIFAR-10"}
VARIANT_DESCRIPTIONS = {
    "baseline": "float training; deployed with per-layer weight scales, bit-sliced onto the devices (differential "
    "pairs or offset-encoded, one device per slice: the cheapest encoding and bits within the tolerance of the float "
    "network, fitted on the validation split) and a per-layer digital rescale",
    "perlayer": "quantization-aware training at device precision with a weight, DAC and ADC full-scale per layer "
    "(one slice on differential pairs, a rescale per output)",
    "uniform": "quantization-aware training with one weight, DAC and ADC full-scale shared by every layer",
    "signed": "uniform scaling on the architecture the unipolar search found, with signed weights (differential pairs)",
    "unipolar": "uniform scaling plus sign-constrained (only-positive / only-negative) weight matrices",
}
#: what each variant's cost rows stand for; the paper's cost figures are for the combined technique
TECHNIQUES = {
    "baseline": "reference (per-layer scales, bit-sliced: the cheapest fitted encoding)",
    "perlayer": "ablation: device-precision training, per-layer scales",
    "uniform": "uniform scaling",
    "signed": "ablation: uniform scaling on the searched network, signed weights",
    "unipolar": "combined: uniform scaling + unipolar",
}


def paper_accuracy(dataset: str, variant: str, bits: int) -> tuple[float, str]:
    """The paper's accuracy figure for one deployment and a note on what it is; (nan, '') where it has none."""
    if dataset == "har" and variant == "baseline":
        p = PAPER_FIGURES["har_float_accuracy"]
        return p["value"], f"float ({p['source']})"
    if dataset == "har" and variant == "unipolar" and bits == 2:
        p = PAPER_FIGURES["har_unipolar_b2_accuracy"]
        return p["value"], f"2-bit, only-positive weights, up to ({p['source']})"
    return math.nan, ""
