"""Pictures: overlays land on the right pixels of the original image, colours and legend, PNG output."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import denseav
from _fixtures import PARITY_DIRS
from denseav.errors import InputError
from denseav.image import preprocess_image
from denseav.render import HEAD_COLORS, display_range, head_colors, overlay, save_png, time_strip
from denseav.result import Grounding

GREY = 128

PATCH = 8  # the ViT patch of the published models and of the fixtures


def synthetic(
    width: int,
    height: int,
    peaks: list[tuple[int, int]],
    *,
    steps: int = 6,
    names: tuple[str, ...] = ("language", "sound"),
    image: torch.Tensor | None = None,
) -> Grounding:
    """A Grounding on a flat grey image whose head k has one hot patch at grid cell peaks[k] = (gy, gx)."""
    rgb = image if image is not None else torch.full((3, height, width), GREY, dtype=torch.uint8)
    _, geometry = preprocess_image(rgb, patch_size=PATCH)
    h, w = geometry.grid_size
    maps = torch.full((len(peaks), steps, h, w), -1.0)
    for k, (gy, gx) in enumerate(peaks):
        maps[k, :, gy, gx] = 5.0 + torch.arange(steps, dtype=torch.float32)  # louder over time
    times = (torch.arange(steps) * 2880 + 1480) / 16000
    n = int(steps * 2880 + 80)
    wave = torch.sin(torch.arange(n) / 16000 * 2 * math.pi * 330)
    return Grounding(
        heatmaps=maps,
        head_names=names[: len(peaks)],
        times=times.float(),
        score=1.0,
        score_per_head=torch.ones(len(peaks)),
        geometry=geometry,
        audio_duration=n / 16000,
        image=rgb,
        waveform=wave,
        mask=torch.ones(steps, dtype=torch.bool),
    )


def expected_pixel(g: Grounding, gy: int, gx: int) -> tuple[float, float]:
    """Centre of grid cell (gy, gx) in original-image pixels (x, y)."""
    h0, w0 = g.geometry.original_size
    hr, wr = g.geometry.resized_size
    return (gx * 8 + 4) * w0 / wr, (gy * 8 + 4) * h0 / hr


def colour_strength(picture: Image.Image, colour: tuple[int, int, int]) -> np.ndarray:
    """How far each pixel moved from grey towards `colour` (projection of the change on that direction)."""
    diff = np.asarray(picture, dtype=np.float32) - GREY
    direction = np.asarray(colour, np.float32) - GREY
    return diff @ (direction / np.linalg.norm(direction))


@pytest.mark.parametrize("size", [(301, 250), (213, 330), (640, 480), (37, 53)])
def test_single_peak_lands_on_the_right_pixel(size):
    width, height = size
    probe = synthetic(width, height, [(0, 0)])
    h, w = probe.geometry.grid_size
    # Peaks well inside, one per head, in different places (not symmetric, so a transposition would show).
    spots = [(h // 4, (3 * w) // 4), ((2 * h) // 3, w // 5)]
    g = synthetic(width, height, spots)
    hr, wr = g.geometry.resized_size
    tol_x, tol_y = 8 * width / wr + 1.5, 8 * height / hr + 1.5  # one patch, in original pixels
    for time in ("mean", "max", 2, 0.5):
        picture = overlay(g, time=time, legend=False)
        assert picture.size == (width, height)
        for k, name in enumerate(g.head_names):
            strength = colour_strength(picture, HEAD_COLORS[name])
            y, x = np.unravel_index(np.argmax(strength), strength.shape)
            ex, ey = expected_pixel(g, *spots[k])
            assert abs(x + 0.5 - ex) <= tol_x and abs(y + 0.5 - ey) <= tol_y, (size, time, name, (x, y), (ex, ey))
            assert strength.max() > 20  # clearly coloured at the peak
        # Far from both peaks the image is untouched.
        corner = np.asarray(picture)[-1, 0] if spots[1][1] > 1 else np.asarray(picture)[0, -1]
        assert np.abs(corner.astype(int) - GREY).max() <= 1


def test_one_head_alone_and_winner_take_all():
    g = synthetic(200, 120, [(3, 4), (10, 20)])
    red_only = overlay(g, heads=["language"], legend=False)
    blue = colour_strength(red_only, HEAD_COLORS["sound"])
    ex, ey = expected_pixel(g, 10, 20)
    assert blue[int(ey), int(ex)] < 5  # the sound head is not drawn
    both = np.asarray(overlay(g, legend=False)).astype(int)
    # Each pixel shows one head's colour: nowhere are red and blue both strongly raised.
    assert not np.any((both[..., 0] > GREY + 30) & (both[..., 2] > GREY + 30))


def test_normalisation_is_over_the_whole_clip():
    g = synthetic(160, 120, [(5, 5)], names=("sound",))
    ex, ey = expected_pixel(g, 5, 5)
    quiet = colour_strength(overlay(g, time=0, legend=False), HEAD_COLORS["sound"])[int(ey), int(ex)]
    loud = colour_strength(overlay(g, time=5, legend=False), HEAD_COLORS["sound"])[int(ey), int(ex)]
    assert loud > quiet > 0  # the quiet moment is not stretched to full colour
    rng = display_range(g.heatmaps)
    assert rng[0, 0] == 0 and rng[0, 1] == 10  # clamped at 0, max over every step and pixel


def test_colours_and_legend():
    assert head_colors(("language", "sound")) == [HEAD_COLORS["language"], HEAD_COLORS["sound"]]
    assert len(set(head_colors(("a", "b", "c")))) == 3
    g = synthetic(320, 240, [(25, 35), (25, 30)])  # peaks far from the legend corner
    plain = np.asarray(overlay(g, legend=False)).astype(int)
    labelled = np.asarray(overlay(g, legend=True)).astype(int)
    corner = (slice(0, 40), slice(0, 80))
    assert np.abs(plain[corner] - labelled[corner]).max() > 50  # the legend is drawn there
    assert np.array_equal(plain[120:, 160:], labelled[120:, 160:])  # and nowhere else
    tiny = synthetic(37, 53, [(1, 1), (3, 2)])
    assert overlay(tiny).size == (37, 53)  # no room for a legend: skipped, not an error


def test_time_strip_and_png(tmp_path):
    g = synthetic(301, 250, [(4, 5), (20, 30)])
    strip = time_strip(g, width=500, marker=2)
    assert strip.width == 500 and strip.height >= 140
    path = save_png(g, tmp_path / "out.png", time=3)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width == 480  # scaled up to the documented minimum width
        assert im.height > 480 * 250 / 301  # overlay plus strip
    small = save_png(g, tmp_path / "small.png", strip=False, min_width=100)
    with Image.open(small) as im:
        assert im.size == (301, 250)


def test_bad_arguments(tmp_path):
    g = synthetic(64, 64, [(2, 2)], names=("sound",))
    with pytest.raises(InputError, match="time"):
        overlay(g, time="median")
    with pytest.raises(InputError, match="out of range"):
        overlay(g, time=99)
    with pytest.raises(InputError, match="no head"):
        overlay(g, heads=["language"])
    with pytest.raises(InputError, match="alpha"):
        overlay(g, alpha=2)
    with pytest.raises(InputError, match=".png"):
        save_png(g, tmp_path / "out.jpg")
    no_image = synthetic(64, 64, [(2, 2)], names=("sound",))
    no_image.image = None
    with pytest.raises(InputError, match="no image"):
        overlay(no_image)


@pytest.mark.parametrize("folder", PARITY_DIRS, ids=[p.name for p in PARITY_DIRS])
def test_fixture_models_render(folder, tmp_path):
    model = denseav.load(folder)
    g = denseav.ground(folder / "image.png", folder / "audio.wav", model=model)
    path = save_png(g, tmp_path / "fixture.png", time=len(g.times) // 2)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.width >= 480
    assert overlay(g).size == tuple(reversed(g.geometry.original_size))
