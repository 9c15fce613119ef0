"""A model in the Hugging Face cache loads without any Hub request, however the network is; without the cache and
without a Hub, loading fails at once with what to do, never after library retries (issue 8, item 1).

Each case runs in a fresh process with HF_HUB_OFFLINE unset, HF_ENDPOINT pointing at a local stand-in for the Hub
(one that records requests and answers 503, or a closed port), and a hand-laid cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import denseav
from _fixtures import first_parity_dir
from _hub import RecordingHub, closed_port, lay_out_hf_cache, registry_name

pytestmark = pytest.mark.slow

LOAD = """
import json, sys, denseav
model = denseav.load(sys.argv[1], device="cpu", progress=False)
print(json.dumps({"heads": list(model.head_names), "source": model.provenance.source}))
"""


def _env(cache: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "hf_home"), HF_ENDPOINT=endpoint)
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return env


def _load(name: str, cache: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOAD, name], env=_env(cache, endpoint), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def folder() -> Path:
    return first_parity_dir()


@pytest.mark.parametrize("kind", ["registry", "repo_id"])
def test_cached_model_makes_no_hub_request(folder: Path, tmp_path: Path, kind: str):
    """Registry models (no backbones.json on the Hub) and other repos (backbones.json in the snapshot or not)."""
    cache = tmp_path / "hub"
    if kind == "registry":
        name = registry_name(folder)
        repo = denseav.pretrained.find_pretrained(name).hf_repo
    else:
        name = repo = "someone/tiny-denseav"
    lay_out_hf_cache(cache, repo, folder)
    with RecordingHub() as hub:
        proc = _load(name, cache, hub.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert hub.requests == []
    assert "retry" not in proc.stderr.lower()
    assert json.loads(proc.stdout.strip().splitlines()[-1])["source"].startswith(str(cache))


def test_cached_model_with_network_down_is_quiet(folder: Path, tmp_path: Path):
    cache = tmp_path / "hub"
    lay_out_hf_cache(cache, "someone/tiny-denseav", folder)
    proc = _load("someone/tiny-denseav", cache, f"http://127.0.0.1:{closed_port()}")
    assert proc.returncode == 0, proc.stderr
    assert "retry" not in proc.stderr.lower() and "retrying" not in proc.stdout.lower()


@pytest.mark.parametrize("hub_state", ["down_503", "unreachable"])
def test_no_cache_no_hub_fails_at_once_naming_both_fixes(tmp_path: Path, hub_state: str):
    cache = tmp_path / "empty"
    if hub_state == "down_503":
        with RecordingHub() as hub:
            proc = _load("sound-language", cache, hub.endpoint)
        assert len(hub.requests) == 1, hub.requests  # one look, no retries
    else:
        proc = _load("sound-language", cache, f"http://127.0.0.1:{closed_port()}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("denseav.errors.ModelNotFoundError")
    assert "HF_HUB_OFFLINE" in last and "denseav download sound-language" in last
    assert "--weights" in last and "local folder" in last
    assert "retry" not in proc.stderr.lower()
