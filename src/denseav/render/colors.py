"""Colour maths: one colour per head, the display range of the maps, and laying colour over a picture.

Colours: each head has its own colour - "language" red, "sound" blue (as the original demo), other head names
green, orange, purple, cyan in turn. Where several heads are shown together every pixel takes the colour of the
head with the larger raw similarity there (winner-take-all, as the demo), so the two heads stay distinguishable.

Opacity: a pixel's colour is laid over the photo with opacity alpha * ramp(v), where v in [0, 1] is the
display-normalised map value and ramp rises linearly from 0 at `threshold` (default 0.1) to 1 at v = 1; below
the threshold the photo shows untouched, and even at the peak `alpha` (default 0.6) of the photo remains, so
the picture stays readable.

Display normalisation (documented choice): per head, over the whole clip. Values are clamped at 0 (negative
similarity means "unrelated", as in the original), then mapped linearly from that head's minimum to its
maximum over every audio step and every pixel (for a video: every sampled frame). One moment is therefore
shown relative to the whole clip, so a quiet moment looks quiet instead of being stretched to full colour.
A summary map (time="mean" or "max") is one picture, so it is normalised over itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_THRESHOLD",
    "HEAD_COLORS",
    "Colour",
    "ColourLayer",
    "OverlayStyle",
    "blend",
    "colour_layer",
    "display_range",
    "head_colors",
    "normalized",
]

Colour = tuple[int, int, int]
# (colour x opacity, 256 - opacity), both uint16 [H, W, 3] / [H, W, 1] in 1/256 units: see `colour_layer`.
ColourLayer = tuple[np.ndarray, np.ndarray]

HEAD_COLORS: dict[str, Colour] = {"language": (255, 40, 40), "sound": (40, 140, 255)}
_PALETTE: tuple[Colour, ...] = (
    (40, 200, 70),
    (255, 160, 0),
    (190, 60, 230),
    (0, 200, 210),
    (255, 40, 40),
    (40, 140, 255),
)
DEFAULT_ALPHA = 0.6
DEFAULT_THRESHOLD = 0.1
_FLAT = 1e-12  # a head whose display range is narrower than this is flat: it shows nothing


def head_colors(head_names: Sequence[str]) -> list[Colour]:
    """One RGB colour per head: the fixed colour of a known head name, else the next unused palette colour."""
    used = {HEAD_COLORS[n] for n in head_names if n in HEAD_COLORS}
    spare = iter([c for c in _PALETTE if c not in used] + list(_PALETTE))
    return [HEAD_COLORS[n] if n in HEAD_COLORS else next(spare) for n in head_names]


def display_range(maps: torch.Tensor) -> torch.Tensor:
    """[K, ...] raw maps -> [K, 2] (low, high) per head after clamping at 0 (see the module docstring).

    NaN entries (video frames without sound) are left out; a head with no values at all gets (0, 0).
    """
    flat = maps.detach().float().clamp_min(0).flatten(1)
    known = ~torch.isnan(flat)
    if bool(known.all()):
        return torch.stack([flat.amin(dim=1), flat.amax(dim=1)], dim=1)
    low = torch.where(known, flat, torch.inf).amin(dim=1)
    high = torch.where(known, flat, -torch.inf).amax(dim=1)
    empty = ~known.any(dim=1)
    return torch.stack([low.masked_fill(empty, 0), high.masked_fill(empty, 0)], dim=1)


def normalized(maps: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
    """[K, H, W] raw -> [0, 1] with per-head (low, high); a flat head (high == low) shows nothing."""
    lo = rng[:, 0].view(-1, 1, 1)
    span = (rng[:, 1] - rng[:, 0]).view(-1, 1, 1)
    v = (maps.float().clamp_min(0) - lo) / span.clamp_min(_FLAT)
    return torch.where(span > _FLAT, v, torch.zeros_like(v)).clamp_(0, 1)


def _check_style(alpha: float, threshold: float) -> None:
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1] (the largest opacity of the colour), got {alpha!r}")
    if not 0 <= threshold < 1:
        raise InputError(f"threshold must be in [0, 1) (the normalised value where colour starts), got {threshold!r}")


def colour_layer(
    maps: torch.Tensor,
    rng: torch.Tensor,
    colors: Sequence[Colour],
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    winner_take_all: bool = True,
) -> ColourLayer:
    """The coloured layer for raw maps [K, H, W] on the pixel grid, ready for `blend`: (colour x opacity [H, W, 3],
    256 - opacity [H, W, 1]), both uint16 in 1/256 units. Cache it when many frames share one map (the video
    renderer does): blending is then a few integer operations per pixel."""
    _check_style(alpha, threshold)
    if maps.shape[0] != len(colors):
        raise InputError(f"{maps.shape[0]} map(s) but {len(colors)} colour(s); pass one colour per head")
    maps = maps.float()
    v = normalized(maps, rng)
    if winner_take_all and maps.shape[0] > 1:
        # amax + compare, not argmax: torch's argmax over the leading dim is ~10x slower on large frames.
        v = v * (maps >= maps.amax(dim=0, keepdim=True))
    a = alpha * ((v - threshold) / (1 - threshold)).clamp_(0, 1)  # [K, H, W]
    h, w = maps.shape[-2:]
    premult = torch.zeros(3, h, w)
    opacity = torch.zeros(1, h, w)
    # Heads composited one over the other ("over" operator); with winner-take-all only one is non-zero.
    for k, colour in enumerate(colors):
        ak = a[k : k + 1]
        premult = premult * (1 - ak) + torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) * ak
        opacity = opacity * (1 - ak) + ak
    a256 = (opacity * 256).round_()
    # Capped at 255 * a256 so rgb * (256 - a256) + premult never exceeds 16 bits.
    pm = torch.minimum((premult * 256).round_(), 255 * a256)
    return _to_uint16_hwc(pm), _to_uint16_hwc(256 - a256)


def _to_uint16_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).to(torch.int32).numpy().astype(np.uint16)


def blend(rgb: np.ndarray, layer: ColourLayer) -> np.ndarray:
    """uint8 RGB [H, W, 3] with a `colour_layer` laid over it -> uint8 [H, W, 3] (exact integer arithmetic)."""
    premult, keep = layer
    out = rgb.astype(np.uint16) * keep
    out += premult
    out += 128
    out >>= 8
    return out.astype(np.uint8)


@dataclass(frozen=True)
class OverlayStyle:
    """How maps are laid over a picture: see `colour_layer` (checked when made)."""

    alpha: float = DEFAULT_ALPHA
    threshold: float = DEFAULT_THRESHOLD
    winner_take_all: bool = True

    def __post_init__(self) -> None:
        _check_style(self.alpha, self.threshold)

    def layer(self, maps: torch.Tensor, rng: torch.Tensor, colors: Sequence[Colour]) -> ColourLayer:
        return colour_layer(
            maps, rng, colors, alpha=self.alpha, threshold=self.threshold, winner_take_all=self.winner_take_all
        )
