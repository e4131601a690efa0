"""Reading one report input: a missing or unreadable file stops with a :class:`ReportInputError` naming it and the
rule that writes it (:func:`need`, :func:`read_json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


class ReportInputError(FileNotFoundError):
    """An input of the report is missing or unreadable; the message names the file and the rule that writes it."""


def producer(path: Path) -> str:
    """The rule that writes a report input (by its file name)."""
    name = path.name
    if path.parent.name == "nas":
        return "nas_unipolar"
    return {
        "metrics.json": "train",
        "mapping.json": "map_crossbar",
        "crossbar.npz": "map_crossbar",
        "noise.csv": "evaluate_noise",
        "noise_summary.json": "evaluate_noise",
        "cost.json": "estimate_cost",
    }.get(name, "an earlier rule")


def need(path: Path) -> Path:
    """``path`` when it is a file, else a :class:`ReportInputError` naming it and the rule that writes it."""
    if not path.is_file():
        raise ReportInputError(
            f"report input missing: {path} (written by rule {producer(path)}; "
            f"run that rule first or remove the variant/bits from the report)"
        )
    return path


def read_json(path: Path, required: Iterable[str] = ()) -> dict:
    """A report input's JSON document; an error names the file when it is missing, not JSON or lacks a key."""
    try:
        doc = json.loads(need(path).read_text())
    except json.JSONDecodeError as err:
        raise ReportInputError(f"report input unreadable: {path}: not valid JSON ({err})") from None
    missing = [k for k in required if k not in doc]
    if missing:
        raise ReportInputError(f"report input {path}: missing key(s) {missing}")
    return doc
