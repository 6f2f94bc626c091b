"""Values from YAML, flags or JSON coerced to a config dataclass's field types, naming the key on every error.

PyYAML follows YAML 1.1: `1e-4` (no dot) is the string "1e-4", and `epochs: 5.5` is a float. Without this, such
values passed the configs' checks and failed later, inside Optuna or a trial, with messages naming no key."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

from visionsweep.datasets.errors import DataError


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def coerce(value, hint, key: str, source: str):
    """`value` as type `hint` (int, float, str, bool, Path, X | None, tuple[X, ...], tuple[X, Y], dict), else a
    DataError that names `key` and `source`."""
    def bad(want: str):
        return DataError(f"{source}: {key} must be {want}, got {value!r}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return coerce(value, a, key, source)
            except DataError as err:
                errors.append(err)
        raise errors[0]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if hint is int:
        if isinstance(value, bool):
            raise bad("a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad("a whole number")
    if hint is float:
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())  # "1e-4": YAML 1.1 reads exponents without a dot as strings
            except ValueError:
                pass
        raise bad("a number")
    if hint is str:
        if isinstance(value, (str, Path)) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return str(value)  # a class name or column written as a YAML number (positive_class: 1)
        raise bad("a string")
    if hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise bad("a path")
    if origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(items))
        if len(items) != len(args):
            raise bad(f"a list of {len(args)}")
        return tuple(coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(items, args)))
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise bad("a mapping (key: value)")
    return value


def coerce_fields(cls, values: dict, source: str) -> dict:
    """`values` with every known field of dataclass `cls` coerced to its declared type (unknown keys pass through:
    the callers reject them by name)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: coerce(value, hints[key], key, source) if key in names else value for key, value in values.items()}
