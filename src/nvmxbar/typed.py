"""Typed settings as plain data and back: a rule's ``params`` hold the settings its stage consumes as builtins
(:func:`params`: Snakemake's params rerun trigger compares them), and the job rebuilds the very same frozen
dataclasses from them (:func:`from_params`), strictly."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .chip import Chip


def params(obj: Any) -> dict[str, Any]:
    """A settings object's fields as plain data: what a rule's ``params`` hold (Snakemake's params rerun trigger
    sees exactly the settings the stage consumes) and what :func:`from_params` reads back in the job."""
    return dataclasses.asdict(obj)


def from_params(cls: type, d: Any, where: str | None = None) -> Any:
    """Rebuild a settings dataclass from :func:`params`' form, strictly: a missing or unknown field is a
    ValueError naming it (nested settings, optional ones and tuples of them included)."""
    where = where or cls.__name__
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__}'s fields, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    missing, unknown = sorted(names - set(d)), sorted(set(d) - names)
    if missing or unknown:
        raise ValueError(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _typed(hints[k], v, f"{where}.{k}") for k, v in d.items()})


def _typed(hint: Any, v: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        nested = [a for a in args if dataclasses.is_dataclass(a) or typing.get_origin(a) is tuple]
        return _typed(nested[0], v, where) if nested else v
    if origin is tuple:
        return tuple(_typed(args[0], x, f"{where}[{i}]") for i, x in enumerate(v))
    if dataclasses.is_dataclass(hint):
        return hint.from_dict(v, where) if hint is Chip else from_params(hint, v, where)
    return v
