"""`score_matrix`: the original's score for every (clip, image) pair, from features encoded once.

Each clip meets a chunk of images through the model's own forward pass (`DenseAV.forward`: the clip broadcasts
over the chunk) and `similarity.score` (element-wise max over heads, max over space, masked mean over time; the spec's
section 5), so the numbers are the ones `ground(...).score` gives. Chunks are sized so the similarity volume
and its temporaries stay under `max_memory` bytes whatever the number of pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..api import EncodedAudio, EncodedImage, encode_audio, encode_image
from ..errors import InputError
from ..modeling import AudioFeatures, DenseAV, ImageFeatures
from .store import FeatureStore, StoredItem

DEFAULT_MAX_MEMORY = 512 * 1024**2
# Bytes per float32 element of one pair's similarity volume held at once: the product, the masked copy and the
# head maximum of the aggregation (measured on the CPU path; the GPU path holds the same tensors).
_VOLUME_COPIES = 3
# Clips of one length scored in one forward pass (fewer passes over each image stack; see score_features).
_CLIPS_PER_CALL = 16


@dataclass(frozen=True)
class _Features:
    """One encoded item as score_matrix uses it: features [n, C], cls [C] or None; an image's grid (h, w) with
    h * w = n, or a clip's mask [T]."""

    features: torch.Tensor
    cls: torch.Tensor | None
    grid: tuple[int, int] | None = None
    mask: torch.Tensor | None = None


def _image_side(images: Any, model: DenseAV) -> list[_Features]:
    if isinstance(images, FeatureStore):
        return [_Features(it.features, it.cls, it.grid) for it in images.items("image")]
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    raw = [i for i, x in enumerate(items) if not isinstance(x, (EncodedImage, StoredItem))]
    if raw:
        for i, e in zip(raw, encode_image([items[i] for i in raw], model=model)):
            items[i] = e
    out = []
    for x in items:
        if isinstance(x, StoredItem):
            if x.kind != "image":
                raise InputError(f"{x.id} is a sound window; pass it on the audio side")
            out.append(_Features(x.features, x.cls, x.grid))
        else:
            f = x.features
            out.append(_Features(f.features[0], None if f.cls is None else f.cls[0], f.grid))
    return out


def _audio_side(audios: Any, model: DenseAV) -> list[_Features]:
    if isinstance(audios, FeatureStore):
        return [_Features(it.features, it.cls, mask=it.mask) for it in audios.items("audio")]
    items = list(audios) if isinstance(audios, (list, tuple)) else [audios]
    raw = [i for i, x in enumerate(items) if not isinstance(x, (EncodedAudio, StoredItem))]
    if raw:
        for i, e in zip(raw, encode_audio([items[i] for i in raw], model=model)):
            items[i] = e
    out = []
    for x in items:
        if isinstance(x, StoredItem):
            if x.kind != "audio":
                raise InputError(f"{x.id} is an image or frame; pass it on the image side")
            out.append(_Features(x.features, x.cls, mask=x.mask))
        else:
            f = x.features
            out.append(_Features(f.features[0], None if f.cls is None else f.cls[0], mask=f.mask[0]))
    return out


def score_features(
    model: DenseAV,
    images: Sequence[_Features],
    audios: Sequence[_Features],
    *,
    per_head: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> torch.Tensor:
    """[A, V] (or [A, V, K]) float32 scores of already-encoded features; see `score_matrix`."""
    k = model.config.num_heads
    out = torch.empty((len(audios), len(images), k) if per_head else (len(audios), len(images)))
    if not images or not audios:
        return out
    # Clips of one length are laid side by side in time and meet the images in one forward pass, so each image
    # stack is rearranged once for many clips (the per-step similarity does not care). Not for models whose
    # similarity adds a per-clip cls term: there each clip goes alone.
    together = 1 if model.similarity.use_cls else _CLIPS_PER_CALL
    image_groups = _indices_by(images, lambda f: f.grid)
    clip_groups = _indices_by(audios, lambda f: f.features.shape[0])
    with torch.inference_mode():
        for grid, members in image_groups.items():
            n = grid[0] * grid[1]
            for steps, clips in clip_groups.items():
                per_call = min(together, len(clips))
                per_image = 4 * (
                    _VOLUME_COPIES * k * per_call * steps * n + 2 * n * images[members[0]].features.shape[1]
                )
                chunk = max(1, max_memory // per_image)
                for lo in range(0, len(members), chunk):
                    idx = members[lo : lo + chunk]
                    stack = _stack(images, idx, grid, model.device)
                    for c0 in range(0, len(clips), per_call):
                        part = clips[c0 : c0 + per_call]
                        scores = _clips_vs_images(model, stack, [audios[a] for a in part], per_head)
                        out[torch.tensor(part)[:, None], torch.tensor(idx)] = scores.cpu()
    return out


def _indices_by(items: Sequence[_Features], key: Callable[[_Features], Any]) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return groups


def _stack(images: Sequence[_Features], idx: list[int], grid: tuple[int, int], device: torch.device) -> ImageFeatures:
    feats = torch.stack([images[v].features for v in idx]).to(device, torch.float32)
    cls = None
    if images[idx[0]].cls is not None:
        cls = torch.stack([images[v].cls for v in idx]).to(device, torch.float32)  # type: ignore[misc]
    return ImageFeatures(feats, cls, grid)


def _clips_vs_images(model: DenseAV, images: ImageFeatures, clips: list[_Features], per_head: bool) -> torch.Tensor:
    """[len(clips), V] (or [.., K]) scores of equally long clips against a stack of images: the model's forward
    pass (the clips concatenated in time, broadcast over the images) and its aggregation, clip by clip."""
    device = images.features.device
    steps = clips[0].features.shape[0]
    feats = torch.cat([c.features for c in clips]).to(device, torch.float32)[None]
    mask = torch.cat([c.mask for c in clips if c.mask is not None]).to(device)[None]
    cls = clips[0].cls if len(clips) == 1 else None  # one clip: its cls; several: only for cls-free similarity
    audio = AudioFeatures(feats, None if cls is None else cls.to(device, torch.float32)[None], mask)
    volume = model(images, audio).flatten(-2)  # [V, K, clips * T, h * w]
    v = len(images)
    return torch.stack(
        [
            model.similarity.score(
                volume[:, :, i * steps : (i + 1) * steps],
                mask[:, i * steps : (i + 1) * steps].expand(v, -1),
                per_head=per_head,
            )
            for i in range(len(clips))
        ]
    )


def score_matrix(
    images: Any,
    audios: Any,
    *,
    model: DenseAV | None = None,
    per_head: bool = False,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> torch.Tensor:
    """The original's score for every (clip, image) pair: float32 [A, V], or [A, V, heads] with `per_head`.

    images / audios: lists of `EncodedImage` / `EncodedAudio`, of stored items (`FeatureStore.items()`), of raw
        inputs (paths, arrays; encoded once here), or a `FeatureStore` (all its images and frames, or all its
        sound windows, in store order).
    model: needed to encode raw inputs and for the similarity; defaults to a store's own model.
    max_memory: bytes the similarity volumes may hold at once (default 512 MB); inputs are not counted.
    Equal to `ground(image, audio).score` for each pair (the same code runs), at the cost of A + V encodings.
    """
    if model is None:
        store = images if isinstance(images, FeatureStore) else audios if isinstance(audios, FeatureStore) else None
        if store is None:
            raise InputError("score_matrix needs model=... (a loaded DenseAV) unless one side is a FeatureStore")
        model = store.load_model()
    for side in (images, audios):
        if isinstance(side, FeatureStore):
            side.check_model_of(model)
    return score_features(
        model, _image_side(images, model), _audio_side(audios, model), per_head=per_head, max_memory=max_memory
    )
