"""`denseav.evaluation` against every number the ORIGINAL evaluation code produced (../shared/eval).

Discovered, not listed: each ``expected/<model>.json`` is checked with the parity fixture model of the same name,
on the datasets of the layout the eval README describes (``prompted/`` and ``retrieval/pairs.csv``).
Tolerances (the README's, float32 CPU): recalls exact, AP / ap_dis / act_dis 1e-5, IoU 1e-4, 28 x 28 maps 1e-5.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import denseav
from _fixtures import EVAL_CASES
from denseav.evaluation import StoreEncoder, evaluate_retrieval, evaluate_segmentation
from denseav.evaluation.data import decode_ade_labels, read_pairs, read_prompted
from denseav.evaluation.preprocess import load_audio, load_image, load_label_image
from denseav.evaluation.segmentation import upsample

pytestmark = pytest.mark.skipif(
    not EVAL_CASES,
    reason="no evaluation datasets with expected numbers (tests/fixtures/eval, ../shared, DENSEAV_EVAL_DATA)",
)
CASES = [pytest.param(e, m, id=f"{e.parents[1].name}-{e.stem}") for e, m in EVAL_CASES]
AP_TOL, IOU_TOL, MAP_TOL = 1e-5, 1e-4, 1e-5
# Both corpus engines encode the features; Ray on the session's 2-CPU local cluster.
ENGINES = ["local", pytest.param("ray", marks=pytest.mark.slow)]


def _prompted_root(expected_json: Path) -> Path:
    return expected_json.parents[1] / "prompted"


def _pairs_csv(expected_json: Path) -> Path:
    return expected_json.parents[1] / "retrieval" / "pairs.csv"


@cache
def _expected(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@cache
def _model(folder: Path) -> denseav.DenseAV:
    return denseav.get_model(str(folder))  # the same cached instance the evaluate_* calls below get


def _engine(name: str) -> dict[str, Any]:
    return {"engine": name, "workers": 2} if name == "ray" else {}


@cache
def _segmentation(expected_json: Path, folder: Path, engine: str = "local"):
    root = _prompted_root(expected_json)
    return evaluate_segmentation(root, model=str(folder), prompts="both", progress=False, **_engine(engine))


@cache
def _retrieval(expected_json: Path, folder: Path, engine: str = "local"):
    return evaluate_retrieval(_pairs_csv(expected_json), model=str(folder), progress=False, **_engine(engine))


def _start(engine: str, request: pytest.FixtureRequest) -> None:
    if engine == "ray":
        request.getfixturevalue("ray_cluster")


def _tolerance(name: str) -> float:
    return IOU_TOL if "iou" in name else AP_TOL


# -------------------------------------------------------------------------------------------- headline


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_metrics_match_the_original(expected_json: Path, model_dir: Path, engine: str, request: pytest.FixtureRequest):
    _start(engine, request)
    expected = _expected(expected_json)["metrics"]
    seg, ret = _segmentation(expected_json, model_dir, engine), _retrieval(expected_json, model_dir, engine)
    ours = {**seg.metrics, **ret.metrics}
    # The original's metric names are exactly ours (ap_dis only for two heads; prompted_* are our extra).
    assert set(expected) <= set(ours)
    assert set(ours) - set(expected) <= {"prompted_ap_dis", "prompted_act_dis"}
    sizes = {name: len(s.pairs) for name, s in ret.sets.items()}
    for name, value in expected.items():
        if name.startswith("retrieval_"):
            n = sizes[name.split("_")[1]]
            assert round(ours[name] * n) == round(value * n), name  # the same number of hits: exact
        else:
            assert ours[name] == pytest.approx(value, abs=_tolerance(name)), name


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_per_class_values(expected_json: Path, model_dir: Path, engine: str, request: pytest.FixtureRequest):
    _start(engine, request)
    expected = _expected(expected_json)["per_class"]
    seg = _segmentation(expected_json, model_dir, engine)
    assert set(expected) == set(seg.sets)
    for kind, classes in expected.items():
        ours = {c.class_id: c for c in seg.sets[kind].classes}
        assert {int(k) for k in classes} == set(ours)
        for cid, want in classes.items():
            got = ours[int(cid)]
            assert (got.n_items, got.positive_pixels) == (want["n_items"], want["positive_pixels"])
            for key in ("basic_ap", "basic_iou", "advanced_ap", "advanced_iou"):
                if key in want:
                    assert getattr(got, key) == pytest.approx(want[key], abs=_tolerance(key)), (kind, cid, key)


# ----------------------------------------------------------------------------------------- heatmaps


def _map_kinds(seg) -> dict[str, torch.Tensor]:
    return {f"{kind}_{name}": maps for kind, s in seg.sets.items() for name, maps in s.maps.items()}


@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_heatmap_normalisation_steps_and_samples(expected_json: Path, model_dir: Path):
    expected = _expected(expected_json)["heatmaps"]
    seg = _segmentation(expected_json, model_dir)
    maps = _map_kinds(seg)
    for kind, want in expected.items():
        prompts, name = kind.split("_")
        s = seg.sets[prompts]
        lo, hi = s.norm_range[name]
        assert lo == pytest.approx(want["norm_min_over_all_items"], rel=1e-5, abs=1e-5), kind
        assert hi == pytest.approx(want["norm_max_over_all_items"], rel=1e-5, abs=1e-5), kind
        assert tuple(maps[kind].shape[1:]) == tuple(want["grid"])
        if name == "basic":
            assert [i.valid_steps for i in s.items] == want["mask_steps_per_item"]
        else:
            assert [(i.window[0], i.window[1] - 1) for i in s.items if i.window] == list(
                zip(want["first_step_per_item"], want["last_step_per_item"])
            )
        full = upsample(maps[kind][0])
        assert float(full.double().mean()) == pytest.approx(want["out_224_mean_item0"], abs=MAP_TOL)
        for where, value in want["out_224_item0_samples"].items():
            row, col = (int(x) for x in where.split(","))
            assert float(full[row, col]) == pytest.approx(value, abs=MAP_TOL), (kind, where)


@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_normalised_maps_match_the_arrays(expected_json: Path, model_dir: Path):
    """<model>.heatmaps28.npy: [kind (speech_basic, speech_advanced, sound_basic), first items, h, w];
    <model>.heatmaps224_speech_basic_f16.npy: the upsampled speech-basic maps of those items (float16)."""
    seg = _segmentation(expected_json, model_dir)
    maps = _map_kinds(seg)
    small = np.load(expected_json.with_name(f"{expected_json.stem}.heatmaps28.npy"))
    for k, kind in enumerate(("speech_basic", "speech_advanced", "sound_basic")):
        n = small.shape[1]
        np.testing.assert_allclose(maps[kind][:n].numpy(), small[k], atol=MAP_TOL, rtol=0)
    big = np.load(expected_json.with_name(f"{expected_json.stem}.heatmaps224_speech_basic_f16.npy"))
    ours = torch.stack([upsample(m) for m in maps["speech_basic"][: big.shape[0]]]).numpy()
    np.testing.assert_allclose(ours, big.astype(np.float32), atol=1e-3, rtol=0)


# ---------------------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_retrieval_scores_and_disentanglement(expected_json: Path, model_dir: Path):
    expected = _expected(expected_json)
    ret = _retrieval(expected_json, model_dir)
    for name, want in expected["retrieval_debug"].items():
        s = ret.sets[name]
        np.testing.assert_allclose(s.scores.numpy(), np.array(want["sim_summed_over_heads"]), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(s.scores_per_head.numpy(), np.array(want["sim_per_head"]), rtol=1e-5, atol=1e-4)
    want_dis = expected.get("disentangle_debug")
    if not want_dis:
        assert ret.disentanglement is None
        return
    for ours, key in (
        (ret.disentanglement, "retrieval_sets"),
        (_segmentation(expected_json, model_dir).disentanglement, "prompted_sets"),
    ):
        assert ours is not None
        np.testing.assert_allclose(ours.ap_matrix, want_dis[key]["ap_matrix_head_by_set"], atol=AP_TOL)
        np.testing.assert_allclose(ours.act_matrix, want_dis[key]["act_matrix_head_by_set"], atol=AP_TOL)


# ---------------------------------------------------------------------------------- preprocessing


def _check_image(path: Path, want: dict[str, Any]) -> None:
    im = load_image(path)
    assert list(im.original_size) == want["image_size_wh"]
    assert list(im.resized_size) == want["resized_wh"]
    assert list(im.crop_offset) == want["crop_left_top"]
    np.testing.assert_allclose(im.pixels.double().mean((1, 2)).numpy(), want["frames_channel_mean"], atol=1e-6)
    np.testing.assert_allclose(im.pixels[:, 0, 0].numpy(), want["frames_pixel_0_0"], atol=1e-6)


def _check_audio(path: Path, want: dict[str, Any]) -> None:
    a = load_audio(path)
    assert (a.file_rate, a.file_channels) == (want["file_sample_rate"], want["file_channels"])
    assert a.resampled_length == want["original_length"]
    assert a.length == want["audio_length"] == int(a.sample_mask.sum())
    assert a.waveform.shape[0] == want["total_length"]
    x = a.waveform.double()
    assert float(x[0]) == pytest.approx(want["audio_input_first"], abs=1e-6)
    assert float(x[-1]) == pytest.approx(want["audio_input_last"], abs=1e-6)
    assert float(x.mean()) == pytest.approx(want["audio_input_mean"], abs=1e-6)
    assert float(x.std(unbiased=False)) == pytest.approx(want["audio_input_std"], abs=1e-6)
    assert float(x.abs().sum()) == pytest.approx(want["audio_input_abs_sum"], rel=1e-6)


@pytest.mark.parametrize("expected_json, model_dir", CASES[:1])
def test_preprocessing_of_every_item(expected_json: Path, model_dir: Path):
    """Image geometry and statistics, audio lengths and normalisation, label class pixels (model-free)."""
    items = _expected(expected_json)["items"]
    rows = read_prompted(_prompted_root(expected_json))
    for kind in ("speech", "sound"):
        members = [r for r in rows if kind in r.audio]
        for row, want in zip(members, items[f"prompted_{kind}"], strict=True):
            assert row.csv_row == want["csv_row"] and row.class_id == want["ade_class_id"]
            assert row.audio[kind].name == want["audio_file"]
            _check_image(row.image, want)
            _check_audio(row.audio[kind], want)
            classes = decode_ade_labels(load_label_image(row.label), row.label)
            ids, counts = np.unique(classes, return_counts=True)
            assert {str(i): int(c) for i, c in zip(ids, counts)} == want["label_class_pixels"]
    pairs = read_pairs(_pairs_csv(expected_json))
    for kind in ("speech", "sound"):
        members = [p for p in pairs if p.set == kind]
        for pair, want in zip(members, items[f"retrieval_{kind}"], strict=True):
            assert (pair.pair_id, pair.image.name, pair.audio.name) == (
                want["pair_id"],
                want["frame_file"],
                want["audio_file"],
            )
            _check_image(pair.image, want)
            _check_audio(pair.audio, want)


@pytest.mark.parametrize("expected_json, model_dir", CASES[:1])
def test_valid_steps_of_every_clip(expected_json: Path, model_dir: Path):
    """The step mask (``aligned_mask_true``) of every prompted item, through the encoder interface."""
    items = _expected(expected_json)["items"]
    rows = read_prompted(_prompted_root(expected_json))
    kinds = ("speech", "sound")
    with StoreEncoder(_model(model_dir), progress=False) as encoder:
        by_path = {k: dict(encoder.encode_clips([r.audio[k] for r in rows if k in r.audio])) for k in kinds}
    for kind in kinds:
        clips = [by_path[kind][r.audio[kind]] for r in rows if kind in r.audio]
        assert [int(c.features.mask.sum()) for c in clips] == [
            w["aligned_mask_true"] for w in items[f"prompted_{kind}"]
        ]
        assert {c.features.mask.shape[1] for c in clips} == {w["aligned_steps"] for w in items[f"prompted_{kind}"]}


@pytest.mark.parametrize("expected_json, model_dir", CASES)
def test_weights_hash_in_provenance(expected_json: Path, model_dir: Path):
    """The run records the sha256 of the weights it used: the one the expected numbers were made with."""
    prov = _retrieval(expected_json, model_dir).provenance
    assert prov is not None
    assert prov.weights_sha256 == _expected(expected_json)["model_safetensors_sha256"]
    assert prov.dataset_sha256 and len(prov.dataset_sha256) == 64
    assert prov.package_version == denseav.__version__
