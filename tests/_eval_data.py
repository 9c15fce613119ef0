"""Tiny evaluation datasets written into a test's tmp folder (the original's layouts; no shared data needed)."""

from __future__ import annotations

import csv
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = (80, 64)  # (width, height): not square, so the resize + centre crop is exercised


def write_wav(path: Path, seconds: float, rate: int = 16_000, seed: int = 0) -> Path:
    """A mono 16-bit WAV of a tone plus a little noise."""
    n = max(1, round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.05 * rng.standard_normal(n)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def write_image(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def ade_colour(class_id: int) -> tuple[int, int]:
    """(R, G) encoding ``class_id`` as floor(R / 10) * 256 + G, with R deliberately not a multiple of ten."""
    return (class_id // 256) * 10 + 3, class_id % 256


def write_label(path: Path, boxes: dict[int, tuple[int, int, int, int]]) -> Path:
    """An RGB ADE label map with each class id filling its (left, top, right, bottom) box; 0 elsewhere."""
    label = np.zeros((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    label[..., 2] = 77  # B is ignored by the encoding
    for class_id, (left, top, right, bottom) in boxes.items():
        label[top:bottom, left:right, :2] = ade_colour(class_id)
    Image.fromarray(label, mode="RGB").save(path)
    return path


@dataclass
class Row:
    image: str
    class_id: int
    boxes: dict[int, tuple[int, int, int, int]]
    speech_seconds: float | None = 1.0
    sound_seconds: float | None = 1.0
    timing: tuple[float, float] | None = (0.3, 0.6)
    extra: dict[str, str] = field(default_factory=dict)


def make_prompted(root: Path, rows: list[Row]) -> Path:
    """Write ``root`` in the prompted-segmentation layout; returns ``root``."""
    for sub in ("frames", "annotations", "audio"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    records = []
    for i, row in enumerate(rows):
        stem = row.image.removesuffix(".jpg")
        if not (root / "frames" / row.image).exists():
            write_image(root / "frames" / row.image, seed=i)
            write_label(root / "annotations" / f"{stem}_seg.png", row.boxes)
        speech = sound = ""
        if row.speech_seconds is not None:
            speech = f"prompts/speech/speech_{i}.wav"
            write_wav(root / "audio" / f"speech_{i}.wav", row.speech_seconds, seed=i)
        if row.sound_seconds is not None:
            sound = f"prompts/sound/sound_{i}.wav"
            write_wav(root / "audio" / f"sound_{i}.wav", row.sound_seconds, seed=100 + i)
        timing = json.dumps(list(row.timing)) if row.timing and speech else ""
        records.append(
            {
                "image_location": row.image,
                "ade_class_id": str(row.class_id),
                "speech_prompt_file": speech,
                "vggsound_file": sound,
                "timing": timing,
                "class_name": f"class{row.class_id}",
                **row.extra,
            }
        )
    write_csv(root / "prompted_segmentation.csv", records)
    return root


def write_csv(path: Path, records: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def make_pairs(root: Path, counts: dict[str, int]) -> Path:
    """A retrieval CSV with ``counts[set]`` pairs per set, its media in ``root/media``; returns the CSV path."""
    (root / "media").mkdir(parents=True, exist_ok=True)
    records = []
    for kind, n in counts.items():
        for i in range(n):
            seed = 10 * i + (kind == "sound")
            write_image(root / "media" / f"{kind}_{i}.jpg", seed=seed)
            write_wav(root / "media" / f"{kind}_{i}.wav", 0.8 + 0.1 * i, seed=seed)
            records.append(
                {
                    "set": kind,
                    "pair_id": f"{kind}_{i}",
                    "image": f"media/{kind}_{i}.jpg",
                    "audio": f"media/{kind}_{i}.wav",
                }
            )
    return write_csv(root / "pairs.csv", records)
