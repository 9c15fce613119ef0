"""Store search and batch grounding: typed hits, peaks inside the picture, one row per pair, errors per row."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import denseav
from _corpus import make_corpus
from _fixtures import PARITY_DIRS
from _media import write_wav
from denseav.cli import main
from denseav.corpus import FeatureStore, ground_pairs, index, score_matrix
from denseav.errors import InputError

pytestmark = pytest.mark.skipif(not PARITY_DIRS, reason="no parity fixtures found (see tests/_fixtures.py)")


@pytest.fixture(scope="module")
def store(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("search")
    corpus = make_corpus(root / "corpus")
    index(corpus, root / "store", model=model, progress=False)
    return FeatureStore.open(root / "store")


def test_sound_query_ranks_frames_and_images_like_score_matrix(store, model):
    query = store.path.parent / "corpus" / "tone.wav"
    hits = store.search(audio=str(query), k=4)
    images = store.items("image")
    scores = score_matrix(images, [str(query)], model=model)[0].tolist()
    expected = sorted(zip(scores, [it.id for it in images]), key=lambda e: (-e[0], e[1]))[:4]
    assert [h.id for h in hits] == [i for _, i in expected]
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    for hit in hits:
        assert hit.kind == "image" and len(hit.peaks) == model.config.num_heads
        h0, w0 = hit.item.geometry.original_size
        assert all(0 <= p.x <= w0 and 0 <= p.y <= h0 for p in hit.peaks)
        assert (hit.timestamp is None) == (hit.media == "image")


def test_image_query_finds_sound_windows_with_their_span(store):
    hits = store.search(image=str(store.path.parent / "corpus" / "img0.png"), k=10)
    assert len(hits) == len(store.items("audio"))  # k larger than the store: everything, ranked
    assert all(h.kind == "audio" and h.start is not None and h.end > h.start for h in hits)
    assert all(h.start <= p.t <= h.end for h in hits for p in h.peaks)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bad_queries_are_clear_errors(store, tmp_path):
    short = write_wav(tmp_path / "short.wav", 0.05)
    with pytest.raises(InputError, match="DenseAV needs at least"):
        store.search(audio=str(short))
    with pytest.raises(InputError, match="exactly one query"):
        store.search()


def test_batch_writes_one_row_per_pair_with_errors_and_maps(tmp_path, store, model):
    corpus = store.path.parent / "corpus"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        f"id,image,audio\np0,{corpus / 'img0.png'},{corpus / 'tone.wav'}\n"
        f"p1,{corpus / 'broken.png'},{corpus / 'tone.wav'}\np2,{corpus / 'img1.png'},{corpus / 'tone.wav'}\n"
    )
    summary = ground_pairs(pairs, tmp_path / "r.parquet", model=model, maps=True, progress=False)
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert summary.failed == 1 and [r["id"] for r in rows] == ["p0", "p1", "p2"]
    assert rows[1]["score"] is None and "broken.png" in rows[1]["error"]
    for r in (rows[0], rows[2]):
        g = denseav.ground(r["image"], r["audio"], model=model)
        assert r["error"] is None and abs(r["score"] - g.score) <= 1e-5 * max(1.0, abs(g.score))
        maps = np.frombuffer(r["heatmaps"], "<f2").reshape(r["heatmaps_shape"])
        assert maps.shape == tuple(g.heatmaps.shape) and len(r["peak_x"]) == len(g.head_names)
        assert np.allclose(maps, g.heatmaps.numpy(), rtol=1e-2, atol=1e-2 * float(g.heatmaps.abs().max()))


@pytest.mark.slow
def test_cli_index_search_batch_and_exit_codes(tmp_path, store, fixture_dir, capsys):
    corpus = store.path.parent / "corpus"
    out = tmp_path / "s"
    assert main(["index", str(corpus), "--out", str(out), "--weights", str(fixture_dir), "-q"]) == 0
    assert "already in the store" in capsys.readouterr().out
    assert (
        main(["search", str(out), "--audio", str(corpus / "tone.wav"), "-k", "2", "-o", str(tmp_path / "h"), "-q"]) == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 and len(list((tmp_path / "h").glob("*.png"))) == 2
    pairs = tmp_path / "p.csv"
    pairs.write_text(f"image,audio\n{corpus / 'img0.png'},{corpus / 'tone.wav'}\n")
    assert main(["batch", str(pairs), "--out", str(tmp_path / "r.parquet"), "--weights", str(fixture_dir), "-q"]) == 0
    (tmp_path / "bad.csv").write_text("picture,sound\na.png,b.wav\n")
    assert main(["batch", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.parquet"), "-q"]) == 1
    assert "no 'image' or 'audio' column" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["search", str(out), "-q"])  # no query: a usage error
    assert usage.value.code == 2
    assert main(["index", str(corpus), "--out", str(out), "--weights", str(fixture_dir), "--strict", "-q"]) == 1


def test_a_float32_store_searches_like_its_float16_twin(tmp_path, store, model):
    """Search reads the tensor_dtype column: a float32 store ranks by the float32 features it holds."""
    corpus = store.path.parent / "corpus"
    index(corpus, tmp_path / "f32", model=model, features_dtype="float32", progress=False)
    f32 = FeatureStore.open(tmp_path / "f32")
    query = denseav.encode_audio(str(corpus / "tone.wav"), model=model)
    hits = f32.search(audio=query, k=3, model=model)
    images = f32.items("image")
    assert images[0].features.dtype == torch.float32
    scores = score_matrix(images, [query], model=model)[0].tolist()
    expected = sorted(zip(scores, [it.id for it in images]), key=lambda e: (-e[0], e[1]))[:3]
    assert [h.id for h in hits] == [i for _, i in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], rel=1e-6)
