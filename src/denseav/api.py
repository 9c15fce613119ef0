"""The high-level API: `ground(image, audio)`, and the two encoders for encode-once reuse."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from typing import Optional, Union

import torch

from .audio import SAMPLE_RATE, prepare_audio
from .build import DTypeLike, load, resolve_device, resolve_dtype
from .errors import InputError
from .image import DEFAULT_BACKGROUND, DEFAULT_IMAGE_SIZE, ImageGeometry, ImageInput, preprocess_image, to_rgb_uint8
from .modeling import AudioFeatures, DenseAV, ImageFeatures
from .pretrained import DEFAULT_MODEL
from .result import Grounding

ModelLike = Union[str, os.PathLike, DenseAV]

_cache: dict[tuple, DenseAV] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 2


def get_model(
    model: ModelLike = DEFAULT_MODEL,
    *,
    device: Union[str, torch.device, None] = None,
    dtype: DTypeLike = None,
    revision: Optional[str] = None,
) -> DenseAV:
    """A loaded model: passed through if already one, else loaded once and kept (the last two are cached)."""
    if isinstance(model, DenseAV):
        if dtype is not None and resolve_dtype(dtype) != model.dtype:
            model = model.to(resolve_dtype(dtype))
        if device is not None and resolve_device(device) != model.device:
            model = model.to(resolve_device(device))
        return model
    key = (os.fspath(model), revision, str(resolve_device(device)), resolve_dtype(dtype))
    with _cache_lock:
        if key not in _cache:
            loaded = load(model, revision=revision, device=device, dtype=dtype)
            if len(_cache) >= _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = loaded
        return _cache[key]


@dataclass
class EncodedImage:
    """An image run through the image encoder and aligner, ready to meet any number of sounds."""

    features: ImageFeatures
    geometry: ImageGeometry
    rgb: Optional[torch.Tensor] = field(default=None, repr=False)  # original uint8 [3, H0, W0]


@dataclass
class EncodedAudio:
    """A clip run through the audio encoder and aligner, ready to meet any number of images."""

    features: AudioFeatures
    times: torch.Tensor
    duration: float
    waveform: Optional[torch.Tensor] = field(default=None, repr=False)  # the model's 16 kHz input [N]


def encode_image(
    image: ImageInput,
    *,
    model: ModelLike = DEFAULT_MODEL,
    image_size: Optional[int] = DEFAULT_IMAGE_SIZE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    device: Union[str, torch.device, None] = None,
    dtype: DTypeLike = None,
) -> EncodedImage:
    """Encode one image (path, PIL image, HWC uint8 array or CHW tensor).

    image_size: the short side after resizing (224, as the original; any multiple of 8), or None for the native
        resolution; the long side is then cropped to a multiple of 8 (top-left anchored, as the original).
    background: the colour transparent pixels are composited onto.
    demo_pooling: reproduce the public demo's 2x2-pooled (half resolution) maps.
    """
    net = get_model(model, device=device, dtype=dtype)
    rgb = to_rgb_uint8(image, background=background)
    pixels, geometry = preprocess_image(rgb, image_size=image_size, background=background)
    with torch.inference_mode():
        feats = net.encode_image(pixels[None], demo_pooling=demo_pooling)
    return EncodedImage(feats, geometry, rgb)


def encode_audio(
    audio: Union[str, os.PathLike, torch.Tensor, "object"],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: Optional[int] = None,
    normalize: bool = True,
    channel: Union[str, int] = "mix",
    demo_pooling: bool = False,
    device: Union[str, torch.device, None] = None,
    dtype: DTypeLike = None,
) -> EncodedAudio:
    """Encode one clip (a file path, or a 1-D/2-D array or tensor with `sample_rate`).

    normalize: zero mean / unit variance, as the model was trained (default). False feeds the raw waveform, as
        the original public demo did.
    channel: "mix" (mean of channels, default), "first" (the original demo's choice) or a channel index.
    """
    net = get_model(model, device=device, dtype=dtype)
    wave = prepare_audio(audio, sample_rate, channel=channel, normalize=normalize)
    n = wave.shape[-1]
    need = net.min_audio_samples
    if n < need:
        raise InputError(
            f"the audio is {n / SAMPLE_RATE:.3f} s long ({n:,} samples at 16 kHz); DenseAV needs at least "
            f"{need / SAMPLE_RATE:.3f} s ({need:,} samples) for one time step. Use a longer clip or pad it with silence."
        )
    with torch.inference_mode():
        feats = net.encode_audio(wave[None], demo_pooling=demo_pooling)
    times = net.audio_step_times(feats.features.shape[1])
    return EncodedAudio(feats, times.float(), n / SAMPLE_RATE, wave)


def ground(
    image: Union[ImageInput, EncodedImage],
    audio: Union[str, os.PathLike, torch.Tensor, "object", EncodedAudio],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: Optional[int] = None,
    normalize_audio: bool = True,
    channel: Union[str, int] = "mix",
    image_size: Optional[int] = DEFAULT_IMAGE_SIZE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    device: Union[str, torch.device, None] = None,
    dtype: DTypeLike = None,
) -> Grounding:
    """Which pixels of `image` the sound in `audio` refers to, per head and per audio step.

    image: a path, PIL image, HWC uint8 array, CHW tensor, or an `EncodedImage` from `encode_image`.
    audio: a path (wav, flac, mp3, ogg, m4a, or a video's audio track), a 1-D/2-D array or tensor with
        `sample_rate`, or an `EncodedAudio` from `encode_audio`.
    model: a registry name ("sound-language" default, "language", "sound"), a local checkpoint path, or a model
        from `denseav.load`.
    Other options as in `encode_image` / `encode_audio`.
    """
    net = get_model(model, device=device, dtype=dtype)
    enc_image = image if isinstance(image, EncodedImage) else encode_image(
        image, model=net, image_size=image_size, background=background, demo_pooling=demo_pooling
    )
    enc_audio = audio if isinstance(audio, EncodedAudio) else encode_audio(
        audio, model=net, sample_rate=sample_rate, normalize=normalize_audio, channel=channel, demo_pooling=demo_pooling
    )
    return similarity(enc_image, enc_audio, model=net)


def similarity(image: EncodedImage, audio: EncodedAudio, *, model: ModelLike = DEFAULT_MODEL) -> Grounding:
    """Dense similarity of an encoded image and an encoded clip (the cheap last stage of `ground`)."""
    net = get_model(model)
    with torch.inference_mode():
        sims = net.similarity(
            image.features.features,
            audio.features.features,
            audio_mask=audio.features.mask,
            image_cls=image.features.cls,
            audio_cls=audio.features.cls,
        )
        score = net.similarity.score(sims, audio.features.mask)
        per_head = net.similarity.score(sims, audio.features.mask, per_head=True)
    heatmaps = sims[0].unflatten(-1, image.features.grid).cpu()
    geometry = image.geometry
    if image.features.grid != geometry.grid_size:  # demo pooling: each cell covers pool x pool patches
        pool = geometry.grid_size[0] // image.features.grid[0]
        p = geometry.patch_size * pool
        gh, gw = image.features.grid
        geometry = replace(geometry, patch_size=p, input_size=(gh * p, gw * p))
    return Grounding(
        heatmaps=heatmaps,
        head_names=net.head_names,
        times=audio.times,
        score=float(score[0]),
        score_per_head=per_head[0].cpu(),
        geometry=geometry,
        audio_duration=audio.duration,
        image=image.rgb,
        waveform=audio.waveform,
        mask=audio.features.mask[0].cpu(),
    )
