"""Shared by the integration tests: the smoke config, a small HAR network and recipe, and one training of it
(:func:`nvmxbar.stages.train.run`) on a prepared subset. Imported by module path (``integration._helpers``),
also from a subprocess that a test kills mid-training."""

from dataclasses import replace
from pathlib import Path

from nvmxbar import config
from nvmxbar.chip import Chip
from nvmxbar.settings import MapSettings, Pricing, QuantSettings, Recipe

REPO = Path(__file__).resolve().parents[2]
CFG = config.load(REPO / "config.yaml", {"profile": "smoke"})
MODEL = {**CFG["model"]["har"], "conv": [8, "M", 16, "M"], "hidden": [32]}
RECIPE = {**CFG["train"]["har"], "epochs": 2, "batch_size": 64}
EXPERIMENT = "nvmxbar-har"
CHIP = Chip.from_config(CFG["chip"])


def unipolar_settings(bits: int = 2) -> dict:
    """What the search and finalist stages take of the smoke config for a unipolar model at ``bits``: its quantizer,
    mapping (no baseline slicing) and the area objective's pricing."""
    return {
        "quant": QuantSettings.from_config("unipolar", bits, CFG["quant"], CHIP),
        "ms": MapSettings.from_config(CFG["map_crossbar"], CHIP, Pricing.from_config(CFG["estimate_cost"])).for_variant(
            "unipolar"
        ),
    }


def recipe(**changes) -> Recipe:
    """The smoke HAR recipe (unipolar: it may distill), with ``changes``."""
    return replace(Recipe.from_config(CFG["train"]["har"], "unipolar"), **changes)


def run(har_dir: Path, out: Path, variant="uniform", bits=2, experiment=None, **kw):
    """Train MODEL on ``har_dir``/har.npz into ``out``; ``recipe`` (a dict) overrides keys of RECIPE."""
    from nvmxbar.stages import train

    recipe = Recipe.from_config({**RECIPE, **kw.pop("recipe", {})})
    quant = QuantSettings.from_config(variant, bits, CFG["quant"], CHIP)
    return train.run(
        data_npz=har_dir / "har.npz",
        data_json=har_dir / "har.json",
        out_model=out / "model.pt",
        out_metrics=out / "metrics.json",
        dataset="har",
        variant=variant,
        bits=bits,
        seed=0,
        model_cfg=MODEL,
        recipe=recipe,
        quant=quant,
        chip=None if quant is None else CHIP.trained(),
        experiment=experiment,
        threads=1,
        **kw,
    )
