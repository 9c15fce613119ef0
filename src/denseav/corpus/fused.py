"""The fused scorer: the original's score for many (clip, image) pairs at once, without similarity volumes.

A pair's score (`Similarity.score`, the spec's section 5) is the mean over the clip's real audio steps of the
largest similarity over heads and patches. Here the real steps of several clips (rows) meet the patches of
several images (columns) in one float32 matrix product per head; a max over each image's patches leaves
[steps, images], the max over heads and a sum per clip leave the scores. Nothing of size [pairs, steps, patches]
is ever held: each image is converted to float32 once per call into a reused buffer, and the products are
blocks of bounded size (TILE_BYTES).

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

import numpy as np
import torch

from ..modeling.similarity import Similarity

# Bytes of float32 image patches converted at once.
TILE_BYTES = 64 * 1024**2
# Bytes of one product block [steps, images * patches], and clip steps (rows) per block (a longer clip is a
# block of its own).
BLOCK_BYTES = 64 * 1024**2
# Both measured with benchmarks/corpus_score.py on 2 AVX2 cores: on one thread, cache-sized blocks (1 MB, 256
# steps) were up to 1.3x faster, but with two threads on a loaded machine they were up to 10x slower (every
# product is a parallel region whose threads must all get a core), so a call makes few, large products.
BLOCK_STEPS = 1024


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
            return out.view(v * n, c)
        stacked = out if p[0].dtype == torch.float32 else work.get("stacked", v, n, c, dtype=p[0].dtype)
        numpy_ok = stacked.dtype in (torch.float16, torch.float32) and stacked.device.type == "cpu"
        if numpy_ok and all(t.device.type == "cpu" and t.dtype == stacked.dtype for t in p):
            # numpy stacks on one thread: torch.stack of 256 images took 3 s with 2 threads on a loaded
            # machine (every input is a parallel region that waits for both threads) and 0.04 s on one.
            np.stack([t.detach().numpy() for t in p], out=stacked.numpy())
        else:
            torch.stack(list(p), out=stacked)
        if stacked is not out:
            out.copy_(stacked)  # float16 -> float32 in one pass
        return out.view(v * n, c)


class _Workspace:
    """Buffers reused from block to block and call to call. A fresh large tensor costs a page fault per
    page on first touch, which made the float16 -> float32 conversion of images several times slower than
    copying into memory touched before."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        size = 1
        for s in shape:
            size *= s
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < size or buf.dtype != dtype:
            buf = self.buffers[name] = torch.empty(size, device=self.device, dtype=dtype)
        return buf[:size].view(shape)


@dataclass(frozen=True)
class _ClipBlock:
    """Whole clips [first, end) of a batch as rows of the product: their real steps in float32 [R, C], each
    row's clip (0-based within the block) and the same as a one-hot [R, clips] that sums rows per clip."""

    first: int
    end: int
    rows: torch.Tensor
    owner: torch.Tensor
    members: torch.Tensor


class FusedScorer:
    """Scores image batches against clip batches for one model's similarity on one device, reusing its buffers
    from call to call. `tile_bytes` bounds the float32 images converted at once (at least one image)."""

    def __init__(self, similarity: Similarity, device: torch.device, *, tile_bytes: int = TILE_BYTES) -> None:
        self.similarity = similarity
        self.tile_bytes = tile_bytes
        self.work = _Workspace(torch.device(device))

    def __call__(self, images: ImageBatch, clips: ClipBatch, *, per_head: bool = False) -> torch.Tensor:
        """Float32 scores [A, V] (or [A, V, K] with `per_head`) on the CPU, equal to `Similarity.score` of each
        pair's volume. Holds the clips' real steps in float32 (the caller sizes `clips`)."""
        sim = self.similarity
        (v_n, n, c), k = images.shape, sim.num_heads
        if sim.use_cls and (images.cls is None or clips.cls is None):
            raise ValueError("this model's similarity uses the cls term but a cls feature is missing")
        out = torch.empty(len(clips), v_n, k if per_head else 1)
        with torch.inference_mode():
            blocks = [self._clip_block(clips, a0, a1) for a0, a1 in _clip_ranges(clips.lengths, BLOCK_STEPS)]
            most_rows = max(b.rows.shape[0] for b in blocks)
            per_block = max(1, min(self.tile_bytes, BLOCK_BYTES) // (4 * n * max(1, most_rows)))  # images
            per_tile = max(per_block, self.tile_bytes // (4 * n * c) // per_block * per_block)
            for v0 in range(0, v_n, per_tile):
                tile = images.slice(v0, v0 + per_tile)
                patches = tile.float32(self.work)  # [V * N, C], converted once for every clip
                for i0 in range(0, len(tile), per_block):
                    i1 = min(i0 + per_block, len(tile))
                    image_cls = None if tile.cls is None else tile.cls[i0:i1]
                    for b in blocks:
                        sums = self._block_sums(b, clips, patches[i0 * n : i1 * n], image_cls, n, per_head)
                        out[b.first : b.end, v0 + i0 : v0 + i1] = sums.cpu()
        real = clips.mask.cpu().to(torch.float32).split(clips.lengths.tolist())
        counted = torch.stack([m.sum() for m in real]) if sim.mask_silence else clips.lengths.to(torch.float32)
        out /= counted.clamp_min(0.001)[:, None, None]  # the original's denominator, as in Similarity.score
        return out if per_head else out[..., 0]

    def _clip_block(self, clips: ClipBatch, first: int, end: int) -> _ClipBlock:
        part = clips.slice(first, end)
        mask = part.mask.cpu()
        rows = part.steps[mask.to(part.steps.device)].to(self.work.device, torch.float32)
        owner = torch.repeat_interleave(torch.arange(end - first), part.lengths)[mask]
        # Sums per clip as one small product (index_add_ over rows dispatches once per row on the CPU).
        members = (owner[:, None] == torch.arange(end - first)).to(self.work.device, torch.float32)
        return _ClipBlock(first, end, rows, owner.to(self.work.device), members)

    def _block_sums(
        self,
        block: _ClipBlock,
        clips: ClipBatch,
        patches: torch.Tensor,
        image_cls: torch.Tensor | None,
        n: int,
        per_head: bool,
    ) -> torch.Tensor:
        """[A, V, K or 1]: per clip of the block, the sum over its counted steps of the max over patches (and
        heads) for each of V images, given as float32 patches [V * N, C] and cls vectors [V, C] or None."""
        sim, rows = self.similarity, block.rows
        k, r, c = sim.num_heads, rows.shape[0], rows.shape[1]
        v, width = patches.shape[0] // n, c // k
        product = self.work.get("product", r, v * n)
        cls_terms = _cls_terms(sim, clips.cls, block, image_cls)  # [A, V, K] or None
        maxima = []
        for head in range(k):
            cols = slice(head * width, (head + 1) * width)
            torch.matmul(rows[:, cols], patches[:, cols].T, out=product)
            m = product.view(r, v, n).amax(dim=-1)  # [R, V]: the max over space of every step's map
            if cls_terms is not None:
                m += cls_terms[block.owner, :, head]
            maxima.append(m)
        values = torch.stack(maxima, dim=-1)  # [R, V, K]
        if not per_head:
            values = values.amax(dim=-1, keepdim=True)  # the element-wise max over heads
        sums = (block.members.T @ values.reshape(r, -1)).view(block.end - block.first, v, -1)
        if not sim.mask_silence and cls_terms is not None:
            # Masked steps count too; their similarity is 0, so each adds the cls term alone.
            silent = clips.lengths[block.first : block.end].to(rows.device, torch.float32) - block.members.sum(0)
            at_zero = cls_terms if per_head else cls_terms.amax(dim=-1, keepdim=True)
            sums += silent[:, None, None] * at_zero
        return sums


def _clip_ranges(lengths: torch.Tensor, max_steps: int) -> Iterator[tuple[int, int]]:
    """(first, end) clip ranges of at most `max_steps` steps each (one clip alone when it is longer)."""
    lo, total = 0, 0
    for i, steps in enumerate(lengths.tolist()):
        if i > lo and total + steps > max_steps:
            yield lo, i
            lo, total = i, 0
        total += steps
    if lo < len(lengths):
        yield lo, len(lengths)


def _cls_terms(
    similarity: Similarity, clip_cls: torch.Tensor | None, block: _ClipBlock, image_cls: torch.Tensor | None
) -> torch.Tensor | None:
    """[A, V, K]: per pair and head, the dot product of the cls vectors' k-th blocks (as Similarity.forward)."""
    if not similarity.use_cls or clip_cls is None or image_cls is None:
        return None
    k, device = similarity.num_heads, block.rows.device
    ac = clip_cls[block.first : block.end].to(device, torch.float32).unflatten(-1, (k, -1))
    ic = image_cls.to(device, torch.float32).unflatten(-1, (k, -1))
    return (ic[None] * ac[:, None]).sum(-1)
