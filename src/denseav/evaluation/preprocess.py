"""The original's evaluation preprocessing (not the demo's): resize + centre crop, fixed-length padded audio.

Images: shorter side to 224 with Pillow's BILINEAR (which widens its filter when shrinking, as torchvision's
``Resize`` does on a PIL image), a 224 x 224 centre crop whose offsets use Python's ``round`` (halves to even),
then /255 and ImageNet normalisation. Labels: the same geometry with NEAREST. Audio: channel 0, resampled to
16 kHz, zero-padded or cut to 164,200 samples (the original's "10 s" setting), a sample mask over the real
samples, and normalisation of the WHOLE padded vector (so the padding becomes -mean/std). See the shared
``eval/README.md``, sections 3 and 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..audio import SAMPLE_RATE, decode_audio, normalize_waveform, resample
from ..errors import InputError, InputFileNotFoundError
from ..image import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "AUDIO_SAMPLES",
    "CROP_SIZE",
    "MIN_MASK_FRACTION",
    "EvalAudio",
    "EvalImage",
    "crop_geometry",
    "load_audio",
    "load_image",
    "load_image_crop",
    "load_label_image",
]

#: Side of the square the original evaluates images at.
CROP_SIZE = 224
#: Samples every clip is padded or cut to: the original special-cases its 10-second setting to 10.2625 s.
AUDIO_SAMPLES = 164_200
#: The original drops (and replaces by a copy of another batch item) a clip whose sample mask has a smaller mean.
MIN_MASK_FRACTION = 0.04


def crop_geometry(width: int, height: int, size: int = CROP_SIZE) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((resized_w, resized_h), (left, top))``: shorter side to ``size`` (``int`` truncates the other), then a
    centre crop whose offsets use Python's ``round`` (halves to even: 37.5 -> 38, 24.5 -> 24), as the original."""
    if width <= height:
        resized = (size, int(size * height / width))
    else:
        resized = (int(size * width / height), size)
    return resized, (round((resized[0] - size) / 2), round((resized[1] - size) / 2))


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} {str(path)!r} does not exist; check the dataset folder")
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{what} {str(path)!r} cannot be decoded as an image ({e}); replace the file") from e
    return im


def _resize_crop(im: Image.Image, resample_filter: Image.Resampling) -> Image.Image:
    (w, h), (left, top) = crop_geometry(*im.size)
    im = im.resize((w, h), resample_filter)
    return im.crop((left, top, left + CROP_SIZE, top + CROP_SIZE))


@dataclass(frozen=True)
class EvalImage:
    """One image as the original evaluates it: ``pixels`` float32 [3, 224, 224] (ImageNet-normalised)."""

    pixels: torch.Tensor
    original_size: tuple[int, int]  # (width, height)
    resized_size: tuple[int, int]  # (width, height)
    crop_offset: tuple[int, int]  # (left, top)


def load_image_crop(path: str | os.PathLike[str]) -> tuple[np.ndarray, EvalImage]:
    """The evaluated 224 x 224 crop as uint8 RGB [224, 224, 3], and the model's input made from it."""
    p = Path(path)
    im = _open(p, "image").convert("RGB")
    resized, offset = crop_geometry(*im.size)
    rgb = np.asarray(_resize_crop(im, Image.Resampling.BILINEAR), dtype=np.uint8).copy()
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return rgb, EvalImage((x - mean) / std, im.size, resized, offset)


def load_image(path: str | os.PathLike[str]) -> EvalImage:
    """Decode, convert to RGB, resize the shorter side to 224 (Pillow BILINEAR), centre crop, normalise."""
    return load_image_crop(path)[1]


def load_label_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The label PNG resized (NEAREST) and centre-cropped like its image: uint8 [224, 224, C] as decoded
    (no mode conversion; the caller decodes the class encoding and checks the mode)."""
    im = _open(Path(path), "label image")
    return np.asarray(_resize_crop(im, Image.Resampling.NEAREST)).copy()


@dataclass(frozen=True)
class EvalAudio:
    """One clip as the original evaluates it.

    ``waveform`` float32 [AUDIO_SAMPLES], normalised over the whole padded vector; ``sample_mask`` float32
    [AUDIO_SAMPLES] (1 on real samples); ``length`` the real samples kept (``min(L, AUDIO_SAMPLES)``);
    ``resampled_length`` L, the clip's length at 16 kHz before padding or cutting.
    """

    waveform: torch.Tensor
    sample_mask: torch.Tensor
    length: int
    resampled_length: int
    file_rate: int
    file_channels: int

    @property
    def mask_fraction(self) -> float:
        return self.length / AUDIO_SAMPLES


def load_audio(path: str | os.PathLike[str], num_samples: int = AUDIO_SAMPLES) -> EvalAudio:
    """Channel 0 of the file at 16 kHz, padded with zeros (or cut) to ``num_samples``, with its sample mask,
    normalised as one vector including the padding (the original's Wav2Vec2 feature extractor call)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"audio file {str(p)!r} does not exist; check the dataset folder")
    wav, rate = decode_audio(p)
    mono = resample(wav[0].contiguous(), rate, SAMPLE_RATE)
    length = min(mono.shape[-1], num_samples)
    padded = torch.zeros(num_samples, dtype=torch.float32)
    padded[:length] = mono[:length]
    mask = torch.zeros(num_samples, dtype=torch.float32)
    mask[:length] = 1.0
    return EvalAudio(normalize_waveform(padded), mask, length, int(mono.shape[-1]), rate, int(wav.shape[0]))
