"""Indexing into a feature store: contents, resume, crash safety, bad items and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import denseav
from _corpus import BAD_IDS, expected_ids, make_corpus
from _fixtures import PARITY_DIRS
from denseav.corpus import FeatureStore, IndexFailedError, StoreModelMismatchError, index
from denseav.corpus.store import FeatureStore as StoreClass
from denseav.errors import InputError, OutputError

pytestmark = pytest.mark.skipif(not PARITY_DIRS, reason="no parity fixtures found (see tests/_fixtures.py)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus, model):
    out = tmp_path_factory.mktemp("stores") / "store"
    summary = index(corpus, out, model=model, shard_size=3, progress=False)
    return out, summary


def test_store_holds_every_good_item_and_records_the_bad_ones(built, model):
    out, summary = built
    store = FeatureStore.open(out)
    ids = set(store.table(["id"]).column("id").to_pylist())
    assert expected_ids() <= ids
    assert sum(i.startswith("clip.mp4#t=0.000-") for i in ids) == 1  # the video's sound track, one window
    assert summary.errors == len(BAD_IDS) and summary.encoded == len(ids)
    errors = store.errors().to_pylist()
    assert [e["id"] for e in errors] == sorted(BAD_IDS)
    assert all(e["message"] and e["model_sha256"] == store.identity.sha256 for e in errors)
    assert len(list((out / "items").glob("*.parquet"))) >= 3  # shard_size=3: several shards


def test_store_is_plain_parquet_with_float16_tensors_and_provenance(built, model):
    out, _ = built
    table = pq.read_table(out / "items")  # no denseav needed to read it
    meta = json.loads((out / "store.json").read_text())
    c = model.config.code_dim
    for row in table.to_pylist():
        shape = row["features_shape"]
        assert row["tensor_dtype"] == "<f2"
        feats = np.frombuffer(row["features"], row["tensor_dtype"]).reshape(shape)
        assert shape[1] == c and np.isfinite(feats).all()
        assert row["model_sha256"] == meta["model"]["sha256"] and row["denseav_version"] == denseav.__version__
        if row["kind"] == "image":
            assert shape[0] == row["grid_h"] * row["grid_w"] and row["mask"] is None
        else:
            assert len(row["mask"]) == len(row["times"]) == shape[0]
            assert row["start"] <= row["times"][0] and row["times"][-1] <= row["end"]


def test_stored_features_match_encode_image_within_fp16(built, corpus, model):
    store = FeatureStore.open(built[0])
    stored = {it.id: it for it in store.items("image")}["img1.png"]
    fresh = denseav.encode_image(str(corpus / "img1.png"), model=model)
    ref = fresh.features.features[0]
    assert stored.geometry == fresh.geometry
    assert np.allclose(stored.features.float(), ref, rtol=2e-3, atol=2e-3 * float(ref.abs().max()))


def test_a_float32_store_keeps_encode_image_exactly(tmp_path, corpus, model):
    out = tmp_path / "store32"
    index(corpus / "img1.png", out, model=model, features_dtype="float32", progress=False)
    (stored,) = FeatureStore.open(out).items("image")
    assert stored.features.dtype == torch.float32
    fresh = denseav.encode_image(str(corpus / "img1.png"), model=model)
    assert torch.equal(stored.features, fresh.features.features[0])
    with pytest.raises(StoreModelMismatchError, match="features_dtype"):  # one precision per store
        index(corpus / "img1.png", out, model=model, progress=False)


def test_a_version_1_store_without_tensor_dtype_reads_as_float16(tmp_path, built):
    out = tmp_path / "v1"
    shutil.copytree(built[0], out)
    for shard in (out / "items").glob("*.parquet"):
        pq.write_table(pq.read_table(shard).drop_columns(["tensor_dtype"]), shard)
    meta = json.loads((out / "store.json").read_text())
    for key in ("preprocess", "features_dtype"):
        del meta["options"][key]
    (out / "store.json").write_text(json.dumps({**meta, "schema_version": 1}))
    old, new = FeatureStore.open(out).items(), FeatureStore.open(built[0]).items()
    assert sorted(it.id for it in old) == sorted(it.id for it in new)
    by_id = {it.id: it for it in new}
    assert all(torch.equal(it.features, by_id[it.id].features) for it in old)


def test_rerun_skips_what_is_stored_and_retries_only_changed_files(tmp_path, corpus, model, built):
    out = tmp_path / "store"
    shutil.copytree(built[0], out)
    again = index(corpus, out, model=model, progress=False)
    assert again.encoded == 0 and again.skipped == len(FeatureStore.open(out))
    work = tmp_path / "corpus"
    shutil.copytree(corpus, work)
    shutil.copytree(built[0], tmp_path / "store2")
    (work / "img0.png").write_bytes((work / "sub" / "img2.jpg").read_bytes())  # same id, new content
    changed = index(work, tmp_path / "store2", model=model, progress=False)
    assert changed.encoded == 1


def test_a_crash_loses_at_most_the_shard_in_flight(tmp_path, corpus, model, monkeypatch, built):
    out = tmp_path / "store"
    real = StoreClass.write_shard
    committed = []

    def dies_on_third_items_shard(self, table_name, table):
        if table_name == "items" and len(committed) == 2:
            tmp = self.path / table_name / ".part-dying.parquet.tmp"
            pq.write_table(table, tmp)  # written, never renamed: what a kill leaves behind
            raise SystemExit("killed")
        path = real(self, table_name, table)
        committed.extend([path] if table_name == "items" else [])
        return path

    monkeypatch.setattr(StoreClass, "write_shard", dies_on_third_items_shard)
    with pytest.raises(SystemExit):
        index(corpus, out, model=model, shard_size=2, progress=False)
    store = FeatureStore.open(out)
    assert len(store) == 4  # two complete shards survive; the readers ignore the half-written one
    monkeypatch.setattr(StoreClass, "write_shard", real)
    resumed = index(corpus, out, model=model, shard_size=2, progress=False)
    assert resumed.skipped == 4
    ids = store.table(["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(FeatureStore.open(built[0]))


def test_a_different_model_or_dtype_is_refused(built, corpus, model, fixture_dir):
    with pytest.raises(StoreModelMismatchError, match="was built with model"):
        index(corpus, built[0], model=fixture_dir, dtype="bfloat16", progress=False)
    other = [d for d in PARITY_DIRS if d != fixture_dir]
    if other:
        store = FeatureStore.open(built[0])
        with pytest.raises(StoreModelMismatchError, match="weights sha256"):
            store.load_model(other[0])


def test_strict_fails_after_recording_the_bad_items(tmp_path, corpus, model):
    with pytest.raises(IndexFailedError, match="2 item"):
        index(corpus, tmp_path / "s", model=model, strict=True, progress=False)
    assert len(FeatureStore.open(tmp_path / "s").errors()) == 2


def test_manifest_with_ids_and_spans(tmp_path, corpus, model):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,id,start,end\n{corpus / 'tone.wav'},speech,1.0,7.0\n{corpus / 'img0.png'},photo,,\n")
    index(manifest, tmp_path / "s", model=model, progress=False)
    ids = sorted(FeatureStore.open(tmp_path / "s").table(["id"]).column("id").to_pylist())
    assert ids == ["photo", "speech#t=1.000-7.000"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [("m.csv", "no 'path' column"), ("m.jsonl", "line 1 is not valid JSON")],
)
def test_bad_manifests_are_one_line_errors(tmp_path, model, manifest, message):
    (tmp_path / "m.csv").write_text("file\nx.png\n")
    (tmp_path / "m.jsonl").write_text("{oops\n")
    with pytest.raises(InputError, match=message):
        index(tmp_path / manifest, tmp_path / "s", model=model, progress=False)


def test_empty_corpus_and_bad_targets(tmp_path, model):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="nothing to index"):
        index(tmp_path / "empty", tmp_path / "s", model=model, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    (tmp_path / "empty" / "a.png").write_bytes(b"x")
    with pytest.raises(OutputError, match="not a denseav feature store"):
        index(tmp_path / "empty", tmp_path / "full", model=model, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "precious"


def test_progress_is_a_status_line_when_stderr_is_not_a_terminal(monkeypatch):
    import io

    import denseav.progress
    from denseav.corpus.progress import Progress

    monkeypatch.setattr(denseav.progress, "LOG_INTERVAL", 0.0)
    stream = io.StringIO()
    bar = Progress(4, stream=stream)
    bar.update(sources=1, items=3, errors=1)
    line = stream.getvalue().strip()
    assert "\r" not in line and line.startswith("denseav index: 1/4 src (25%)")
    assert "3 items (" in line and "items/s" in line and "1 errors" in line and "ETA" in line
    bar.close()
    assert (
        stream.getvalue().strip().splitlines()[-1].startswith("denseav index: 1/4 src")
        and "done in" in stream.getvalue()
    )
    quiet = io.StringIO()
    Progress(4, enabled=False, stream=quiet).update(sources=1, items=3)
    assert quiet.getvalue() == ""
