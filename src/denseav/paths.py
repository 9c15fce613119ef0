"""Checks on the paths a call reads and writes, made before any work so that a bad path costs nothing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError, InputFileNotFoundError, OutputError


def check_input_file(path: str | os.PathLike[str], what: str) -> Path:
    """The path as a `Path` after checking it names an existing file (InputFileNotFoundError otherwise)."""
    p = Path(os.fspath(path))
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative paths start at {os.getcwd()})"
        raise InputFileNotFoundError(f"{what} file not found: {str(p)!r}; check the path{where}")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a directory, not a file ({what} expected); pass the path of a file inside it")
    return p


def check_output_path(
    path: str | os.PathLike[str],
    *,
    suffixes: Iterable[str] = (),
    what: str = "output",
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """The path as a `Path`, after checking that a file can be written there.

    suffixes: accepted file-name endings (case-insensitive), empty for any.
    what: how the message names the path (a CLI passes its flag, e.g. "-o").
    inputs: paths the output must not overwrite.
    Raises OutputError naming the path and what to do.
    """
    out = Path(path).expanduser()
    allowed = tuple(s.lower() for s in suffixes)
    if allowed and out.suffix.lower() not in allowed:
        raise OutputError(f"{what} {out}: the file name must end in {' or '.join(allowed)}")
    for source in inputs:
        if out.exists() and Path(source).exists() and out.resolve() == Path(source).resolve():
            raise OutputError(f"{what} {out} is also an input; choose another output path")
    check_writable_folder(out.parent if str(out.parent) else Path("."), what=f"{what} {out}")
    if out.is_dir():
        raise OutputError(f"{what} {out} is a folder; give a file name")
    return out


def check_writable_folder(folder: str | os.PathLike[str], *, what: str = "output folder", create: bool = False) -> Path:
    """The folder as a `Path`, after checking (by creating and removing a probe file) that it accepts files."""
    d = Path(folder).expanduser()
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{what}: cannot create the folder {d} ({e.strerror}); choose another place") from e
    if not d.is_dir():
        raise OutputError(f"{what}: the folder {d} does not exist; create it first or choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".denseav-probe-"):
            pass
    except OSError as e:
        raise OutputError(f"{what}: cannot write in {d} ({e.strerror}); choose a writable place") from e
    return d
