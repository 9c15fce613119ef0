"""score_matrix: every pair's score equals the per-pair ground().score, in chunks of bounded memory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import denseav
from _corpus import make_corpus
from _fixtures import PARITY_DIRS
from _media import write_wav
from denseav.corpus import FeatureStore, index, score_matrix
from denseav.errors import InputError

pytestmark = pytest.mark.skipif(not PARITY_DIRS, reason="no parity fixtures found (see tests/_fixtures.py)")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(1)
    images = []
    for i, (h, w) in enumerate([(48, 64), (64, 48), (48, 64)]):  # two grids: scores group by shape
        images.append(root / f"i{i}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images[-1])
    # Two clips of one length (scored side by side in one pass) and one of another.
    audios = [write_wav(root / f"a{i}.wav", s, channels=1 + i % 2) for i, s in enumerate((1.0, 2.5, 2.5))]
    return [str(p) for p in images], [str(p) for p in audios]


def test_equals_ground_score_per_pair(model, media):
    images, audios = media
    enc_i = denseav.encode_image(images, model=model)
    enc_a = denseav.encode_audio(audios, model=model)
    scores = score_matrix(enc_i, enc_a, model=model)
    per_head = score_matrix(enc_i, enc_a, model=model, per_head=True)
    assert scores.shape == (len(audios), len(images))
    assert per_head.shape == (len(audios), len(images), model.config.num_heads)
    for a, clip in enumerate(audios):
        for v, image in enumerate(images):
            g = denseav.ground(image, clip, model=model)
            assert abs(float(scores[a, v]) - g.score) <= 1e-5 * max(1.0, abs(g.score))
            torch.testing.assert_close(per_head[a, v], g.score_per_head, rtol=1e-5, atol=1e-5)


def test_raw_inputs_and_tiny_memory_budget_give_the_same_matrix(model, media):
    images, audios = media
    whole = score_matrix(images, audios, model=model)
    chunked = score_matrix(images, audios, model=model, max_memory=1)  # one image per chunk
    torch.testing.assert_close(whole, chunked, rtol=1e-6, atol=1e-6)


def test_store_sides_equal_the_stored_features_pairwise(tmp_path, model):
    corpus = make_corpus(tmp_path / "corpus")
    index(corpus, tmp_path / "store", model=model, progress=False)
    store = FeatureStore.open(tmp_path / "store")
    scores = score_matrix(store, store)  # the store's own model
    images, audios = store.items("image"), store.items("audio")
    assert scores.shape == (len(audios), len(images))
    for a, clip in enumerate(audios):
        for v, image in enumerate(images):
            expected = denseav.similarity(image.encoded(model), clip.encoded(model)).score
            assert abs(float(scores[a, v]) - expected) <= 1e-5 * max(1.0, abs(expected))


def test_a_store_side_is_read_a_batch_at_a_time_with_the_same_result(tmp_path, model, monkeypatch):
    from denseav.corpus import score as score_module

    corpus = make_corpus(tmp_path / "corpus")
    index(corpus, tmp_path / "store", model=model, progress=False)
    store = FeatureStore.open(tmp_path / "store")
    whole = score_matrix(store.items("image"), store.items("audio"), model=model, per_head=True)
    monkeypatch.setattr(score_module, "_STORE_IMAGE_ROWS", 1)
    monkeypatch.setattr(score_module, "_STORE_CLIP_ROWS", 2)
    streamed = score_matrix(store, store, model=model, per_head=True)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-6)


def test_wrong_sides_and_missing_model_are_errors(model, media):
    with pytest.raises(InputError, match="needs model"):
        score_matrix(media[0], media[1])


def test_a_stored_item_on_the_wrong_side_is_named(tmp_path, model, media):
    index(media[0], tmp_path / "store", model=model, progress=False)
    stored_image = FeatureStore.open(tmp_path / "store").items("image")[0]
    with pytest.raises(InputError, match=r"is an image or frame; pass it on the image side"):
        score_matrix([stored_image], [stored_image], model=model)


def test_masked_steps_equal_the_per_pair_path(model, media):
    """Silent steps (every other one here) drop out of the mean exactly as in `denseav.similarity(...).score`."""
    images, audios = media
    enc_i = denseav.encode_image(images, model=model)
    masked = []
    for e in denseav.encode_audio(audios, model=model):
        mask = e.features.mask.clone()
        mask[:, 1::2] = False
        masked.append(dataclasses.replace(e, features=dataclasses.replace(e.features, mask=mask)))
    scores = score_matrix(enc_i, masked, model=model, per_head=True)
    for a, clip in enumerate(masked):
        for v, image in enumerate(enc_i):
            expected = denseav.similarity(image, clip).score_per_head
            torch.testing.assert_close(scores[a, v], expected, rtol=1e-5, atol=1e-5)
