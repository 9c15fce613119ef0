"""The full-size published checkpoints: every key of each published variant converts and fits, nothing left over.

The manifests in ../shared/fixtures/keys list the exact keys and shapes the original writes (made by running it).
Tensors here are meta tensors: no memory, same names and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _fixtures import KEY_MANIFESTS, fixtures_root
from denseav.build import build_denseav, convert_strict
from denseav.checkpoint import RawCheckpoint, TensorSource, config_from_original
from denseav.pretrained import pretrained_models


def test_manifests_are_present():
    assert len(KEY_MANIFESTS) >= 3, f"key manifests missing under {fixtures_root() / 'keys'}"


def _raw(manifest: dict, rename=lambda k: k) -> RawCheckpoint:
    shapes = {rename(e["key"]): tuple(e["shape"]) for e in manifest["keys"]}
    tensors = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return RawCheckpoint(manifest["config_json"], TensorSource(shapes, lambda k, dtype: tensors[k]), None, "manifest")


def _newer_names(key: str) -> str:
    """The same checkpoint as newer peft and older transformers would write it."""
    key = key.replace(".qkv.weight", ".qkv.base_layer.weight").replace(".qkv.bias", ".qkv.base_layer.bias")
    if "image_model.base_model" not in key:
        key = key.replace(".qkv.base_layer.", ".qkv.")
    return key.replace("parametrizations.weight.original0", "weight_g").replace(
        "parametrizations.weight.original1", "weight_v"
    )


@pytest.mark.parametrize("path", KEY_MANIFESTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("naming", ["as_published", "newer_peft_older_weight_norm"])
def test_published_variant_loads_strictly(path: Path, naming: str):
    manifest = json.loads(path.read_text())
    raw = _raw(manifest, _newer_names if naming != "as_published" else (lambda k: k))
    config = config_from_original(raw.hparams)
    model = build_denseav(config)
    state = convert_strict(raw, model)  # raises, naming the keys, on anything missing/unexpected/misshapen
    assert state.keys() == model.state_dict().keys()
    # The published sizes come from defaults, not from a backbones.json.
    assert config.image_encoder.embed_dim == 384 and config.audio_encoder.hidden_size == 1024
    assert config.num_heads == manifest["config_json"]["sim_agg_heads"]
    assert config.use_cls_similarity == manifest["config_json"]["sim_use_cls"]
    # Parameter count: the published total minus what inference drops (LoRA merged away, masked_spec_embed).
    lora = sum(torch.Size(e["shape"]).numel() for e in manifest["keys"] if ".lora_" in e["key"])
    dropped = 1024 + 128  # masked_spec_embed; the weight-norm gain g, folded into the positional conv weight
    ours = sum(t.numel() for t in model.state_dict().values())
    assert ours == manifest["param_count"] - lora - dropped


@pytest.mark.parametrize("path", KEY_MANIFESTS, ids=lambda p: p.stem)
def test_registry_matches_manifest(path: Path):
    manifest = json.loads(path.read_text())
    repo = manifest["published_as"]["hf_hub_repo"]
    entry = next(m for m in pretrained_models().values() if m.hf_repo == repo)
    assert entry.weights_bytes == manifest["safetensors_bytes"]
    assert entry.ckpt_file == manifest["published_as"]["lightning_ckpt"]
    assert entry.torch_hub_entry == manifest["published_as"]["torch_hub_entry"]
    assert len(entry.head_names) == manifest["config_json"]["sim_agg_heads"]


def test_missing_and_unexpected_keys_are_named():
    manifest = json.loads(KEY_MANIFESTS[0].read_text())
    keys = manifest["keys"]
    dropped = keys[5]["key"]
    manifest = {**manifest, "keys": [e for e in keys if e["key"] != dropped] + [{"key": "extra.thing", "shape": [3]}]}
    raw = _raw(manifest)
    model = build_denseav(config_from_original(raw.hparams))
    from denseav.errors import CheckpointError

    with pytest.raises(CheckpointError) as info:
        convert_strict(raw, model)
    text = str(info.value)
    assert "missing" in text and "unexpected" in text and "extra.thing" in text


def test_shape_mismatch_is_named():
    manifest = json.loads(KEY_MANIFESTS[0].read_text())
    keys = [dict(e) for e in manifest["keys"]]
    for e in keys:
        if e["key"] == "image_aligner.cls_layer.bias":
            e["shape"] = [100]
    raw = _raw({**manifest, "keys": keys})
    model = build_denseav(config_from_original(raw.hparams))
    from denseav.errors import CheckpointError

    with pytest.raises(CheckpointError, match="shape mismatch.*cls_proj.bias"):
        convert_strict(raw, model)
