"""Command-line flags derived from the config dataclasses (DatasetSpec, TrainConfig, SearchConfig).

A flag is a field: its destination is the field's name, its type comes from the field's annotation and its
"(default ...)" from the field's default, so a default lives in the dataclass alone and no flag-to-field map is
kept by hand. The command line hands the API the fields that were given (`given_fields`); the API routes each
name to its dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

FIELDS = "_config_fields"  # the parser default that lists a subcommand's field destinations


@dataclass(frozen=True)
class Flag:
    """How one dataclass field appears on the command line. `help` states what the flag does; "(default ...)"
    is appended from the dataclass when the field has a default to show."""

    field: str
    help: str
    choices: tuple | None = None
    flag: str | None = None          # when not --<field-with-dashes> (e.g. --keep for keep_all)
    negate: bool = False             # a bool field defaulting to True: --no-<field> stores False
    metavar: str | None = None


def _base_type(hint):
    """int for `int | None`, tuple[str, ...] as is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _show(default) -> str:
    if isinstance(default, (tuple, list)):
        return ",".join(map(str, default))
    return str(default)


def add_fields(group, cls, flags: typing.Iterable[Flag]) -> list[str]:
    """Add `flags` (fields of dataclass `cls`) to an argparse group; returns their destinations."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    dests = []
    for spec in flags:
        field = fields[spec.field]  # a KeyError here is a typo in the flag table, caught by the parser's tests
        hint = _base_type(hints[spec.field])
        name = spec.flag or ("--no-" if spec.negate else "--") + spec.field.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = spec.help
        if default not in (None, (), "") and hint is not bool:
            help_text += f" (default {_show(default)})"
        kwargs: dict = dict(dest=spec.field, help=help_text, default=None)
        if hint is bool and field.default is None:  # on, off, or left to the program: --x / --no-x
            kwargs["action"] = argparse.BooleanOptionalAction
        elif hint is bool:
            kwargs["action"] = "store_false" if spec.negate else "store_true"
        elif typing.get_origin(hint) is tuple:
            kwargs.update(type=_comma_list, metavar=spec.metavar or "A,B,...")
        else:
            kwargs.update(type=hint if hint in (int, float, Path) else str, choices=spec.choices,
                          metavar=spec.metavar)
        group.add_argument(name, **kwargs)
        dests.append(spec.field)
    return dests


def register(parser: argparse.ArgumentParser, dests: list[str]) -> None:
    """Record a subcommand's field destinations (for given_fields)."""
    parser.set_defaults(**{FIELDS: [*(parser.get_default(FIELDS) or []), *dests]})


def given_fields(args: argparse.Namespace, *, exclude: typing.Collection[str] = ()) -> dict:
    """The fields whose flags were given, by field name (the API's keyword arguments)."""
    return {d: getattr(args, d) for d in getattr(args, FIELDS, []) if d not in exclude and getattr(args, d) is not None}
