"""Small files in a sweep's storage, local or remote (s3://, gs://), through pyarrow's filesystems."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from visionsweep.datasets import DataError


def is_remote(uri: str) -> bool:
    return "://" in uri


def absolute(uri: str) -> str:
    return uri if is_remote(uri) else str(Path(uri).expanduser().resolve())


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def _fs(uri: str):
    return pafs.FileSystem.from_uri(uri)


def exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def listdir(uri: str) -> list[str]:
    fs, path = _fs(uri)
    return [i.base_name for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))]


def read_text(uri: str) -> str:
    fs, path = _fs(uri)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_text(uri: str, text: str) -> None:
    """Written aside and renamed on local disks (a reader never sees half a file); object stores put atomically."""
    if not is_remote(uri):
        p = Path(uri)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, p)
        return
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def check_writable(uri: str) -> None:
    """Creates the folder and a probe file (removed again): permission bits alone mislead, e.g. for root."""
    if is_remote(uri):
        return  # credentials come from the environment / instance role; Ray reports failures itself
    p = Path(uri)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".visionsweep-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise DataError(f"--storage {uri} is not writable ({err.strerror}); choose a folder you can write to") from None


def disk_usage(uri: str) -> str:
    if is_remote(uri):
        return "(remote storage)"
    total = sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file())
    return f"{total / 1e6:.1f} MB"


def folder_kind(uri: str) -> str | None:
    """'run' / 'sweep' / 'demo' for a visionsweep folder, local or remote (marker checked by content), else None."""
    from visionsweep.datasets import ownership

    def read(name: str) -> str | None:
        try:
            return read_text(join(uri, name)) if exists(join(uri, name)) else None
        except (OSError, UnicodeDecodeError):
            return None

    return ownership.kind_from(read)
