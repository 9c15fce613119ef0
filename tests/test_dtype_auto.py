"""dtype="auto": bfloat16 where it is native (CUDA, CPUs with AVX512-BF16 / AMX), float32 elsewhere."""

from __future__ import annotations

import json

import pytest
import torch

import denseav
import denseav.build
from _fixtures import first_parity_dir
from denseav import cli
from denseav.build import auto_dtype, resolve_dtype


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(monkeypatch, native: bool):
    monkeypatch.setattr(denseav.build, "cpu_has_native_bfloat16", lambda: native)
    want = torch.bfloat16 if native else torch.float32
    assert resolve_dtype("auto", "cpu") == want
    assert resolve_dtype(" AUTO ", torch.device("cpu")) == want
    assert auto_dtype(torch.device("cuda")) == torch.bfloat16  # no GPU needed to decide
    assert resolve_dtype(None, "cpu") == torch.float32  # the default stays float32


def test_native_flag_reads_this_machine():
    assert isinstance(denseav.build.cpu_has_native_bfloat16(), bool)


def test_load_and_cli_accept_auto(tmp_path, capsys):
    folder = first_parity_dir()
    model = denseav.load(folder, device="cpu", dtype="auto", progress=False)
    assert model.dtype == auto_dtype(torch.device("cpu"))
    # a passed model matches "auto" when it holds what "auto" means on its device
    denseav.encode_image(torch.zeros(3, 16, 16, dtype=torch.uint8), model=model, dtype="auto")
    out = tmp_path / "out.json"
    code = cli.main(
        [
            "ground",
            str(folder / "image.png"),
            str(folder / "audio.wav"),
            "--weights",
            str(folder),
            "--dtype",
            "auto",
            "--device",
            "cpu",
            "--json",
            str(out),
            "-q",
        ]
    )
    capsys.readouterr()
    assert code == 0 and json.loads(out.read_text())["heads"] == list(model.head_names)
