"""The high-level API: `ground(image, audio)`, and the two encoders for encode-once reuse."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .audio import SAMPLE_RATE, prepare_audio
from .build import DTypeLike, load, resolve_device, resolve_dtype
from .errors import InputError
from .image import DEFAULT_BACKGROUND, DEFAULT_IMAGE_SIZE, ImageGeometry, ImageInput, preprocess_image, to_rgb_uint8
from .modeling import AudioFeatures, DenseAV, ImageFeatures
from .pretrained import DEFAULT_MODEL
from .result import Grounding

ModelLike = str | os.PathLike[str] | DenseAV
AudioInput = str | os.PathLike[str] | torch.Tensor | np.ndarray

_cache: dict[tuple, DenseAV] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 2


def get_model(
    model: ModelLike = DEFAULT_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
    revision: str | None = None,
) -> DenseAV:
    """A loaded model: passed through if already one, else loaded once and kept (the last two are cached)."""
    if isinstance(model, DenseAV):
        if dtype is not None and resolve_dtype(dtype) != model.dtype:
            model = model.set_dtype(resolve_dtype(dtype))
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
    rgb: torch.Tensor | None = field(default=None, repr=False)  # original uint8 [3, H0, W0]


@dataclass
class EncodedAudio:
    """A clip run through the audio encoder and aligner, ready to meet any number of images."""

    features: AudioFeatures
    times: torch.Tensor
    duration: float
    waveform: torch.Tensor | None = field(default=None, repr=False)  # the model's 16 kHz input [N]


def _is_batch(x: object) -> bool:
    return isinstance(x, (list, tuple))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def encode_image(
    image: ImageInput | Sequence[ImageInput],
    *,
    model: ModelLike = DEFAULT_MODEL,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
) -> EncodedImage | list[EncodedImage]:
    """Encode an image (path, PIL image, HWC uint8 array or CHW tensor), or a list of them (-> a list).

    image_size: the short side after resizing (224, as the original; any multiple of 8), or None for the native
        resolution; the long side is then cropped to a multiple of 8 (top-left anchored, as the original).
    background: the colour transparent pixels are composited onto.
    demo_pooling: reproduce the public demo's 2x2-pooled (half resolution) maps.
    batch_size: images of the same processed size run through the encoder together, this many at a time.
    """
    net = get_model(model, device=device, dtype=dtype)
    items = list(image) if _is_batch(image) else [image]
    prepared = []
    for item in items:
        rgb = to_rgb_uint8(item, background=background)
        pixels, geometry = preprocess_image(rgb, image_size=image_size, background=background)
        prepared.append((rgb, pixels, geometry))
    out: list[EncodedImage | None] = [None] * len(items)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, pixels, _) in enumerate(prepared):
        groups.setdefault(tuple(pixels.shape), []).append(i)  # same size -> one batch
    with torch.inference_mode():
        for indices in groups.values():
            for chunk in _chunks(indices, max(1, batch_size)):
                feats = net.encode_image(torch.stack([prepared[i][1] for i in chunk]), demo_pooling=demo_pooling)
                for j, i in enumerate(chunk):
                    one = ImageFeatures(
                        feats.features[j : j + 1], None if feats.cls is None else feats.cls[j : j + 1], feats.grid
                    )
                    out[i] = EncodedImage(one, prepared[i][2], prepared[i][0])
    return out if _is_batch(image) else out[0]  # type: ignore[return-value]


def encode_audio(
    audio: AudioInput | Sequence[AudioInput],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: int | None = None,
    normalize: bool = True,
    channel: str | int = "mix",
    demo_pooling: bool = False,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
) -> EncodedAudio | list[EncodedAudio]:
    """Encode a clip (a file path, or a 1-D/2-D array or tensor with `sample_rate`), or a list of them.

    normalize: zero mean / unit variance, as the model was trained (default). False feeds the raw waveform, as
        the original public demo did.
    channel: "mix" (mean of channels, default), "first" (the original demo's choice) or a channel index.
    batch_size: clips of equal length run through the encoder together, this many at a time (the original passes
        HuBERT no padding mask, so clips of different lengths are encoded separately to stay exact). Default 1:
        on a CPU, batching 10 s clips was slower than one at a time (larger activations, same arithmetic); raise
        it on a GPU.
    Clips longer than `model.audio_window_seconds` (30 s) are encoded in overlapping windows.
    """
    net = get_model(model, device=device, dtype=dtype)
    items = list(audio) if _is_batch(audio) else [audio]
    waves = [prepare_audio(item, sample_rate, channel=channel, normalize=normalize) for item in items]
    need = net.min_audio_samples
    for wave in waves:
        n = wave.shape[-1]
        if n < need:
            raise InputError(
                f"the audio is {n / SAMPLE_RATE:.3f} s long ({n:,} samples at 16 kHz); DenseAV needs at least "
                f"{need / SAMPLE_RATE:.3f} s ({need:,} samples) for one time step. Use a longer clip or pad it "
                "with silence."
            )
    out: list[EncodedAudio | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, wave in enumerate(waves):
        groups.setdefault(wave.shape[-1], []).append(i)
    window = net.audio_window_seconds
    with torch.inference_mode():
        for n, indices in groups.items():
            size = 1 if (window is not None and n > window * SAMPLE_RATE) else max(1, batch_size)
            for chunk in _chunks(indices, size):
                batch = waves[chunk[0]][None] if len(chunk) == 1 else torch.stack([waves[i] for i in chunk])
                feats = net.encode_audio(batch, demo_pooling=demo_pooling)
                times = net.audio_step_times(feats.features.shape[1]).float()
                for j, i in enumerate(chunk):
                    one = AudioFeatures(
                        feats.features[j : j + 1],
                        None if feats.cls is None else feats.cls[j : j + 1],
                        feats.mask[j : j + 1],
                    )
                    out[i] = EncodedAudio(one, times, n / SAMPLE_RATE, waves[i])
    return out if _is_batch(audio) else out[0]  # type: ignore[return-value]


def ground(
    image: ImageInput | EncodedImage | Sequence[ImageInput | EncodedImage],
    audio: AudioInput | EncodedAudio | Sequence[AudioInput | EncodedAudio],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: int | None = None,
    normalize_audio: bool = True,
    channel: str | int = "mix",
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    batch_size: int = 8,
    audio_batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: DTypeLike = None,
) -> Grounding | list[Grounding]:
    """Which pixels of `image` the sound in `audio` refers to, per head and per audio step.

    image: a path, PIL image, HWC uint8 array, CHW tensor, or an `EncodedImage` from `encode_image`.
    audio: a path (wav, flac, mp3, ogg, m4a, or a video's audio track), a 1-D/2-D array or tensor with
        `sample_rate`, or an `EncodedAudio` from `encode_audio`.
    Batches: a list of images with one clip, one image with a list of clips, or two lists of equal length
        (paired) give a list of results; images are encoded `batch_size` at a time, clips `audio_batch_size`.
    model: a registry name ("sound-language" default, "language", "sound"), a local checkpoint path, or a model
        from `denseav.load`.
    Other options as in `encode_image` / `encode_audio`.
    """
    net = get_model(model, device=device, dtype=dtype)
    images = list(image) if _is_batch(image) else [image]
    audios = list(audio) if _is_batch(audio) else [audio]
    if _is_batch(image) and _is_batch(audio) and len(images) != len(audios):
        raise InputError(
            f"got {len(images)} images and {len(audios)} clips; pass lists of equal length (paired), or one image "
            "or one clip to pair with every item of the other list"
        )
    if not images or not audios:
        raise InputError("nothing to ground: an empty list of images or clips")
    raw_images = [i for i, x in enumerate(images) if not isinstance(x, EncodedImage)]
    if raw_images:
        encoded = encode_image(
            [images[i] for i in raw_images],
            model=net,
            image_size=image_size,
            background=background,
            demo_pooling=demo_pooling,
            batch_size=batch_size,
        )
        for i, e in zip(raw_images, encoded):
            images[i] = e
    raw_audios = [i for i, x in enumerate(audios) if not isinstance(x, EncodedAudio)]
    if raw_audios:
        encoded = encode_audio(
            [audios[i] for i in raw_audios],
            model=net,
            sample_rate=sample_rate,
            normalize=normalize_audio,
            channel=channel,
            demo_pooling=demo_pooling,
            batch_size=audio_batch_size,
        )
        for i, e in zip(raw_audios, encoded):
            audios[i] = e
    n = max(len(images), len(audios))
    results = [
        similarity(images[i if len(images) > 1 else 0], audios[i if len(audios) > 1 else 0], model=net)
        for i in range(n)
    ]
    return results if (_is_batch(image) or _is_batch(audio)) else results[0]


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
