"""model.pt: a trained network with everything needed to rebuild it (architecture, quantizer settings, input
normalisation), loaded with ``weights_only=True``. A file that is not one (another file, a damaged one, a model of
another architecture) is refused with a :class:`ModelFileError` naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core import networks

MODEL_FORMAT = "nvmxbar.model/1"
#: What a model document holds besides its format tag (written by the train rule).
REQUIRED_KEYS = ("state_dict", "arch", "quant")


class ModelFileError(ValueError):
    """A model.pt that cannot be used: the message starts with the file's path and says why."""


def save_model(path: str | Path, doc: dict[str, Any]) -> None:
    """Write a model document (``state_dict``, ``arch``, ``quant``, ...) to ``path`` with its format tag."""
    torch.save({"format": MODEL_FORMAT, **doc}, path)


def _what(obj: Any) -> str:
    return type(obj).__name__ if not isinstance(obj, torch.Tensor) else f"a tensor of shape {tuple(obj.shape)}"


def _read(path: Path) -> dict:
    """torch.load, with what went wrong said in words: absent, empty, not a torch file, damaged, foreign objects."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path}: not an nvmxbar model file (the file is empty)")
    with open(path, "rb") as f:
        head = f.read(8)
    is_zip, is_pickle = head[:4] == b"PK\x03\x04", head[:1] == b"\x80"  # torch.save's format, or the legacy one
    if not (is_zip or is_pickle):
        raise ModelFileError(f"{path}: not an nvmxbar model file (not a torch file: it starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many kinds; each is said in words below)
        if "Unsupported global" in str(e):
            raise ModelFileError(
                f"{path}: not an nvmxbar model file (a torch file holding objects a model file never holds, "
                f"e.g. a training checkpoint: {_first_line(e, 'Unsupported global')})"
            ) from None
        raise ModelFileError(
            f"{path}: damaged or truncated model file ({size} bytes; torch cannot read it: {_first_line(e)})"
        ) from None


def _first_line(e: BaseException, containing: str | None = None) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()] or [type(e).__name__]
    if containing:
        lines = [s for s in lines if containing in s] or lines
    line = lines[0]
    return line if len(line) <= 200 else line[:197] + "..."


def check_document(path: str | Path, doc: Any) -> None:
    """Raise :class:`ModelFileError` unless ``doc`` (the loaded contents of ``path``) is a model document."""
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path}: not an nvmxbar model file (it holds {_what(doc)}, not a model document)")
    if doc.get("format") != MODEL_FORMAT:
        keys = ", ".join(sorted(map(str, doc))[:6]) + (", ..." if len(doc) > 6 else "")
        raise ModelFileError(
            f"{path}: not an nvmxbar model file (format {doc.get('format')!r}, expected {MODEL_FORMAT!r}; "
            f"its keys: {keys or 'none'})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise ModelFileError(f"{path}: an nvmxbar model file without {', '.join(missing)}")
    if not isinstance(doc["state_dict"], dict) or not isinstance(doc["arch"], dict):
        raise ModelFileError(f"{path}: an nvmxbar model file whose state_dict or arch is not a mapping")


def check_weights(path: str | Path, net: torch.nn.Module, state: dict) -> None:
    """Raise :class:`ModelFileError` naming the first parameters that differ when ``state`` does not fit ``net``
    (the network built from the architecture the file records): missing, unexpected, or of another shape."""
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [
        f"{k} expects {tuple(want[k].shape)} got {tuple(state[k].shape)}"
        for k in want
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(want[k].shape)
    ]
    wrong = [k for k in want if k in state and not isinstance(state[k], torch.Tensor)]
    problems = []
    if shapes:
        problems.append("; ".join(shapes[:3]) + (f" (and {len(shapes) - 3} more)" if len(shapes) > 3 else ""))
    if missing:
        problems.append(f"missing {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
    if extra:
        problems.append(f"unexpected {', '.join(extra[:4])}" + (" ..." if len(extra) > 4 else ""))
    if wrong:
        problems.append(f"not tensors: {', '.join(wrong[:4])}")
    if problems:
        raise ModelFileError(
            f"{path}: its weights do not fit the architecture it records ({_arch_words(net)}): " + "; ".join(problems)
        )


def _arch_words(net: torch.nn.Module) -> str:
    layers = getattr(net, "layers", None)
    if layers is None:
        return type(net).__name__
    return ", ".join(f"layers.{i} {type(m).__name__}" for i, m in enumerate(layers))


def load_model(path: str | Path) -> tuple[networks.Net, dict]:
    """Rebuild a network from model.pt. Returns (net in eval mode, document). Raises :class:`ModelFileError`
    (a ValueError) naming ``path`` when the file is not a model document or its weights do not fit the
    architecture it records, FileNotFoundError when it is absent."""
    path = Path(path)
    doc = _read(path)
    check_document(path, doc)
    try:
        net = networks.build(doc["arch"], doc["quant"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ModelFileError(
            f"{path}: the architecture it records cannot be built ({type(e).__name__}: {_first_line(e)})"
        ) from None
    check_weights(path, net, doc["state_dict"])
    net.load_state_dict(doc["state_dict"])
    return net.eval(), doc
