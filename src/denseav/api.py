"""The high-level API: `ground(image, audio)`, and the two encoders for encode-once reuse.

Encodings remember the model that made them, so `similarity(image, audio)` needs no `model=` and refuses to
mix two models' features.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, overload

import numpy as np
import torch

from .audio import SAMPLE_RATE, prepare_audio
from .build import DTypeLike, load, resolve_device, resolve_dtype
from .errors import InputError, InputTypeError
from .image import DEFAULT_BACKGROUND, MAX_LONG_SIDE, ImageGeometry, ImageInput, decode_picture, preprocess_image
from .limits import PICTURE_MAX_SIDE
from .modeling import AudioFeatures, DenseAV, ImageFeatures
from .pretrained import DEFAULT_MODEL
from .result import Grounding

if TYPE_CHECKING:
    from typing_extensions import Unpack

ModelLike = str | os.PathLike[str] | DenseAV
AudioInput = str | os.PathLike[str] | torch.Tensor | np.ndarray
DeviceLike = str | torch.device | None
# "model": the short side the model's backbone was trained at (224 for the published models).
ImageSize = int | Literal["model"] | None

T = TypeVar("T")
# A batch is a list or a tuple (a str, an array or a tensor is one item).
Batch = list[T] | tuple[T, ...]


class ModelOptions(TypedDict, total=False):
    model: ModelLike
    device: DeviceLike
    dtype: DTypeLike


class ImageOptions(ModelOptions, total=False):
    """The keyword options of `encode_image` (for typing the overloads)."""

    image_size: ImageSize
    max_long_side: int
    background: tuple[int, int, int]
    demo_pooling: bool
    batch_size: int


class AudioOptions(ModelOptions, total=False):
    """The keyword options of `encode_audio`."""

    sample_rate: int | None
    normalize: bool
    channel: str | int
    demo_pooling: bool
    batch_size: int


class GroundOptions(ModelOptions, total=False):
    """The keyword options of `ground`."""

    sample_rate: int | None
    normalize_audio: bool
    channel: str | int
    image_size: ImageSize
    max_long_side: int
    background: tuple[int, int, int]
    demo_pooling: bool
    batch_size: int
    audio_batch_size: int


_cache: dict[tuple[object, ...], DenseAV] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 2


def model_label(model: DenseAV) -> str:
    """How messages name a model: its registry name or the path it came from."""
    return model.provenance.name if model.provenance is not None else "an unnamed model"


def get_model(
    model: ModelLike = DEFAULT_MODEL,
    *,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
    revision: str | None = None,
) -> DenseAV:
    """A loaded model: passed through if already one, else loaded once and kept (the last two are cached).

    A model passed in is never converted: asking for another dtype or device with it is an error (convert it
    yourself with `model.to(...)` / `model.set_dtype(...)`, or pass a name to load a converted copy).
    """
    if isinstance(model, DenseAV):
        _check_model_matches(model, device, dtype)
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise InputTypeError(
            f"model must be a registry name, a Hugging Face repo id, a local checkpoint path or a loaded "
            f"denseav model, not a {type(model).__name__}"
        )
    key = (os.fspath(model), revision, str(resolve_device(device)), resolve_dtype(dtype, device))
    with _cache_lock:
        if key not in _cache:
            loaded = load(model, revision=revision, device=device, dtype=dtype)
            if len(_cache) >= _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = loaded
        return _cache[key]


def _check_model_matches(model: DenseAV, device: DeviceLike, dtype: DTypeLike) -> None:
    wanted_dtype = None if dtype is None else resolve_dtype(dtype, model.device)
    wanted_device = None if device is None else resolve_device(device)
    if wanted_dtype is not None and wanted_dtype != model.dtype:
        raise InputError(
            f"the model passed holds {model.dtype} weights but dtype={dtype!r} was asked for; a passed model is "
            "never converted behind your back: convert it (model.set_dtype(...)) or pass a model name instead"
        )
    if wanted_device is not None and (wanted_device.type, wanted_device.index or 0) != (
        model.device.type,
        model.device.index or 0,
    ):
        raise InputError(
            f"the model passed is on {model.device} but device={str(device)!r} was asked for; move it yourself "
            "(model.to(...)) or pass a model name instead"
        )


@dataclass(frozen=True, repr=False, eq=False)
class EncodedImage:
    """An image run through the image encoder and aligner, ready to meet any number of sounds."""

    features: ImageFeatures  # a batch of one
    geometry: ImageGeometry  # already describes the feature grid (demo pooling included)
    model: DenseAV
    rgb: torch.Tensor | None = field(default=None)  # original uint8 [3, H0, W0]

    def __repr__(self) -> str:
        (h, w), (h0, w0) = self.features.grid, self.geometry.original_size
        return (
            f"EncodedImage(grid={h}x{w}, dim={self.features.features.shape[-1]}, image={w0}x{h0}, "
            f"model={model_label(self.model)!r}, {self.model.dtype}, {self.model.device})"
        )


@dataclass(frozen=True, repr=False, eq=False)
class EncodedAudio:
    """A clip run through the audio encoder and aligner, ready to meet any number of images."""

    features: AudioFeatures  # a batch of one
    times: torch.Tensor  # [T] seconds at the centre of each step
    duration: float  # seconds of audio given
    model: DenseAV
    waveform: torch.Tensor | None = field(default=None)  # the model's 16 kHz input [N]

    def __repr__(self) -> str:
        return (
            f"EncodedAudio(steps={len(self.times)} over {self.duration:.2f} s, "
            f"dim={self.features.features.shape[-1]}, model={model_label(self.model)!r}, "
            f"{self.model.dtype}, {self.model.device})"
        )


def _as_list(x: Any) -> tuple[list[Any], bool]:
    """(items, whether x was a batch)."""
    if isinstance(x, (list, tuple)):
        return list(x), True
    return [x], False


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def _grouped(keys: list[tuple[int, ...]], size: int) -> Iterator[list[int]]:
    """Indices of items with equal keys (tensor shapes), `size` at a time: equal shapes batch together."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for indices in groups.values():
        yield from _chunks(indices, size)


def _feature_geometry(geometry: ImageGeometry, grid: tuple[int, int]) -> ImageGeometry:
    """The geometry of the grid the features live on: with demo pooling each cell covers pool x pool patches."""
    if grid == geometry.grid_size:
        return geometry
    p = geometry.patch_size * (geometry.grid_size[0] // grid[0])
    return replace(geometry, patch_size=p, input_size=(grid[0] * p, grid[1] * p))


@overload
def encode_image(image: ImageInput, **options: Unpack[ImageOptions]) -> EncodedImage: ...
@overload
def encode_image(image: Batch[ImageInput], **options: Unpack[ImageOptions]) -> list[EncodedImage]: ...
def encode_image(
    image: ImageInput | Batch[ImageInput],
    *,
    model: ModelLike = DEFAULT_MODEL,
    image_size: ImageSize = "model",
    max_long_side: int = MAX_LONG_SIDE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    batch_size: int = 8,
    device: DeviceLike = None,
    dtype: DTypeLike = None,
) -> EncodedImage | list[EncodedImage]:
    """Encode an image (path, PIL image, HWC uint8 array or CHW tensor), or a list of them (-> a list).

    image_size: the short side after resizing: "model" (the backbone's training size, 224 for the published
        models, as the original), any multiple of the patch size, or None for the native resolution; the long
        side is then cropped to a multiple of the patch size (top-left anchored, as the original).
    max_long_side: refuse model inputs whose long side would exceed this (see denseav.image.MAX_LONG_SIDE).
    background: the colour transparent pixels are composited onto.
    demo_pooling: reproduce the public demo's 2x2-pooled (half resolution) maps.
    batch_size: images of the same processed size run through the encoder together, this many at a time.
    """
    net = get_model(model, device=device, dtype=dtype)
    items, is_batch = _as_list(image)
    enc = net.config.image_encoder
    size = enc.training_size if image_size == "model" else image_size
    # The model and the picture drawn from a result need at most this much: big JPEGs are decoded reduced.
    draft = None if size is None else max(PICTURE_MAX_SIDE, max_long_side)
    decoded = [decode_picture(item, background=background, draft_long_side=draft) for item in items]
    rgbs = [rgb for rgb, _ in decoded]
    prepared = [
        preprocess_image(
            rgb, patch_size=enc.patch_size, image_size=size, max_long_side=max_long_side, original_size=full
        )
        for rgb, full in decoded
    ]
    out: list[EncodedImage | None] = [None] * len(items)
    with torch.inference_mode():
        for chunk in _grouped([tuple(pixels.shape) for pixels, _ in prepared], batch_size):
            feats = net.encode_image(torch.stack([prepared[i][0] for i in chunk]), demo_pooling=demo_pooling)
            for i, one in zip(chunk, feats.unbind()):
                out[i] = EncodedImage(one, _feature_geometry(prepared[i][1], one.grid), net, rgbs[i])
    done = [e for e in out if e is not None]
    return done if is_batch else done[0]


def _batch(waves: list[torch.Tensor]) -> torch.Tensor:
    """[B, N] from equal-length waveforms; one clip is a view, not a copy (a 10-minute clip is 38 MB)."""
    return waves[0][None] if len(waves) == 1 else torch.stack(waves)


def _check_length(wave: torch.Tensor, need: int) -> None:
    n = wave.shape[-1]
    if n < need:
        raise InputError(
            f"the audio is {n / SAMPLE_RATE:.3f} s long ({n:,} samples at 16 kHz); DenseAV needs at least "
            f"{need / SAMPLE_RATE:.3f} s ({need:,} samples) for one time step. Use a longer clip or pad it "
            "with silence."
        )


@overload
def encode_audio(audio: AudioInput, **options: Unpack[AudioOptions]) -> EncodedAudio: ...
@overload
def encode_audio(audio: Batch[AudioInput], **options: Unpack[AudioOptions]) -> list[EncodedAudio]: ...
def encode_audio(
    audio: AudioInput | Batch[AudioInput],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: int | None = None,
    normalize: bool = True,
    channel: str | int = "mix",
    demo_pooling: bool = False,
    batch_size: int = 1,
    device: DeviceLike = None,
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
    items, is_batch = _as_list(audio)
    waves = [prepare_audio(item, sample_rate, channel=channel, normalize=normalize) for item in items]
    for wave in waves:
        _check_length(wave, net.min_audio_samples)
    window = net.audio_window_seconds
    out: list[EncodedAudio | None] = [None] * len(items)
    with torch.inference_mode():
        for chunk in _grouped([tuple(w.shape) for w in waves], batch_size):
            n = waves[chunk[0]].shape[-1]
            windowed = window is not None and n > window * SAMPLE_RATE
            for part in _chunks(chunk, 1) if windowed else [chunk]:  # windowed clips go one at a time
                feats = net.encode_audio(_batch([waves[i] for i in part]), demo_pooling=demo_pooling)
                times = net.audio_step_times(feats.features.shape[1]).float()
                for i, one in zip(part, feats.unbind()):
                    out[i] = EncodedAudio(one, times, n / SAMPLE_RATE, net, waves[i])
    done = [e for e in out if e is not None]
    return done if is_batch else done[0]


ImageArg = ImageInput | EncodedImage
AudioArg = AudioInput | EncodedAudio


def _encoded_images(items: list[ImageArg], options: ImageOptions) -> list[EncodedImage]:
    """Encode the raw items of a mixed list in one batched call; encoded ones pass through."""
    raw = [x for x in items if not isinstance(x, EncodedImage)]
    fresh = iter(encode_image(raw, **options) if raw else [])
    return [x if isinstance(x, EncodedImage) else next(fresh) for x in items]


def _encoded_audios(items: list[AudioArg], options: AudioOptions) -> list[EncodedAudio]:
    raw = [x for x in items if not isinstance(x, EncodedAudio)]
    fresh = iter(encode_audio(raw, **options) if raw else [])
    return [x if isinstance(x, EncodedAudio) else next(fresh) for x in items]


@overload
def ground(image: ImageArg, audio: AudioArg, **options: Unpack[GroundOptions]) -> Grounding: ...
@overload
def ground(
    image: Batch[ImageArg], audio: AudioArg | Batch[AudioArg], **options: Unpack[GroundOptions]
) -> list[Grounding]: ...
@overload
def ground(image: ImageArg, audio: Batch[AudioArg], **options: Unpack[GroundOptions]) -> list[Grounding]: ...
def ground(
    image: ImageArg | Batch[ImageArg],
    audio: AudioArg | Batch[AudioArg],
    *,
    model: ModelLike = DEFAULT_MODEL,
    sample_rate: int | None = None,
    normalize_audio: bool = True,
    channel: str | int = "mix",
    image_size: ImageSize = "model",
    max_long_side: int = MAX_LONG_SIDE,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    demo_pooling: bool = False,
    batch_size: int = 8,
    audio_batch_size: int = 1,
    device: DeviceLike = None,
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
    images, images_batched = _as_list(image)
    audios, audios_batched = _as_list(audio)
    if images_batched and audios_batched and len(images) != len(audios):
        raise InputError(
            f"got {len(images)} images and {len(audios)} clips; pass lists of equal length (paired), or one image "
            "or one clip to pair with every item of the other list"
        )
    if not images or not audios:
        raise InputError("nothing to ground: an empty list of images or clips")
    image_options: ImageOptions = dict(
        model=net,
        image_size=image_size,
        max_long_side=max_long_side,
        background=background,
        demo_pooling=demo_pooling,
        batch_size=batch_size,
    )
    audio_options: AudioOptions = dict(
        model=net,
        sample_rate=sample_rate,
        normalize=normalize_audio,
        channel=channel,
        demo_pooling=demo_pooling,
        batch_size=audio_batch_size,
    )
    encoded_images = _encoded_images(images, image_options)
    encoded_audios = _encoded_audios(audios, audio_options)
    n = max(len(encoded_images), len(encoded_audios))
    results = [
        similarity(encoded_images[i % len(encoded_images)], encoded_audios[i % len(encoded_audios)], model=net)
        for i in range(n)
    ]
    return results if (images_batched or audios_batched) else results[0]


def _common_model(image: EncodedImage, audio: EncodedAudio, model: DenseAV | None) -> DenseAV:
    if not isinstance(image, EncodedImage) or not isinstance(audio, EncodedAudio):
        raise InputTypeError(
            "similarity() takes an EncodedImage and an EncodedAudio (from encode_image / encode_audio), got "
            f"{type(image).__name__} and {type(audio).__name__}; use ground() for raw images and clips"
        )
    if image.model is not audio.model:
        raise InputError(
            f"the image was encoded by {model_label(image.model)} and the audio by {model_label(audio.model)}; "
            "features of two different models cannot be compared: encode both with the same model"
        )
    if model is not None and model is not image.model:
        raise InputError(
            f"model= is {model_label(model)} but the features were encoded by {model_label(image.model)}; leave "
            "model= out (encodings remember their model) or encode them with this model"
        )
    return image.model


def similarity(image: EncodedImage, audio: EncodedAudio, *, model: DenseAV | None = None) -> Grounding:
    """Dense similarity of an encoded image and an encoded clip (the cheap last stage of `ground`).

    Both must come from the same model, which is taken from the encodings; `model=` is only a check.
    """
    net = _common_model(image, audio, model)
    with torch.inference_mode():
        volume = net(image.features, audio.features)  # [1, K, T, h, w]
        flat = volume.flatten(-2)
        score = net.similarity.score(flat, audio.features.mask)
        per_head = net.similarity.score(flat, audio.features.mask, per_head=True)
    return Grounding(
        heatmaps=volume[0].cpu(),
        head_names=net.head_names,
        times=audio.times,
        score=float(score[0]),
        score_per_head=per_head[0].cpu(),
        geometry=image.geometry,
        audio_duration=audio.duration,
        image=image.rgb,
        waveform=audio.waveform,
        mask=audio.features.mask[0].cpu(),
        model=net,
    )
