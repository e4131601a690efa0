"""model.pt: a trained network with everything needed to rebuild it (architecture, quantizer settings, input
normalisation), loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core import networks

MODEL_FORMAT = "nvmxbar.model/1"


def save_model(path: str | Path, doc: dict[str, Any]) -> None:
    """Write a model document (``state_dict``, ``arch``, ``quant``, ...) to ``path`` with its format tag."""
    torch.save({"format": MODEL_FORMAT, **doc}, path)


def load_model(path: str | Path) -> tuple[networks.Net, dict]:
    """Rebuild a network from model.pt. Returns (net in eval mode, document)."""
    doc = torch.load(path, map_location="cpu", weights_only=True)
    if doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an nvmxbar model file (format {doc.get('format')!r}, expected {MODEL_FORMAT})")
    net = networks.build(doc["arch"], doc["quant"])
    net.load_state_dict(doc["state_dict"])
    return net.eval(), doc
