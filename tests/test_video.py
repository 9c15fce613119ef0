"""Videos in and out: ground_video on generated clips, render_video decoded back and checked."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import denseav
from _fixtures import PARITY_DIRS
from _media import make_clip, probe
from denseav.errors import InputError, OutputError
from denseav.render import render_video
from denseav.video import DEFAULT_MAX_FPS, VideoGrounding, ground_video


@pytest.fixture(scope="module")
def model() -> denseav.DenseAV:
    """The two-head fixture model (real architecture, random weights)."""
    for folder in PARITY_DIRS:
        net = denseav.load(folder)
        if len(net.head_names) == 2:
            return net
    pytest.skip("no two-head parity fixture")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", width=96, height=72, fps=10, seconds=3.0)


@pytest.fixture(scope="module")
def grounded(model, clip) -> VideoGrounding:
    return ground_video(clip, model=model, progress=False)


def decoded_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]


def test_ground_video_samples_and_shapes(grounded, model):
    vg = grounded
    s = vg.source
    assert (s.width, s.height, s.frame_count) == (96, 72, 30)
    assert s.fps == pytest.approx(10) and s.duration == pytest.approx(3.0)
    assert vg.fps == pytest.approx(DEFAULT_MAX_FPS)
    assert vg.num_frames == 15
    assert torch.allclose(vg.frame_times, torch.arange(15, dtype=torch.float64) * 0.2, atol=1e-6)
    assert vg.frame_indices.tolist() == list(range(0, 30, 2))
    h, w = vg.geometry.grid_size
    assert vg.frame_maps.shape == vg.smoothed_maps.shape == (15, 2, h, w)
    assert vg.frame_maps.dtype == torch.float32
    assert vg.head_names == model.head_names
    # Each frame uses the audio step nearest to it.
    for t, step in zip(vg.frame_times, vg.frame_steps):
        assert int(step) == int(torch.argmin((vg.times.double() - t).abs()))
    assert vg.upsampled(3).shape == (2, 72, 96)
    assert vg.waveform is not None and vg.waveform.ndim == 1
    summary = vg.to_dict()
    assert len(summary["frames"]) == 15 and set(summary["frames"][0]["peak"]) == {"language", "sound"}


def test_frame_maps_match_ground_on_the_same_frame(grounded, model, clip):
    """A frame's map is what `ground(frame, soundtrack)` gives at that step (raw and smoothed)."""
    frames = decoded_frames(clip)
    for i in (0, 7, 14):
        index, step = int(grounded.frame_indices[i]), int(grounded.frame_steps[i])
        g = denseav.ground(frames[index][1], clip, model=model)
        torch.testing.assert_close(grounded.frame_maps[i], g.heatmaps[:, step], atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(grounded.smoothed_maps[i], g.smoothed()[:, step], atol=1e-4, rtol=1e-5)
    full = grounded.frame_grounding(7, model)
    torch.testing.assert_close(
        full.heatmaps[:, int(grounded.frame_steps[7])], grounded.frame_maps[7], atol=1e-4, rtol=1e-5
    )


def test_sampling_options(model, clip):
    small = {"model": model, "progress": False, "image_size": 32}  # sampling does not depend on the image size
    two = ground_video(clip, fps=2, batch_size=3, **small)
    assert two.num_frames == 6 and two.fps == 2
    every = ground_video(clip, fps=100, **small)
    assert every.num_frames == 30  # capped at the source rate: every frame
    capped = ground_video(clip, max_frames=4, **small)
    assert capped.num_frames == 4
    assert float(capped.frame_times[-1]) >= 2.0  # spread over the whole clip, not the first 4 frames
    with pytest.raises(InputError, match="fps"):
        ground_video(clip, model=model, fps=0, progress=False)
    with pytest.raises(InputError, match="batch_size"):
        ground_video(clip, model=model, batch_size=0, progress=False)


def check_rendered(out: Path, source: Path, width: int, height: int) -> None:
    src, got = probe(source), probe(out)
    assert got["codec"] == "h264"
    assert (got["width"], got["height"]) == (width, height)
    assert abs(got["frames"] - src["frames"]) <= 1
    assert got["fps"] == pytest.approx(src["fps"], rel=1e-3)
    assert abs(got["video_seconds"] - src["video_seconds"]) <= 1 / src["fps"] + 1e-6
    assert got["audio_codec"] == "aac"
    assert abs(got["audio_seconds"] - src["audio_seconds"]) <= max(0.05, 1024 / src["audio_rate"])


def test_render_combined_and_panels(grounded, clip, tmp_path):
    out = render_video(grounded, clip, tmp_path / "combined.mp4", progress=False)
    check_rendered(out, clip, 96, 72)
    # The overlay changes the picture (colour), but the video underneath is still there.
    before, after = decoded_frames(clip), decoded_frames(out)
    assert len(after) == len(before)
    diff = np.abs(after[10][1].astype(int) - before[10][1].astype(int))
    assert diff.max() > 20
    panels = render_video(grounded, None, tmp_path / "panels.mp4", layout="panels", progress=False)
    check_rendered(panels, clip, 96 * 3, 72)
    first = decoded_frames(panels)[10][1][:, :96].astype(int)  # panel 1 is the plain video
    assert np.abs(first - before[10][1].astype(int)).mean() < 6  # only compression noise


def test_odd_sizes_round_down_to_even(model, tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", width=75, height=55, fps=8, seconds=1.5, codec="mpeg4", audio_rate=22050)
    vg = ground_video(clip, model=model, progress=False)
    assert (vg.source.width, vg.source.height) == (75, 55)
    out = render_video(vg, clip, tmp_path / "odd_out.mp4", progress=False)
    check_rendered(out, clip, 74, 54)


def test_rotated_video_is_shown_upright(model, tmp_path):
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 32, "yuv420p"
        vs.set_display_rotation(90)
        aus = c.add_stream("aac", rate=16000, layout="mono")
        for i in range(10):
            img = np.zeros((32, 64, 3), np.uint8)
            img[:12, :12] = 255  # a marker in the stored top-left corner
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)
        for start in range(0, 16000, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = 16000, start, Fraction(1, 16000)
            for p in aus.encode(af):
                c.mux(p)
        for p in aus.encode():
            c.mux(p)
    vg = ground_video(path, model=model, progress=False)
    assert (vg.source.width, vg.source.height, vg.source.rotation) == (32, 64, 90)
    out = render_video(vg, path, tmp_path / "rot_out.mp4", alpha=0.0, progress=False)
    assert (probe(out)["width"], probe(out)["height"]) == (32, 64)
    # Rotated 90 degrees counter-clockwise for display: the stored top-left corner ends up bottom-left.
    shown = decoded_frames(out)[5][1].astype(int).sum(axis=2)
    ys, xs = np.nonzero(shown > 600)
    assert ys.mean() > 48 and xs.mean() < 12


def test_video_without_audio_is_a_clear_error(model, tmp_path):
    silent = make_clip(tmp_path / "mute.mp4", audio=False, seconds=1.0)
    with pytest.raises(InputError, match="no audio track"):
        ground_video(silent, model=model, progress=False)
    with pytest.raises(InputError, match="not found") as info:
        ground_video(tmp_path / "missing.mp4", model=model, progress=False)
    assert isinstance(info.value, FileNotFoundError)
    wav = PARITY_DIRS[0] / "audio.wav"
    with pytest.raises(InputError, match="no video track"):
        ground_video(wav, model=model, progress=False)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(InputError, match="could not open"):
        ground_video(text, model=model, progress=False)


def test_render_refuses_bad_outputs(grounded, clip, tmp_path):
    with pytest.raises(InputError, match="layout"):
        render_video(grounded, clip, tmp_path / "x.mp4", layout="grid", progress=False)
    with pytest.raises(OutputError, match="is also an input"):
        render_video(grounded, clip, clip, progress=False)
    with pytest.raises(OutputError, match=r"\.mp4"):
        render_video(grounded, clip, tmp_path / "x.gif", progress=False)


def test_long_low_resolution_video_completes(model, tmp_path):
    """60 s at 64x48, 5 fps: over the 30 s audio window, so HuBERT runs windowed; frames stream."""
    clip = make_clip(tmp_path / "long.mp4", width=64, height=48, fps=5, seconds=60.0)
    vg = ground_video(clip, model=model, image_size=32, batch_size=16, progress=False)
    assert vg.source.frame_count == 300 and vg.num_frames == 300
    assert len(vg.times) == model.num_audio_steps(vg.waveform.shape[0])
    assert int(vg.frame_steps[-1]) >= len(vg.times) - 2
    out = render_video(vg, clip, tmp_path / "long_out.mp4", progress=False)
    check_rendered(out, clip, 64, 48)
