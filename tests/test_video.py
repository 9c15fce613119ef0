"""Videos in and out: ground_video on generated clips, render_video decoded back and checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import denseav
from _fixtures import PARITY_DIRS, first_parity_dir
from _media import make_clip, probe, synthetic_grounding
from denseav import cli
from denseav.errors import InputError, OutputError
from denseav.render import frame_overlay, render_grounding_video, render_video
from denseav.render import video as render_video_module
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


# ------------------------------------------------------------------------------------ frames without sound


def plain_difference(rendered: np.ndarray, source: np.ndarray) -> float:
    """Mean colour change away from the top-left corner (where a legend may be drawn)."""
    h, w = source.shape[:2]
    diff = np.abs(rendered.astype(int) - source.astype(int))
    diff[: h // 2, : w // 2] = 0
    return float(diff.mean())


def check_frames_without_sound(vg: VideoGrounding, clip: Path, out: Path) -> None:
    """No map, step -1, null in JSON and a count in the summary for frames outside [0, audio_duration); the
    rendered video shows those frames plain and the others coloured."""
    inside = (vg.frame_times >= 0) & (vg.frame_times < vg.audio_duration)
    assert torch.equal(vg.has_sound, inside)
    assert vg.frames_without_sound == int((~inside).sum()) > 0
    assert torch.isnan(vg.frame_maps[~inside]).all() and not torch.isnan(vg.frame_maps[inside]).any()
    assert (vg.frame_steps[~inside] == -1).all() and (vg.frame_steps[inside] >= 0).all()
    summary = vg.to_dict()
    assert summary["frames_without_sound"] == vg.frames_without_sound
    for frame, sounded in zip(summary["frames"], inside.tolist()):
        assert (frame["peak"] is None) == (frame["step"] is None) == (not sounded)
    json.dumps(summary)  # None -> null
    assert f"{vg.frames_without_sound} outside the sound track" in repr(vg)

    render_video(vg, clip, out, progress=False)
    source, rendered = decoded_frames(clip), decoded_frames(out)
    assert len(rendered) == len(source)
    start = vg.source.audio_start - vg.source.video_start  # video time of the sound's first sample
    changes = [(t - start, plain_difference(r, s)) for (t, s), (_, r) in zip(source, rendered)]
    silent = [d for t, d in changes if t < -0.05 or t > vg.audio_duration + 0.05]
    sounded = [d for t, d in changes if 0.05 < t < vg.audio_duration - 0.05]
    assert silent and sounded
    assert max(silent) < 2.0  # compression noise only: no overlay
    assert max(sounded) > 3 * max(silent)


def test_frames_after_the_sound_ends_get_no_map(model, tmp_path):
    """Issue 8: a 4.75 s video whose sound lasts 2.79 s showed maps at 3 s and 4 s (the last audio step)."""
    clip = make_clip(tmp_path / "short_sound.mp4", width=96, height=72, fps=8, seconds=4.75, audio_seconds=2.79)
    vg = ground_video(clip, model=model, progress=False)
    assert vg.audio_duration == pytest.approx(2.79, abs=0.07)  # AAC rounds up to whole 1024-sample frames
    for seconds in (3.0, 4.0):
        assert not bool(vg.has_sound[vg.frame_at(seconds)])
    assert bool(vg.has_sound[vg.frame_at(1.0)])
    check_frames_without_sound(vg, clip, tmp_path / "short_sound_out.mp4")


def test_frames_before_a_delayed_sound_get_no_map(model, tmp_path):
    """A frame before a delayed audio track starts got step 0."""
    clip = make_clip(tmp_path / "late.mp4", width=96, height=72, fps=8, seconds=3.0, audio_seconds=2.0, audio_start=1.0)
    vg = ground_video(clip, model=model, progress=False)
    assert vg.source.audio_start == pytest.approx(1.0, abs=0.07)
    assert float(vg.frame_times[0]) == pytest.approx(-vg.source.audio_start, abs=1e-6)  # times on the audio clock
    check_frames_without_sound(vg, clip, tmp_path / "late_out.mp4")
    # The sound stays where it was: it starts about 1 s into the rendered video too.
    with av.open(str(tmp_path / "late_out.mp4")) as c:
        first = next(c.decode(c.streams.audio[0]))
        assert first.time == pytest.approx(vg.source.audio_start, abs=0.07)


def test_frame_overlay_with_and_without_sound(model, tmp_path):
    clip = make_clip(tmp_path / "short_sound.mp4", width=96, height=72, fps=8, seconds=4.0, audio_seconds=2.0)
    vg = ground_video(clip, model=model, progress=False)
    frames = decoded_frames(clip)
    silent = int(torch.nonzero(~vg.has_sound)[0])
    plain = np.asarray(frame_overlay(vg, silent, legend=False))
    assert np.array_equal(plain, frames[int(vg.frame_indices[silent])][1])
    coloured = np.asarray(frame_overlay(vg, 0, legend=False)).astype(int)
    assert np.abs(coloured - frames[0][1].astype(int)).max() > 20
    with pytest.raises(InputError, match="out of range"):
        frame_overlay(vg, vg.num_frames)


def test_render_checks_the_output_before_any_decoding(grounded, clip, tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before checking the output path")

    monkeypatch.setattr(render_video_module, "iter_display_frames", no_decoding)
    with pytest.raises(OutputError, match="does not exist"):
        render_video(grounded, clip, tmp_path / "missing" / "out.mp4", progress=False)
    with pytest.raises(AssertionError, match="decoded before"):  # the same call with a good path does decode
        render_video(grounded, clip, tmp_path / "out.mp4", progress=False)
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------- a photo with its sound


def moving_grounding(steps: int = 12, heads: tuple[str, ...] = ("language", "sound")) -> denseav.Grounding:
    """A synthetic grounding whose hot patch moves across the image, one column per audio step."""
    g = synthetic_grounding(480, 288, [(20, 1)] * len(heads), steps=steps, names=heads)  # 10 px patches
    g.heatmaps.fill_(-1.0)
    for s in range(steps):
        for k in range(len(heads)):  # low in the picture (away from the legend), one row per head
            g.heatmaps[k, s, 18 + 5 * k, 1 + 2 * s] = 5.0
    return g


def test_render_grounding_video_is_in_sync(tmp_path):
    g = moving_grounding()
    out = render_grounding_video(g, tmp_path / "photo.mp4")
    info = probe(out)
    rate = Fraction(16000, 2880)  # one frame per audio step
    assert info["codec"] == "h264" and info["audio_codec"] == "aac" and info["audio_rate"] == 16000
    assert (info["width"], info["height"]) == (480, 288)
    assert info["fps"] == pytest.approx(float(rate), rel=1e-3)
    assert info["frames"] == math.ceil(g.audio_duration * rate)
    assert info["audio_seconds"] == pytest.approx(g.audio_duration, abs=1024 / 16000)
    assert info["video_seconds"] == pytest.approx(g.audio_duration, abs=1 / float(rate))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    frames = [f for _, f in decoded_frames(out)]
    # Where the colour is follows the moving patch: it moves right frame by frame.
    columns = [int(np.argmax(np.abs(f[150:].astype(int) - 128).sum(axis=(0, 2)))) for f in frames[:6]]
    assert columns == sorted(columns) and columns[-1] > columns[0]
    assert np.abs(frames[0].astype(int) - frames[5].astype(int)).max() > 50


def test_render_grounding_video_options(tmp_path):
    still = synthetic_grounding(200, 120, [(5, 5), (8, 20)], steps=8)
    still.heatmaps[:] = still.heatmaps[:, :1]  # the same maps at every step: every frame is the same
    frames = [f for _, f in decoded_frames(render_grounding_video(still, tmp_path / "still.mp4"))]
    assert max(np.abs(f.astype(int) - frames[0].astype(int)).mean() for f in frames) < 0.5  # codec noise
    panels = probe(render_grounding_video(still, tmp_path / "panels.mkv", layout="panels", fps=10))
    assert (panels["width"], panels["height"]) == (200 * 3, 120) and panels["fps"] == pytest.approx(10)
    big = synthetic_grounding(1001, 333, [(2, 2)], names=("sound",))
    assert (probe(render_grounding_video(big, tmp_path / "big.mp4", max_side=501))["width"]) == 500  # even
    with pytest.raises(OutputError, match=r"\.mp4"):
        render_grounding_video(still, tmp_path / "x.gif")
    with pytest.raises(InputError, match="layout"):
        render_grounding_video(still, tmp_path / "x.mp4", layout="grid")
    still.waveform = None
    with pytest.raises(InputError, match="waveform"):
        render_grounding_video(still, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_cli_ground_writes_an_mp4(tmp_path):
    """`denseav ground IMAGE AUDIO -o out.mp4`: the fixture image with its sound, one map per audio step."""
    folder = first_parity_dir()
    inputs = [folder / "image.png", folder / "audio.wav", "--weights", folder]
    proc = subprocess.run(
        [sys.executable, "-m", "denseav", "ground", *inputs, "-o", "out.mp4", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert proc.returncode == 0, proc.stderr
    info = probe(tmp_path / "out.mp4")
    model = denseav.load(folder)
    g = denseav.ground(folder / "image.png", folder / "audio.wav", model=model)
    assert info["frames"] == math.ceil(g.audio_duration * 16000 / 2880)
    assert info["audio_seconds"] == pytest.approx(g.audio_duration, abs=1024 / 16000)


def test_cli_video_says_how_many_frames_have_no_sound(tmp_path, capsys, monkeypatch):
    clip = make_clip(tmp_path / "short_sound.mp4", width=64, height=48, fps=8, seconds=3.0, audio_seconds=1.5)
    folder = first_parity_dir()
    monkeypatch.chdir(tmp_path)
    code = cli.main(["video", str(clip), "--weights", str(folder), "--json", "out.json", "-q"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads((tmp_path / "out.json").read_text())
    silent = data["frames_without_sound"]
    assert silent > 0 and sum(f["peak"] is None for f in data["frames"]) == silent
    assert f"{silent} analysed frames lie outside the sound track" in out
