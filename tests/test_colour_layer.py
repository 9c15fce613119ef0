"""`colour_layer` and `blend` give, to the bit, what the plain formulas give: each head's opacity from the
display-normalised map, winner-take-all, the heads composited one over the other in float on full planes,
rounded to 1/256 units, then blended as (rgb * (256 - a) + colour x a + 128) >> 8 (see `render.colors`).

The reference below is that computation written out step by step in torch, the way the renderer first did it;
the fast path (banded numpy, one product per channel where one head is visible, only the changed box blended)
must not change a single value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denseav.errors import InputError
from denseav.render import blend, colors, colour_layer, display_range
from denseav.render.colors import ColourLayer

COLOURS = [(255, 40, 40), (40, 140, 255), (40, 200, 70)]


def reference_layer(
    maps: torch.Tensor, rng: torch.Tensor, colors, alpha: float, threshold: float, winner_take_all: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(colour x opacity [H, W, 3], 256 - opacity [H, W, 1]) as uint16 in 1/256 units."""
    maps = maps.float()
    lo = rng[:, 0].view(-1, 1, 1)
    span = (rng[:, 1] - rng[:, 0]).view(-1, 1, 1)
    v = (maps.clamp_min(0) - lo) / span.clamp_min(1e-12)
    v = torch.where(span > 1e-12, v, torch.zeros_like(v)).clamp_(0, 1)
    if winner_take_all and maps.shape[0] > 1:
        v = v * (maps >= maps.amax(dim=0, keepdim=True))
    a = alpha * ((v - threshold) / (1 - threshold)).clamp_(0, 1)
    h, w = maps.shape[-2:]
    premult = torch.zeros(3, h, w)
    opacity = torch.zeros(1, h, w)
    for k, colour in enumerate(colors):
        ak = a[k : k + 1]
        premult = premult * (1 - ak) + torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) * ak
        opacity = opacity * (1 - ak) + ak
    a256 = (opacity * 256).round_()
    pm = torch.minimum((premult * 256).round_(), 255 * a256)

    def hwc(t: torch.Tensor) -> np.ndarray:
        return t.permute(1, 2, 0).to(torch.int32).numpy().astype(np.uint16)

    return hwc(pm), hwc(256 - a256)


def reference_blend(rgb: np.ndarray, premult: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.uint16) * keep
    out += premult
    out += 128
    out >>= 8
    return out.astype(np.uint8)


def assert_same(maps, rng, colors, *, alpha=0.6, threshold=0.1, winner_take_all=True) -> ColourLayer:
    layer = colour_layer(maps, rng, colors, alpha=alpha, threshold=threshold, winner_take_all=winner_take_all)
    premult, keep = reference_layer(maps, rng, colors, alpha, threshold, winner_take_all)
    assert layer.keep.dtype == layer.offset.dtype == np.uint16
    assert np.array_equal(layer.keep, np.broadcast_to(keep, layer.keep.shape))
    assert np.array_equal(layer.offset.astype(np.int64), premult.astype(np.int64) + 128)
    rgb = np.random.default_rng(int(maps.numel()) % 1000).integers(0, 256, (*maps.shape[1:], 3), dtype=np.uint8)
    assert np.array_equal(blend(rgb, layer), reference_blend(rgb, premult, keep))
    changed = keep[..., 0] != 256
    if layer.box is None:
        assert not changed.any()
    else:
        top, bottom, left, right = layer.box
        assert changed[top:bottom, left:right].sum() == changed.sum()  # every changed pixel is inside
        assert changed[top].any() and changed[bottom - 1].any()  # and the box is tight
        assert changed[:, left].any() and changed[:, right - 1].any()
    return layer


def smooth_maps(heads: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Bilinear upsampling of a small random grid, as the renderer's maps are (signed, mostly smooth)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(1, heads, 5, 7, generator=g)
    return torch.nn.functional.interpolate(grid, size=size, mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("heads", [1, 2, 3])
@pytest.mark.parametrize("winner_take_all", [True, False])
@pytest.mark.parametrize("size", [(37, 53), (300, 701), (5, 1)])
def test_random_maps(heads, winner_take_all, size):
    g = torch.Generator().manual_seed(heads * 10 + size[0])
    for maps in (torch.rand(heads, *size, generator=g) * 3 - 1, smooth_maps(heads, size, heads)):
        assert_same(maps, display_range(maps), COLOURS[:heads], winner_take_all=winner_take_all)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.999])
def test_alpha_and_threshold_edges(alpha, threshold):
    maps = smooth_maps(2, (41, 67), 3)
    for winner_take_all in (True, False):
        assert_same(
            maps, display_range(maps), COLOURS[:2], alpha=alpha, threshold=threshold, winner_take_all=winner_take_all
        )


def test_flat_heads_and_ties():
    maps = smooth_maps(3, (30, 90), 5)
    maps[1] = 0.25  # a flat head shows nothing
    assert_same(maps, display_range(maps), COLOURS)
    tied = smooth_maps(1, (30, 90), 6).expand(2, 30, 90).clone()  # equal maps: winner-take-all keeps both
    tied[1, :10] -= 1  # ties only in the lower rows
    assert_same(tied, display_range(tied), COLOURS[:2])
    rng = display_range(tied)
    rng[0, 1] = rng[0, 0]  # a range given as flat
    assert_same(tied, rng, COLOURS[:2])


def test_bands_taking_different_paths(monkeypatch):
    """Small bands: some hold ties (every head composited), the others one head per pixel."""
    monkeypatch.setattr(colors, "_BAND_PIXELS", 256)
    tied = smooth_maps(1, (40, 50), 9).expand(3, 40, 50).clone()
    tied[1, 13:] -= 1
    tied[2, :27] -= 2
    for winner_take_all in (True, False):
        assert_same(tied, display_range(tied), COLOURS, winner_take_all=winner_take_all)


def test_nothing_and_everything_coloured():
    maps = smooth_maps(2, (33, 45), 7)
    nothing = assert_same(maps, torch.tensor([[50.0, 60.0], [50.0, 60.0]]), COLOURS[:2])
    assert nothing.box is None
    everything = assert_same(torch.full((1, 33, 45), 2.0), torch.tensor([[0.0, 1.0]]), COLOURS[:1])
    assert everything.box == (0, 33, 0, 45)
    rgb = np.full((33, 45, 3), 77, np.uint8)
    assert np.array_equal(blend(rgb, nothing), rgb)
    assert assert_same(torch.zeros(0, 6, 7), torch.zeros(0, 2), []).box is None  # no head
    for empty in ((2, 0, 7), (2, 6, 0)):
        assert assert_same(torch.zeros(*empty), torch.tensor([[0.0, 1.0]] * 2), COLOURS[:2]).box is None


def test_a_small_spot_blends_only_its_box():
    maps = torch.zeros(1, 200, 300)
    maps[0, 120:131, 40:52] = 1.0
    layer = assert_same(maps, display_range(maps), COLOURS[:1])
    assert layer.box == (120, 131, 40, 52)


def test_float64_range_and_maps():
    maps = smooth_maps(2, (29, 31), 8).double()
    assert_same(maps, display_range(maps).double(), COLOURS[:2])


def test_bad_shapes():
    with pytest.raises(InputError, match="colour"):
        colour_layer(torch.zeros(2, 4, 4), torch.zeros(2, 2), COLOURS[:1])
    with pytest.raises(InputError, match=r"\[K, H, W\]"):
        colour_layer(torch.zeros(4, 4), torch.zeros(1, 2), COLOURS[:1])
    layer = colour_layer(torch.zeros(1, 4, 4), torch.zeros(1, 2), COLOURS[:1])
    with pytest.raises(InputError, match="same size"):
        blend(np.zeros((4, 5, 3), np.uint8), layer)
