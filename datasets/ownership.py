"""Which folders visionsweep owns: one marker file, checked by content, before any command writes or deletes.

A folder is visionsweep's when it holds MARKER (a name no other tool writes) whose JSON has the field
`"visionsweep": <kind>`. Folders written before this marker existed are recognised by their old files, also by
content: a run's config.json with "visionsweep_run": true, a sweep's sweep.json with "visionsweep_sweep": true,
a demo's .visionsweep-demo.json. A file merely named config.json (a Hugging Face model has one) is not a mark.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from visionsweep.datasets.errors import DataError

MARKER = ".visionsweep.json"
KINDS = ("run", "sweep", "demo")
# Older visionsweep versions: (file, field that must be true, or None: any JSON object) -> kind.
LEGACY = {"run": ("config.json", "visionsweep_run"), "sweep": ("sweep.json", "visionsweep_sweep"),
          "demo": (".visionsweep-demo.json", "version")}


def marker_fields(kind: str, **extra) -> dict:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"visionsweep": kind, **extra}


def _json(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def kind_from(read: Callable[[str], str | None]) -> str | None:
    """The kind of visionsweep folder whose files `read(name)` returns (None for an absent file), else None."""
    found = _json(read(MARKER))
    if found is not None and found.get("visionsweep") in KINDS:
        return found["visionsweep"]
    for kind, (name, field) in LEGACY.items():
        old = _json(read(name))
        if old is not None and old.get(field) not in (None, False):
            return kind
    return None


def _read_local(folder: Path) -> Callable[[str], str | None]:
    def read(name: str) -> str | None:
        try:
            p = folder / name
            return p.read_text() if p.is_file() and p.stat().st_size < 10_000_000 else None
        except (OSError, UnicodeDecodeError):
            return None
    return read


def folder_kind(folder: Path) -> str | None:
    """'run' / 'sweep' / 'demo' for a local visionsweep folder, None for anything else (or nothing)."""
    folder = Path(folder)
    return kind_from(_read_local(folder)) if folder.is_dir() else None


def marker(folder: Path) -> dict | None:
    """The marker's fields of a local folder (None when it has no current marker)."""
    return _json(_read_local(Path(folder))(MARKER))


def write_marker(folder: Path, kind: str, **extra) -> None:
    """Written aside and renamed: a folder is marked whole or not at all."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MARKER}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(marker_fields(kind, **extra), indent=1, default=str))
    os.replace(tmp, folder / MARKER)


def is_empty_dir(folder: Path) -> bool:
    try:
        return folder.is_dir() and not any(folder.iterdir())
    except OSError:
        return False


def check_outside(path: Path | str, data_root: Path | str | None, flag: str) -> None:
    """Nothing is ever written inside DATA: an output path at or under it is refused before anything runs."""
    if data_root is None or "://" in str(path):
        return
    p = Path(path).expanduser().resolve()
    root = Path(data_root).expanduser().resolve()
    if p == root or root in p.parents:
        raise DataError(f"{flag} {path} is inside the DATA folder {root}; visionsweep never writes into DATA: "
                        f"choose a path outside it (nothing was written)")
