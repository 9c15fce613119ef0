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


def _scale(rng: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per head: the low end, the divisor and whether the head shows anything (its range is not flat)."""
    span = rng[:, 1] - rng[:, 0]
    return rng[:, 0], span.clamp_min(_FLAT), span > _FLAT


def normalized(maps: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
    """[K, H, W] raw -> [0, 1] with per-head (low, high); a flat head (high == low) shows nothing.

    float32 (float64 when `rng` is), a new tensor: the steps run in place on one copy of the maps."""
    lo, divisor, shown = (t.view(-1, 1, 1) for t in _scale(rng))
    v = maps.float().to(torch.promote_types(torch.float32, rng.dtype)).clamp_min(0)
    v.sub_(lo).div_(divisor)
    if not bool(shown.all()):
        v.masked_fill_(~shown, 0)
    return v.clamp_(0, 1)


def _check_style(alpha: float, threshold: float) -> None:
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1] (the largest opacity of the colour), got {alpha!r}")
    if not 0 <= threshold < 1:
        raise InputError(f"threshold must be in [0, 1) (the normalised value where colour starts), got {threshold!r}")


@dataclass(frozen=True)
class ColourLayer:
    """Maps turned into colour, ready for `blend`: a pixel rgb becomes (rgb * keep + offset) >> 8 (integers).

    keep: uint16 [H, W, 3], 256 - opacity, the opacity in 1/256 units (the same in the three channels: stored
        per channel so blending is one flat loop over the picture);
    offset: uint16 [H, W, 3], colour x opacity in 1/256 units (at most 255 x opacity, so the sum never exceeds
        16 bits) plus 128, which makes the shift round to nearest;
    box: (top, bottom, left, right) around every pixel the layer changes, None when it changes none. Outside
        it keep is 256 and offset 128, and (rgb * 256 + 128) >> 8 == rgb: blending leaves those pixels as they are.
    """

    keep: np.ndarray
    offset: np.ndarray
    box: tuple[int, int, int, int] | None


def colour_layer(
    maps: torch.Tensor,
    rng: torch.Tensor,
    colors: Sequence[Colour],
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    winner_take_all: bool = True,
) -> ColourLayer:
    """The coloured layer for raw maps [K, H, W] on the pixel grid, ready for `blend` (see `ColourLayer`).
    Cache it when many frames share one map (the video renderer does): blending is then a few integer
    operations per pixel, and only inside the layer's box.

    Computed in numpy, in bands of rows whose temporaries stay in the CPU's cache: each step is one cheap
    operation, so passes over full-size planes in memory would cost more than the arithmetic, and numpy runs
    them on this thread (torch would hand each small step to its thread pool, whose hand-offs cost more than
    the step on a busy machine). The steps are torch's (`normalized`), in the same float type, so the values
    are the same to the bit."""
    _check_style(alpha, threshold)
    if maps.ndim != 3:
        raise InputError(f"maps must be [K, H, W] (one plane per head), got shape {tuple(maps.shape)}")
    if maps.shape[0] != len(colors):
        raise InputError(f"{maps.shape[0]} map(s) but {len(colors)} colour(s); pass one colour per head")
    k, h, w = maps.shape
    ramp = _Ramp.of(rng, alpha, threshold, winner_take_all and k > 1)
    raw = maps.detach().float().cpu().numpy()
    palette = np.asarray(colors, np.float32).astype(ramp.lo.dtype)  # [K, 3]
    keep = np.empty((h, w, 3), np.uint16)
    offset = np.empty((h, w, 3), np.uint16)
    rows = max(1, _BAND_PIXELS // max(1, w))
    with np.errstate(invalid="ignore"):  # NaN maps: see _over_band
        for top in range(0, h if w else 0, rows):
            band = slice(top, top + rows)
            _fill_band(ramp(raw[:, band]), palette, keep[band], offset[band])
    return ColourLayer(keep, offset, _changed_box(keep))


# Pixels per band of `colour_layer`: the few float planes it keeps for a band fit in a core's cache.
_BAND_PIXELS = 1 << 16


@dataclass(frozen=True)
class _Ramp:
    """Raw maps [K, h, w] (float32 numpy) -> each head's opacity alpha * ramp(v) (see the module docstring),
    winner-take-all applied: `normalized` and the ramp, step for step, in numpy (float type: lo's)."""

    lo: np.ndarray  # [K, 1, 1], as _scale
    divisor: np.ndarray
    shown: np.ndarray  # [K] bool
    alpha: float
    threshold: float
    winner_take_all: bool

    @classmethod
    def of(cls, rng: torch.Tensor, alpha: float, threshold: float, winner_take_all: bool) -> _Ramp:
        work = torch.promote_types(torch.float32, rng.dtype)  # the float type `normalized` works in
        lo, divisor, shown = _scale(rng.detach().cpu())
        lo_np, divisor_np = (t.to(work).view(-1, 1, 1).numpy() for t in (lo, divisor))
        return cls(lo_np, divisor_np, shown.numpy(), alpha, threshold, winner_take_all)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        v = np.maximum(raw, 0).astype(self.lo.dtype, copy=False)  # clamped in float32 first, as torch does
        v -= self.lo
        v /= self.divisor
        v[~self.shown] = 0
        np.clip(v, 0, 1, out=v)
        if self.winner_take_all:
            v *= raw >= raw.max(axis=0, keepdims=True)
        v -= self.threshold
        v /= 1 - self.threshold
        np.clip(v, 0, 1, out=v)
        v *= self.alpha
        return v


def _fill_band(a: np.ndarray, palette: np.ndarray, keep: np.ndarray, offset: np.ndarray) -> None:
    """Heads' opacities a [K, h, w] -> the band's keep and offset (uint16 [h, w, 3], written in place).

    The heads are composited one over the other ("over" operator, in head order), in float, then rounded to
    1/256 units. Where at most one head has any opacity (always with one head, and with winner-take-all
    everywhere but exact ties) the "over" steps of the others are exact no-ops (x * (1 - 0) + c * 0 == x) and
    the first one gives colour x opacity: then the layer is one product per channel. Elsewhere, or with NaN
    maps, the steps run as written (`_over_band`)."""
    k = a.shape[0]
    opacity = a[0] if k == 1 else a.sum(axis=0)  # a sum of one non-zero term and zeros is that term, exactly
    # (With no head at all the loop of `_over_band` gives the empty layer.)
    if k == 0 or (k > 1 and _overlapping(a)) or bool(np.isnan(opacity).any()):
        _over_band(a, palette, keep, offset)
        return
    a256 = np.rint(opacity * 256)
    cap = a256 * 255  # so rgb * (256 - a256) + premult never exceeds 16 bits
    for c in range(3):
        # colour x opacity in 1/256 units (the scaling by 256 is exact), summed over heads: one non-zero term
        premult = a[0] * (palette[0, c] * 256)
        for j in range(1, k):
            premult += a[j] * (palette[j, c] * 256)
        np.rint(premult, out=premult)
        np.minimum(premult, cap, out=premult)
        premult += 128  # rounds to nearest in `blend`
        offset[..., c] = premult.astype(np.uint16)  # converted first: a strided uint16 copy is the cheap part
    kept = np.subtract(256, a256, out=a256).astype(np.uint16)
    for c in range(3):  # plane by plane: numpy broadcasts [h, w, 1] into [h, w, 3] several times slower
        keep[..., c] = kept


def _overlapping(a: np.ndarray) -> bool:
    """Whether any pixel has opacity from more than one head (NaN counts as opacity)."""
    if a.shape[0] == 2:
        return bool(np.minimum(a[0], a[1]).max() > 0)
    return int(np.count_nonzero(a, axis=0).max()) > 1


def _over_band(a: np.ndarray, palette: np.ndarray, keep: np.ndarray, offset: np.ndarray) -> None:
    """`_fill_band` with every head composited in turn, for pixels where several heads have opacity.

    NaN goes through int32 (the hardware's "invalid" integer) and wraps into uint16, as it always did."""
    _, h, w = a.shape
    premult = np.zeros((3, h, w), a.dtype)
    opacity = np.zeros((1, h, w), a.dtype)
    for k in range(a.shape[0]):
        ak = a[k : k + 1]
        premult = premult * (1 - ak) + palette[k].reshape(3, 1, 1) * ak
        opacity = opacity * (1 - ak) + ak
    a256 = np.rint(opacity * 256)
    pm = np.minimum(np.rint(premult * 256), 255 * a256)
    offset[...] = (pm.transpose(1, 2, 0).astype(np.int32) + 128).astype(np.uint16)
    keep[...] = (256 - a256).transpose(1, 2, 0).astype(np.int32).astype(np.uint16)


def _changed_box(keep: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) around the pixels whose keep is not 256, None if there are none; elsewhere
    opacity rounds to 0, so colour x opacity (at most 255 x opacity) is 0 too and the pixel is unchanged."""
    changed = keep[..., 0] != 256
    rows = np.flatnonzero(changed.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(changed[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def blend(rgb: np.ndarray, layer: ColourLayer) -> np.ndarray:
    """uint8 RGB [H, W, 3] with a `colour_layer` laid over it -> uint8 [H, W, 3] (exact integer arithmetic).
    Only the layer's box is computed; the rest is copied."""
    if rgb.shape != layer.keep.shape:
        raise InputError(f"the picture is {rgb.shape} but the colour layer {layer.keep.shape}; make them the same size")
    if layer.box is None:
        return rgb.copy()
    top, bottom, left, right = layer.box
    if (top, bottom, left, right) == (0, rgb.shape[0], 0, rgb.shape[1]):
        return _blend_block(rgb, layer.keep, layer.offset)
    out = rgb.copy()
    box = (slice(top, bottom), slice(left, right))
    out[box] = _blend_block(rgb[box], layer.keep[box], layer.offset[box])
    return out


def _blend_block(rgb: np.ndarray, keep: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.uint16)
    out *= keep
    out += offset
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
