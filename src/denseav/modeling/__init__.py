"""The DenseAV model in plain PyTorch; one concept per module."""

from __future__ import annotations

from .aligners import build_audio_aligner, build_image_aligner
from .audio_encoder import AudioEncoder, AudioEncoderConfig
from .denseav import AudioFeatures, DenseAV, DenseAVConfig, ImageFeatures
from .image_encoder import ImageEncoder, ImageEncoderConfig
from .similarity import Similarity

__all__ = [
    "AudioEncoder",
    "AudioEncoderConfig",
    "AudioFeatures",
    "DenseAV",
    "DenseAVConfig",
    "ImageEncoder",
    "ImageEncoderConfig",
    "ImageFeatures",
    "Similarity",
    "build_audio_aligner",
    "build_image_aligner",
]
