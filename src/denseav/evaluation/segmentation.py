"""Speech- and sound-prompted semantic segmentation, computed as the original computes it.

Per item (image + prompt): the dense similarity with the heads combined by an element-wise maximum, averaged over
the valid audio steps ("basic") or over the prompt word's steps widened by 0.2 s on each side ("advanced",
speech only). The maps of the whole set are then normalised together to [0, 1], upsampled from the patch grid to
224 x 224 and scored per class with all pixels of the class's items pooled: average precision and best IoU.

Memory: the clips' features are held and the images streamed through the model one batch at a time; of the
items only the patch-grid maps (28 x 28 for the published models) are kept, and the ground truth as packed bits
(1 bit per label pixel). The set-wide minimum and maximum come from those small maps; the
224 x 224 maps are then made one item at a time and streamed into :func:`.metrics.pooled_metrics`, which is exact
and holds at most a fixed number of pooled scores (the whole class when it fits, else runs of histogram bins).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import SAMPLE_RATE
from ..errors import InputError
from ..modeling import DenseAV, ImageFeatures
from .data import PROMPT_KINDS, PROMPTED_CSV, PromptedRow, decode_ade_labels, read_prompted
from .encoding import ClipFeatures, FeatureEncoder
from .metrics import Disentanglement, ScoreStream, average_precision, disentanglement, pooled_metrics
from .preprocess import AUDIO_SAMPLES, CROP_SIZE, MIN_MASK_FRACTION, load_label_image
from .provenance import Provenance

__all__ = [
    "ClassResult",
    "PromptSetResult",
    "SegmentationItem",
    "SegmentationResult",
    "prompt_window",
    "run_segmentation",
]

#: Seconds the "advanced" window is widened by on each side of the prompt word.
WORD_MARGIN_SECONDS = 0.2


def prompt_window(timing: tuple[float, float], steps: int, window_seconds: float) -> tuple[int, int]:
    """Audio steps ``[lo, hi)`` of the "advanced" map: the word's span widened by 0.2 s, in float32 as the original:
    ``lo = floor(steps * (start - 0.2) / window)``, ``hi = ceil(steps * (end + 0.2) / window)``. Not clamped."""
    f = np.float32
    lo = math.floor(f(steps) * (f(timing[0]) - f(WORD_MARGIN_SECONDS)) / f(window_seconds))
    hi = math.ceil(f(steps) * (f(timing[1]) + f(WORD_MARGIN_SECONDS)) / f(window_seconds))
    return lo, hi


@dataclass(frozen=True)
class SegmentationItem:
    """One evaluated (image, prompt) item; ``window`` is the advanced map's steps ``[lo, hi)`` (speech only)."""

    index: int
    csv_row: int
    class_id: int
    image: Path
    label: Path
    audio: Path
    valid_steps: int
    window: tuple[int, int] | None
    score_per_head: list[float]  # the paired score of the image with its prompt, per head (misa aggregate)
    basic_ap: float | None  # this item's own AP (basic map vs its mask): orders the examples grid


@dataclass(frozen=True)
class ClassResult:
    class_id: int
    class_name: str
    n_items: int
    positive_pixels: int
    basic_ap: float | None
    basic_iou: float | None
    advanced_ap: float | None = None
    advanced_iou: float | None = None


@dataclass
class PromptSetResult:
    """One prompt set (``speech`` or ``sound``) of a prompted-segmentation dataset."""

    prompts: str
    metrics: dict[str, float | None]  # basic_ap, basic_iou (+ advanced_ap, advanced_iou for speech)
    classes: list[ClassResult]
    items: list[SegmentationItem]
    norm_range: dict[str, tuple[float, float]]  # map kind -> (min, max) of the raw maps over the whole set
    maps: dict[str, torch.Tensor] = field(repr=False)  # map kind -> normalised patch-grid maps [n, h, w]


@dataclass
class SegmentationResult:
    root: Path
    sets: dict[str, PromptSetResult]
    disentanglement: Disentanglement | None  # both prompt sets and a two-head model only
    notes: list[str]
    provenance: Provenance | None = None  # set by the public API (evaluate_*)

    @property
    def metrics(self) -> dict[str, float | None]:
        """Flat metric names as the original logs them (``speech_basic_ap``, ..., ``prompted_ap_dis``)."""
        out = {f"{name}_{k}": v for name, s in self.sets.items() for k, v in s.metrics.items()}
        if self.disentanglement is not None:
            out["prompted_ap_dis"] = self.disentanglement.ap_dis
            out["prompted_act_dis"] = self.disentanglement.act_dis
        return out


# ---------------------------------------------------------------------------------------------- maps


@dataclass
class _RawSet:
    """Raw (unnormalised) maps of one prompt set as items are computed."""

    rows: list[PromptedRow]
    maps: dict[str, list[torch.Tensor]]
    scores: list[torch.Tensor]
    steps: list[int]
    windows: list[tuple[int, int] | None]


def _check_window(row: PromptedRow, lo: int, hi: int, clip: ClipFeatures, notes: list[str]) -> tuple[int, int]:
    """Clamp the advanced window to the steps that exist; refuse a word that lies outside the clip's audio."""
    steps = clip.features.mask.shape[1]
    valid = int(clip.features.mask.sum())
    if lo >= valid:
        raise InputError(
            f"{row.audio['speech'].name} (CSV row {row.csv_row}): timing {list(row.timing or ())} puts the word "
            f"after the end of the clip's audio ({clip.samples / SAMPLE_RATE:.3f} s); fix the timing"
        )
    if lo < 0 or hi > steps:
        notes.append(
            f"CSV row {row.csv_row}: the advanced window [{lo}, {hi}) was clamped to [{max(lo, 0)}, {min(hi, steps)}) "
            "(the original crashes there)"
        )
    return max(lo, 0), min(hi, steps)


def _item_maps(
    model: DenseAV, image: ImageFeatures, clip: ClipFeatures, window: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(basic map [h, w], advanced map or None, paired score per head [K]) of one item."""
    audio = clip.features
    sims = model(image, audio)  # [1, K, T, h, w]; masked steps hold 0 (plus the cls term for cls models)
    per_head = model.similarity.score(sims.flatten(-2), audio.mask, per_head=True)[0]
    s = sims[0].amax(dim=0)  # [T, h, w]: heads combined by an element-wise max, as the original heatmaps
    m = audio.mask[0].to(s.dtype)
    basic = (s * m[:, None, None]).sum(0) / m.sum()
    advanced = None if window is None else s[window[0] : window[1]].sum(0) / (window[1] - window[0])
    return basic, advanced, per_head


def _short_clip_note(kind: str, row: PromptedRow, clip: ClipFeatures) -> str | None:
    if clip.features.mask.sum() == 0:
        raise InputError(
            f"{row.audio[kind].name} (CSV row {row.csv_row}): {clip.samples / SAMPLE_RATE:.3f} s of audio is "
            "shorter than one model step; remove the row or use a longer prompt"
        )
    if clip.samples < MIN_MASK_FRACTION * AUDIO_SAMPLES:
        return (
            f"CSV row {row.csv_row}: {kind} prompt {row.audio[kind].name} lasts {clip.samples / SAMPLE_RATE:.3f} s "
            f"(under {MIN_MASK_FRACTION * AUDIO_SAMPLES / SAMPLE_RATE:.2f} s); the original would have replaced it "
            "by another clip of its batch; evaluated as it is"
        )
    return None


def _windows(sets: dict[str, _RawSet], clips: dict[Path, ClipFeatures], notes: list[str]) -> None:
    """Check every item's clip and fix its advanced window (speech), before any image is encoded."""
    for kind, s in sets.items():
        for row in s.rows:
            clip = clips[row.audio[kind]]
            note = _short_clip_note(kind, row, clip)
            if note:
                notes.append(note)
            window = None
            if kind == "speech" and row.timing is not None:
                lo, hi = prompt_window(row.timing, clip.features.mask.shape[1], AUDIO_SAMPLES / SAMPLE_RATE)
                window = _check_window(row, lo, hi, clip, notes)
            s.windows.append(window)
            s.steps.append(int(clip.features.mask.sum()))


def _raw_maps(
    model: DenseAV, rows: Sequence[PromptedRow], kinds: Sequence[str], encoder: FeatureEncoder, notes: list[str]
) -> dict[str, _RawSet]:
    """Encode every distinct clip and image once; compute each item's raw maps, image by image."""
    sets = {k: _RawSet([r for r in rows if k in r.audio], {}, [], [], []) for k in kinds}
    clip_paths = sorted({r.audio[k] for k, s in sets.items() for r in s.rows})
    clips = dict(encoder.encode_clips(clip_paths))
    _windows(sets, clips, notes)
    by_image: dict[Path, list[tuple[str, int]]] = {}
    for kind, s in sets.items():
        for i, row in enumerate(s.rows):
            by_image.setdefault(row.image, []).append((kind, i))
    computed: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = {}
    for path, image in encoder.encode_images(list(by_image)):
        for kind, i in by_image[path]:
            s = sets[kind]
            computed[kind, i] = _item_maps(model, image, clips[s.rows[i].audio[kind]], s.windows[i])
    for kind, s in sets.items():
        for i in range(len(s.rows)):  # in CSV order, whatever order the images came in
            basic, advanced, per_head = computed[kind, i]
            s.maps.setdefault("basic", []).append(basic)
            if advanced is not None:
                s.maps.setdefault("advanced", []).append(advanced)
            s.scores.append(per_head)
    return sets


def _normalise(maps: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """``(R - min R) / max(R - min R)`` over the whole set (all items, all positions), as the original."""
    shifted = maps - maps.min()
    top = shifted.max()
    out = shifted / top if top > 0 else torch.zeros_like(shifted)
    return out, (float(maps.min()), float(maps.max()))


def upsample(grid_map: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """A patch-grid map [h, w] -> [size, size], bilinear, align_corners=False, no antialiasing (the original)."""
    return F.interpolate(grid_map[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]


# -------------------------------------------------------------------------------------------- scoring


def _ground_truth(rows: Sequence[PromptedRow]) -> dict[int, np.ndarray]:
    """CSV row -> ``label == class id`` on the cropped 224 x 224 label map, as packed bits (each label read once).
    Made before any encoding, so a bad label map fails the run at once."""
    by_label: dict[Path, list[PromptedRow]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    out = {}
    for label, members in by_label.items():
        classes = decode_ade_labels(load_label_image(label), label).reshape(-1)
        out.update({r.csv_row: np.packbits(classes == r.class_id) for r in members})
    return out


def _unpack(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(bits, count=CROP_SIZE * CROP_SIZE).astype(bool))


def _stream(maps: torch.Tensor, truth: list[np.ndarray], members: list[int]) -> ScoreStream:
    def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in members:
            yield upsample(maps[i]).reshape(-1), _unpack(truth[i])

    return stream


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _items(kind: str, raw: _RawSet, basic: torch.Tensor, truth: list[np.ndarray]) -> list[SegmentationItem]:
    out = []
    for i, r in enumerate(raw.rows):
        own_ap = average_precision(upsample(basic[i]), _unpack(truth[i]))
        scores = [float(x) for x in raw.scores[i]]
        out.append(
            SegmentationItem(
                i, r.csv_row, r.class_id, r.image, r.label, r.audio[kind], raw.steps[i], raw.windows[i], scores, own_ap
            )
        )
    return out


def _score_class(
    class_id: int, name: str, norm: dict[str, torch.Tensor], truth: list[np.ndarray], members: list[int]
) -> ClassResult:
    """Pooled AP and best IoU of one class for each map kind; both undefined (None) without a positive pixel."""
    values: dict[str, float | None] = {}
    positives = 0
    for kind, maps in norm.items():
        pooled = pooled_metrics(_stream(maps, truth, members))
        positives = pooled.positives
        values[f"{kind}_ap"] = pooled.ap
        values[f"{kind}_iou"] = None if pooled.ap is None else pooled.iou
    return ClassResult(class_id, name, len(members), positives, **values)


def _score_set(
    kind: str, raw: _RawSet, all_truth: dict[int, np.ndarray], names: dict[int, str], notes: list[str]
) -> PromptSetResult:
    normalised = {name: _normalise(torch.stack(maps)) for name, maps in raw.maps.items()}
    norm = {name: maps for name, (maps, _) in normalised.items()}
    truth = [all_truth[r.csv_row] for r in raw.rows]
    classes = []
    for class_id in sorted({r.class_id for r in raw.rows}):
        members = [i for i, r in enumerate(raw.rows) if r.class_id == class_id]
        classes.append(_score_class(class_id, names.get(class_id, ""), norm, truth, members))
        if classes[-1].positive_pixels == 0:
            notes.append(
                f"{kind}: class {class_id} has no positive pixel in any of its {len(members)} image(s); "
                "its AP and IoU are undefined and left out of the means"
            )
    metrics = {
        f"{name}_{what}": _mean([getattr(c, f"{name}_{what}") for c in classes])
        for name in norm
        for what in ("ap", "iou")
    }
    items = _items(kind, raw, norm["basic"], truth)
    ranges = {name: lo_hi for name, (_, lo_hi) in normalised.items()}
    return PromptSetResult(kind, metrics, classes, items, ranges, norm)


def run_segmentation(
    root: str | os.PathLike[str],
    model: DenseAV,
    *,
    prompts: str = "speech",
    encoder: FeatureEncoder,
) -> SegmentationResult:
    """Evaluate ``model`` on a prompted-segmentation dataset; ``prompts`` is "speech", "sound" or "both"."""
    kinds = list(PROMPT_KINDS) if prompts == "both" else [prompts]
    if any(k not in PROMPT_KINDS for k in kinds):
        raise InputError(f"prompts must be 'speech', 'sound' or 'both', got {prompts!r}")
    rows = read_prompted(root)
    for k in kinds:
        if not any(k in r.audio for r in rows):
            raise InputError(f"{Path(root) / PROMPTED_CSV}: no row has a {k} prompt ({PROMPT_KINDS[k]})")
    truth = _ground_truth([r for r in rows if any(k in r.audio for k in kinds)])
    notes: list[str] = []
    with torch.inference_mode():
        raw = _raw_maps(model, rows, kinds, encoder, notes)
    names = {r.class_id: r.class_name for r in rows}
    sets = {k: _score_set(k, raw[k], truth, names, notes) for k in kinds}
    dis = None
    if len(kinds) == 2 and model.config.num_heads == 2:
        dis = disentanglement(torch.stack(raw["speech"].scores), torch.stack(raw["sound"].scores))
    return SegmentationResult(Path(root), sets, dis, notes)
