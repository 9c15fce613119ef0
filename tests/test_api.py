"""The public API on the fixture models: result object, encode-once reuse, options, and every bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import denseav
from _fixtures import PARITY_DIRS, VENDORED, first_parity_dir
from denseav.errors import InputError, InputTypeError, ModelNotFoundError

FOLDER = PARITY_DIRS[0] if PARITY_DIRS else VENDORED / "missing"


@pytest.fixture(scope="module")
def model() -> denseav.DenseAV:
    return denseav.load(first_parity_dir(), device="cpu")


def noise(seconds: float, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    return torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(seed)) * 0.1


def test_result_object(model):
    g = denseav.ground(FOLDER / "image.png", FOLDER / "audio.wav", model=model)
    k, t, h, w = g.heatmaps.shape
    assert k == len(g.head_names) == len(model.head_names)
    assert g.times.shape == (t,) and torch.all(g.times.diff() > 0)
    assert math.isclose(float(g.times[0]), 1480 / 16000, rel_tol=1e-6)  # centre of the first 2,960-sample step
    assert math.isclose(float(g.times[1] - g.times[0]), 0.18, rel_tol=1e-6)
    h0, w0 = g.geometry.original_size
    assert Image.open(FOLDER / "image.png").size == (w0, h0)
    assert g.upsampled().shape == (k, h0, w0)
    assert g.upsampled(time=2).shape == (k, h0, w0)
    assert g.upsampled(time=None).shape == (k, t, h0, w0)
    assert g.over_time("max").shape == (k, h, w)
    assert torch.equal(g[g.head_names[-1]], g.heatmaps[-1])
    assert g.smoothed().shape == g.heatmaps.shape
    d = g.to_dict()
    assert set(d["score_per_head"]) == set(g.head_names) and len(d["times"]) == t
    assert "Grounding(" in repr(g)
    with pytest.raises(KeyError, match="heads are"):
        g["nonexistent"]


def test_encode_once_reuse_equals_ground(model):
    img = denseav.encode_image(FOLDER / "image.png", model=model)
    clips = [noise(1.0, seed=i) for i in range(3)]
    for clip in clips:
        aud = denseav.encode_audio(clip, sample_rate=16000, model=model)
        reused = denseav.similarity(img, aud, model=model)
        direct = denseav.ground(FOLDER / "image.png", clip, sample_rate=16000, model=model)
        assert torch.allclose(reused.heatmaps, direct.heatmaps)
        assert denseav.ground(img, aud, model=model).score == reused.score


def test_normalisation_default_and_raw(model):
    clip = noise(1.0) * 7 + 0.3
    normed = denseav.ground(FOLDER / "image.png", clip, sample_rate=16000, model=model)
    raw = denseav.ground(FOLDER / "image.png", clip, sample_rate=16000, model=model, normalize_audio=False)
    manual = (clip - clip.mean()) / torch.sqrt(clip.var(unbiased=False) + 1e-7)
    via_manual = denseav.ground(FOLDER / "image.png", manual, sample_rate=16000, model=model, normalize_audio=False)
    assert torch.allclose(normed.heatmaps, via_manual.heatmaps, atol=1e-4)
    assert not torch.allclose(normed.heatmaps, raw.heatmaps, atol=1e-3)


def test_image_sizes(model):
    for size in (160, 224, 256):
        g = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=model, image_size=size)
        assert min(g.heatmaps.shape[-2:]) == size // 8
    native = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=model, image_size=None)
    h0, w0 = native.geometry.original_size
    assert native.heatmaps.shape[-2:] == (h0 // 8, w0 // 8)


def test_demo_pooling_halves_the_grid(model):
    full = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=model)
    pooled = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=model, demo_pooling=True)
    assert pooled.heatmaps.shape[-2:] == (full.heatmaps.shape[-2] // 2, full.heatmaps.shape[-1] // 2)
    assert pooled.upsampled().shape == full.upsampled().shape


def test_model_accepts_name_path_or_model(model):
    a = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=model)
    b = denseav.ground(FOLDER / "image.png", noise(0.5), sample_rate=16000, model=str(FOLDER), device="cpu")
    assert torch.allclose(a.heatmaps, b.heatmaps)


def test_minimum_audio_length(model):
    assert model.min_audio_samples == 2960
    denseav.ground(FOLDER / "image.png", noise(2960 / 16000), sample_rate=16000, model=model)
    with pytest.raises(InputError, match=r"0\.185 s \(2,960 samples\)"):
        denseav.ground(FOLDER / "image.png", noise(2959 / 16000), sample_rate=16000, model=model)


def test_silence_warns_without_nan(model):
    with pytest.warns(UserWarning, match="silen"):
        g = denseav.ground(FOLDER / "image.png", torch.zeros(16000), sample_rate=16000, model=model)
    assert torch.isfinite(g.heatmaps).all() and math.isfinite(g.score)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_audio(model, bad):
    clip = noise(1.0)
    clip[100] = bad
    with pytest.raises(InputError, match="NaN|inf"):
        denseav.ground(FOLDER / "image.png", clip, sample_rate=16000, model=model)


def test_empty_audio(model):
    with pytest.raises(InputError, match="empty|no audio|0 samples"):
        denseav.ground(FOLDER / "image.png", np.zeros(0, np.float32), sample_rate=16000, model=model)


def test_missing_files(model, tmp_path):
    with pytest.raises(InputError, match="nope.png"):
        denseav.ground(tmp_path / "nope.png", noise(1.0), sample_rate=16000, model=model)
    with pytest.raises(InputError, match="nope.wav"):
        denseav.ground(FOLDER / "image.png", tmp_path / "nope.wav", model=model)


def test_undecodable_files(model, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not media " * 100)
    with pytest.raises(InputError, match="could not read an image"):
        denseav.ground(text, noise(1.0), sample_rate=16000, model=model)
    with pytest.raises(InputError, match="decode|no audio track"):
        denseav.ground(FOLDER / "image.png", text, model=model)


def test_image_smaller_than_a_patch(model):
    tiny = np.zeros((5, 5, 3), np.uint8)
    with pytest.raises(InputError, match="8"):
        denseav.ground(tiny, noise(1.0), sample_rate=16000, model=model, image_size=None)


def test_bad_options(model):
    with pytest.raises(InputError, match="multiple of the model.s patch size 8.*image_size=96 or image_size=104"):
        denseav.ground(FOLDER / "image.png", noise(1.0), sample_rate=16000, model=model, image_size=100)
    with pytest.raises(InputError, match="sample_rate"):
        denseav.ground(FOLDER / "image.png", noise(1.0), model=model)
    with pytest.raises(ModelNotFoundError, match="sound-language"):
        denseav.ground(FOLDER / "image.png", noise(1.0), sample_rate=16000, model="no-such-model")
    with pytest.raises(ValueError, match="device"):
        denseav.ground(FOLDER / "image.png", noise(1.0), sample_rate=16000, model=model, device="tpu:9")


def test_batches_match_single_calls(model):
    from PIL import Image as PILImage

    base = PILImage.open(FOLDER / "image.png").convert("RGB")
    images = [FOLDER / "image.png", base.resize((200, 120)), base.resize((96, 160)), base]  # mixed sizes
    clips = [noise(0.6, seed=1), noise(1.0, seed=2), noise(0.6, seed=3)]  # mixed lengths
    many_images = denseav.ground(images, clips[1], sample_rate=16000, model=model, batch_size=2)
    assert isinstance(many_images, list) and len(many_images) == len(images)
    for img, g in zip(images, many_images):
        single = denseav.ground(img, clips[1], sample_rate=16000, model=model)
        assert g.heatmaps.shape == single.heatmaps.shape
        assert torch.allclose(g.heatmaps, single.heatmaps, atol=1e-4, rtol=1e-5)
    many_clips = denseav.ground(images[0], clips, sample_rate=16000, model=model)
    for clip, g in zip(clips, many_clips):
        single = denseav.ground(images[0], clip, sample_rate=16000, model=model)
        assert torch.allclose(g.heatmaps, single.heatmaps, atol=1e-4, rtol=1e-5)
    paired = denseav.ground(images[:3], clips, sample_rate=16000, model=model)
    assert [g.heatmaps.shape[1] for g in paired] == [g.heatmaps.shape[1] for g in many_clips]
    with pytest.raises(InputError, match="equal length"):
        denseav.ground(images, clips, sample_rate=16000, model=model)


def test_long_audio_is_windowed(model, monkeypatch):
    clip = noise(12.0, seed=5)
    whole = denseav.encode_audio(clip, sample_rate=16000, model=model)
    monkeypatch.setattr(model, "audio_window_seconds", 4.0)
    monkeypatch.setattr(model, "audio_window_overlap_seconds", 1.0)
    windowed = denseav.encode_audio(clip, sample_rate=16000, model=model)
    a, b = whole.features.features, windowed.features.features
    assert a.shape == b.shape and torch.equal(whole.times, windowed.times)
    # Same except near window seams: most steps agree closely, none is wildly off.
    close = ((a - b).abs().amax(dim=-1) < 0.05 * a.abs().amax()).float().mean()
    assert close > 0.5
    assert torch.isfinite(b).all()
    short = denseav.encode_audio(noise(3.0), sample_rate=16000, model=model)  # under the window: exact, whole
    monkeypatch.setattr(model, "audio_window_seconds", None)
    assert torch.equal(
        short.features.features, denseav.encode_audio(noise(3.0), sample_rate=16000, model=model).features.features
    )


def test_conv_features_chunking_is_exact(model, monkeypatch):
    wave = noise(5.0, seed=9)[None]
    with torch.inference_mode():
        whole = model.audio_encoder.conv_features(wave)
        monkeypatch.setattr(model.audio_encoder.feature_encoder, "chunk_frames", 37)
        chunked = model.audio_encoder.conv_features(wave)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_aligner_chunking_is_exact(model, monkeypatch):
    clip = noise(8.0, seed=11)
    whole = denseav.encode_audio(clip, sample_rate=16000, model=model)
    monkeypatch.setattr(type(model.audio_aligner), "chunk_steps", 50)  # 400 frames -> chunks of 45
    chunked = denseav.encode_audio(clip, sample_rate=16000, model=model)
    assert torch.allclose(whole.features.features, chunked.features.features, atol=1e-5)
    assert torch.allclose(whole.features.cls, chunked.features.cls, atol=1e-5)


def test_mlp_row_slices_are_exact(model, monkeypatch):
    # Every transformer MLP (image, audio, aligner) takes long inputs in slices of rows; the values must not move.
    from denseav.modeling.transformer import MLP

    image = denseav.encode_image(FOLDER / "image.png", model=model).features
    audio = denseav.encode_audio(noise(4.0, seed=13), sample_rate=16000, model=model).features
    monkeypatch.setattr(MLP, "chunk_rows", 7)
    sliced_image = denseav.encode_image(FOLDER / "image.png", model=model).features
    sliced_audio = denseav.encode_audio(noise(4.0, seed=13), sample_rate=16000, model=model).features
    assert torch.allclose(image.features, sliced_image.features, atol=1e-5)
    assert torch.allclose(audio.features, sliced_audio.features, atol=1e-5)


# ------------------------------------------------------------------------------ encodings know their model


def test_encodings_carry_their_model_and_print_shapes(model):
    img = denseav.encode_image(FOLDER / "image.png", model=model)
    aud = denseav.encode_audio(noise(1.0), sample_rate=16000, model=model)
    assert img.model is model and aud.model is model
    for text in (repr(img), repr(aud)):
        assert len(text) < 300 and "tensor(" not in text
    assert f"grid={img.features.grid[0]}x{img.features.grid[1]}" in repr(img)
    assert f"steps={len(aud.times)}" in repr(aud)


def test_similarity_uses_the_encodings_model_and_its_forward(model):
    img = denseav.encode_image(FOLDER / "image.png", model=model)
    aud = denseav.encode_audio(noise(1.0), sample_rate=16000, model=model)
    g = denseav.similarity(img, aud)  # no model=: nothing is loaded (HF_HUB_OFFLINE, empty cache)
    assert g.model is model
    with torch.inference_mode():
        direct = model(img.features, aud.features)[0]
    assert torch.equal(g.heatmaps, direct)
    assert denseav.similarity(img, aud, model=model).score == g.score


def test_features_of_two_models_do_not_mix(model):
    other = denseav.load(PARITY_DIRS[-1], device="cpu")  # a second model object, even if it is the same folder
    img = denseav.encode_image(FOLDER / "image.png", model=model)
    aud = denseav.encode_audio(noise(1.0), sample_rate=16000, model=other)
    with pytest.raises(InputError, match="two different models"):
        denseav.similarity(img, aud)
    same = denseav.encode_audio(noise(1.0), sample_rate=16000, model=model)
    with pytest.raises(InputError, match="model= is"):
        denseav.similarity(img, same, model=other)
    with pytest.raises(InputError, match="model= is"):
        denseav.ground(img, same, model=other)


def test_a_passed_model_is_never_converted(model):
    dtype, device = model.dtype, model.device
    other = torch.bfloat16 if dtype != torch.bfloat16 else torch.float32
    with pytest.raises(InputError, match="never converted"):
        denseav.ground(FOLDER / "image.png", noise(1.0), sample_rate=16000, model=model, dtype=other)
    assert model.dtype == dtype and model.device == device
    assert denseav.get_model(model, dtype=dtype, device="cpu") is model


def test_model_of_the_wrong_type(model):
    with pytest.raises(InputTypeError, match="int"):
        denseav.ground(FOLDER / "image.png", noise(1.0), sample_rate=16000, model=123)  # type: ignore[call-overload]
    with pytest.raises(InputTypeError, match="EncodedImage"):
        denseav.similarity(FOLDER / "image.png", noise(1.0))  # type: ignore[arg-type]


def test_time_is_seconds_and_step_is_an_index(model):
    g = denseav.ground(FOLDER / "image.png", noise(2.0), sample_rate=16000, model=model)
    k, t, h, w = g.heatmaps.shape
    assert torch.equal(g.maps(step=3), g.heatmaps[:, 3])
    assert torch.equal(g.maps(1.0), g.heatmaps[:, g.step_at(1.0)])
    assert torch.equal(g.maps(step=-1), g.heatmaps[:, t - 1])
    assert g.maps(None).shape == (k, t, h, w)
    assert g.upsampled(1.2).shape == g.upsampled(step=g.step_at(1.2)).shape
    with pytest.raises(InputError, match="outside the clip"):
        g.upsampled(2.5)
    with pytest.raises(InputError, match="out of range"):
        g.upsampled(step=t)
    with pytest.raises(InputError, match="not both"):
        g.maps(1.0, step=2)
    with pytest.raises(InputTypeError, match="index"):
        g.maps(step=1.5)  # type: ignore[arg-type]


def test_one_head_encodings_with_another_model_are_refused(model):
    heads = {len(denseav.load(p).head_names): p for p in PARITY_DIRS}
    if len(heads) < 2:
        pytest.skip("needs fixture models with different head counts")
    few, many = (denseav.load(heads[n]) for n in sorted(heads)[:2])
    img = denseav.encode_image(FOLDER / "image.png", model=few)
    aud = denseav.encode_audio(noise(1.0), sample_rate=16000, model=few)
    with pytest.raises(InputError):
        denseav.ground(img, aud, model=many)


def test_elongated_images_are_capped_not_silently_slow(model):
    banner = np.full((40, 600, 3), 128, np.uint8)  # 600x40 would be a 3360x224 input at the default size
    with pytest.raises(InputError, match="max_long_side"):
        denseav.encode_image(banner, model=model)
    wide = denseav.encode_image(banner, model=model, max_long_side=4096)
    assert wide.geometry.input_size == (224, 3360)
