"""One source of defaults: the config schema. The shipped config.yaml is what validating an empty config gives, in
both profiles, so a unit test built on ``config.validate({})`` tests the configuration that ships; no module under
src/ reads a config section with a fallback of its own."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from nvmxbar import config, settings
from nvmxbar.tracking import flatten

SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())
#: The one command the closing note shows: a config section read with a fallback (`cfg.get(...)`, `CFG[..].get(`).
GREP = re.compile(r"(cfg|config|CFG)(\[[^]]+\])*\.get\(")


@pytest.mark.parametrize("profile", ["full", "smoke"])
def test_the_shipped_config_is_the_schemas_defaults(profile):
    shipped = flatten(config.validate({**SHIPPED, "profile": profile}))
    defaults = flatten(config.validate({"profile": profile}))
    differ = {
        k: (shipped.get(k), defaults.get(k)) for k in set(shipped) | set(defaults) if shipped.get(k) != defaults.get(k)
    }
    assert not differ, f"config.yaml and the schema's defaults differ (config.yaml, schema): {differ}"


def test_the_shipped_config_spells_out_every_section():
    """A reader of config.yaml sees every section the schema defines (the values are the schema's, tested above)."""
    schema = yaml.safe_load(config.SCHEMA.read_text())
    assert set(schema["properties"]) == set(SHIPPED)


def test_a_partial_section_keeps_the_defaults_other_keys():
    cfg = config.validate({"model": {"har": {"conv": [16]}}, "chip": {"tile": {"rows": 64}}})
    assert cfg["model"]["har"]["hidden"] == SHIPPED["model"]["har"]["hidden"]
    assert cfg["chip"]["tile"] == {"rows": 64, "cols": SHIPPED["chip"]["tile"]["cols"]}


def test_no_module_reads_a_config_section_with_a_fallback_of_its_own():
    hits = []
    for path in sorted((REPO / "src" / "nvmxbar").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if GREP.search(line) and "model_cfg" not in line:  # model_cfg: an architecture, also from arch.json
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "config read with a fallback outside the schema:\n" + "\n".join(hits)


def test_settings_read_no_key_the_schema_lacks():
    """Every string key a settings builder reads from a section is a schema property (a typo would be a default)."""
    schema = yaml.safe_load(config.SCHEMA.read_text())
    names = set()

    def walk(node):
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    tree = ast.parse((REPO / "src" / "nvmxbar" / "settings.py").read_text())
    read = {
        n.slice.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Subscript)
        and isinstance(n.slice, ast.Constant)
        and isinstance(n.slice.value, str)
        and isinstance(n.value, ast.Name)
        and n.value.id.endswith("cfg")
    }
    assert read and read <= names, sorted(read - names)


def test_no_module_is_over_400_lines():
    sizes = {p: len(p.read_text().splitlines()) for p in (REPO / "src" / "nvmxbar").rglob("*.py")}
    big = {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > 400}
    assert not big, big


def test_the_unit_tier_starts_no_snakemake():
    """Real Snakemake runs belong to the workflow tier: no unit test starts one (`-m snakemake`, the CLI)."""
    starts = re.compile(r"""["']-m["'],\s*["']snakemake["']|\[\s*["']snakemake["']|SMK\b""")
    units = [p for p in (REPO / "tests" / "unit").glob("test_*.py") if p.name != Path(__file__).name]
    hits = [p.name for p in units if starts.search(p.read_text())]
    assert not hits, hits


def test_a_config_key_reaches_its_settings_in_one_hop():
    """Key -> settings dataclass -> code: every key of the sections the physics reads (chip, quant, map_crossbar,
    evaluate_noise, estimate_cost, train.<dataset>, nas_unipolar.score) is read by a settings builder, by name (the
    first hop; the stages hand the settings to the core, the second). Counts printed for docs/DESIGN.md."""
    import dataclasses

    from nvmxbar import chip as chip_module

    cfg = config.validate({})
    builders = "".join((REPO / "src" / "nvmxbar" / f).read_text() for f in ("settings.py", "noise_settings.py"))
    chip_fields = {
        f.name
        for c in (chip_module.Chip, chip_module.Tile, chip_module.Device, chip_module.Wires)
        for f in dataclasses.fields(c)
    }
    sections = {
        "chip": cfg["chip"],
        "quant": cfg["quant"],
        "map_crossbar": cfg["map_crossbar"],
        "evaluate_noise": cfg["evaluate_noise"],
        "estimate_cost": cfg["estimate_cost"],
        "train.har": cfg["train"]["har"],
        "nas_unipolar.score": cfg["nas_unipolar"]["score"],
    }
    keys, missed = 0, []
    for name, section in sections.items():
        for key in flatten(section):
            parts = key.split(".")
            leaf = (
                parts[0] if parts[0] in ("train_noise", "train_wires") else parts[-1]
            )  # a per-model mapping: one value
            keys += 1
            if name == "chip":
                read = leaf in chip_fields  # Chip.from_dict: every field, strictly
            elif parts[0] == "sweep":
                read = leaf in settings.NOISE_KEYS and "(sweep[k] for k in NOISE_KEYS)" in builders
            elif parts[0] == "realistic":  # one setting named by the sweep's keys (noise_settings.one_setting)
                read = leaf in settings.NOISE_KEYS and 'one_setting(noise_cfg["realistic"]' in builders
            else:
                read = f'["{leaf}"]' in builders
            if not read:
                missed.append(f"{name}.{key}")
    print(f"{keys - len(missed)} of {keys} keys read by a settings builder")
    assert not missed, missed
