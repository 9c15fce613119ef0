"""What a model string names, where a loaded model came from, the default model, and option checking."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import denseav
from _fixtures import first_parity_dir
from _hub import COMMIT, lay_out_hf_cache
from denseav.build import build_denseav, resolve_device, resolve_dtype
from denseav.errors import InputError, InputTypeError, ModelNotFoundError
from denseav.pretrained import DEFAULT_MODEL, manifest, parse_model_ref
from denseav.provenance import ModelProvenance

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder() -> Path:
    return first_parity_dir()


# ------------------------------------------------------------------------------------------ parse_model_ref


@pytest.mark.parametrize(
    ("text", "kind", "entry"),
    [
        ("sound-language", "registry", "sound-language"),
        ("2head", "registry", "sound-language"),
        ("SOUND", "registry", "sound"),
        ("mhamilton723/DenseAV-language", "registry", "language"),
        ("someone/tiny-denseav", "hub", None),
        ("./does/not/exist", "path", None),
        ("weights/denseav_2head.ckpt", "path", "sound-language"),
        ("model.safetensors", "path", None),
    ],
)
def test_parse_model_ref(text: str, kind: str, entry: str | None):
    ref = parse_model_ref(text)
    assert (ref.kind, ref.text) == (kind, text)
    assert (ref.entry.name if ref.entry else None) == entry


def test_an_existing_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "someone" / "tiny").mkdir(parents=True)
    (tmp_path / "sound").mkdir()
    assert parse_model_ref("someone/tiny").kind == "path"
    assert parse_model_ref("sound").kind == "path" and parse_model_ref("sound").entry is None
    assert parse_model_ref(tmp_path / "sound").kind == "path"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ModelNotFoundError) as info:
        parse_model_ref("sound-langauge")
    assert all(name in str(info.value) for name in denseav.list_models())


def test_model_of_the_wrong_type():
    with pytest.raises(InputTypeError, match="not int"):
        parse_model_ref(123)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ provenance


def test_provenance_of_a_local_folder(folder: Path):
    model = denseav.load(folder, device="cpu")
    p = model.provenance
    assert p == ModelProvenance(name=str(folder), revision=None, source=str(folder / "model.safetensors"))
    assert p.sha256() == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # type: ignore[misc]


def test_provenance_of_a_ckpt(folder: Path):
    ckpt = next(folder.glob("*.ckpt"), None)
    if ckpt is None:
        pytest.skip("this fixture has no .ckpt")
    p = denseav.load(ckpt, device="cpu").provenance
    assert (p.name, p.source) == (str(ckpt), str(ckpt))


def test_provenance_from_the_hf_cache(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "hub"
    snapshot = lay_out_hf_cache(cache, "someone/tiny-denseav", folder)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    p = denseav.load("someone/tiny-denseav", device="cpu").provenance
    assert (p.name, p.revision, p.source) == ("someone/tiny-denseav", COMMIT, str(snapshot / "model.safetensors"))
    assert p.sha256() == Path(p.source).resolve().name  # the LFS blob's name is its sha256


def test_sha256_of_a_cache_blob_is_its_name_not_a_hash(tmp_path: Path):
    """A cache blob is not read again: its name already is the sha256 (huggingface_hub's ETag of an LFS file)."""
    name = "ab" * 32
    blob = tmp_path / "models--a--b" / "blobs" / name
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"not hashed")
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    assert ModelProvenance("a/b", None, str(link)).sha256() == name


def test_a_model_built_in_code_has_no_provenance(folder: Path):
    from denseav.checkpoint import config_from_original

    config = config_from_original(json.loads((folder / "config.json").read_text()))
    assert build_denseav(config).provenance is None


# ------------------------------------------------------------------------------------------ the default model


def test_default_model_comes_from_the_manifest():
    assert manifest()["default"] == DEFAULT_MODEL and DEFAULT_MODEL in denseav.list_models()
    assert denseav.DEFAULT_MODEL == DEFAULT_MODEL


def test_one_manifest_in_the_repository():
    root = REPO / "weights_manifest.json"
    packaged = REPO / "src" / "denseav" / "weights_manifest.json"
    if not root.is_file():
        pytest.skip("not running from a checkout")
    assert not root.is_symlink()
    assert packaged.is_symlink() and packaged.resolve() == root.resolve()
    assert json.loads(root.read_text()) == manifest()


# ------------------------------------------------------------------------------------------ dtype and device


@pytest.mark.parametrize("dtype", ["float64", "int8", torch.float64])
def test_unsupported_dtype(dtype: object):
    with pytest.raises(InputError, match="bfloat16") as info:
        resolve_dtype(dtype)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and "float32" in str(info.value)


@pytest.mark.parametrize("dtype", [16, 3.5, ["float32"]])
def test_dtype_of_the_wrong_type(dtype: object):
    with pytest.raises(InputTypeError, match="dtype must be a string or a torch.dtype"):
        resolve_dtype(dtype)  # type: ignore[arg-type]


def test_dtype_names():
    assert resolve_dtype(None) == torch.float32
    assert resolve_dtype("bf16") == resolve_dtype("torch.bfloat16") == torch.bfloat16
    assert resolve_dtype(torch.float16) == torch.float16


def test_unknown_device():
    with pytest.raises(InputError, match="'cpu', 'cuda'"):
        resolve_device("gpu please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(folder: Path):
    with pytest.raises(InputError, match="no CUDA GPU; use device 'cpu'"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="no CUDA GPU"):
        denseav.load(folder, device="cuda:0")


def test_device_of_the_wrong_type():
    with pytest.raises(InputTypeError, match="device must be a string or a torch.device"):
        resolve_device(0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["my-model", "language"])
def test_a_copied_folder_keeps_its_own_name_and_heads(folder: Path, tmp_path: Path, name: str):
    """A local folder called like a registry model is that folder, not the registry model."""
    dst = tmp_path / name
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("expected.safetensors", "*.png", "*.wav", "*.ckpt"))
    model = denseav.load(dst, device="cpu")
    assert model.provenance.name == str(dst)
    assert model.head_names == denseav.load(folder, device="cpu").head_names
