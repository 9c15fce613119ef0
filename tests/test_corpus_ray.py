"""The Ray engine builds the same store as the local one (on a 2-CPU local Ray cluster started here)."""

from __future__ import annotations

import numpy as np
import pytest

from _corpus import make_corpus
from _fixtures import PARITY_DIRS
from denseav.corpus import FeatureStore, index

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PARITY_DIRS, reason="no parity fixtures found (see tests/_fixtures.py)"),
]


def _by_id(store: FeatureStore) -> dict[str, dict]:
    return {row["id"]: row for row in store.table().to_pylist()}


@pytest.mark.parametrize("fixture_dir", PARITY_DIRS, ids=lambda p: p.name)
def test_ray_store_equals_local_store(tmp_path, ray_cluster, fixture_dir):
    corpus = make_corpus(tmp_path / "corpus")
    index(corpus, tmp_path / "local", model=fixture_dir, progress=False)
    index(corpus, tmp_path / "ray", model=fixture_dir, engine="ray", workers=2, progress=False)
    local, remote = FeatureStore.open(tmp_path / "local"), FeatureStore.open(tmp_path / "ray")
    assert local.meta == remote.meta
    a, b = _by_id(local), _by_id(remote)
    assert sorted(a) == sorted(b)
    for item_id, row in a.items():
        other = b[item_id]
        assert {k: v for k, v in row.items() if k not in ("features", "cls")} == {
            k: v for k, v in other.items() if k not in ("features", "cls")
        }
        x = np.frombuffer(row["features"], row["tensor_dtype"]).astype(np.float32)
        y = np.frombuffer(other["features"], other["tensor_dtype"]).astype(np.float32)
        # Same code, maybe other batch sizes: equal up to float16 rounding of the stored values.
        assert np.allclose(x, y, rtol=2e-3, atol=1e-3 * float(np.abs(x).max()))
    assert local.errors().to_pylist() == remote.errors().to_pylist()


def test_ray_engine_takes_a_loaded_model(tmp_path, ray_cluster):
    """Workers load the model by name or absolute path, whatever form the caller passed (here a DenseAV)."""
    import denseav

    corpus = make_corpus(tmp_path / "corpus")
    net = denseav.get_model(str(PARITY_DIRS[0]))
    summary = index(corpus, tmp_path / "ray", model=net, engine="ray", workers=1, progress=False)
    assert summary.encoded == len(summary.store) > 0
