"""Tests for denseav.image: decoding, torchvision-exact preprocessing, and the inverse geometry."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _fixtures import PARITY_DIRS
from denseav.errors import InputError
from denseav.image import (
    DEFAULT_BACKGROUND,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_LONG_SIDE,
    ImageGeometry,
    crop_to_multiple,
    decode_picture,
    maps_to_original,
    preprocess_image,
    resize_short_side,
    to_rgb_uint8,
)

FIXTURES = [p for p in PARITY_DIRS if (p / "image.png").is_file()]

PATCH = 8  # the ViT patch of the published models and of the fixtures


def _picture(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 picture with some structure (not pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(yy * 7) % 256, (xx * 5) % 256, ((yy + xx) * 3) % 256], axis=-1)
    return ((base + rng.integers(0, 40, size=(h, w, 3))) % 256).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# Parity with the original pipeline
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURES, reason="no parity fixtures found")
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_resize_matches_torchvision_exactly(fixture: Path) -> None:
    from safetensors.torch import load_file

    expected = load_file(str(fixture / "expected.safetensors"))
    got = resize_short_side(to_rgb_uint8(fixture / "image.png"), 224)
    want = expected["image.resized_uint8"]
    assert got.dtype == torch.uint8
    assert got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.skipif(not FIXTURES, reason="no parity fixtures found")
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_preprocess_matches_model_input(fixture: Path) -> None:
    from safetensors.torch import load_file

    expected = load_file(str(fixture / "expected.safetensors"))
    frames = expected["image.frames"][0, 0]
    pixels, geom = preprocess_image(str(fixture / "image.png"), patch_size=PATCH)
    assert pixels.dtype == torch.float32
    assert pixels.shape == frames.shape
    torch.testing.assert_close(pixels, frames, atol=1e-6, rtol=0)
    assert geom.input_size == tuple(frames.shape[-2:])
    assert geom.resized_size == tuple(expected["image.resized_uint8"].shape[-2:])
    assert geom.grid_size == (frames.shape[-2] // 8, frames.shape[-1] // 8)


# ------------------------------------------------------------------------------------------
# Input types and colour modes
# ------------------------------------------------------------------------------------------


def test_all_input_types_agree(tmp_path: Path) -> None:
    rgb = _picture()
    path = tmp_path / "pic.png"
    Image.fromarray(rgb).save(path)
    chw = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    reference = to_rgb_uint8(path)
    assert reference.shape == (3, 37, 53) and reference.dtype == torch.uint8
    assert torch.equal(reference, chw)
    inputs = {
        "str": str(path),
        "pil": Image.open(path),
        "numpy_hwc": rgb,
        "torch_uint8": chw,
        "torch_float": chw.float() / 255,
        "numpy_float": rgb.astype(np.float32) / 255,
        "numpy_uint16": rgb.astype(np.uint16) * 257,
    }
    for name, value in inputs.items():
        assert torch.equal(to_rgb_uint8(value), reference), name
    ref_pixels, ref_geom = preprocess_image(path, patch_size=PATCH)
    for name, value in inputs.items():
        pixels, geom = preprocess_image(value, patch_size=PATCH)
        assert geom == ref_geom, name
        assert torch.equal(pixels, ref_pixels), name


def test_grayscale_inputs_agree(tmp_path: Path) -> None:
    gray = _picture()[..., 0]
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    expected = torch.from_numpy(gray)[None].expand(3, -1, -1)
    for value in (path, Image.open(path), gray, gray[..., None], torch.from_numpy(gray)[None], torch.from_numpy(gray)):
        assert torch.equal(to_rgb_uint8(value), expected)


def test_mode_1_bilevel() -> None:
    im = Image.new("1", (4, 2), 0)
    im.putpixel((1, 0), 1)
    out = to_rgb_uint8(im)
    assert out[:, 0, 1].tolist() == [255, 255, 255]
    assert out[:, 0, 0].tolist() == [0, 0, 0]


def test_rgba_junk_under_transparent_pixels_becomes_background(tmp_path: Path) -> None:
    arr = np.zeros((6, 6, 4), dtype=np.uint8)
    arr[..., :3] = (12, 200, 77)  # junk colour
    arr[..., 3] = 0
    arr[0, 0] = (10, 20, 30, 255)  # opaque pixel keeps its colour
    arr[0, 1] = (0, 0, 0, 128)  # half-transparent black over white -> round(255 * 127 / 255) = 127
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, mode="RGBA").save(path)
    for value in (path, arr, torch.from_numpy(arr).permute(2, 0, 1)):
        out = to_rgb_uint8(value)
        assert out[:, 0, 0].tolist() == [10, 20, 30]
        assert out[:, 0, 1].tolist() == [127, 127, 127]
        assert (out[:, 1:, :] == 255).all()
    black = to_rgb_uint8(path, background=(0, 0, 0))
    assert (black[:, 1:, :] == 0).all()
    assert black[:, 0, 1].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="background"):
        to_rgb_uint8(path, background=(0, 0))


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    im.putpixel((0, 0), 1)
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)  # index 0 (red) is transparent
    out = to_rgb_uint8(path)
    assert out[:, 0, 0].tolist() == [0, 0, 255]
    assert out[:, 3, 3].tolist() == list(DEFAULT_BACKGROUND)
    # Palette without transparency: plain colour lookup.
    path2 = tmp_path / "pal_opaque.png"
    im.save(path2)
    out2 = to_rgb_uint8(path2)
    assert out2[:, 3, 3].tolist() == [255, 0, 0]


def test_la_mode(tmp_path: Path) -> None:
    arr = np.zeros((3, 3, 2), dtype=np.uint8)
    arr[..., 0] = 50
    arr[..., 1] = 255
    arr[1, 1] = (200, 0)  # transparent with junk grey
    path = tmp_path / "la.png"
    Image.fromarray(arr, mode="LA").save(path)
    assert Image.open(path).mode == "LA"
    out = to_rgb_uint8(path)
    assert out[:, 0, 0].tolist() == [50, 50, 50]
    assert out[:, 1, 1].tolist() == [255, 255, 255]
    assert torch.equal(to_rgb_uint8(arr), out)


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    values = np.array([[0, 128, 129, 257, 385, 386, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = to_rgb_uint8(path)
    expected = np.round(values.astype(np.float64) / 257).astype(np.uint8)
    assert out[0].numpy().tolist() == expected.tolist()
    assert expected.tolist() == [[0, 0, 1, 1, 1, 2, 128, 255]]
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert torch.equal(to_rgb_uint8(values), out)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    path = tmp_path / "cmyk.jpg"
    im.save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = to_rgb_uint8(path)
    assert out.shape == (3, 16, 16)
    r, g, b = out.float().mean(dim=(1, 2)).tolist()
    assert r > 240 and g < 15 and b < 15


def test_exif_rotation_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)  # 20 high, 40 wide
    arr[:, :20] = (255, 0, 0)  # left half red
    arr[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = to_rgb_uint8(path)
    assert out.shape == (3, 40, 20)
    # After a 90 degree clockwise turn the former left half (red) is on top.
    assert out[0, :15].float().mean() > 200 and out[2, :15].float().mean() < 60
    assert out[2, 25:].float().mean() > 200 and out[0, 25:].float().mean() < 60


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(InputError, match="not found") as info:
        to_rgb_uint8(missing)
    assert str(missing) in str(info.value)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("this is not an image\n")
    with pytest.raises(InputError, match="could not read an image from"):
        preprocess_image(path, patch_size=PATCH)


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_picture(64, 64)).save(buf, format="PNG")
    data = buf.getvalue()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="could not read an image from"):
        to_rgb_uint8(path)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        to_rgb_uint8(tmp_path)


def test_tiny_image_native_resolution_is_rejected() -> None:
    tiny = np.zeros((5, 5, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="8x8"):
        preprocess_image(tiny, image_size=None, patch_size=PATCH)
    # With the default size it is upscaled and therefore fine.
    pixels, geom = preprocess_image(tiny, patch_size=PATCH)
    assert pixels.shape == (3, 224, 224) and geom.grid_size == (28, 28)
    # Native resolution, one side too short.
    with pytest.raises(InputError, match="at least 8x8"):
        preprocess_image(np.zeros((7, 100), dtype=np.uint8), image_size=None, patch_size=PATCH)


def test_extremely_elongated_image_is_rejected() -> None:
    # 2 x 2000 upscaled to a 224 short side would be 224 x 224000.
    with pytest.raises(InputError, match="crop"):
        preprocess_image(np.zeros((2, 2000, 3), dtype=np.uint8), patch_size=PATCH)
    with pytest.raises(InputError, match=str(MAX_LONG_SIDE)):
        preprocess_image(np.zeros((8, MAX_LONG_SIDE + 8), dtype=np.uint8), image_size=None, patch_size=PATCH)


@pytest.mark.parametrize("bad", [100, 0, -8, 7, 225, True, 224.0, "224"])
def test_bad_image_size(bad: object) -> None:
    with pytest.raises(InputError, match="multiple"):
        preprocess_image(np.zeros((32, 32, 3), dtype=np.uint8), image_size=bad, patch_size=PATCH)  # type: ignore[arg-type]


def test_bad_image_size_suggests_neighbours() -> None:
    with pytest.raises(InputError, match="image_size=96 or image_size=104"):
        preprocess_image(np.zeros((32, 32, 3), dtype=np.uint8), image_size=100, patch_size=PATCH)


@pytest.mark.parametrize(
    "value, pattern",
    [
        (np.zeros((10, 10, 5), dtype=np.uint8), "accepted"),
        (np.zeros((3, 10, 10), dtype=np.uint8), "channels-first"),
        (np.zeros((2, 10, 10, 3), dtype=np.uint8), "one image at a time"),
        (np.zeros((10,), dtype=np.uint8), "accepted"),
        (np.zeros((10, 10, 3), dtype=np.int64), "dtype"),
        (np.zeros((10, 10, 3), dtype=bool), "dtype"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
        (np.full((10, 10, 3), np.nan, dtype=np.float32), "NaN"),
        (np.full((10, 10, 3), 200.0, dtype=np.float32), "divide by 255"),
        (torch.zeros(10, 10, 3, dtype=torch.uint8), "channels-last"),
        (torch.zeros(1, 3, 10, 10, dtype=torch.uint8), "one image at a time"),
        (torch.zeros(5, 10, 10, dtype=torch.uint8), "accepted"),
        (torch.zeros(3, 0, 10, dtype=torch.uint8), "empty"),
        (torch.zeros(3, 10, 10, dtype=torch.int64), "dtype"),
        (torch.full((3, 4, 4), float("nan")), "NaN"),
        (Image.new("RGB", (0, 0)), "empty"),
        (12345, "cannot use"),
    ],
)
def test_bad_arrays(value: object, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        to_rgb_uint8(value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Resize / crop details
# ------------------------------------------------------------------------------------------


def test_resize_sizes_follow_torchvision_truncation() -> None:
    img = torch.zeros(3, 213, 330, dtype=torch.uint8)
    assert resize_short_side(img, 224).shape == (3, 224, 347)  # int(224 * 330 / 213) = 347
    tall = torch.zeros(2, 3, 301, 250, dtype=torch.uint8)
    assert resize_short_side(tall, 224).shape == (2, 3, 269, 224)
    same = torch.zeros(3, 224, 300, dtype=torch.uint8)
    assert resize_short_side(same, 224) is same  # unchanged when the size already fits
    with pytest.raises(InputError):
        resize_short_side(img.float(), 224)


def test_crop_to_multiple_is_top_left() -> None:
    img = torch.arange(3 * 19 * 21, dtype=torch.int32).view(3, 19, 21)
    out = crop_to_multiple(img, 8)
    assert out.shape == (3, 16, 16)
    assert torch.equal(out, img[:, :16, :16])


def test_normalisation_constants() -> None:
    white = np.full((16, 16, 3), 255, dtype=np.uint8)
    pixels, _ = preprocess_image(white, image_size=None, patch_size=PATCH)
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(pixels[:, 0, 0], torch.tensor(expected), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------
# maps_to_original geometry
# ------------------------------------------------------------------------------------------

SIZES = [
    (301, 250),
    (250, 301),
    (213, 330),
    (330, 213),
    (640, 480),
    (100, 1000),
    (1000, 100),
    (37, 53),
    (224, 224),
    (5, 5),
]


def _expected_box(g: int, n_cells: int, resized: int, original: int) -> tuple[float, float]:
    """Original-pixel interval covered by patch g; the last patch also owns the cropped strip."""
    start = 8 * g
    end = resized if g == n_cells - 1 else 8 * g + 8
    scale = original / resized
    return start * scale, end * scale


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_peak_lands_in_its_patch(size: tuple[int, int]) -> None:
    h0, w0 = size
    _, geom = preprocess_image(np.zeros((h0, w0, 3), dtype=np.uint8), patch_size=PATCH, max_long_side=4096)
    h, w = geom.grid_size
    hr, wr = geom.resized_size
    cells = {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2), (h // 3, (2 * w) // 3)}
    maps = torch.zeros(len(cells), h, w)
    for k, (gy, gx) in enumerate(sorted(cells)):
        maps[k, gy, gx] = 1.0
    for mode in ("bilinear", "bicubic"):
        out = maps_to_original(maps, geom, mode=mode)
        assert out.shape == (len(cells), h0, w0) and out.dtype == torch.float32
        for k, (gy, gx) in enumerate(sorted(cells)):
            plane = out[k]
            # Sampling is at original-pixel centres. When original pixels are larger than a patch
            # (strong upscaling, e.g. 5x5 -> 224x224), a patch between two centres is not sampled
            # at all; otherwise every patch must show up.
            if hr / h0 <= 8 and wr / w0 <= 8:
                assert plane.max() > 0.5, (mode, gy, gx)
            if plane.max() <= 0:
                continue
            i, j = divmod(int(plane.argmax()), w0)
            y0, y1 = _expected_box(gy, h, hr, h0)
            x0, x1 = _expected_box(gx, w, wr, w0)
            # Pixel (i, j) covers [i, i+1) x [j, j+1): it must overlap the patch's region,
            # and where pixels are smaller than patches its centre must lie inside it.
            assert i + 1 > y0 and i < y1, (mode, gy, gx, i, y0, y1)
            assert j + 1 > x0 and j < x1, (mode, gy, gx, j, x0, x1)
            if hr / h0 <= 8:
                assert y0 <= i + 0.5 < y1, (mode, gy, i, y0, y1)
            if wr / w0 <= 8:
                assert x0 <= j + 0.5 < x1, (mode, gx, j, x0, x1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_constant_map_stays_constant(size: tuple[int, int]) -> None:
    _, geom = preprocess_image(np.zeros((*size, 3), dtype=np.uint8), patch_size=PATCH, max_long_side=4096)
    maps = torch.full((2, 3, *geom.grid_size), 0.375)
    for mode in ("bilinear", "bicubic", "nearest"):
        out = maps_to_original(maps, geom, mode=mode)
        assert out.shape == (2, 3, *size)
        torch.testing.assert_close(out, torch.full_like(out, 0.375), atol=1e-6, rtol=0)


def test_sampling_convention_exact() -> None:
    # Identity geometry (224x224, no resize, no crop): pixel j samples grid coordinate (j + 0.5) / 8 - 0.5.
    geom = ImageGeometry(original_size=(224, 224), resized_size=(224, 224), input_size=(224, 224), patch_size=PATCH)
    ramp = torch.arange(28, dtype=torch.float64).view(1, 28).expand(28, 28)
    out = maps_to_original(ramp, geom)
    assert out.dtype == torch.float64
    expected = ((torch.arange(224, dtype=torch.float64) + 0.5) / 8 - 0.5).clamp(0, 27)
    torch.testing.assert_close(out[0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 0], torch.zeros(224, dtype=torch.float64))


def test_cropped_strip_gets_edge_values() -> None:
    # 213x330 -> resized 224x347 -> input 224x344: the right 3 resized columns were cropped.
    _, geom = preprocess_image(np.zeros((213, 330, 3), dtype=np.uint8), patch_size=PATCH, max_long_side=4096)
    h, w = geom.grid_size
    maps = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w).contiguous()
    out = maps_to_original(maps, geom)
    last_centre = (w - 1) * 8 + 4
    x_r = (torch.arange(330, dtype=torch.float64) + 0.5) * geom.resized_size[1] / 330
    beyond = x_r >= last_centre
    assert beyond.any()
    assert (out[:, beyond] == w - 1).all()


def test_maps_shape_mismatch() -> None:
    geom = ImageGeometry(original_size=(100, 100), resized_size=(224, 224), input_size=(224, 224), patch_size=PATCH)
    with pytest.raises(InputError, match="grid"):
        maps_to_original(torch.zeros(27, 28), geom)
    with pytest.raises(InputError, match="mode"):
        maps_to_original(torch.zeros(28, 28), geom, mode="area")


def test_chunking_matches_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import denseav.image as image_mod

    _, geom = preprocess_image(np.zeros((61, 47, 3), dtype=np.uint8), patch_size=PATCH, max_long_side=4096)
    maps = torch.randn(5, 2, *geom.grid_size, generator=torch.Generator().manual_seed(0))
    full = maps_to_original(maps, geom)
    monkeypatch.setattr(image_mod, "_CHUNK_ELEMENTS", 61 * 47 * 3)  # 3 planes per call
    chunked = maps_to_original(maps, geom)
    assert torch.equal(full, chunked)


def _photo(path: Path, size: tuple[int, int], orientation: int | None = None) -> None:
    """A smooth, detailed synthetic photo (gradients + rings) saved as a JPEG."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(x - w / 3, y - h / 2)
    rgb = np.stack([x / w * 255, y / h * 255, 127 + 120 * np.sin(r / 40)], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=92, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [None, 6])
def test_large_jpeg_is_decoded_reduced_with_full_size_geometry(tmp_path: Path, orientation: int | None) -> None:
    path = tmp_path / "big.jpg"
    _photo(path, (6000, 4000), orientation)
    reduced, full = decode_picture(path, draft_long_side=2048)
    upright = (4000, 6000) if orientation is None else (6000, 4000)
    assert full == upright
    assert max(reduced.shape[1:]) >= 2048 and max(reduced.shape[1:]) <= 3000  # 1/2 scale, not the full 6000
    assert reduced.shape[1] / reduced.shape[2] == pytest.approx(full[0] / full[1], rel=1e-3)
    pixels, geom = preprocess_image(reduced, patch_size=PATCH, original_size=full)
    exact, exact_geom = preprocess_image(path, patch_size=PATCH)  # decoded whole
    assert geom == exact_geom  # sizes, crop and pixel mapping are those of the full photo
    diff = (pixels - exact).abs() * 0.226 * 255  # back to 8-bit levels (std ~0.226)
    assert float(diff.mean()) < 1.0 and float(diff.max()) < 12


def test_small_jpeg_and_png_are_decoded_whole(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    _photo(path, (3000, 2000))
    rgb, full = decode_picture(path, draft_long_side=2048)
    assert full == (2000, 3000) and tuple(rgb.shape[1:]) == full
