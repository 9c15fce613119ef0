"""The public loading paths other than local folders/.ckpt (covered by test_parity): a Hugging Face cache read
offline, registry names and repo ids, and every way a checkpoint can be broken."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import denseav
from _fixtures import PARITY_DIRS
from _hub import lay_out_hf_cache, registry_name
from denseav.errors import CheckpointError, ModelNotFoundError

SCRIPT = """
import json, sys, torch, denseav
from safetensors.torch import load_file
folder, names = sys.argv[1], sys.argv[2:]
expected = load_file(folder + "/expected.safetensors")["sim.volume"]
out = {}
for name in names:
    g = denseav.ground(folder + "/image.png", folder + "/audio.wav", model=name, device="cpu",
                       channel="first", normalize_audio=False)
    got = g.heatmaps.permute(0, 2, 3, 1)[None, :, :, :, None]
    out[name] = [float((got - expected).abs().max()), list(g.head_names)]
cached = {m: denseav.pretrained.is_cached(m) for m in denseav.list_models()}
print(json.dumps({"grounding": out, "cached": cached}))
"""


def _offline_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "hf_home"))
    return env


@pytest.mark.parametrize("folder", PARITY_DIRS, ids=lambda p: p.name)
def test_hf_cache_offline(folder: Path, tmp_path: Path):
    """Registry name and plain repo id, both resolved from a local HF cache with HF_HUB_OFFLINE=1."""
    cache = tmp_path / "hub"
    name = registry_name(folder)
    repo = next(m.hf_repo for m in denseav.pretrained.pretrained_models().values() if m.name == name)
    lay_out_hf_cache(cache, repo, folder)
    lay_out_hf_cache(cache, "someone/tiny-denseav", folder)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), name, "someone/tiny-denseav", repo],
        env=_offline_env(cache),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    result = report["grounding"]
    for key, (err, _heads) in result.items():
        assert err <= 1e-4 + 1e-5 * 40, f"{key}: max error {err}"  # values reach ~40
    assert tuple(result[name][1]) == denseav.pretrained.find_pretrained(name).head_names
    assert report["cached"] == {m: m == name for m in denseav.list_models()}


def test_offline_without_cache_says_what_to_do(tmp_path: Path):
    code = "import denseav; denseav.load('sound-language')"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_offline_env(tmp_path / "empty"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "ModelNotFoundError" in proc.stderr
    assert "denseav download sound-language" in proc.stderr and "local" in proc.stderr


def test_unknown_model_name_lists_valid_ones():
    with pytest.raises(ModelNotFoundError) as info:
        denseav.load("sound-langauge")
    for name in ("sound-language", "language", "sound"):
        assert name in str(info.value)


def test_missing_path():
    with pytest.raises(ModelNotFoundError, match="no checkpoint"):
        denseav.load("./does/not/exist")


@pytest.fixture()
def fixture_copy(tmp_path: Path) -> Path:
    folder = PARITY_DIRS[0]
    dst = tmp_path / "ckpt"
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("expected.safetensors", "*.png", "*.wav"))
    return dst


def test_truncated_safetensors(fixture_copy: Path):
    weights = fixture_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        denseav.load(fixture_copy, device="cpu")


def test_garbage_safetensors(fixture_copy: Path):
    (fixture_copy / "model.safetensors").write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        denseav.load(fixture_copy, device="cpu")


def test_missing_config(fixture_copy: Path):
    (fixture_copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        denseav.load(fixture_copy / "model.safetensors", device="cpu")


def test_truncated_ckpt(fixture_copy: Path):
    ckpt = fixture_copy / "checkpoint.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        denseav.load(ckpt, device="cpu")


class Payload:  # needs its class to unpickle: must be refused
    pass


def test_ckpt_with_code_is_refused(fixture_copy: Path):
    data = torch.load(fixture_copy / "checkpoint.ckpt", weights_only=True)
    data["callbacks"] = {"x": Payload()}
    bad = fixture_copy / "bad.ckpt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        denseav.load(bad, device="cpu")


def test_ckpt_without_state_dict(fixture_copy: Path):
    bad = fixture_copy / "bad.ckpt"
    torch.save({"hyper_parameters": {}}, bad)
    with pytest.raises(CheckpointError, match="state_dict"):
        denseav.load(bad, device="cpu")


def test_keys_that_do_not_fit(fixture_copy: Path):
    from safetensors.torch import save_file

    state = load_file(fixture_copy / "model.safetensors")
    state.pop(next(k for k in state if k.endswith("mlp.fc1.bias")))
    state["image_aligner.something_new"] = torch.zeros(3)
    save_file(state, fixture_copy / "model.safetensors")
    with pytest.raises(CheckpointError) as info:
        denseav.load(fixture_copy, device="cpu")
    text = str(info.value)
    assert "missing" in text and "fc1.bias" in text and "unexpected" in text and "something_new" in text


def test_wrong_backbone_sizes_are_named(fixture_copy: Path):
    (fixture_copy / "backbones.json").unlink()  # -> published sizes, which the tiny weights do not fit
    with pytest.raises(CheckpointError, match="backbones.json.*shape mismatch"):
        denseav.load(fixture_copy, device="cpu")


def test_loaded_model_is_inference_ready():
    model = denseav.load(PARITY_DIRS[0], device="cpu", dtype="bfloat16")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        denseav.load(PARITY_DIRS[0], dtype="int8")
