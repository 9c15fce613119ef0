"""`sampling_grid` / `PixelSampler`: the grid built once gives exactly what `maps_to_original` always gave."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from denseav.errors import InputError
from denseav.image import ImageGeometry, PixelSampler, maps_to_original, sampling_grid

GEOMETRIES = [
    ImageGeometry(original_size=(1080, 1920), resized_size=(224, 398), input_size=(224, 392), patch_size=8),
    ImageGeometry(original_size=(197, 333), resized_size=(224, 378), input_size=(224, 376), patch_size=8),
    ImageGeometry(original_size=(53, 37), resized_size=(320, 224), input_size=(320, 224), patch_size=16),
]


def reference(maps: torch.Tensor, g: ImageGeometry) -> torch.Tensor:
    """The grid written in float64 over the whole picture, then cast (how it was first built)."""
    (h, w), (h0, w0), (hr, wr), p = g.grid_size, g.original_size, g.resized_size, g.patch_size
    y_n = 2 * (((torch.arange(h0, dtype=torch.float64) + 0.5) * (hr / h0)) / p) / h - 1
    x_n = 2 * (((torch.arange(w0, dtype=torch.float64) + 0.5) * (wr / w0)) / p) / w - 1
    grid = torch.stack((x_n.view(1, w0).expand(h0, w0), y_n.view(h0, 1).expand(h0, w0)), dim=-1)
    grid = grid.to(maps.dtype)[None]
    return F.grid_sample(maps[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_same_values_as_the_reference(geometry):
    sampler = PixelSampler(geometry)
    for seed, dtype in ((0, torch.float32), (1, torch.float32), (2, torch.float64)):
        maps = torch.randn(2, *geometry.grid_size, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        expected = reference(maps, geometry)
        assert torch.equal(maps_to_original(maps, geometry), expected)
        assert torch.equal(sampler(maps), expected)


def test_a_grid_for_other_maps_is_an_error():
    g = GEOMETRIES[1]
    maps = torch.zeros(1, *g.grid_size)
    with pytest.raises(InputError, match="sampling grid"):
        maps_to_original(maps, g, grid=sampling_grid(GEOMETRIES[2]))
    with pytest.raises(InputError, match="sampling grid"):
        maps_to_original(maps, g, grid=sampling_grid(g, dtype=torch.float64))
