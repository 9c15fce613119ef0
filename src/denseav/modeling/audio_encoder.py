"""Audio encoder: HuBERT-Large (the "stable layer norm" variant), written out in plain PyTorch.

Conv feature encoder (7 strided convs, each LayerNorm + GELU) -> projection -> convolutional positions ->
pre-norm transformer blocks (the shared `transformer.Block`) -> final LayerNorm.
16 kHz in, one frame per 320 samples (50 Hz) out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..heap import release_free_memory
from .layers import Linear
from .transformer import Block

# The waveform rate HuBERT was trained on, and so the rate every waveform given to the model must have.
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioEncoderConfig:
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    # DenseAV overrides HuBERT's 1e-5 with 1e-4 for every config-driven LayerNorm; the conv encoder's
    # LayerNorms are built with torch's default and keep 1e-5.
    layer_norm_eps: float = 1e-4
    conv_layer_norm_eps: float = 1e-5

    @property
    def receptive_field(self) -> int:
        """Samples needed for one frame (400 for HuBERT)."""
        field = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            field = (field - 1) * s + k
        return field

    @property
    def frame_rate(self) -> float:
        """Frames per second (50 for HuBERT)."""
        return SAMPLE_RATE / self.hop

    @property
    def hop(self) -> int:
        """Samples between frames (320 for HuBERT)."""
        hop = 1
        for s in self.conv_stride:
            hop *= s
        return hop

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1 if n >= k else 0
        return max(n, 0)


class ConvLayer(nn.Module):
    """Strided conv -> LayerNorm over channels -> GELU, computed channels-last.

    The convolution runs as a linear over unfolded windows: on CPU that is one large GEMM instead of a strided
    conv1d plus two transposes around the LayerNorm (about 3x faster in float32, 4x in bfloat16; same math).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride)
        self.norm = nn.LayerNorm(c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C_in] -> [B, T', C_out]
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        windows = x.unfold(1, k, s)  # [B, T', C_in, k]
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # [C_out, C_in * k], same (C_in, k) order
        x = F.linear(windows.reshape(*windows.shape[:2], -1).to(weight.dtype), weight, self.conv.bias).to(x.dtype)
        return F.gelu(self.norm(x))


class FeatureEncoder(nn.Module):
    """The 7 strided convolutions. Each output frame sees only its own 400 samples, so long audio is processed in
    chunks of `chunk_frames` frames with identical results and bounded memory (the first layer alone would
    otherwise hold 512 floats per 5 samples: 3.9 GB for ten minutes; a 2 s chunk peaks near 40 MB)."""

    chunk_frames = 100

    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        self.config = config
        dims = (1, *tuple(config.conv_dim))
        self.layers = nn.ModuleList(
            ConvLayer(dims[i], dims[i + 1], k, s, config.conv_layer_norm_eps)
            for i, (k, s) in enumerate(zip(config.conv_kernel, config.conv_stride))
        )

    def _run(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform[:, :, None]
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B, T, C] (channels-last)
        frames = self.config.num_frames(waveform.shape[-1])
        if frames <= self.chunk_frames:
            return self._run(waveform)
        hop, field = self.config.hop, self.config.receptive_field
        chunks = []
        for f0 in range(0, frames, self.chunk_frames):
            f1 = min(f0 + self.chunk_frames, frames)
            chunks.append(self._run(waveform[:, f0 * hop : (f1 - 1) * hop + field]))
        return torch.cat(chunks, dim=1)


class PositionalConv(nn.Module):
    """Grouped conv over time whose output is added to the frames. Weight norm is folded into `conv.weight` at
    load time. An even kernel with padding k/2 yields one extra frame, which is dropped (the last one)."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D]
        y = self.conv(x.transpose(1, 2).to(self.conv.weight.dtype)).to(x.dtype)
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class AudioEncoder(nn.Module):
    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        self.config = config
        c, d = config.conv_dim[-1], config.hidden_size
        self.feature_encoder = FeatureEncoder(config)
        self.projection_norm = nn.LayerNorm(c, eps=config.layer_norm_eps)
        self.projection = Linear(c, d)
        self.pos_conv = PositionalConv(d, config.pos_conv_kernel, config.pos_conv_groups)
        # The shared pre-norm block: HuBERT-Large's "stable layer norm" layers have exactly its structure.
        self.blocks = nn.ModuleList(
            Block(d, config.num_heads, mlp_hidden=config.intermediate_size, eps=config.layer_norm_eps)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def conv_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, N] waveform -> [B, C, T] output of the convolutional feature encoder."""
        return self.feature_encoder(waveform).transpose(1, 2)

    def _encode(self, waveform: torch.Tensor, *, release_memory: bool = False) -> torch.Tensor:
        """`release_memory`: hand the heap's free pages back to the OS before each block (see heap.py), so that
        a window's resident size is what it holds, not what earlier windows' temporaries left fragmented."""
        x = self.feature_encoder(waveform)
        x = self.projection(self.projection_norm(x))
        x = x + self.pos_conv(x)
        for block in self.blocks:
            if release_memory:
                release_free_memory()
            x = block(x)
        return self.norm(x)

    def forward(
        self, waveform: torch.Tensor, *, window_frames: int | None = None, overlap_frames: int = 250
    ) -> torch.Tensor:
        """[B, N] 16 kHz waveform -> [B, T, D] frames (T = (N - 400) // 320 + 1).

        Clips of up to `window_frames` frames are encoded whole, exactly as the original; longer ones in
        overlapping windows (see `stream`, whose pieces this joins).
        """
        return torch.cat(list(self.stream(waveform, window_frames=window_frames, overlap_frames=overlap_frames)), 1)

    def stream(
        self, waveform: torch.Tensor, *, window_frames: int | None = None, overlap_frames: int = 250
    ) -> Iterator[torch.Tensor]:
        """The frames of `forward`, yielded in order as consecutive pieces [B, t, D] as soon as they are final.

        A clip of up to `window_frames` frames is one piece, encoded whole. A longer clip is encoded in windows of
        `window_frames` frames that overlap by at least `overlap_frames` and are cross-faded linearly in the
        overlaps, so time and memory grow linearly instead of quadratically (attention) with the length. A frame
        is final once no later window covers it; only the overlap still to be blended is held back, so a caller
        that reduces each piece (the aligner) never holds the whole clip's frames.
        """
        frames = self.config.num_frames(waveform.shape[-1])
        if window_frames is None or frames <= window_frames:
            yield self._encode(waveform)
            return
        if not 0 < overlap_frames < window_frames // 2:
            raise ValueError(f"overlap_frames must be in (0, {window_frames // 2}), got {overlap_frames}")
        hop, field = self.config.hop, self.config.receptive_field
        # As few windows as cover the clip with at least `overlap_frames` of overlap, spread evenly (shortened to
        # fit) so no window is spent re-encoding what its neighbour already covered.
        count = math.ceil((frames - overlap_frames) / (window_frames - overlap_frames))
        window_frames = math.ceil((frames + (count - 1) * overlap_frames) / count)
        starts = [round(i * (frames - window_frames) / (count - 1)) for i in range(count)]
        ends = [*starts[1:], frames]  # window i's frames before the next window's start are final after it
        ramp = (torch.arange(overlap_frames, dtype=torch.float32, device=waveform.device) + 0.5) / overlap_frames
        acc = torch.zeros(waveform.shape[0], 0, self.config.hidden_size, device=waveform.device)
        total = torch.zeros(0, 1, device=waveform.device)
        done = 0  # frames already yielded; acc / total hold the weighted sums of frames done, done + 1, ...
        for i, (s, end) in enumerate(zip(starts, ends)):
            y = self._encode(waveform[:, s * hop : (s + window_frames - 1) * hop + field], release_memory=True)
            y = y.float()
            w = torch.ones(window_frames, 1, dtype=torch.float32, device=waveform.device)
            if i > 0:
                w[:overlap_frames, 0] = ramp
            if i < count - 1:
                w[-overlap_frames:, 0] = ramp.flip(0)
            grow = s + window_frames - done - acc.shape[1]
            acc = torch.cat([acc, acc.new_zeros(acc.shape[0], grow, acc.shape[2])], 1)
            total = torch.cat([total, total.new_zeros(grow, 1)])
            acc[:, s - done :] += y * w
            total[s - done :] += w
            del y  # nothing window-sized may outlive its window (see below)
            finished = acc[:, : end - done] / total[: end - done]
            acc, total, done = acc[:, end - done :].clone(), total[end - done :].clone(), end
            yield finished
            # The consumer has reduced the piece. While the next window is encoded only the overlap tail (cloned,
            # so its window-sized base is freed) stays, and the freed heap pages go back to the OS: without both,
            # blocks that outlive a window fragment the heap and the process grew by ~10 MB a window (heap.py).
            del finished
            release_free_memory()
