"""Parity with the original implementation: every fixture, every public loading path, every intermediate.

Each fixture in ../shared/fixtures/parity holds a tiny random-weight model saved exactly as the published
checkpoints are, the inputs, and the original's tensors for them (eval mode). Tolerance: atol 1e-4 + rtol 1e-5.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import denseav
from _fixtures import PARITY_DIRS, fixtures_root
from denseav.audio import decode_audio, prepare_audio
from denseav.image import preprocess_image, resize_short_side, to_rgb_uint8
from denseav.result import temporal_blur

ATOL, RTOL = 1e-4, 1e-5


def test_fixtures_are_present():
    assert PARITY_DIRS, f"no parity fixtures under {fixtures_root()} (set DENSEAV_FIXTURES to their folder)"


def _sources(folder: Path, tmp: Path) -> dict[str, Path]:
    """The fixture through every local loading path: folder, alternative peft naming, Lightning .ckpt."""
    out = {"folder": folder}
    for alt in sorted(folder.glob("model_*.safetensors")):  # e.g. model_newpeft.safetensors (peft >= 0.6 names)
        d = tmp / alt.stem
        d.mkdir()
        shutil.copy(alt, d / "model.safetensors")
        for extra in ("config.json", "backbones.json"):
            if (folder / extra).exists():
                shutil.copy(folder / extra, d / extra)
        out[alt.stem] = d
    if (folder / "checkpoint.ckpt").exists():
        out["ckpt"] = folder / "checkpoint.ckpt"
    return out


def pipeline_outputs(model: denseav.DenseAV, folder: Path) -> dict[str, torch.Tensor]:
    """Run the package from the fixture's image.png and audio.wav and name each result as the fixture does.

    The fixtures were made with the original demo's audio handling: first channel, raw (unnormalised) waveform.
    """
    image, audio = folder / "image.png", folder / "audio.wav"
    out: dict[str, torch.Tensor] = {}
    decoded, _ = decode_audio(audio)
    out["audio.decoded_head"] = decoded[:, :1000]
    wave = prepare_audio(audio, channel="first", normalize=False)
    out["audio.waveform_16k"] = wave[None]
    out["image.resized_uint8"] = resize_short_side(to_rgb_uint8(image), 224)
    pixels, geometry = preprocess_image(image, patch_size=model.config.image_encoder.patch_size)
    out["image.frames"] = pixels[None, None]
    h, w = geometry.grid_size
    with torch.inference_mode():
        out["image.pos_embed"] = model.image_encoder.position_embedding(h, w)
        tokens, cls = model.image_encoder(pixels[None])
        out["image.backbone_feats"] = tokens.transpose(1, 2).unflatten(-1, (h, w))
        out["image.backbone_cls"] = cls
        out["audio.conv_feats"] = model.audio_encoder.conv_features(wave[None])
        out["audio.backbone_feats"] = model.audio_encoder(wave[None]).transpose(1, 2)[:, :, None]

    for prefix, pooling in (("", False), ("demo_train_mode.", True)):
        g = denseav.ground(image, audio, model=model, channel="first", normalize_audio=False, demo_pooling=pooling)
        img = denseav.encode_image(image, model=model, demo_pooling=pooling)
        aud = denseav.encode_audio(audio, model=model, channel="first", normalize=False)
        volume = g.heatmaps.permute(0, 2, 3, 1)[None, :, :, :, None]  # -> [1, K, h, w, 1, T]
        out[prefix + "image.feats"] = img.features.features.transpose(1, 2).unflatten(-1, img.features.grid)
        out[prefix + "sim.volume"] = volume
        out[prefix + "sim.heatmap"] = temporal_blur(volume.mean(dim=-2), dim=-1)
        out[prefix + "sim.score"] = torch.tensor([g.score])
        out[prefix + "sim.score_per_head"] = g.score_per_head[None]
        out[prefix + "sim.heads_combined"] = volume.amax(dim=1)
        if not pooling:
            out["image.cls"] = img.features.cls
            out["audio.feats"] = aud.features.features.transpose(1, 2)[:, :, None]
            out["audio.cls"] = aud.features.cls
            out["audio.mask"] = aud.features.mask
            out["sim.calibration_w"] = model.similarity.calibration_weight
            assert torch.allclose(g.smoothed(), temporal_blur(g.heatmaps, dim=1))
    return out


# The tensors every fixture must be checked on (a fixture may hold more; those are compared when we have them).
CORE = {
    "audio.waveform_16k",
    "image.frames",
    "image.feats",
    "audio.feats",
    "audio.cls",
    "image.cls",
    "sim.volume",
    "sim.heatmap",
    "sim.score",
    "sim.score_per_head",
}


def compare(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    errors = {}
    for name, ref in expected.items():
        if name not in got:
            continue
        out = got[name].detach().cpu()
        assert tuple(out.shape) == tuple(ref.shape), f"{name}: shape {tuple(out.shape)} != expected {tuple(ref.shape)}"
        if ref.dtype in (torch.bool, torch.uint8):
            assert torch.equal(out.to(ref.dtype), ref), f"{name}: differs"
            errors[name] = (0.0, 0.0)
            continue
        out = out.float()
        diff = (out - ref).abs()
        errors[name] = (float(diff.max()), float((diff / ref.abs().clamp_min(1e-6)).max()))
        assert torch.allclose(out, ref, atol=ATOL, rtol=RTOL), (
            f"{name}: max abs error {errors[name][0]:.3g} beyond atol {ATOL} + rtol {RTOL}"
        )
    return errors


@pytest.mark.parametrize("folder", PARITY_DIRS, ids=lambda p: p.name)
def test_parity_every_loading_path(folder: Path, tmp_path: Path):
    expected = load_file(str(folder / "expected.safetensors"))
    assert expected.keys() >= CORE, f"fixture lacks {CORE - expected.keys()}"
    for label, source in _sources(folder, tmp_path).items():
        model = denseav.load(source, device="cpu")
        errors = compare(expected, pipeline_outputs(model, folder))
        assert errors.keys() >= CORE, f"{label}: not compared: {CORE - errors.keys()}"
        worst = max(errors.items(), key=lambda kv: kv[1][0])
        print(f"{folder.name} via {label}: {len(errors)} tensors, worst {worst[0]} {worst[1][0]:.2e}")


@pytest.mark.parametrize("folder", PARITY_DIRS, ids=lambda p: p.name)
def test_first_channel_matters(folder: Path):
    """The fixtures put a different signal in channel 1: mixing or picking it must change the result."""
    model = denseav.load(folder, device="cpu")
    first = denseav.ground(folder / "image.png", folder / "audio.wav", model=model, channel="first")
    second = denseav.ground(folder / "image.png", folder / "audio.wav", model=model, channel=1)
    assert not torch.allclose(first.heatmaps, second.heatmaps, atol=1e-3)
