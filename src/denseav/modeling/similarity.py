"""Multi-head dense similarity between aligned audio and image features, and its aggregation to a score.

The code_dim channels split into K contiguous blocks, one per head (two-head model: language, then sound).
For audio step t and image position (y, x), head k's similarity is the dot product of the two features' k-th
blocks; that volume [K, T, h, w] is the heatmap. All similarity arithmetic runs in float32.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class Similarity(nn.Module):
    """The dense similarity volume and the original's score for it.

    Only the options of the published checkpoints are implemented (max over heads element-wise, "misa":
    max over space, masked mean over time); checkpoint/config.py refuses the others at load time.
    """

    calibration: torch.Tensor

    def __init__(self, num_heads: int, *, use_cls: bool = False, mask_silence: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.use_cls = use_cls
        self.mask_silence = mask_silence
        # The training loss's log-temperature; kept so checkpoints round-trip, unused by inference.
        self.register_buffer("calibration", torch.zeros(1))

    @property
    def calibration_weight(self) -> torch.Tensor:
        """The contrastive temperature exp(w) clamped to [0.01, 100] (training only)."""
        return self.calibration.exp().clamp(0.01, 100.0)

    def forward(
        self,
        image: torch.Tensor,
        audio: torch.Tensor,
        *,
        audio_mask: torch.Tensor | None = None,
        image_cls: torch.Tensor | None = None,
        audio_cls: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Paired dense similarity.

        image [B, N, C] (N = h*w positions), audio [B, T, C]; a batch of 1 on either side broadcasts (one clip
        against many frames). Returns float32 [B, K, T, N]. Masked audio steps are exactly 0 (as the original).
        """
        k = self.num_heads
        a = rearrange(audio.float(), "b t (k c) -> b k t c", k=k)
        v = rearrange(image.float(), "b n (k c) -> b k c n", k=k)
        sims = a @ v
        if audio_mask is not None:
            sims.mul_(audio_mask[:, None, :, None])  # in place: a second volume-sized buffer is not needed
        if self.use_cls:
            if image_cls is None or audio_cls is None:
                raise ValueError("this model's similarity uses the cls term but a cls feature is missing")
            # Broadcasts the audio cls over frames; the original reshapes it with the image batch size instead
            # and fails whenever the two batch sizes differ.
            ac = rearrange(audio_cls.float(), "b (k c) -> b k c", k=k)
            ic = rearrange(image_cls.float(), "b (k c) -> b k c", k=k)
            sims = sims + (ac * ic).sum(-1)[..., None, None]
        return sims

    def score(
        self, sims: torch.Tensor, audio_mask: torch.Tensor | None = None, *, per_head: bool = False
    ) -> torch.Tensor:
        """Aggregate [B, K, T, N] similarity to one number per pair ([B]) or per pair and head ([B, K]).

        The original's "misa" with `head_agg="max_elementwise"`: the element-wise max over heads (skipped with
        `per_head`), then the max over space, then the mean over the (unmasked) time steps.
        """
        b, _, t, _ = sims.shape
        mask = audio_mask if (audio_mask is not None and self.mask_silence) else sims.new_ones(b, t, dtype=torch.bool)
        mask = mask.to(sims.dtype)[:, None, :]  # [B, 1, T]
        # Max over space first, then over heads: the same maxima (max commutes), without a volume-sized
        # temporary of the head-wise maximum (10 MB for ten minutes of audio).
        peaks = sims.amax(dim=-1)  # [B, K, T]
        if not per_head:
            peaks = peaks.amax(dim=1, keepdim=True)
        per = (peaks * mask).sum(-1) / mask.sum(-1).clamp_min(0.001)  # [B, K or 1]
        return per if per_head else per[:, 0]
