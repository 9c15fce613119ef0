"""Image loading, DenseAV preprocessing, and mapping patch-grid maps back onto the original image.

The preprocessing reproduces the original DenseAV demo exactly:

    x = Normalize(crop_to_divisor(Resize(224, BILINEAR)(frame_uint8_chw), 8) / 255)

without importing torchvision (it is deliberately not a dependency). ``maps_to_original`` is the
inverse geometry: it puts a map living on the 8x8 patch grid back onto the pixels of the picture
the user passed in, undoing both the resize and the top-left crop.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, InputTypeError
from .limits import MAX_LONG_SIDE
from .paths import check_input_file

__all__ = [
    "DEFAULT_BACKGROUND",
    "DEFAULT_IMAGE_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_LONG_SIDE",
    "ImageGeometry",
    "ImageInput",
    "PixelSampler",
    "crop_to_multiple",
    "decode_picture",
    "maps_to_original",
    "preprocess_image",
    "resize_short_side",
    "resize_to",
    "sampling_grid",
    "to_rgb_uint8",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# The original demo resizes the shorter side to 224 (the published backbone's training resolution). Callers
# that hold a model use its `config.image_encoder.training_size` instead; this is the default for the rest.
DEFAULT_IMAGE_SIZE: int = 224
# Transparent pixels are composited onto white. The colour stored under fully transparent pixels
# is often junk (black, or leftovers from an editor), so it must never reach the model as is.
DEFAULT_BACKGROUND: tuple[int, int, int] = (255, 255, 255)
ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray, torch.Tensor]

_ACCEPTED_ARRAYS = (
    "numpy arrays of shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) "
    "(grayscale, grayscale+alpha, RGB, RGBA; channels last) with dtype uint8, uint16, "
    "or float in [0, 1]"
)
_ACCEPTED_TENSORS = (
    "torch tensors of shape (C, H, W) with C = 1, 2, 3 or 4 (grayscale, grayscale+alpha, RGB, "
    "RGBA; channels first) or (H, W), with dtype uint8, uint16, or float in [0, 1]"
)


# --------------------------------------------------------------------------------------------
# Decoding to RGB uint8
# --------------------------------------------------------------------------------------------


def _scale_16bit(x: torch.Tensor) -> torch.Tensor:
    """0..65535 -> 0..255 as round(x / 257), in exact integer arithmetic.

    257 is odd, so x / 257 is never exactly .5 and (x + 128) // 257 equals round(x / 257).
    """
    x = x.to(torch.int32).clamp_(0, 65535)
    return torch.div(x + 128, 257, rounding_mode="floor").to(torch.uint8)


def _scale_float(x: torch.Tensor, what: str) -> torch.Tensor:
    """Float in [0, 1] -> uint8 as round(x * 255) (half to even, like torchvision's casts)."""
    if not torch.is_floating_point(x):
        raise AssertionError("internal: _scale_float needs a float tensor")
    x = x.to(torch.float64)
    if x.numel() == 0:
        return x.to(torch.uint8)
    if torch.isnan(x).any():
        raise InputError(f"{what} contains NaN values; replace them (e.g. with np.nan_to_num) before passing it.")
    lo, hi = float(x.min()), float(x.max())
    # A tiny tolerance so values such as 1.0000001 from arithmetic are not rejected.
    if lo < -1e-4 or hi > 1 + 1e-4:
        hint = " - it looks like 0..255 data: divide by 255 or cast to uint8" if hi <= 255 and lo >= 0 else ""
        raise InputError(
            f"{what} is a float image with values in [{lo:g}, {hi:g}], but float images must be in [0, 1]{hint}."
        )
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def _finish_channels(x: torch.Tensor, background: tuple[int, int, int]) -> torch.Tensor:
    """uint8 [C, H, W] with C in {1, 2, 3, 4} -> uint8 [3, H, W]: grey to RGB, alpha composited."""
    c = x.shape[0]
    if c in (2, 4):
        colour, alpha = x[:-1].to(torch.int32), x[-1:].to(torch.int32)
        if colour.shape[0] == 1:
            colour = colour.expand(3, -1, -1)
        bg = torch.tensor(background, dtype=torch.int32).view(3, 1, 1)
        # Alpha-weighted average, rounded to nearest: N / 255 is never exactly .5 (255 is odd),
        # so (N + 127) // 255 is round(N / 255).
        n = colour * alpha + bg * (255 - alpha)
        return torch.div(n + 127, 255, rounding_mode="floor").to(torch.uint8)
    if c == 1:
        return x.expand(3, -1, -1).contiguous()
    if c == 3:
        return x.contiguous()
    raise AssertionError(f"internal: unexpected channel count {c}")


def _check_background(background: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        bg = tuple(int(v) for v in background)
    except TypeError:
        bg = ()
    if len(bg) != 3 or not all(0 <= v <= 255 for v in bg):
        raise InputError(
            f"background must be an (R, G, B) tuple of integers in 0..255, got {background!r}; "
            "e.g. (255, 255, 255) for white."
        )
    return (int(bg[0]), int(bg[1]), int(bg[2]))


def _tensor_chw_to_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    """A [C, H, W] tensor of any accepted dtype -> uint8 [C, H, W] (channel count unchanged)."""
    if x.dtype == torch.uint8:
        return x
    if x.dtype == getattr(torch, "uint16", None):  # torch.uint16 exists from torch 2.3
        return _scale_16bit(x)
    if torch.is_floating_point(x):
        return _scale_float(x, what)
    raise InputError(
        f"{what} has dtype {x.dtype}, which is not accepted; use uint8 (0..255), uint16 (0..65535) "
        "or float in [0, 1] (e.g. convert with .astype(np.uint8) / .to(torch.uint8) if the values are 0..255)."
    )


def _from_numpy(arr: np.ndarray, what: str = "the numpy array") -> torch.Tensor:
    """HW / HWC numpy array -> uint8 [C, H, W]."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4):
            hint = " It looks channels-first; pass arr.transpose(1, 2, 0)."
        elif arr.ndim == 4:
            hint = " Pass one image at a time."
        raise InputError(f"{what} has shape {tuple(arr.shape)}; accepted are {_ACCEPTED_ARRAYS}.{hint}")
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "u" and size == 2:  # uint16 of either byte order
        return _scale_16bit(torch.from_numpy(arr.astype(np.int32)).permute(2, 0, 1))
    if kind == "u" and size == 1:
        # Arrays from PIL are read-only; torch warns about wrapping those, so copy them.
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    elif kind == "f":
        # float64 keeps the rounding exact and covers float16, which lacks some CPU kernels.
        t = torch.from_numpy(arr.astype(np.float64))
    else:
        raise InputError(
            f"{what} has dtype {arr.dtype}, which is not accepted; accepted are {_ACCEPTED_ARRAYS}. "
            "If the values are 0..255, convert with arr.astype(np.uint8)."
        )
    t = t.permute(2, 0, 1)
    return _tensor_chw_to_uint8(t, what)


def _from_pil(im: Image.Image, what: str) -> torch.Tensor:
    """Any PIL image -> uint8 [C, H, W] with C in {1, 2, 3, 4}."""
    mode = im.mode
    bands = im.getbands()
    has_alpha = "A" in bands or "a" in bands or "transparency" in im.info
    try:
        if mode.startswith("I;16") or mode == "I":
            # Pillow's own convert("L") clips 16-bit values instead of scaling them, so scale here.
            # Mode "I" (32-bit) is what older Pillow versions give for 16-bit PNGs: treat it as 0..65535.
            return _scale_16bit(torch.from_numpy(np.asarray(im).astype(np.int32))[None])
        if mode == "F":
            # No convention exists for float PIL images: take [0, 1] when the values fit,
            # else 0..255 (what convert("F") of an 8-bit image produces).
            values = torch.from_numpy(np.asarray(im).astype(np.float64))[None]
            if torch.isnan(values).any():
                raise InputError(f"{what} (mode F) contains NaN values; replace them before passing it.")
            top = float(values.max()) if values.numel() else 0.0
            if top > 1 + 1e-4 and float(values.min()) >= 0 and top <= 255:
                values = values / 255.0
            return _scale_float(values, what)
        if has_alpha:
            # Covers RGBA, LA, PA, RGBa (premultiplied), P/L/RGB with a transparency key.
            im = im.convert("LA") if mode == "LA" else im.convert("RGBA")
        elif mode == "1":
            im = im.convert("L")
        elif mode not in ("L", "RGB"):
            # P, CMYK, YCbCr, LAB, HSV, RGBX, ...: Pillow's converters know the colour spaces.
            im = im.convert("RGB")
        arr = np.asarray(im)
    except InputError:
        raise
    except ValueError as exc:  # Pillow has no converter for this mode (e.g. "La")
        raise InputError(
            f"could not convert {what} (PIL mode {mode!r}) to RGB: {exc}; "
            "convert it to RGB or RGBA yourself first, e.g. image.convert('RGBA')."
        ) from exc
    except (OSError, SyntaxError) as exc:  # lazily decoded data turned out to be broken
        raise InputError(
            f"could not read an image from {what}: {exc}; the file may be truncated or corrupt - "
            "re-export or re-download it."
        ) from exc
    if arr.dtype != np.uint8:
        raise InputError(f"could not read an image from {what}: unexpected pixel type {arr.dtype} for mode {mode!r}.")
    return _from_numpy(arr, what)


def _rewarn_large(caught: list[warnings.WarningMessage], path: Path, size: tuple[int, int]) -> None:
    """Pillow's decompression-bomb warning, said in our words (other warnings pass through unchanged)."""
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            megapixels = size[0] * size[1] / 1e6
            warnings.warn(
                f"'{path}' is {size[0]}x{size[1]} pixels ({megapixels:.0f} MP, {3 * megapixels / 1000:.1f} GB "
                "decoded); the model only needs its short side at 224 pixels, so downscaling the file first "
                "saves time and memory",
                UserWarning,
                stacklevel=4,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _draft_jpeg(im: Image.Image, long_side: int) -> None:
    """Let Pillow decode a JPEG reduced (DCT scaling by 1/2, 1/4 or 1/8) while its long side stays >= long_side."""
    if im.format != "JPEG" or max(im.size) <= 2 * long_side:
        return
    scale = long_side / max(im.size)
    im.draft("RGB", (math.ceil(im.size[0] * scale), math.ceil(im.size[1] * scale)))


def _upright_size(im: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of a stored (W, H) size once the EXIF orientation is applied (5 to 8 turn the picture by 90 deg)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: exif_transpose will leave the picture as stored too
        orientation = 1
    w, h = size
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _open_path(path: str | os.PathLike[str], draft_long_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded picture (upright) and its full (H, W), which differs from the picture's own size only when a
    large JPEG was decoded reduced (`draft_long_side`)."""
    p = check_input_file(path, "image")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            im = Image.open(p)
            full_size = im.size
            if draft_long_side is not None:
                _draft_jpeg(im, draft_long_side)
            im.load()  # decode now so truncated / corrupt files fail here, with the path in the message
        _rewarn_large(caught, p, im.size)
    except UnidentifiedImageError as exc:
        raise InputError(
            f"could not read an image from '{p}': not a recognised image format ({exc}); "
            "pass a PNG, JPEG or another format Pillow can open."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"could not read an image from '{p}': {exc}; downscale it first, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file."
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(
            f"could not read an image from '{p}': {exc}; the file may be truncated or corrupt - "
            "re-export or re-download it."
        ) from exc
    try:
        # Phone photos are stored sideways with an EXIF orientation tag; show them the way viewers do.
        transposed = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not make a readable picture unreadable
        transposed = None
    if transposed is None:
        return im, (full_size[1], full_size[0])
    return transposed, _upright_size(im, full_size)


def to_rgb_uint8(
    image: ImageInput,
    *,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> torch.Tensor:
    """Decode or convert ``image`` to an RGB uint8 tensor of shape [3, H, W].

    Accepted inputs:

    * a path (str or os.PathLike): opened with Pillow, EXIF orientation applied, first frame only;
    * a PIL image (used as given; EXIF orientation is NOT applied - use ImageOps.exif_transpose);
    * a numpy array, channels last: (H, W), (H, W, 1), (H, W, 2), (H, W, 3), (H, W, 4);
    * a torch tensor, channels first: (C, H, W) with C in 1..4, or (H, W).

    Arrays and tensors may be uint8 (0..255), uint16 (0..65535, scaled by round(x / 257)) or
    float in [0, 1] (scaled by round(x * 255)). Grayscale becomes RGB; palette, CMYK, YCbCr and
    16-bit images are converted; any alpha channel (or transparency key) is composited over
    ``background`` (alpha-weighted, rounded), since the colour under transparent pixels is junk.

    Raises:
        InputError: missing or unreadable files, unsupported shapes / dtypes, NaNs, empty images.
    """
    return decode_picture(image, background=background)[0]


def decode_picture(
    image: ImageInput,
    *,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    draft_long_side: int | None = None,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """`to_rgb_uint8`, and the picture's full (H, W).

    draft_long_side: a JPEG file more than twice this long is decoded reduced by Pillow (1/2, 1/4 or 1/8 scale,
        keeping the long side >= draft_long_side): the RGB tensor is then smaller than the full size returned
        beside it, and takes a fraction of the time and memory. Other inputs are decoded whole.
    """
    bg = _check_background(background)
    full_size: tuple[int, int] | None = None
    if isinstance(image, (str, os.PathLike)):
        what = f"'{os.fspath(image)}'"
        picture, full_size = _open_path(image, draft_long_side)
        chw = _from_pil(picture, what)
    elif isinstance(image, Image.Image):
        what = "the PIL image"
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InputError(
                f"could not read an image from the PIL image: {exc}; the file it came from may be truncated or corrupt."
            ) from exc
        chw = _from_pil(image, what)
    elif isinstance(image, np.ndarray):
        what = "the numpy array"
        if image.size == 0:
            raise InputError(f"{what} is empty (shape {tuple(image.shape)}); pass an image with at least one pixel.")
        chw = _from_numpy(image, what)
    elif isinstance(image, torch.Tensor):
        what = "the tensor"
        t = image.detach().to("cpu")
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or t.shape[0] not in (1, 2, 3, 4):
            hint = ""
            if t.ndim == 3 and t.shape[-1] in (1, 2, 3, 4):
                hint = " It looks channels-last; pass tensor.permute(2, 0, 1)."
            elif t.ndim == 4:
                hint = " Pass one image at a time (drop the batch dimension)."
            raise InputError(f"{what} has shape {tuple(image.shape)}; accepted are {_ACCEPTED_TENSORS}.{hint}")
        if t.numel() == 0:
            raise InputError(f"{what} is empty (shape {tuple(image.shape)}); pass an image with at least one pixel.")
        chw = _tensor_chw_to_uint8(t, what)
    else:
        raise InputError(
            f"cannot use an object of type {type(image).__name__} as an image; pass a file path, "
            "a PIL image, a numpy array (H, W[, C]) or a torch tensor (C, H, W)."
        )
    if chw.shape[1] == 0 or chw.shape[2] == 0:
        raise InputError(
            f"{what} is empty ({chw.shape[1]}x{chw.shape[2]} pixels); pass an image with at least one pixel."
        )
    rgb = _finish_channels(chw, bg)
    return rgb, full_size or (int(rgb.shape[1]), int(rgb.shape[2]))


# --------------------------------------------------------------------------------------------
# Resize and crop (torchvision-equivalent)
# --------------------------------------------------------------------------------------------


def _resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's _compute_resized_output_size for an int size: short -> size, long truncated."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)  # float division then truncation, as torchvision
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize_short_side(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 image [3, H, W] (or batch [N, 3, H, W]) so its shorter side is ``size``.

    Bit-exact reimplementation of torchvision ``T.Resize(size, BILINEAR, antialias=True)`` on a
    uint8 tensor: the longer side becomes int(size * long / short); the interpolation runs in
    float32 (antialiased bilinear, half-pixel centres), then is rounded half-to-even and cast back.
    (torch's native uint8 antialias kernel differs by 1 level on ~10-20% of pixels, so it is not
    used.) When the output size equals the input size the input is returned unchanged.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InputError(f"size must be a positive integer, got {size!r}.")
    if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.ndim not in (3, 4):
        desc = (
            f"{img.dtype} tensor of shape {tuple(img.shape)}" if isinstance(img, torch.Tensor) else type(img).__name__
        )
        raise InputError(
            f"resize_short_side needs a uint8 tensor [3, H, W] or [N, 3, H, W], got a {desc}; use to_rgb_uint8 first."
        )
    h, w = int(img.shape[-2]), int(img.shape[-1])
    return resize_to(img, _resized_size(h, w, size))


def resize_to(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`resize_short_side`'s arithmetic to an exact (H, W): a uint8 [3, H, W] or [N, 3, H, W] image."""
    out_h, out_w = size
    if (out_h, out_w) == tuple(img.shape[-2:]):
        return img
    x = img if img.ndim == 4 else img[None]
    y = F.interpolate(x.to(torch.float32), size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
    # torch.round is half-to-even, which is what torchvision's float -> uint8 cast does.
    y = torch.round(y).clamp_(0, 255).to(torch.uint8)
    return y if img.ndim == 4 else y[0]


def crop_to_multiple(img: torch.Tensor, multiple: int) -> torch.Tensor:
    """Keep the top-left (multiple * floor(H / multiple), multiple * floor(W / multiple)) pixels.

    Top-left anchored like the original ``crop_to_divisor``: the cut-off strip is at the bottom
    and right, which ``maps_to_original`` relies on.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple <= 0:
        raise InputError(f"multiple must be a positive integer, got {multiple!r}.")
    h, w = img.shape[-2], img.shape[-1]
    return img[..., : h - h % multiple, : w - w % multiple]


# --------------------------------------------------------------------------------------------
# Full preprocessing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageGeometry:
    """Sizes (height, width) of an image through preprocessing, to map results back onto it."""

    original_size: tuple[int, int]  # (H0, W0): the picture as passed in (after EXIF rotation)
    resized_size: tuple[int, int]  # (Hr, Wr): after the short-side resize
    input_size: tuple[int, int]  # (Hc, Wc): after the top-left crop to a multiple of the patch size
    patch_size: int

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) of the patch grid the model's image features live on."""
        return self.input_size[0] // self.patch_size, self.input_size[1] // self.patch_size

    def grid_to_pixel(self, gy: int, gx: int) -> tuple[float, float]:
        """(x, y) in original-image pixels of the centre of patch (gy, gx).

        The crop is anchored top-left, so only the resize needs undoing.
        """
        h0, w0 = self.original_size
        hr, wr = self.resized_size
        p = self.patch_size
        return (gx + 0.5) * p * w0 / wr, (gy + 0.5) * p * h0 / hr


def _check_image_size(image_size: int | None, patch_size: int) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise InputTypeError(f"image_size must be a positive multiple of {patch_size} or None, got {image_size!r}.")
    if image_size <= 0 or image_size % patch_size:
        lower = max(patch_size, image_size // patch_size * patch_size)
        upper = max(patch_size, -(-image_size // patch_size) * patch_size)
        suggestion = f"image_size={lower}" if lower == upper else f"image_size={lower} or image_size={upper}"
        raise InputError(
            f"image_size={image_size} is not a positive multiple of the model's patch size {patch_size}; "
            f"use {suggestion}, or image_size=None to keep the native resolution."
        )


def _check_input_size(
    original: tuple[int, int], resized: tuple[int, int], image_size: int | None, patch_size: int, max_long_side: int
) -> None:
    """Refuse sizes the model cannot take (under one patch) or should not (over the long-side limit), before any
    pixel is resized, so a pathological aspect ratio never allocates or computes anything large."""
    (h0, w0), (hr, wr) = original, resized
    how = "at its native resolution" if image_size is None else f"after resizing the shorter side to {image_size}"
    if max(hr, wr) > max_long_side:
        raise InputError(
            f"the image ({w0}x{h0} pixels, WxH) would be a {wr}x{hr} model input {how}, longer than the limit of "
            f"{max_long_side} pixels (the backbone's cost grows with the square of the patch count); crop it to a "
            "less elongated region, or raise the limit on purpose with max_long_side= (CLI: --max-long-side)."
        )
    if hr < patch_size or wr < patch_size:
        raise InputError(
            f"the image is too small: {wr}x{hr} pixels (WxH) {how}, but the model needs at least "
            f"{patch_size}x{patch_size} pixels (one patch) in each dimension; pass a larger image_size to upscale "
            "it, or use a larger image."
        )


def preprocess_image(
    image: ImageInput,
    *,
    patch_size: int,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    max_long_side: int = MAX_LONG_SIDE,
    original_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, ImageGeometry]:
    """Turn an image into DenseAV's model input and remember the geometry.

    original_size: the picture's full (H, W) when `image` is a reduced decode of it (see `decode_picture`): sizes
    and the geometry are then those of the full picture, and the reduced one is resized straight to them.

    Steps (as the original demo): to RGB uint8 -> shorter side resized to ``image_size``
    (None keeps the native resolution) -> top-left crop to a multiple of ``patch_size`` -> / 255 ->
    ImageNet normalisation.

    Returns:
        (pixels, geometry): float32 [3, Hc, Wc] and the ``ImageGeometry`` needed by
        ``maps_to_original``.

    Raises:
        InputError: unreadable images, image_size not a positive multiple of the patch size, images smaller
        than one patch, or a longer side above ``max_long_side`` after resizing.
    """
    _check_image_size(image_size, patch_size)
    rgb = to_rgb_uint8(image, background=background)
    h0, w0 = original_size or (int(rgb.shape[1]), int(rgb.shape[2]))
    hr, wr = (h0, w0) if image_size is None else _resized_size(h0, w0, image_size)
    _check_input_size((h0, w0), (hr, wr), image_size, patch_size, max_long_side)
    resized = resize_to(rgb, (hr, wr))
    cropped = crop_to_multiple(resized, patch_size)
    # Same operations and order as torchvision's Normalize (sub then div by float32 tensors),
    # so results match the original bit for bit.
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    pixels = (cropped / 255).sub_(mean).div_(std)
    geometry = ImageGeometry(
        original_size=(h0, w0),
        resized_size=(hr, wr),
        input_size=(int(cropped.shape[1]), int(cropped.shape[2])),
        patch_size=patch_size,
    )
    return pixels, geometry


# --------------------------------------------------------------------------------------------
# Patch grid -> original pixels
# --------------------------------------------------------------------------------------------

# Planes (leading-dim entries) per grid_sample call; bounds the temporary memory of one call.
_CHUNK_ELEMENTS = 1 << 24


def sampling_grid(
    geometry: ImageGeometry, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The `grid_sample` grid [1, H0, W0, 2] ((x, y) order) that `maps_to_original` samples the patch grid
    with. Build it once to sample many maps of one geometry (a video's frames): at 1080p building it costs
    about twice the sampling."""
    h, w = geometry.grid_size
    h0, w0 = geometry.original_size
    hr, wr = geometry.resized_size
    p = geometry.patch_size
    # Normalised coordinates for grid_sample(align_corners=False): x_n = 2 * (x_r / p) / w - 1
    # unnormalises to x_r / p - 0.5, the continuous grid coordinate. Computed in float64, per row and column.
    y_r = (torch.arange(h0, dtype=torch.float64, device=device) + 0.5) * (hr / h0)
    x_r = (torch.arange(w0, dtype=torch.float64, device=device) + 0.5) * (wr / w0)
    y_n = (2 * (y_r / p) / h - 1).to(dtype)
    x_n = (2 * (x_r / p) / w - 1).to(dtype)
    return torch.stack((x_n.view(1, w0).expand(h0, w0), y_n.view(h0, 1).expand(h0, w0)), dim=-1)[None]


def maps_to_original(
    maps: torch.Tensor,
    geometry: ImageGeometry,
    *,
    mode: str = "bilinear",
    grid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Map [..., h, w] values on the patch grid to [..., H0, W0] on the original image's pixels.

    Original pixel (i, j), centre (i + 0.5, j + 0.5), sits at resized coordinates
    y_r = (i + 0.5) * Hr / H0, x_r = (j + 0.5) * Wr / W0 (the half-pixel-centre convention of
    bilinear resizing). Patch (gy, gx) covers resized pixels [8 gy, 8 gy + 8) x [8 gx, 8 gx + 8),
    centre 8 gy + 4, so the grid is sampled at continuous grid coordinate y_r / 8 - 0.5 with
    ``mode`` interpolation ("bilinear", "bicubic" or "nearest"). Outside the patch centres the
    edge values are replicated - including the strip the top-left crop cut off.

    grid: `sampling_grid(geometry)` built before, in the maps' float type and on their device (None: built
    here). The result is float32 (float64 input stays float64) on the input's device.
    """
    if mode not in ("bilinear", "bicubic", "nearest"):
        raise InputError(f"mode must be 'bilinear', 'bicubic' or 'nearest', got {mode!r}.")
    if not isinstance(maps, torch.Tensor) or maps.ndim < 2:
        raise InputError(
            f"maps must be a tensor [..., h, w] on the patch grid, got {getattr(maps, 'shape', type(maps))}."
        )
    h, w = geometry.grid_size
    if tuple(maps.shape[-2:]) != (h, w):
        raise InputError(
            f"maps has grid shape {tuple(maps.shape[-2:])} but this image's patch grid is {(h, w)} "
            f"(input {geometry.input_size[0]}x{geometry.input_size[1]} / {geometry.patch_size}); "
            "pass the maps computed for this image."
        )
    h0, w0 = geometry.original_size
    dtype = _sampling_dtype(maps)
    if grid is None:
        grid = sampling_grid(geometry, dtype=dtype, device=maps.device)
    elif grid.shape != (1, h0, w0, 2) or grid.dtype != dtype or grid.device != maps.device:
        raise InputError(
            f"grid {tuple(grid.shape)} {grid.dtype} on {grid.device} is not this geometry's sampling grid for "
            f"{dtype} maps on {maps.device}; build it with sampling_grid(geometry, dtype=..., device=...)"
        )
    lead = maps.shape[:-2]
    planes = maps.detach().reshape(-1, h, w).to(dtype)
    out = torch.empty((planes.shape[0], h0, w0), dtype=dtype, device=maps.device)
    # All planes share one sampling grid, so they go in as channels of a single "image".
    step = max(1, _CHUNK_ELEMENTS // max(1, h0 * w0))
    for start in range(0, planes.shape[0], step):
        chunk = planes[start : start + step][None]
        out[start : start + step] = F.grid_sample(chunk, grid, mode=mode, padding_mode="border", align_corners=False)[0]
    return out.reshape(*lead, h0, w0)


def _sampling_dtype(maps: torch.Tensor) -> torch.dtype:
    return torch.float64 if maps.dtype == torch.float64 else torch.float32


class PixelSampler:
    """`maps_to_original` for many maps of one geometry (a video's frames): the sampling grid is built once
    (per float type and device) and kept while the sampler lives."""

    def __init__(self, geometry: ImageGeometry, *, mode: str = "bilinear"):
        self.geometry, self.mode = geometry, mode
        self._grid: torch.Tensor | None = None

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        dtype = _sampling_dtype(maps)
        if self._grid is None or self._grid.dtype != dtype or self._grid.device != maps.device:
            self._grid = sampling_grid(self.geometry, dtype=dtype, device=maps.device)
        return maps_to_original(maps, self.geometry, mode=self.mode, grid=self._grid)
