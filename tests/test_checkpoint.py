"""Checkpoint reading and conversion: refused options, files that are not checkpoints, readable errors, files
closed after loading, HuBERT on the shared transformer block."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import denseav
from _fixtures import first_parity_dir
from denseav.checkpoint import config_from_original
from denseav.checkpoint.config import SUPPORTED
from denseav.errors import CheckpointError
from denseav.modeling.transformer import Attention, Block

# One value per refused option that the original's code knows (spec section 1 / the original's configs).
OTHER_VALUES = {
    "image_model_type": "dino16",
    "image_model_token_type": "key",
    "image_aligner_type": "image_linear_no_norm",
    "audio_model_type": "audiomae",
    "audio_aligner_type": "audio_sa_3_3_pool",
    "audio_lora": True,
    "sim_agg_type": "mima",
    "head_agg": "sum",
    "nonneg_sim": True,
    "norm_vectors": True,
}


@pytest.fixture(scope="module")
def folder() -> Path:
    return first_parity_dir()


@pytest.fixture()
def copy(folder: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("expected.safetensors", "*.png", "*.wav"))
    return dst


def test_every_refused_option_has_a_case():
    assert OTHER_VALUES.keys() == SUPPORTED.keys()


@pytest.mark.parametrize("option", sorted(OTHER_VALUES))
def test_unsupported_option_is_refused_by_name(folder: Path, option: str):
    hparams = json.loads((folder / "config.json").read_text())
    value = OTHER_VALUES[option]
    with pytest.raises(CheckpointError, match=f"^unsupported: {option}={value!r}"):
        config_from_original({**hparams, option: value})


def test_unsupported_option_is_refused_at_load(copy: Path):
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "sim_agg_type": "sisa"}))
    with pytest.raises(CheckpointError, match="unsupported: sim_agg_type='sisa'"):
        denseav.load(copy, device="cpu")


def test_text_file_named_ckpt_is_not_a_checkpoint(tmp_path: Path):
    fake = tmp_path / "model.ckpt"
    fake.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(CheckpointError) as info:
        denseav.load(fake, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{fake} is not a checkpoint (not a zip/pickle file)")
    assert len(message) < 400 and "unpickle" not in message


def test_truncated_ckpt_message_is_short(copy: Path):
    ckpt = copy / "checkpoint.ckpt"
    if not ckpt.exists():
        pytest.skip("this fixture has no .ckpt")
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as info:
        denseav.load(ckpt, device="cpu")
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_missing_backbones_json_gives_the_hint_first_and_few_keys(copy: Path):
    (copy / "backbones.json").unlink()  # -> published sizes, which the tiny weights do not fit
    with pytest.raises(CheckpointError) as info:
        denseav.load(copy, device="cpu")
    message = str(info.value)
    assert message.index("backbones.json") < message.index("shape mismatch")
    assert "in all)" in message  # the key list is capped with a count
    assert len(message) < 1500


LOAD_AND_COLLECT = """
import gc, sys, denseav
for source in sys.argv[1:]:
    model = denseav.load(source, device="cpu", dtype="bfloat16", progress=False)
    del model
    gc.collect()
print("loaded", len(sys.argv) - 1)
"""


@pytest.mark.slow
def test_files_are_closed_after_loading(folder: Path):
    sources = [str(folder)] + [str(p) for p in folder.glob("*.ckpt")]
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", LOAD_AND_COLLECT, *sources],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ResourceWarning" not in proc.stderr, proc.stderr


def test_hubert_layers_are_the_shared_block(folder: Path):
    model = denseav.load(folder, device="cpu")
    assert len(model.audio_encoder.blocks) == model.config.audio_encoder.num_layers
    assert all(type(block) is Block for block in model.audio_encoder.blocks)
    # One attention implementation in the whole model: image encoder, audio encoder and audio aligner.
    with_qkv = [m for m in model.modules() if hasattr(m, "qkv")]
    assert with_qkv and all(type(m) is Attention for m in with_qkv)


def test_sample_mask_marks_padding(folder: Path):
    """The padded-audio protocol: real samples first, zeros after; the mask says which steps are real."""
    model = denseav.load(folder, device="cpu")
    real = 16_000
    wave = torch.zeros(2, 2 * real)
    wave[:, :real] = torch.randn(2, real) * 0.1
    sample_mask = torch.zeros(2, 2 * real)
    sample_mask[0, :real] = 1
    sample_mask[1] = 1
    with torch.inference_mode():
        audio = model.encode_audio(wave, sample_mask=sample_mask)
        unmasked = model.encode_audio(wave)
    steps = audio.features.shape[1]
    assert audio.mask.shape == (2, steps) and audio.mask.dtype == torch.bool
    assert audio.mask[1].all() and unmasked.mask.all()
    assert audio.mask[0, : steps // 2 - 1].all() and not audio.mask[0, steps // 2 + 1 :].any()
    # The score averages over the real steps only.
    image = model.encode_image(torch.zeros(1, 3, 64, 64))
    sims = model(image, audio).flatten(-2)
    per_step = sims[0].amax(dim=0).amax(dim=-1)  # max over heads, then space: [T]
    expected = per_step[audio.mask[0]].mean()
    assert torch.allclose(model.similarity.score(sims, audio.mask)[0], expected, atol=1e-6)
