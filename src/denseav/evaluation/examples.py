"""Per-class example grids: the best and the worst items of a class, so a person can see why a number is what it is.

One PNG per (prompt set, class): a title, then one row per item with the evaluated 224 x 224 crop, the normalised
heatmap laid over it (the values the metrics score, on a fixed 0..1 colour scale shared by every item of the set),
and the ground-truth mask; each row is captioned with its CSV row, prompt file and its own AP.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data import decode_ade_labels
from .preprocess import CROP_SIZE, load_image_crop, load_label_image
from .segmentation import PromptSetResult, SegmentationItem, SegmentationResult, upsample

__all__ = ["write_examples"]

_PAD = 8
_CAPTION = 22
_FONT_SIZE = 14
# A perceptually ordered dark-blue -> teal -> yellow ramp (anchor colours; linear in between).
_RAMP = np.array([[48, 18, 59], [40, 110, 190], [30, 180, 150], [160, 220, 60], [250, 230, 40]], dtype=np.float32)
_MASK_COLOUR = np.array([255, 60, 60], dtype=np.float32)


_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> _Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _colourise(values: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8 RGB through the ramp."""
    pos = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(int), len(_RAMP) - 2)
    t = (pos - i)[..., None]
    return (_RAMP[i] * (1 - t) + _RAMP[i + 1] * t).astype(np.uint8)


def _panels(item: SegmentationItem, grid_map: torch.Tensor) -> list[np.ndarray]:
    rgb = load_image_crop(item.image)[0]
    heat = _colourise(upsample(grid_map).numpy())
    over = (0.35 * rgb + 0.65 * heat).astype(np.uint8)
    mask = decode_ade_labels(load_label_image(item.label), item.label) == item.class_id
    gt = rgb.astype(np.float32) * 0.35
    gt[mask] = 0.4 * rgb[mask] + 0.6 * _MASK_COLOUR
    return [rgb, over, gt.astype(np.uint8)]


def _row_caption(rank: int, n: int, item: SegmentationItem) -> str:
    ap = "n/a" if item.basic_ap is None else f"{item.basic_ap:.3f}"
    return f"#{rank}/{n}  item AP {ap}  CSV row {item.csv_row}: {item.image.name} + {item.audio.name}"


def _colour_scale(sheet: Image.Image, draw: ImageDraw.ImageDraw, font: _Font, *, x: int, y: int) -> None:
    """A small 0 -> 1 ramp so the heatmap colours can be read as values."""
    ramp = _colourise(np.tile(np.linspace(0, 1, 48, dtype=np.float32), (8, 1)))
    label = "heatmap scale"
    draw.text((x - 20 - int(font.getbbox(label)[2]), y - 4), label, fill=(80, 80, 80), font=font)
    draw.text((x - 10, y - 4), "0", fill=(80, 80, 80), font=font)
    sheet.paste(Image.fromarray(ramp), (x, y))
    draw.text((x + 52, y - 4), "1", fill=(80, 80, 80), font=font)


def _grid(title: str, rows: list[tuple[str, list[np.ndarray]]]) -> Image.Image:
    cols = ("image (224 crop)", "heatmap (set-normalised)", "ground truth")
    width = _PAD + len(cols) * (CROP_SIZE + _PAD)
    height = 2 * _CAPTION + _PAD + len(rows) * (_CAPTION + CROP_SIZE + _PAD)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(_FONT_SIZE)
    draw.text((_PAD, 4), title, fill=(0, 0, 0), font=_font(_FONT_SIZE + 2))
    for c, name in enumerate(cols):
        draw.text((_PAD + c * (CROP_SIZE + _PAD), _CAPTION + 2), name, fill=(80, 80, 80), font=font)
    _colour_scale(sheet, draw, font, x=width - 80, y=8)  # in the title line's right end
    y = 2 * _CAPTION + _PAD
    for caption, panels in rows:
        draw.text((_PAD, y + 3), caption, fill=(0, 0, 0), font=font)
        for c, panel in enumerate(panels):
            sheet.paste(Image.fromarray(panel), (_PAD + c * (CROP_SIZE + _PAD), y + _CAPTION))
        y += _CAPTION + CROP_SIZE + _PAD
    return sheet


def _class_rows(s: PromptSetResult, class_id: int, per_side: int) -> list[tuple[str, list[np.ndarray]]]:
    """The ``per_side`` best and worst items of the class by their own AP (all of them when that is fewer)."""
    members = [i for i in s.items if i.class_id == class_id]
    ranked = sorted(members, key=lambda i: -1.0 if i.basic_ap is None else i.basic_ap, reverse=True)
    picked = list(enumerate(ranked, 1))
    if len(picked) > 2 * per_side:
        picked = picked[:per_side] + picked[-per_side:]
    maps = s.maps["basic"]
    return [(_row_caption(rank, len(ranked), i), _panels(i, maps[i.index])) for rank, i in picked]


def write_examples(result: SegmentationResult, folder: str | os.PathLike[str], *, per_side: int = 3) -> list[Path]:
    """Write ``<prompts>_class<id>.png`` per class into ``folder`` (created if needed); returns the paths.

    Each file goes to a temporary name first and is renamed when complete.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s in result.sets.values():
        for c in s.classes:
            ap = "n/a" if c.basic_ap is None else f"{c.basic_ap:.3f}"
            title = f"{s.prompts} prompts, class {c.class_id} {c.class_name}: basic AP {ap} over {c.n_items} item(s)"
            sheet = _grid(title, _class_rows(s, c.class_id, per_side))
            path = out / f"{s.prompts}_class{c.class_id}.png"
            tmp = path.with_name(f".{path.name}.tmp")
            sheet.save(tmp, format="PNG")
            os.replace(tmp, path)
            written.append(path)
    return written
