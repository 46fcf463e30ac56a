"""Trainer settings as dataclasses, filled from defaults, then a JSON file, then ``--set key=value``."""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError

C = TypeVar("C")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (from JSON, or a string from --set) as the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except (ValueError, TypeError, InputError):
                continue
        raise InputError(f"setting {key}={value!r} is not a {hint}")
    if isinstance(value, str) and hint is not str:
        try:
            value = json.loads(value)
        except ValueError:
            if hint is bool and value.lower() in ("true", "false", "yes", "no", "on", "off"):
                return value.lower() in ("true", "yes", "on")
            raise InputError(f"setting {key}={value!r}: not a valid {getattr(hint, '__name__', hint)}") from None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"setting {key} needs a list, got {value!r}")
        inner = args[0] if args else Any
        items = [v if inner is Any else _coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"setting {key} needs true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is Any:
        return value
    raise InputError(f"setting {key}={value!r} is not a {getattr(hint, '__name__', hint)}")


def config_from(cls: type[C], data: dict | None = None, path: str | Path | None = None, sets: list[str] | None = None) -> C:
    """An instance of the dataclass ``cls`` from ``data``, a JSON file and ``key=value`` strings (in that order)."""
    merged: dict[str, Any] = dict(data or {})
    if path is not None:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read config ({e})", path, "give a JSON object of settings") from None
        if not isinstance(loaded, dict):
            raise InputError("config must be a JSON object", path)
        merged.update(loaded)
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set needs key=value, got {item!r}")
        merged[key.strip()] = value.strip()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(merged) - set(names))
    if unknown:
        raise InputError(f"unknown settings {unknown}", path, f"known: {', '.join(names)}")
    return cls(**{k: _coerce(v, hints[k], k) for k, v in merged.items()})  # type: ignore[call-arg]


def config_dict(cfg: Any) -> dict:
    """Plain JSON-ready data (tuples as lists), for checkpoints and logs."""
    return json.loads(json.dumps(asdict(cfg)))
