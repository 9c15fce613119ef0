"""The evaluation's metrics on hand-made inputs, its stated edge-case behaviour, and its errors on bad input.

Metric tests need nothing; the others build tiny datasets in tmp folders and run them with a parity fixture model
(any of them: nothing here depends on a particular one, its head count or its sizes unless stated).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import denseav
from _eval_data import Row, make_pairs, make_prompted, write_csv, write_wav
from _fixtures import MISSING, PARITY_DIRS
from denseav.audio import SAMPLE_RATE
from denseav.corpus import FeatureStore
from denseav.errors import InputError
from denseav.evaluation import FeatureEncoder, StoreEncoder, evaluate_retrieval, evaluate_segmentation
from denseav.evaluation.data import read_pairs, read_prompted
from denseav.evaluation.metrics import average_precision, best_iou, disentanglement, pooled_metrics, recall_at_k
from denseav.evaluation.preprocess import AUDIO_SAMPLES
from denseav.evaluation.segmentation import prompt_window

needs_model = pytest.mark.skipif(not PARITY_DIRS, reason=MISSING)


@cache
def _model(folder: Path) -> denseav.DenseAV:
    return denseav.load(folder, progress=False)


def _any_model() -> denseav.DenseAV:
    return _model(PARITY_DIRS[0])


def _model_with_heads(predicate) -> denseav.DenseAV:
    for d in PARITY_DIRS:
        if predicate(_model(d).config.num_heads):
            return _model(d)
    pytest.skip("no parity fixture model with that number of heads")


BOX = (20, 16, 60, 48)  # a class region inside every synthetic image


# --------------------------------------------------------------------------------------------- metrics


def test_ap_ties_enter_together():
    # Thresholds 0.9 (1 TP, 1 FP: P 1/2, R 1/2) and 0.5 (2 TP, 2 FP: P 1/2, R 1): AP = 1/4 + 1/4.
    scores = torch.tensor([0.9, 0.9, 0.5, 0.5, 0.1])
    assert average_precision(scores, torch.tensor([1, 0, 1, 0, 0]).bool()) == pytest.approx(0.5)
    # The order of tied items does not matter.
    assert average_precision(scores, torch.tensor([0, 1, 0, 1, 0]).bool()) == pytest.approx(0.5)
    # No ties: P 1 at R 1/2, P 2/3 at R 1.
    assert average_precision(torch.tensor([0.8, 0.6, 0.4]), torch.tensor([1, 0, 1]).bool()) == pytest.approx(5 / 6)


def test_ap_is_undefined_without_positives():
    assert average_precision(torch.rand(10), torch.zeros(10, dtype=torch.bool)) is None


def test_best_iou_uses_twenty_thresholds_from_min_to_max():
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert best_iou(scores, torch.tensor([0, 0, 1, 1]).bool()) == pytest.approx(1.0)
    # The top threshold predicts nothing: IoU 0 there, never a division by zero.
    assert best_iou(torch.zeros(4), torch.zeros(4, dtype=torch.bool)) == 0.0


@pytest.mark.parametrize("max_values, bins", [(10**9, 1 << 16), (700, 16), (50, 4)])
def test_streamed_pooled_metrics_are_exact(max_values: int, bins: int):
    """Streaming in runs of histogram bins (even when a bin exceeds the budget) gives the direct values."""
    g = torch.Generator().manual_seed(0)
    chunks = [((torch.rand(400, generator=g) * 50).round() / 50, torch.rand(400, generator=g) < 0.3) for _ in range(5)]
    scores, labels = torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
    pooled = pooled_metrics(lambda: iter(chunks), max_values=max_values, bins=bins)
    assert pooled.ap == pytest.approx(average_precision(scores, labels), abs=1e-12)
    assert pooled.iou == pytest.approx(best_iou(scores, labels), abs=1e-12)
    assert (pooled.positives, pooled.total) == (int(labels.sum()), 2000)


def test_recall_counts_exact_ties_against_the_pair():
    sim = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    a1, i1 = recall_at_k(sim, 1)
    # Audio 0 ties images 0 and 1: a miss at k=1 for the audio query; image queries all hit.
    assert (a1, i1) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert recall_at_k(sim, 2) == (pytest.approx(1.0), pytest.approx(1.0))
    with pytest.raises(ValueError, match="at least 10 pairs"):
        recall_at_k(sim, 10)


def test_disentanglement_of_perfectly_separated_heads():
    words = torch.tensor([[5.0, 0.0], [4.0, 1.0], [6.0, 0.5]])
    sounds = torch.tensor([[0.0, 5.0], [1.0, 4.0]])
    d = disentanglement(words, sounds)
    assert d.ap_dis == pytest.approx(1.0)
    # Swapping the heads' roles gives the same score (the better assignment is taken).
    assert disentanglement(words.flip(1), sounds.flip(1)).ap_dis == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two-head"):
        disentanglement(words[:, :1], sounds[:, :1])


def test_prompt_window_is_widened_and_not_clamped():
    steps, window = 56, 10.2625
    assert prompt_window((1.0, 1.5), steps, window) == (4, 10)
    lo, _ = prompt_window((0.05, 0.3), steps, window)
    assert lo < 0  # clamping (and saying so) is the segmentation run's job


# ------------------------------------------------------------------------------------ edge behaviour


@needs_model
def test_class_without_positive_pixels_is_left_out_of_the_mean(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 770, {17: BOX})]  # class 770 never appears in a label
    result = evaluate_segmentation(make_prompted(tmp_path, rows), model=_any_model(), prompts="sound", progress=False)
    s = result.sets["sound"]
    by_id = {c.class_id: c for c in s.classes}
    assert by_id[770].positive_pixels == 0 and by_id[770].basic_ap is None and by_id[770].basic_iou is None
    assert s.metrics["basic_ap"] == pytest.approx(by_id[17].basic_ap)
    assert any("class 770 has no positive pixel" in n for n in result.notes)


@needs_model
def test_timing_outside_the_clip_is_an_error_naming_the_row(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX}, speech_seconds=1.0, timing=(3.0, 3.4))]
    with pytest.raises(InputError, match=r"CSV row 1\).*after the end of the clip"):
        evaluate_segmentation(make_prompted(tmp_path, rows), model=_any_model(), prompts="speech", progress=False)


@needs_model
def test_advanced_window_is_clamped_at_both_ends(tmp_path: Path):
    rows = [
        Row("a.jpg", 17, {17: BOX}, speech_seconds=1.0, timing=(0.05, 0.4)),  # starts before 0 s once widened
        Row("b.jpg", 17, {17: BOX}, speech_seconds=10.5, timing=(10.0, 10.2)),  # reaches past the last step
        Row("c.jpg", 17, {17: BOX}, speech_seconds=1.5, timing=(0.6, 0.9)),  # ordinary
    ]
    result = evaluate_segmentation(make_prompted(tmp_path, rows), model=_any_model(), prompts="speech", progress=False)
    items = result.sets["speech"].items
    steps = items[1].valid_steps  # the 10.5 s clip fills the evaluation window: all of its steps are valid
    assert items[0].window is not None and items[0].window[0] == 0
    assert items[1].window is not None and items[1].window[1] == steps
    assert items[2].window == prompt_window((0.6, 0.9), steps, AUDIO_SAMPLES / SAMPLE_RATE)
    assert sum("clamped" in n for n in result.notes) == 2
    assert all(np.isfinite(v) for v in result.metrics.values() if v is not None)


@needs_model
def test_short_clips_are_evaluated_as_they_are_and_too_short_ones_refused(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX}, sound_seconds=0.3), Row("b.jpg", 17, {17: BOX})]
    result = evaluate_segmentation(
        make_prompted(tmp_path / "ok", rows), model=_any_model(), prompts="sound", progress=False
    )
    assert result.sets["sound"].items[0].valid_steps > 0
    assert any("evaluated as it is" in n and "CSV row 0" in n for n in result.notes)
    rows[0] = Row("a.jpg", 17, {17: BOX}, sound_seconds=0.05)
    with pytest.raises(InputError, match=r"CSV row 0\).*shorter than one model step"):
        evaluate_segmentation(
            make_prompted(tmp_path / "bad", rows), model=_any_model(), prompts="sound", progress=False
        )


@needs_model
def test_fewer_than_ten_pairs_report_recall_at_10_as_undefined(tmp_path: Path):
    result = evaluate_retrieval(make_pairs(tmp_path, {"sound": 3}), model=_any_model(), progress=False)
    recalls = result.sets["sound"].recalls
    assert recalls["A_r1"] is not None and recalls["I_r1"] is not None
    assert recalls["A_r5"] is recalls["I_r10"] is None
    assert any("only 3 pairs" in n for n in result.notes)


class _CountingEncoder:
    """Records what is encoded; delegates to a store encoder (any FeatureEncoder can stand in)."""

    def __init__(self, inner: FeatureEncoder) -> None:
        self.inner = inner
        self.images: list[Path] = []
        self.clips: list[Path] = []

    def encode_images(self, paths):
        self.images += list(paths)
        return self.inner.encode_images(paths)

    def encode_clips(self, paths):
        self.clips += list(paths)
        return self.inner.encode_clips(paths)


@needs_model
def test_each_image_and_clip_is_encoded_once_through_the_encoder_interface(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX, 770: (0, 0, 10, 10)}), Row("a.jpg", 770, {}), Row("b.jpg", 17, {17: BOX})]
    root = make_prompted(tmp_path, rows)
    model = _any_model()
    with StoreEncoder(model, batch_size=1, progress=False) as inner:
        counting = _CountingEncoder(inner)
        plugged = evaluate_segmentation(root, model=model, prompts="both", encoder=counting, progress=False)
    assert len(counting.images) == len(set(counting.images)) == 2
    assert len(counting.clips) == len(set(counting.clips)) == 6
    default = evaluate_segmentation(root, model=model, prompts="both", progress=False)
    for name, value in default.metrics.items():
        assert plugged.metrics[name] == pytest.approx(value, abs=1e-6), name


def _shards(store: Path) -> list[Path]:
    return sorted(store.rglob("*.parquet"))


@needs_model
def test_a_kept_store_makes_a_rerun_encode_nothing_and_give_the_same_numbers(tmp_path: Path):
    root = make_prompted(tmp_path / "data", [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX})])
    store = tmp_path / "features"
    first = evaluate_segmentation(root, model=_any_model(), prompts="both", store=store, progress=False)
    shards = _shards(store)
    counts = FeatureStore.open(store).counts()
    assert counts == {"image": 2, "audio": 4, "errors": 0}
    again = evaluate_segmentation(root, model=_any_model(), prompts="both", store=store, progress=False)
    assert _shards(store) == shards  # nothing encoded or written
    assert again.metrics == first.metrics


@needs_model
def test_an_edited_file_is_encoded_again_and_its_new_features_used(tmp_path: Path):
    root = make_prompted(tmp_path / "data", [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX})])
    store = tmp_path / "features"
    first = evaluate_segmentation(root, model=_any_model(), prompts="sound", store=store, progress=False)
    image = root / "frames" / "a.jpg"
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(image)
    kept = evaluate_segmentation(root, model=_any_model(), prompts="sound", store=store, progress=False)
    fresh = evaluate_segmentation(root, model=_any_model(), prompts="sound", progress=False)
    assert FeatureStore.open(store).counts()["image"] == 3  # the old row stays; the new one is used
    assert kept.metrics == pytest.approx(fresh.metrics, abs=1e-6)  # batched with b.jpg or alone: float rounding
    assert kept.metrics != pytest.approx(first.metrics, abs=1e-6)


@needs_model
def test_an_undecodable_image_stops_the_run_naming_the_file(tmp_path: Path):
    root = make_prompted(tmp_path, [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX})])
    (root / "frames" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"b.jpg' cannot be decoded as an image"):
        evaluate_segmentation(root, model=_any_model(), prompts="sound", progress=False)


# ------------------------------------------------------------------------------------------ bad input


def test_missing_columns_are_named(tmp_path: Path):
    write_csv(tmp_path / "prompted_segmentation.csv", [{"image_location": "a.jpg", "ade_class_id": "17"}])
    with pytest.raises(InputError, match="missing column.*speech_prompt_file, vggsound_file, timing"):
        read_prompted(tmp_path)


def test_bad_timing_json_names_the_row(tmp_path: Path):
    rows = [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX}, extra={"timing": "[0.3, 0.6"})]
    with pytest.raises(InputError, match=r"prompted_segmentation.csv row 1 \(line 3\): timing '\[0.3, 0.6' is not"):
        read_prompted(make_prompted(tmp_path, rows))


def test_unknown_files_name_the_row(tmp_path: Path):
    root = make_prompted(tmp_path, [Row("a.jpg", 17, {17: BOX}), Row("b.jpg", 17, {17: BOX})])
    (root / "audio" / "sound_1.wav").unlink()
    with pytest.raises(InputError, match=r"row 1 \(line 3\): sound prompt .*sound_1.wav' does not exist"):
        read_prompted(root)
    pairs = make_pairs(tmp_path / "pairs", {"speech": 2})
    pairs.write_text(pairs.read_text().replace("media/speech_1.jpg", "media/nope.jpg"))
    with pytest.raises(InputError, match=r"pairs.csv row 1 \(line 3\): image .*nope.jpg' does not exist"):
        read_pairs(pairs)


def test_unknown_set_names_the_row(tmp_path: Path):
    pairs = make_pairs(tmp_path, {"speech": 2})
    pairs.write_text(pairs.read_text().replace("speech,speech_1", "words,speech_1"))
    with pytest.raises(InputError, match=r"row 1 \(line 3\): set 'words' is neither"):
        read_pairs(pairs)


@needs_model
@pytest.mark.parametrize("mode", ["P", "L"])
def test_label_maps_in_the_wrong_encoding_are_refused_before_encoding(tmp_path: Path, mode: str):
    root = make_prompted(tmp_path, [Row("a.jpg", 17, {17: BOX})])
    label = root / "annotations" / "a_seg.png"
    Image.open(label).convert(mode).save(label)
    with StoreEncoder(_any_model(), progress=False) as inner:
        counting = _CountingEncoder(inner)
        with pytest.raises(InputError, match=r"a_seg.png' has one channel \(a palette or grayscale PNG\)"):
            evaluate_segmentation(root, model=_any_model(), prompts="sound", encoder=counting, progress=False)
    assert not counting.images and not counting.clips  # failed before any encoding


@needs_model
def test_disentanglement_needs_two_heads(tmp_path: Path):
    model = _model_with_heads(lambda k: k != 2)
    pairs = make_pairs(tmp_path, {"speech": 2, "sound": 2})
    with pytest.raises(InputError, match=re.escape(f"needs a two-head model; this one has {model.config.num_heads}")):
        evaluate_retrieval(pairs, model=model, disentangle=True, progress=False)


@needs_model
def test_disentanglement_needs_both_sets(tmp_path: Path):
    model = _model_with_heads(lambda k: k == 2)
    with pytest.raises(InputError, match="both a 'speech' and a 'sound' set"):
        evaluate_retrieval(make_pairs(tmp_path, {"speech": 2}), model=model, disentangle=True, progress=False)


def test_audio_of_any_rate_is_brought_to_the_window(tmp_path: Path):
    from denseav.evaluation.preprocess import load_audio

    a = load_audio(write_wav(tmp_path / "a.wav", 0.5, rate=8_000))
    assert a.resampled_length == 8_000 and a.length == 8_000 and a.waveform.shape == (AUDIO_SAMPLES,)
    long = load_audio(write_wav(tmp_path / "b.wav", 11.0))
    assert long.length == AUDIO_SAMPLES and bool(long.sample_mask.all())
    # The whole padded vector is normalised, padding included.
    assert float(a.waveform.double().mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(a.waveform[-1]) != 0.0


@needs_model
def test_retrieval_scores_do_not_depend_on_image_chunking(tmp_path: Path):
    from denseav.evaluation.retrieval import run_retrieval

    pairs = make_pairs(tmp_path, {"speech": 3, "sound": 2})
    # A shared image: pairs 0 and 2 of the speech set show the same picture (encoded once, two columns).
    pairs.write_text(pairs.read_text().replace("media/speech_2.jpg", "media/speech_0.jpg"))
    model = _any_model()
    with StoreEncoder(model, progress=False) as encoder:
        whole = run_retrieval(pairs, model, encoder=encoder)
        one_by_one = run_retrieval(pairs, model, encoder=encoder, image_chunk=1)
    for name, s in whole.sets.items():
        torch.testing.assert_close(one_by_one.sets[name].scores_per_head, s.scores_per_head, atol=1e-5, rtol=1e-6)
    speech = whole.sets["speech"].scores
    torch.testing.assert_close(speech[:, 0], speech[:, 2])
