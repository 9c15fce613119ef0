"""The fused scorer against the per-pair path (`Similarity.forward` then `.score`, what ground() runs) for every
option the similarity has: one or two heads, with or without the cls term, silence masked or counted."""

from __future__ import annotations

import pytest
import torch

from denseav.corpus.fused import TILE_BYTES, ClipBatch, FusedScorer, ImageBatch
from denseav.modeling.similarity import Similarity

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def _random_items(g: torch.Generator, sizes: list[int], c: int, with_cls: bool) -> list[Item]:
    """Float16 features (as stored) [n, C] per size, a mask with silent steps (first step real), cls or None."""
    items = []
    for n in sizes:
        mask = torch.rand(n, generator=g) > 0.3
        mask[0] = True
        cls = torch.randn(c, generator=g).half() if with_cls else None
        items.append((torch.randn(n, c, generator=g).half(), mask, cls))
    return items


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("use_cls", [False, True])
@pytest.mark.parametrize("mask_silence", [True, False])
def test_fused_scorer_equals_forward_and_score_per_pair(heads: int, use_cls: bool, mask_silence: bool) -> None:
    g = torch.Generator().manual_seed(heads * 4 + use_cls * 2 + mask_silence)
    c = 8 * heads
    sim = Similarity(heads, use_cls=use_cls, mask_silence=mask_silence)
    clips = _random_items(g, [1, 7, 12, 5], c, use_cls)  # different lengths, silent steps
    clips[3][1][:] = False  # and a clip with no real step at all
    batch = ClipBatch.of(clips)
    images = _random_items(g, [6, 6, 20], c, use_cls)
    for tile_bytes in (1, TILE_BYTES):  # one image per tile, and all at once
        scorer = FusedScorer(sim, torch.device("cpu"), tile_bytes=tile_bytes)
        for group in (images[:2], images[2:]):  # a batch holds images of one patch count
            cls = torch.stack([x for _, _, x in group if x is not None]) if use_cls else None
            image_batch = ImageBatch([f for f, _, _ in group], cls)
            fused = scorer(image_batch, batch)
            fused_per_head = scorer(image_batch, batch, per_head=True)
            for a, (af, amask, acls) in enumerate(clips):
                for v, (vf, _, vcls) in enumerate(group):
                    volume = sim(  # [1, K, T, N], as DenseAV.forward computes it
                        vf[None],
                        af[None],
                        audio_mask=amask[None],
                        image_cls=None if vcls is None else vcls[None],
                        audio_cls=None if acls is None else acls[None],
                    )
                    expected = sim.score(volume, amask[None])[0]
                    torch.testing.assert_close(fused[a, v], expected, rtol=1e-5, atol=1e-5)
                    per_head = sim.score(volume, amask[None], per_head=True)[0]
                    torch.testing.assert_close(fused_per_head[a, v], per_head, rtol=1e-5, atol=1e-5)


def test_missing_cls_for_a_cls_model_is_an_error() -> None:
    g = torch.Generator().manual_seed(0)
    ((f, m, _),) = _random_items(g, [3], 4, False)
    scorer = FusedScorer(Similarity(1, use_cls=True), torch.device("cpu"))
    with pytest.raises(ValueError, match="cls"):
        scorer(ImageBatch([f], None), ClipBatch.of([(f, m, None)]))
