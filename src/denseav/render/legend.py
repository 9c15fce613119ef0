"""Text on pictures: the font, and the legend box that names each head's colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colors import Colour

__all__ = [
    "draw_legend",
    "fits",
    "font",
    "legend_font_size",
    "legend_margin",
    "legend_patch",
    "paste_patch",
    "text_size",
]

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def font(size: int) -> Font:
    """A scalable font at `size` px (Pillow >= 10.1 with FreeType), else Pillow's small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, ImportError, OSError):
        return ImageFont.load_default()


def text_size(face: Font, text: str) -> tuple[int, int]:
    """(width, height) of `text` drawn at the origin."""
    left, _top, right, bottom = face.getbbox(text)
    return int(right - left), int(bottom)


def legend_font_size(width: int, height: int) -> int:
    """The legend's font size for a picture of this size: 1/24 of its short side, within 10..32 px."""
    return int(min(32, max(10, round(min(width, height) / 24))))


def legend_patch(names: Sequence[str], colors: Sequence[Colour], font_size: int) -> Image.Image:
    """An RGBA legend box: a colour swatch and the name of each head on a translucent dark background."""
    face = font(font_size)
    pad = max(2, font_size // 3)
    swatch = max(6, int(font_size * 0.8))
    sizes = [text_size(face, n) for n in names]
    line = max([font_size] + [h for _, h in sizes]) + pad
    box = Image.new("RGBA", (pad * 3 + swatch + max(w for w, _ in sizes), pad + line * len(names)), (0, 0, 0, 150))
    draw = ImageDraw.Draw(box)
    for i, (name, colour) in enumerate(zip(names, colors)):
        y = pad + i * line
        top = y + (line - pad - swatch) // 2
        draw.rectangle(
            [pad, top, pad + swatch - 1, top + swatch - 1], fill=(*colour, 255), outline=(255, 255, 255, 255)
        )
        draw.text((pad * 2 + swatch, y), name, fill=(255, 255, 255, 255), font=face)
    return box


def fits(patch: Image.Image, width: int, height: int, *, max_width_share: float = 0.5) -> bool:
    """Whether a legend covers at most `max_width_share` of the width and a third of the height."""
    return patch.width <= width * max_width_share and patch.height <= height / 3


def legend_margin(font_size: int) -> int:
    """Distance of the legend from the picture's top-left corner."""
    return max(2, font_size // 4)


def draw_legend(image: Image.Image, names: Sequence[str], colors: Sequence[Colour], *, force: bool = False) -> bool:
    """Draw the legend in the top-left corner of `image` (in place). Skipped (returns False) when it would cover
    more than half the width or a third of the height, unless `force`."""
    size = legend_font_size(*image.size)
    patch = legend_patch(names, colors, size)
    if not force and not fits(patch, *image.size):
        return False
    base = image.convert("RGBA")
    base.alpha_composite(patch, (legend_margin(size), legend_margin(size)))
    image.paste(base.convert(image.mode))
    return True


def paste_patch(rgb: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-composite an RGBA uint8 patch onto an RGB uint8 array in place (clipped to the array)."""
    h = min(patch.shape[0], rgb.shape[0] - y)
    w = min(patch.shape[1], rgb.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    p = patch[:h, :w].astype(np.float32)
    a = p[..., 3:4] / 255
    region = rgb[y : y + h, x : x + w].astype(np.float32)
    rgb[y : y + h, x : x + w] = np.clip(region * (1 - a) + p[..., :3] * a + 0.5, 0, 255).astype(np.uint8)
