"""The wheel ships the registry: the repository root's weights_manifest.json (one copy in git, linked from
src/denseav/) lands in the wheel as a real file, and an installed (non-editable) package finds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not running from a checkout")
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return next(out.glob("denseav-*.whl"))


def test_wheel_holds_the_manifest_as_a_file(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo("denseav/weights_manifest.json")
        packaged = z.read(info)
    assert (info.external_attr >> 16) & 0o170000 != 0o120000  # a regular file, not a link
    assert packaged == (REPO / "weights_manifest.json").read_bytes()


def test_installed_package_reads_its_manifest(wheel: Path, tmp_path: Path):
    site = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--target",
        str(site),
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    code = "import json, denseav.pretrained as p; print(json.dumps([p.__file__, p.DEFAULT_MODEL, p.list_models()]))"
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    where, default, models = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(where).is_relative_to(site)
    manifest = json.loads((REPO / "weights_manifest.json").read_text())
    assert default == manifest["default"] and models == list(manifest["models"])

    # The default model is the manifest's "default", not a second constant: change one, the other follows.
    other = next(name for name in manifest["models"] if name != manifest["default"])
    (site / "denseav" / "weights_manifest.json").write_text(json.dumps({**manifest, "default": other}))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])[1] == other
