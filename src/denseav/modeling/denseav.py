"""DenseAV: two encoders, two aligners, one dense multi-head similarity (the paper's Figure 2, read left to right)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..provenance import ModelProvenance
from .aligners import build_audio_aligner, build_image_aligner
from .audio_encoder import SAMPLE_RATE, AudioEncoder, AudioEncoderConfig
from .image_encoder import ImageEncoder, ImageEncoderConfig
from .layers import matmul_parameter_names
from .similarity import Similarity


@dataclass(frozen=True)
class DenseAVConfig:
    """Everything that shapes the model at inference. Built from a checkpoint's own config (see checkpoint.py)."""

    code_dim: int = 384
    num_heads: int = 1
    head_names: tuple[str, ...] = ("sound",)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    audio_encoder: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    learn_audio_cls: bool = True
    use_cls_similarity: bool = False
    mask_silence: bool = True
    # Only the public demo's accidental training mode applied these (see `demo_pooling`).
    image_pool_width: int = 2
    audio_pool_width: int = 1

    def __post_init__(self) -> None:
        if self.code_dim % self.num_heads:
            raise ValueError(f"code_dim {self.code_dim} is not divisible by {self.num_heads} heads")
        if len(self.head_names) != self.num_heads:
            raise ValueError(f"{self.num_heads} heads but head names {self.head_names}")


@dataclass
class ImageFeatures:
    """Aligned image features: `features` [B, h*w, C] (row-major positions), `cls` [B, C], on an h x w grid."""

    features: torch.Tensor
    cls: torch.Tensor | None
    grid: tuple[int, int]

    def __len__(self) -> int:
        return self.features.shape[0]

    def unbind(self) -> list[ImageFeatures]:
        """One batch-of-one ImageFeatures per item (views, no copies)."""
        cls = [None] * len(self) if self.cls is None else list(self.cls.split(1))
        return [ImageFeatures(f, c, self.grid) for f, c in zip(self.features.split(1), cls)]


@dataclass
class AudioFeatures:
    """Aligned audio features: `features` [B, T, C], `cls` [B, C] or None, `mask` [B, T] (True = real audio)."""

    features: torch.Tensor
    cls: torch.Tensor | None
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.features.shape[0]

    def unbind(self) -> list[AudioFeatures]:
        """One batch-of-one AudioFeatures per item (views, no copies)."""
        cls = [None] * len(self) if self.cls is None else list(self.cls.split(1))
        return [AudioFeatures(f, c, m) for f, c, m in zip(self.features.split(1), cls, self.mask.split(1))]


class DenseAV(nn.Module):
    # Clips up to this long go through the audio encoder whole, exactly as the original; longer ones in
    # overlapping windows (see AudioEncoder.forward). None = always whole (memory and time grow quadratically).
    audio_window_seconds: float | None = 30.0
    audio_window_overlap_seconds: float = 5.0

    def __init__(self, config: DenseAVConfig, *, provenance: ModelProvenance | None = None) -> None:
        super().__init__()
        self.config = config
        # Where the weights came from (None for a model built in code); set by `denseav.load`.
        self.provenance: ModelProvenance | None = provenance
        self.image_encoder = ImageEncoder(config.image_encoder)
        self.audio_encoder = AudioEncoder(config.audio_encoder)
        self.image_aligner = build_image_aligner(config.image_encoder.embed_dim, config.code_dim)
        self.audio_aligner = build_audio_aligner(config.audio_encoder.hidden_size, config.code_dim)
        # A learned cls token for audio (HuBERT has none); it joins the aligner's attention, so it shapes every
        # audio feature even when the similarity ignores cls vectors.
        self.audio_cls = nn.Parameter(torch.zeros(config.audio_encoder.hidden_size)) if config.learn_audio_cls else None
        self.similarity = Similarity(
            config.num_heads, use_cls=config.use_cls_similarity, mask_silence=config.mask_silence
        )
        self.eval()  # inference semantics always; nothing here behaves differently in train mode anyway

    def set_dtype(self, dtype: torch.dtype) -> DenseAV:
        """Store the matmul weights in `dtype` (float32, bfloat16, float16); norms and embeddings stay float32."""
        names = matmul_parameter_names(self)
        for name, param in self.named_parameters():
            if name in names:
                param.data = param.data.to(dtype)
        return self

    @property
    def head_names(self) -> tuple[str, ...]:
        return self.config.head_names

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the matmul weights (norms, embeddings and activations between matmuls stay float32)."""
        return self.audio_encoder.projection.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.audio_encoder.projection.weight.device

    @property
    def audio_steps_per_frame(self) -> int:
        """Audio encoder frames per aligned audio step (9 for the published models)."""
        return self.audio_aligner.time_reduction * self.config.audio_pool_width

    @property
    def min_audio_samples(self) -> int:
        """The shortest waveform (16 kHz samples) that yields one aligned audio step: 2,960 = 0.185 s."""
        enc = self.config.audio_encoder
        return enc.receptive_field + enc.hop * (self.audio_steps_per_frame - 1)

    def num_audio_steps(self, num_samples: int) -> int:
        frames = self.config.audio_encoder.num_frames(num_samples)
        return frames // self.audio_steps_per_frame

    def audio_step_times(self, num_steps: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Seconds at the centre of each aligned audio step's receptive field."""
        enc = self.config.audio_encoder
        per_step = enc.hop * self.audio_steps_per_frame
        span = enc.hop * (self.audio_steps_per_frame - 1) + enc.receptive_field
        return (torch.arange(num_steps, dtype=torch.float64) * per_step + span / 2) / sample_rate

    def encode_image(self, pixels: torch.Tensor, *, demo_pooling: bool = False) -> ImageFeatures:
        """[B, 3, H, W] ImageNet-normalised pixels (H, W multiples of 8) -> aligned features on the H/8 x W/8 grid.

        `demo_pooling` reproduces the public demo's 2x2 average pooling (it ran the model in training mode).
        """
        pixels = pixels.to(device=self.device, dtype=torch.float32)
        tokens, cls = self.image_encoder(pixels)
        tokens, cls = self.image_aligner(tokens, cls)
        p = self.config.image_encoder.patch_size
        grid = (pixels.shape[-2] // p, pixels.shape[-1] // p)
        if demo_pooling and self.config.image_pool_width > 1:
            w = self.config.image_pool_width
            maps = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
            maps = F.avg_pool2d(maps, w)
            grid = (maps.shape[-2], maps.shape[-1])
            tokens = maps.flatten(2).transpose(1, 2)
        return ImageFeatures(tokens, cls, grid)

    def encode_audio(
        self, waveform: torch.Tensor, *, sample_mask: torch.Tensor | None = None, demo_pooling: bool = False
    ) -> AudioFeatures:
        """[B, N] 16 kHz waveform -> aligned features [B, T, C] (T = N // 2880 roughly, 5.56 steps per second).

        `sample_mask` [B, N] marks real samples (1) against padding (0); it is resized to the steps as the original.
        """
        waveform = waveform.to(device=self.device, dtype=torch.float32)
        window = None
        if self.audio_window_seconds is not None:
            window = int(self.audio_window_seconds * SAMPLE_RATE) // self.config.audio_encoder.hop
        b = waveform.shape[0]
        cls = None if self.audio_cls is None else self.audio_cls.expand(b, -1)
        # Frames go straight into the aligner (no name kept), so they are freed as soon as it has reduced them.
        feats, cls = self.audio_aligner(
            self.audio_encoder(
                waveform,
                window_frames=window,
                overlap_frames=int(self.audio_window_overlap_seconds * self.config.audio_encoder.frame_rate),
            ),
            cls,
        )
        if demo_pooling and self.config.audio_pool_width > 1:
            w = self.config.audio_pool_width
            feats = F.avg_pool1d(feats.transpose(1, 2), w).transpose(1, 2)
        steps = feats.shape[1]
        if sample_mask is None:
            mask = torch.ones(b, steps, dtype=torch.bool, device=feats.device)
        else:
            m = sample_mask.to(device=feats.device, dtype=torch.float32).reshape(b, 1, 1, -1)
            mask = F.interpolate(m, size=(1, steps), mode="bilinear", align_corners=False).reshape(b, steps) > 0.01
        return AudioFeatures(feats, cls, mask)

    def forward(self, image: ImageFeatures, audio: AudioFeatures) -> torch.Tensor:
        """Dense similarity volume [B, K, T, h, w] in float32 (a batch of 1 on either side broadcasts)."""
        sims = self.similarity(
            image.features, audio.features, audio_mask=audio.mask, image_cls=image.cls, audio_cls=audio.cls
        )
        return sims.unflatten(-1, image.grid)
