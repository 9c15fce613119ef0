"""Pictures: overlays land on the right pixels of the original image, colours and legend, PNG output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import denseav
from _fixtures import PARITY_DIRS
from _media import GREY
from _media import synthetic_grounding as synthetic
from denseav.errors import InputError, OutputError
from denseav.render import DEFAULT_MAX_SIDE, HEAD_COLORS, display_range, head_colors, overlay, save_png, time_strip
from denseav.render.strip import curve_title, peak_curves
from denseav.result import Grounding


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
    for when in ({"time": "mean"}, {"time": "max"}, {"step": 2}, {"time": 0.5}):
        picture = overlay(g, legend=False, **when)
        assert picture.size == (width, height)
        for k, name in enumerate(g.head_names):
            strength = colour_strength(picture, HEAD_COLORS[name])
            y, x = np.unravel_index(np.argmax(strength), strength.shape)
            ex, ey = expected_pixel(g, *spots[k])
            assert abs(x + 0.5 - ex) <= tol_x and abs(y + 0.5 - ey) <= tol_y, (size, when, name, (x, y), (ex, ey))
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
    quiet = colour_strength(overlay(g, step=0, legend=False), HEAD_COLORS["sound"])[int(ey), int(ex)]
    loud = colour_strength(overlay(g, step=5, legend=False), HEAD_COLORS["sound"])[int(ey), int(ex)]
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
    strip = time_strip(g, width=500, marker=0.5)
    assert strip.width == 500 and strip.height >= 140
    path = save_png(g, tmp_path / "out.png", step=3)
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
        overlay(g, step=99)
    with pytest.raises(InputError, match="outside the clip"):
        overlay(g, time=99)
    with pytest.raises(InputError, match="no head"):
        overlay(g, heads=["language"])
    with pytest.raises(InputError, match="alpha"):
        overlay(g, alpha=2)
    with pytest.raises(OutputError, match=".png"):
        save_png(g, tmp_path / "out.jpg")
    no_image = synthetic(64, 64, [(2, 2)], names=("sound",))
    no_image.image = None
    with pytest.raises(InputError, match="no image"):
        overlay(no_image)


@pytest.mark.parametrize("folder", PARITY_DIRS, ids=[p.name for p in PARITY_DIRS])
def test_fixture_models_render(folder, tmp_path):
    model = denseav.load(folder)
    g = denseav.ground(folder / "image.png", folder / "audio.wav", model=model)
    path = save_png(g, tmp_path / "fixture.png", step=len(g.times) // 2)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.width >= 480
    assert overlay(g).size == tuple(reversed(g.geometry.original_size))


def test_time_is_seconds_and_step_is_an_index():
    g = synthetic(160, 120, [(5, 5)], names=("sound",))
    by_step = np.asarray(overlay(g, step=2, legend=False))
    by_time = np.asarray(overlay(g, time=float(g.times[2]), legend=False))
    assert np.array_equal(by_step, by_time)
    with pytest.raises(InputError, match="not both"):
        overlay(g, time=0.5, step=1)
    with pytest.raises(InputError, match="step"):
        overlay(g, step=1.5)


def test_strip_plots_the_raw_peak_and_says_so():
    """The strip's curves are the numbers --json gives (`max_per_step`), unless asked to smooth, and the title
    says which; a smoothed strip looks different when the peaks change over time."""
    g = synthetic(200, 150, [(3, 4), (10, 12)])
    g.heatmaps[1, 2] += 20.0  # a spike: smoothing spreads it to the neighbouring steps
    raw = peak_curves(g)
    expected = g.to_dict()["max_per_step"]
    for k, name in enumerate(g.head_names):
        assert raw[k].tolist() == pytest.approx(expected[name])
    assert not torch.allclose(peak_curves(g, smooth=True), raw)
    assert "raw" in curve_title(False) and "smoothed" in curve_title(True)
    assert np.array_equal(np.asarray(time_strip(g)), np.asarray(time_strip(g, smooth=False)))
    assert not np.array_equal(np.asarray(time_strip(g)), np.asarray(time_strip(g, smooth=True)))


def test_pictures_are_drawn_at_a_bounded_size(tmp_path):
    tall = synthetic(600, 2600, [(2, 2)], names=("sound",))
    with Image.open(save_png(tall, tmp_path / "tall.png", strip=False)) as im:
        assert im.height == DEFAULT_MAX_SIDE and im.width == round(600 * DEFAULT_MAX_SIDE / 2600)
    with Image.open(save_png(tall, tmp_path / "small.png", strip=False, max_side=500)) as im:
        assert max(im.size) == 500
    assert max(overlay(tall, max_side=256).size) == 256
    assert overlay(tall).size == (600, 2600)  # overlay keeps the picture's own size unless asked
    # Downscaling first puts the peak where drawing first and downscaling would.
    g = synthetic(640, 480, [(20, 30)], names=("sound",))
    small = colour_strength(overlay(g, legend=False, max_side=320), HEAD_COLORS["sound"])
    y, x = np.unravel_index(np.argmax(small), small.shape)
    ex, ey = expected_pixel(g, 20, 30)
    assert abs((x + 0.5) * 2 - ex) <= 10 and abs((y + 0.5) * 2 - ey) <= 10
    with pytest.raises(InputError, match="max_side"):
        save_png(g, tmp_path / "x.png", max_side=4)


def test_a_reduced_copy_of_the_image_can_be_drawn_on():
    """A picture decoded reduced (as Pillow's JPEG draft does: 1/2, 1/4, 1/8, rounded up) still fits."""
    g = synthetic(403, 301, [(4, 5)], names=("sound",))
    reduced = g.image[:, ::4, ::4]  # 101 x 76: ceil(403 / 4) x ceil(301 / 4)
    assert overlay(g, image=reduced).size == (101, 76)
    with pytest.raises(InputError, match="same image"):
        overlay(g, image=g.image[:, :, :200])


# Peak RSS of save_png in a fresh process: ru_maxrss after the picture is in memory, then after save_png.
_RSS_SCRIPT = r"""
import resource, sys
import torch
from denseav.image import ImageGeometry
from denseav.render import save_png
from denseav.result import Grounding

def grounding(h, w):
    rgb = torch.empty((3, h, w), dtype=torch.uint8)
    for c, v in enumerate((90, 120, 150)):
        rgb[c].fill_(v)  # touch every page, so the picture counts in the baseline
    rh, rw = (224, int(224 * w / h)) if w >= h else (int(224 * h / w), 224)
    geometry = ImageGeometry((h, w), (rh, rw), (rh - rh % 8, rw - rw % 8), 8)
    maps = torch.randn(2, 6, *geometry.grid_size)
    return Grounding(maps, ("language", "sound"), torch.arange(6) * 0.18 + 0.09, 1.0, torch.ones(2), geometry,
                     1.1, image=rgb, waveform=torch.randn(17600), mask=torch.ones(6, dtype=torch.bool))

save_png(grounding(60, 80), sys.argv[3])  # warm up: fonts, lazy allocations
g = grounding(int(sys.argv[1]), int(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
save_png(g, sys.argv[3])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def _save_png_growth(height: int, width: int, out: Path) -> int:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(denseav.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(height), str(width), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return int(proc.stdout.split()[-1])


@pytest.mark.slow
def test_writing_a_big_photo_costs_less_than_the_photo(tmp_path):
    """Issue 8: a 12000 x 12000 photo was drawn at full resolution (13.5 GB peak). Now the picture is drawn at
    display size, so what save_png adds (about 0.2 GB here, mostly for drawing a 1600 x 1600 picture) stays
    below the decoded photo's own size (432 MB); drawing at full size would add over 10 GB."""
    height, width = 12000, 12000
    grown = _save_png_growth(height, width, tmp_path / "big.png")
    assert grown < 3 * height * width, (
        f"save_png added {grown / 1e6:.0f} MB for a {3 * height * width / 1e6:.0f} MB photo"
    )
