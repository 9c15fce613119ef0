"""The evaluation datasets on disk: the original's prompted-segmentation layout, retrieval pair lists, ADE labels.

Prompted segmentation (``ROOT/prompted_segmentation.csv`` + ``frames/``, ``annotations/``, ``audio/``): one row
per (image, prompted class). ``image_location`` names the image under ``frames/``; its label map is
``annotations/`` + that name with ``.jpg`` replaced by ``_seg.png``; ``speech_prompt_file`` / ``vggsound_file``
are paths of which only the last component is used (``audio/<basename>``), empty when the row is not part of that
prompt set; ``timing`` is a JSON ``[start, end]`` (seconds) of the spoken class word. Rows with class id 0 are
dropped, as the original does. Retrieval pairs: a CSV with ``set`` (``speech`` or ``sound``), ``image`` and
``audio`` (paths relative to the CSV's folder) and optionally ``pair_id``.

Every problem is an :class:`~denseav.errors.InputError` naming the file, the row and what is wrong.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, InputFileNotFoundError

__all__ = [
    "PROMPTED_CSV",
    "PROMPT_KINDS",
    "PromptedRow",
    "RetrievalPair",
    "decode_ade_labels",
    "read_pairs",
    "read_prompted",
]

PROMPTED_CSV = "prompted_segmentation.csv"
#: Prompt sets of the prompted-segmentation layout and the CSV column holding each one's audio file.
PROMPT_KINDS = {"speech": "speech_prompt_file", "sound": "vggsound_file"}
_PROMPTED_COLUMNS = ("image_location", "ade_class_id", *PROMPT_KINDS.values(), "timing")
_PAIR_COLUMNS = ("set", "image", "audio")


@dataclass(frozen=True)
class PromptedRow:
    """One usable row of ``prompted_segmentation.csv``; ``csv_row`` counts data rows from 0 (header excluded)."""

    csv_row: int
    image: Path
    label: Path
    class_id: int
    class_name: str
    audio: dict[str, Path]  # prompt kind ("speech", "sound") -> file, for the sets this row belongs to
    timing: tuple[float, float] | None  # where the spoken class word lies in the speech prompt (seconds)


@dataclass(frozen=True)
class RetrievalPair:
    csv_row: int
    set: str
    pair_id: str
    image: Path
    audio: Path


def _where(path: Path, row: int) -> str:
    # Data rows count from 0 as in the original; the file line is row + 2 (header first, 1-based lines).
    return f"{path.name} row {row} (line {row + 2})"


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputFileNotFoundError(f"{str(path)!r} does not exist; pass the dataset's CSV (or its folder)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)} in the header (found: "
                    f"{', '.join(reader.fieldnames or []) or 'none'}); see the dataset layout in the README"
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: not a readable UTF-8 CSV file ({e})") from e
    for i, row in enumerate(rows):
        if None in row or any(row.get(c) is None for c in required):
            raise InputError(f"{_where(path, i)}: wrong number of fields; check the quoting of that line")
    return rows


def _existing(path: Path, where: str, what: str) -> Path:
    if not path.is_file():
        raise InputFileNotFoundError(f"{where}: {what} {str(path)!r} does not exist")
    return path


def _timing(text: str, where: str) -> tuple[float, float]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    if not ok or not all(math.isfinite(v) for v in value):
        raise InputError(f"{where}: timing {text!r} is not a JSON list [start, end] of seconds, e.g. [1.25, 1.6]")
    start, end = float(value[0]), float(value[1])
    if start < 0 or end <= start:
        raise InputError(f"{where}: timing {text!r} needs 0 <= start < end (seconds into the speech prompt)")
    return start, end


def _prompted_row(root: Path, csv_path: Path, i: int, row: dict[str, str]) -> PromptedRow | None:
    where = _where(csv_path, i)
    try:
        class_id = int(row["ade_class_id"].strip())
    except ValueError:
        raise InputError(f"{where}: ade_class_id {row['ade_class_id']!r} is not an integer class id") from None
    if class_id == 0:
        return None  # background is never a prompted class; the original drops such rows
    name = row["image_location"].strip()
    if not name:
        raise InputError(f"{where}: image_location is empty")
    image = _existing(root / "frames" / name, where, "image")
    label = _existing(root / "annotations" / name.replace(".jpg", "_seg.png"), where, "label map")
    audio = {
        kind: _existing(root / "audio" / Path(row[column].strip()).name, where, f"{kind} prompt")
        for kind, column in PROMPT_KINDS.items()
        if row[column].strip()
    }
    timing = _timing(row["timing"].strip(), where) if "speech" in audio else None
    return PromptedRow(i, image, label, class_id, (row.get("class_name") or "").strip(), audio, timing)


def read_prompted(root: str | os.PathLike[str]) -> list[PromptedRow]:
    """The usable rows of ``ROOT/prompted_segmentation.csv`` in file order, every referenced file checked."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise InputFileNotFoundError(f"{str(base)!r} is not a folder; pass the dataset root holding {PROMPTED_CSV}")
    csv_path = base / PROMPTED_CSV
    rows = [_prompted_row(base, csv_path, i, r) for i, r in enumerate(_read_csv(csv_path, _PROMPTED_COLUMNS))]
    kept = [r for r in rows if r is not None]
    if not kept:
        raise InputError(f"{csv_path}: no rows with a non-zero ade_class_id; nothing to evaluate")
    return kept


def read_pairs(path: str | os.PathLike[str]) -> list[RetrievalPair]:
    """The pairs of a retrieval CSV in file order, paths resolved against the CSV's folder and checked."""
    csv_path = Path(path).expanduser()
    pairs = []
    for i, row in enumerate(_read_csv(csv_path, _PAIR_COLUMNS)):
        where = _where(csv_path, i)
        kind = row["set"].strip()
        if kind not in PROMPT_KINDS:
            raise InputError(f"{where}: set {kind!r} is neither 'speech' nor 'sound'")
        image = _existing(csv_path.parent / row["image"].strip(), where, "image")
        audio = _existing(csv_path.parent / row["audio"].strip(), where, "audio")
        pair_id = (row.get("pair_id") or "").strip() or f"{kind}_{i}"
        pairs.append(RetrievalPair(i, kind, pair_id, image, audio))
    if not pairs:
        raise InputError(f"{csv_path}: no pairs; nothing to evaluate")
    return pairs


def decode_ade_labels(pixels: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """ADE20K colour encoding -> class ids (int64): ``floor(R / 10) * 256 + G``, B ignored, 0 = background.

    ``pixels`` is the label image as decoded (H x W x channels, uint8). Palette and grayscale PNGs (one
    channel) and 16-bit images are refused: their values are not this encoding.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8:
        kind = "one channel (a palette or grayscale PNG)" if pixels.ndim == 2 else f"shape {pixels.shape}"
        raise InputError(
            f"label map {str(path)!r} has {kind}, dtype {pixels.dtype}; expected an 8-bit RGB PNG in the ADE20K "
            "encoding (class = floor(R / 10) * 256 + G)"
        )
    r = pixels[..., 0].astype(np.int64)
    return (r // 10) * 256 + pixels[..., 1].astype(np.int64)
