"""Cross-modal retrieval (recall@1/5/10 both ways) and head disentanglement on image/audio pair lists.

Every audio of a set is scored against every image of the set from per-item features (A + V encodings, not
A x V): per head, the original's aggregate (max over space, masked mean over the valid steps), and the heads are
SUMMED for retrieval (the heatmaps max-combine them instead). Pair i's image and audio are the i-th pair of the
set in CSV order. Head disentanglement uses the paired per-head scores of the speech ("word") and sound sets.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..modeling import AudioFeatures, DenseAV, ImageFeatures
from .data import PROMPT_KINDS, RetrievalPair, read_pairs
from .encoding import FeatureEncoder
from .metrics import Disentanglement, disentanglement, recall_at_k
from .provenance import Provenance

__all__ = ["RECALL_KS", "RetrievalResult", "RetrievalSetResult", "pairwise_scores", "run_retrieval"]

#: The recall cut-offs the original reports.
RECALL_KS = (1, 5, 10)


@dataclass
class RetrievalSetResult:
    """One set's recalls (``A_rK``: image query, audio retrieved; ``I_rK``: audio query, image retrieved).

    A recall whose K exceeds the number of pairs is ``None`` (the original's ``topk`` fails there).
    """

    name: str
    pairs: list[RetrievalPair]
    recalls: dict[str, float | None]
    scores_per_head: torch.Tensor  # [audio, image, head]

    @property
    def scores(self) -> torch.Tensor:
        """[audio, image] retrieval scores: the per-head scores summed over heads."""
        return self.scores_per_head.sum(-1)

    @property
    def paired_per_head(self) -> torch.Tensor:
        """[pair, head] the score of each pair's own image and audio."""
        return self.scores_per_head.diagonal(dim1=0, dim2=1).T


@dataclass
class RetrievalResult:
    pairs_csv: Path
    sets: dict[str, RetrievalSetResult]
    disentanglement: Disentanglement | None
    notes: list[str]
    provenance: Provenance | None = None  # set by the public API (evaluate_*)

    @property
    def metrics(self) -> dict[str, float | None]:
        """Flat names: ``retrieval_<set>_A_r1`` ... and ``ap_dis`` / ``act_dis`` when computed."""
        out = {f"retrieval_{name}_{k}": v for name, s in self.sets.items() for k, v in s.recalls.items()}
        if self.disentanglement is not None:
            out["ap_dis"] = self.disentanglement.ap_dis
            out["act_dis"] = self.disentanglement.act_dis
        return out


def _stack_images(images: Sequence[ImageFeatures]) -> ImageFeatures:
    cls = None if images[0].cls is None else torch.cat([i.cls for i in images if i.cls is not None])
    return ImageFeatures(torch.cat([i.features for i in images]), cls, images[0].grid)


def _select(images: ImageFeatures, index: list[int]) -> ImageFeatures:
    cls = None if images.cls is None else images.cls[index]
    return ImageFeatures(images.features[index], cls, images.grid)


def pairwise_scores(model: DenseAV, clips: Sequence[AudioFeatures], images: ImageFeatures) -> torch.Tensor:
    """[audio, image, head] per-head scores (the model's aggregate) of every clip against a batch of images."""
    out = torch.empty(len(clips), len(images), model.config.num_heads)
    for a, clip in enumerate(clips):
        sims = model(images, clip)  # [V, K, T, h, w]: one clip broadcast over the batch of images
        out[a] = model.similarity.score(sims.flatten(-2), clip.mask.expand(len(images), -1), per_head=True)
    return out


def _score_sets(
    model: DenseAV,
    by_set: dict[str, list[RetrievalPair]],
    clips: dict[Path, AudioFeatures],
    images: Iterable[tuple[Path, ImageFeatures]],
    image_chunk: int,
) -> dict[str, torch.Tensor]:
    """[audio, image, head] scores per set. Images arrive as a stream and are scored a chunk at a time against
    every clip of every set that uses them, so only the clips' features and one chunk of images are held."""
    out = {name: torch.empty(len(m), len(m), model.config.num_heads) for name, m in by_set.items()}
    columns: dict[str, dict[Path, list[int]]] = {name: {} for name in by_set}
    for name, members in by_set.items():
        for j, pair in enumerate(members):
            columns[name].setdefault(pair.image, []).append(j)
    stream = iter(images)
    while chunk := list(itertools.islice(stream, image_chunk)):
        stacked = _stack_images([f for _, f in chunk])
        for name, members in by_set.items():
            used = [(i, j) for i, (path, _) in enumerate(chunk) for j in columns[name].get(path, [])]
            if used:
                scores = pairwise_scores(
                    model, [clips[p.audio] for p in members], _select(stacked, [i for i, _ in used])
                )
                out[name][:, [j for _, j in used]] = scores
    return out


def _recalls(name: str, sim: torch.Tensor, notes: list[str]) -> dict[str, float | None]:
    n = sim.shape[0]
    out: dict[str, float | None] = {}
    for k in RECALL_KS:
        a, i = recall_at_k(sim, k) if k <= n else (None, None)
        out[f"A_r{k}"], out[f"I_r{k}"] = a, i
    if n < max(RECALL_KS):
        notes.append(f"{name}: only {n} pairs; recall@K for K > {n} is not defined and reported as null")
    return out


def _check_disentangle(disentangle: bool | None, model: DenseAV, sets: dict[str, list[RetrievalPair]]) -> bool:
    possible = model.config.num_heads == 2 and all(k in sets for k in PROMPT_KINDS)
    if disentangle and model.config.num_heads != 2:
        raise InputError(
            f"head disentanglement needs a two-head model; this one has {model.config.num_heads} "
            f"({', '.join(model.head_names)}); leave out --disentangle"
        )
    if disentangle and not possible:
        raise InputError("head disentanglement needs both a 'speech' and a 'sound' set in the pairs CSV")
    return possible if disentangle is None else disentangle


def run_retrieval(
    pairs_csv: str | os.PathLike[str],
    model: DenseAV,
    *,
    disentangle: bool | None = None,
    encoder: FeatureEncoder,
    image_chunk: int = 64,
) -> RetrievalResult:
    """Recalls per set; disentanglement when asked (``True``), or by default when possible (two heads, both sets).

    Every distinct clip and image is encoded once; the clips' features are held and the images streamed through
    in chunks of ``image_chunk``."""
    pairs = read_pairs(pairs_csv)
    by_set = {k: [p for p in pairs if p.set == k] for k in PROMPT_KINDS if any(p.set == k for p in pairs)}
    do_dis = _check_disentangle(disentangle, model, by_set)
    image_paths = list(dict.fromkeys(p.image for p in pairs))
    clip_paths = list(dict.fromkeys(p.audio for p in pairs))
    notes: list[str] = []
    with torch.inference_mode():
        clips = {path: c.features for path, c in encoder.encode_clips(clip_paths)}
        scores = _score_sets(model, by_set, clips, encoder.encode_images(image_paths), image_chunk)
    sets = {
        name: RetrievalSetResult(name, members, _recalls(name, scores[name].sum(-1), notes), scores[name])
        for name, members in by_set.items()
    }
    dis = None
    if do_dis:
        dis = disentanglement(sets["speech"].paired_per_head, sets["sound"].paired_per_head)
    return RetrievalResult(Path(pairs_csv), sets, dis, notes)
