"""Test-wide settings, applied before any test module imports huggingface_hub or denseav."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# Never touch the network from tests, and never read or write the developer's own Hugging Face cache: every run
# gets an empty one of its own (tests that need a cache lay one out themselves).
_HF_HOME = Path(tempfile.mkdtemp(prefix="denseav-tests-hf-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_CACHE"] = str(_HF_HOME / "hub")
os.environ.pop("HUGGINGFACE_HUB_CACHE", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# The helpers (_fixtures, _media) sit beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402  (after the environment above is set)

from _fixtures import PARITY_DIRS  # noqa: E402

if TYPE_CHECKING:
    from denseav import DenseAV


@pytest.fixture(scope="module", params=PARITY_DIRS, ids=lambda p: p.name)
def fixture_dir(request: pytest.FixtureRequest) -> Path:
    """Each fixture model folder in turn (modules that use `model` run once per fixture model)."""
    return Path(request.param)


@pytest.fixture(scope="module")
def model(fixture_dir: Path) -> DenseAV:
    """The fixture model of `fixture_dir`, loaded once per module (modules may define their own `model`)."""
    import denseav

    return denseav.load(fixture_dir, device="cpu")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster for the whole session (the engines use it instead of starting their own)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'denseav[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'denseav[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_HF_HOME, ignore_errors=True)
