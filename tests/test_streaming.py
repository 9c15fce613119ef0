"""Long audio streams window by window through the aligner's position-local stages with the same results as the
whole-sequence computation (which would hold every frame of the clip at once)."""

from __future__ import annotations

import pytest
import torch

import denseav
from _fixtures import PARITY_DIRS


@pytest.fixture(scope="module", params=PARITY_DIRS, ids=lambda p: p.name)
def model(request) -> denseav.DenseAV:
    return denseav.load(request.param, device="cpu")


def wave(seconds: float, seed: int) -> torch.Tensor:
    return torch.randn(round(seconds * 16000), generator=torch.Generator().manual_seed(seed))[None] * 0.1


def test_streamed_windows_match_the_joined_frames(model, monkeypatch):
    monkeypatch.setattr(model, "audio_window_seconds", 3.0)
    monkeypatch.setattr(model, "audio_window_overlap_seconds", 1.0)
    x = wave(11.3, seed=3)  # 4+ windows of 150 frames, a length that is no multiple of the pools' 9 frames
    with torch.inference_mode():
        streamed = model.encode_audio(x)
        window, overlap = 150, 50
        frames = model.audio_encoder(x, window_frames=window, overlap_frames=overlap)  # joined pieces
        cls = None if model.audio_cls is None else model.audio_cls.expand(1, -1)
        joined, joined_cls = model.audio_aligner(frames, cls)
        pieces = list(model.audio_encoder.stream(x, window_frames=window, overlap_frames=overlap))
    assert len(pieces) > 2 and sum(p.shape[1] for p in pieces) == frames.shape[1]
    assert streamed.features.shape == joined.shape
    assert torch.allclose(streamed.features, joined, atol=1e-5)
    if joined_cls is not None:
        assert streamed.cls is not None and torch.allclose(streamed.cls, joined_cls, atol=1e-5)


@pytest.mark.parametrize("sizes", [(1, 2, 3, 500), (9, 9, 9), (4,)])
def test_forward_stream_equals_forward_for_any_split(model, sizes):
    steps = sum(sizes)
    x = torch.randn(1, steps, model.config.audio_encoder.hidden_size, generator=torch.Generator().manual_seed(1))
    cls = None if model.audio_cls is None else model.audio_cls.expand(1, -1)
    with torch.inference_mode():
        whole, whole_cls = model.audio_aligner(x, cls)
        streamed, streamed_cls = model.audio_aligner.forward_stream(x.split(list(sizes), dim=1), cls)
    assert streamed.shape == whole.shape  # (4 frames fill no pool window: zero steps, as the convolution)
    assert torch.allclose(streamed, whole, atol=1e-5)
    if whole_cls is not None:
        assert streamed_cls is not None and torch.allclose(streamed_cls, whole_cls, atol=1e-5)


def test_windows_release_free_memory_and_whole_clips_do_not(model, monkeypatch):
    # Heap pages go back to the OS before every block of every window (denseav.heap); the whole-clip path that the
    # parity tests cover never calls it.
    from denseav.modeling import audio_encoder

    calls = []
    monkeypatch.setattr(audio_encoder, "release_free_memory", lambda: calls.append(1))
    monkeypatch.setattr(model, "audio_window_seconds", 3.0)
    monkeypatch.setattr(model, "audio_window_overlap_seconds", 1.0)
    enc = model.audio_encoder
    with torch.inference_mode():
        model.encode_audio(wave(2.5, seed=5))
        assert calls == []
        pieces = list(enc.stream(wave(8.2, seed=5), window_frames=150, overlap_frames=50))
    assert len(calls) == len(pieces) * (len(enc.blocks) + 1)
