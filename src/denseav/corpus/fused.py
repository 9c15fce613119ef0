"""The fused scorer: the original's score for many (clip, image) pairs at once, without similarity volumes.

A pair's score (`Similarity.score`, the spec's section 5) is the mean over the clip's real audio steps of the
largest similarity over heads and patches. Here the real steps of many clips (rows) meet the patches of many
images (columns) in one float32 matrix product per head; a max over each image's patches leaves [steps, images],
the max over heads and a sum per clip leave the scores. Nothing of size [pairs, steps, patches] is ever held:
work goes in tiles of a few clips and images whose buffers are reused from tile to tile.

It reproduces `Similarity.forward` followed by `Similarity.score` term by term:
- forward zeroes the similarity of masked steps, so with `mask_silence` they add nothing and are not counted;
  without it they count with similarity 0 (plus the cls term below) and the mean runs over every step;
- a model with `use_cls` adds, per pair and head, the dot product of the two cls vectors to every entry after
  the masking; a constant commutes with the max (float rounding of x + c is monotonic in x, so the very same
  float comes out), so it is added to the per-step maxima instead of to every patch.
The only difference from the per-pair path is the order of float32 additions (within 1e-6 relative).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..modeling.similarity import Similarity

# One tile's float32 working set (rows, patches, the product and the per-step maxima): big enough that the
# matrix product runs near the machine's peak, small enough to stay near the caches. Measured with
# benchmarks/corpus_score.py on 2 AVX2 cores; larger tiles were no faster.
TILE_BYTES = 64 * 1024**2
# Clip steps (rows of the product) per tile, at most: enough rows for the product's blocking to amortise
# packing each image tile; a longer clip is a tile of its own.
TILE_STEPS = 1024


@dataclass(frozen=True)
class ClipBatch:
    """Clips laid end to end: `steps` [S, C] (every clip's steps, clip after clip), `lengths` [A] int64 steps per
    clip (summing to S), `mask` [S] bool (True = real audio), `cls` [A, C] or None. Any float dtype."""

    steps: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor
    cls: torch.Tensor | None

    @classmethod
    def of(cls, clips: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> ClipBatch:
        """From (features [T, C], mask [T], cls [C] or None) per clip (copied into one batch)."""
        steps = torch.cat([f for f, _, _ in clips])
        lengths = torch.tensor([f.shape[0] for f, _, _ in clips], dtype=torch.int64)
        mask = torch.cat([m.to(steps.device) for _, m, _ in clips])
        has_cls = [c is not None for _, _, c in clips]
        vectors = torch.stack([c for _, _, c in clips]) if all(has_cls) else None  # type: ignore[misc]
        return cls(steps, lengths, mask, vectors)

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def slice(self, lo: int, hi: int) -> ClipBatch:
        """Clips lo..hi-1 (views)."""
        first = int(self.lengths[:lo].sum())
        last = first + int(self.lengths[lo:hi].sum())
        cls = None if self.cls is None else self.cls[lo:hi]
        return ClipBatch(self.steps[first:last], self.lengths[lo:hi], self.mask[first:last], cls)


@dataclass(frozen=True)
class ImageBatch:
    """Images with the same number of patches (grids may differ: the max over space ignores layout):
    `patches` one [V, N, C] tensor or V tensors [N, C] (copied into float32 a tile at a time, so a list of stored
    float16 features is never stacked whole), `cls` [V, C] or None. Any float dtype."""

    patches: torch.Tensor | Sequence[torch.Tensor]
    cls: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.patches)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(V, N, C)."""
        n, c = self.patches[0].shape
        return len(self.patches), n, c

    def slice(self, lo: int, hi: int) -> ImageBatch:
        return ImageBatch(self.patches[lo:hi], None if self.cls is None else self.cls[lo:hi])

    def float32(self, work: _Workspace) -> torch.Tensor:
        """[V * N, C] float32 on the workspace's device: the patches themselves when they already are, else a
        copy into a reused buffer."""
        v, n, c = self.shape
        p = self.patches
        if isinstance(p, torch.Tensor) and p.dtype == torch.float32 and p.device == work.device:
            return p.reshape(v * n, c)
        out = work.get("patches", v, n, c)
        if isinstance(p, torch.Tensor):
            out.copy_(p)
        else:  # one copy per image (torch.stack(out=) would stack in float16 first, then convert)
            for i, item in enumerate(p):
                out[i].copy_(item)
        return out.view(v * n, c)


class _Workspace:
    """Float32 buffers reused from tile to tile. A fresh large tensor costs a page fault per page on first touch,
    which made the float16 -> float32 conversion of image tiles several times slower than copying into memory
    touched before."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        size = 1
        for s in shape:
            size *= s
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < size:
            buf = self.buffers[name] = torch.empty(size, device=self.device)
        return buf[:size].view(shape)


def score_batch(
    similarity: Similarity,
    images: ImageBatch,
    clips: ClipBatch,
    *,
    per_head: bool = False,
    tile_bytes: int = TILE_BYTES,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Float32 scores [A, V] (or [A, V, K] with `per_head`) on the CPU, equal to `Similarity.score` of each pair's
    volume. Works in tiles of about `tile_bytes` (at least one clip and one image each) on `device` (default:
    where the clips are)."""
    device = device or clips.steps.device
    (v_n, n, c), k = images.shape, similarity.num_heads
    if similarity.use_cls and (images.cls is None or clips.cls is None):
        raise ValueError("this model's similarity uses the cls term but a cls feature is missing")
    out = torch.empty(len(clips), v_n, k if per_head else 1)
    work = _Workspace(device)
    with torch.inference_mode():
        for a0, a1 in _clip_tiles(clips.lengths, _steps_per_tile(tile_bytes, n, c, k)):
            tile = clips.slice(a0, a1)
            mask = tile.mask.cpu()
            rows = tile.steps[mask.to(tile.steps.device)].to(device, torch.float32)
            owner = torch.repeat_interleave(torch.arange(a1 - a0), tile.lengths)[mask]
            # Sums per clip as one small product: index_add_ over rows dispatches once per row on the CPU.
            members = (owner[None, :] == torch.arange(a1 - a0)[:, None]).to(device, torch.float32)  # [A, R]
            step = _images_per_tile(tile_bytes, rows.shape[0], n, c, k)
            for v0 in range(0, v_n, step):
                part = images.slice(v0, v0 + step)
                sums = _tile_sums(similarity, rows, owner.to(device), members, tile, part, per_head, work)
                out[a0:a1, v0 : v0 + step] = sums.cpu()
    real = clips.mask.cpu().to(torch.float32).split(clips.lengths.tolist())
    counted = torch.stack([m.sum() for m in real]) if similarity.mask_silence else clips.lengths.to(torch.float32)
    out /= counted.clamp_min(0.001)[:, None, None]  # the original's denominator, as in Similarity.score
    return out if per_head else out[..., 0]


def _steps_per_tile(tile_bytes: int, n: int, c: int, k: int) -> int:
    """Rows per tile: TILE_STEPS, fewer when a tile of one image must still fit in `tile_bytes`."""
    per_row = 4 * (c + n + 3 * k)  # the row itself, its product with one image, its maxima
    return max(1, min(TILE_STEPS, (tile_bytes - 4 * n * c) // per_row))


def _images_per_tile(tile_bytes: int, rows: int, n: int, c: int, k: int) -> int:
    """Images per tile so that rows, the float32 image tile, the product [rows, V*N] and the per-head maxima
    [rows, V, K] (three copies: values, cls terms, running max) fit in `tile_bytes`."""
    per_image = 4 * (n * c + rows * n + 3 * rows * k)
    return max(1, (tile_bytes - 4 * rows * c) // per_image)


def _clip_tiles(lengths: torch.Tensor, max_steps: int) -> Iterator[tuple[int, int]]:
    """(first, end) clip ranges of at most `max_steps` steps each (one clip alone when it is longer)."""
    lo, total = 0, 0
    for i, steps in enumerate(lengths.tolist()):
        if i > lo and total + steps > max_steps:
            yield lo, i
            lo, total = i, 0
        total += steps
    if lo < len(lengths):
        yield lo, len(lengths)


def _tile_sums(
    similarity: Similarity,
    rows: torch.Tensor,
    owner: torch.Tensor,
    members: torch.Tensor,
    clips: ClipBatch,
    images: ImageBatch,
    per_head: bool,
    work: _Workspace,
) -> torch.Tensor:
    """[A, V, K or 1]: per clip of the tile, the sum over its counted steps of the max over patches (and heads).
    rows [R, C] float32: the clips' real steps; owner [R]: each row's clip; members [A, R]: owner one-hot."""
    k, (v, n, c) = similarity.num_heads, images.shape
    width, r = c // k, rows.shape[0]
    patches = images.float32(work)  # [V * N, C]
    product = work.get("product", r, v * n)
    cls_terms = _cls_terms(similarity, clips, images, rows.device)  # [A, V, K] or None
    maxima = []
    for head in range(k):
        cols = slice(head * width, (head + 1) * width)
        torch.matmul(rows[:, cols], patches[:, cols].T, out=product)
        m = product.view(r, v, n).amax(dim=-1)  # [R, V]: the max over space of every step's map
        if cls_terms is not None:
            m += cls_terms[owner, :, head]
        maxima.append(m)
    values = torch.stack(maxima, dim=-1)  # [R, V, K]
    if not per_head:
        values = values.amax(dim=-1, keepdim=True)  # the element-wise max over heads
    sums = (members @ values.reshape(r, -1)).view(len(clips), v, -1)
    if not similarity.mask_silence and cls_terms is not None:
        # Masked steps count too; their similarity is 0, so each adds the cls term alone.
        silent = clips.lengths.to(rows.device, torch.float32) - members.sum(dim=1)
        at_zero = cls_terms if per_head else cls_terms.amax(dim=-1, keepdim=True)
        sums += silent[:, None, None] * at_zero
    return sums


def _cls_terms(
    similarity: Similarity, clips: ClipBatch, images: ImageBatch, device: torch.device
) -> torch.Tensor | None:
    """[A, V, K]: per pair and head, the dot product of the cls vectors' k-th blocks (as Similarity.forward)."""
    if not similarity.use_cls or clips.cls is None or images.cls is None:
        return None
    k = similarity.num_heads
    ac = clips.cls.to(device, torch.float32).unflatten(-1, (k, -1))
    ic = images.cls.to(device, torch.float32).unflatten(-1, (k, -1))
    return (ac[:, None] * ic[None]).sum(-1)
