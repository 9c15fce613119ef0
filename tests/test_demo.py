"""`denseav.demo` without a browser: limits, the player payload, the service's errors and outputs, examples,
the command and the page's queue wiring (the last two parts skip without Gradio)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import denseav
from _fixtures import PARITY_DIRS
from _media import make_clip, probe
from denseav.demo.checks import check_image, check_media
from denseav.demo.examples import image_examples, rumble, video_examples
from denseav.demo.limits import Limits
from denseav.demo.payload import DISPLAY_WIDTH, MIN_DISPLAY_WIDTH, player_payload
from denseav.demo.service import DemoService
from denseav.errors import InputError
from denseav.render import display_range, head_colors

pytestmark = pytest.mark.skipif(not PARITY_DIRS, reason="no fixture model folders (see tests/_fixtures.py)")
HAS_GRADIO = importlib.util.find_spec("gradio") is not None


def _wav(path: Path, seconds: float, *, rate: int = 16_000, amplitude: float = 0.4) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = amplitude * np.sin(2 * math.pi * (220 + 300 * t) * t)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module", params=PARITY_DIRS, ids=[p.name for p in PARITY_DIRS])
def fixture_dir(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def model(fixture_dir):
    return denseav.load(fixture_dir, progress=False)


@pytest.fixture
def service(model):
    svc = DemoService(model)
    yield svc
    svc.close()


# ------------------------------------------------------------------------------------------------ limits


def test_limits_refuse_long_sound_before_decoding(tmp_path):
    path = _wav(tmp_path / "long.wav", 3.0)
    with pytest.raises(InputError, match=r"3\.0 s long; this demo accepts up to 2 s"):
        check_media(path, Limits(max_audio_seconds=2), kind="audio")
    assert check_media(path, Limits(), kind="audio").seconds == pytest.approx(3.0, abs=0.01)


def test_limits_refuse_big_files_unreadable_files_and_missing_tracks(tmp_path):
    sound = _wav(tmp_path / "a.wav", 1.0)
    with pytest.raises(InputError, match="accepts files up to"):
        check_media(sound, Limits(max_file_mb=0.001), kind="audio")
    text = tmp_path / "notes.wav"
    text.write_text("not a sound at all\n" * 20)
    with pytest.raises(InputError, match="could not be read as a sound"):
        check_media(text, Limits(), kind="audio")
    silent_video = make_clip(tmp_path / "mute.mp4", audio=False, seconds=1.0)
    with pytest.raises(InputError, match="no sound track"):
        check_media(silent_video, Limits(), kind="video")
    with pytest.raises(InputError, match="no picture"):
        check_media(sound, Limits(), kind="video")
    with pytest.raises(InputError, match=r"accepts up to 0\.5 s"):
        check_media(make_clip(tmp_path / "v.mp4", seconds=1.0), Limits(max_video_seconds=0.5), kind="video")


def test_limits_check_image_header_only(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(path)
    assert check_image(path, Limits()) == (400, 300)
    with pytest.raises(InputError, match="400x300"):
        check_image(path, Limits(max_image_megapixels=0.1))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(InputError, match="could not be read as an image"):
        check_image(bad, Limits())


# ----------------------------------------------------------------------------------------------- payload


def test_payload_matches_render_conventions(fixture_dir, model):
    result = denseav.ground(fixture_dir / "image.png", fixture_dir / "audio.wav", model=model)
    data = player_payload(result)
    json.dumps(data)  # it goes to the page as JSON
    k, t, h, w = result.heatmaps.shape
    assert [hd["name"] for hd in data["heads"]] == list(result.head_names)
    assert [tuple(hd["color"]) for hd in data["heads"]] == head_colors(result.head_names)
    rng = display_range(result.smoothed())
    assert np.allclose([hd["range"] for hd in data["heads"]], rng.numpy())
    maps = np.frombuffer(base64.b64decode(data["maps"]), np.uint8).reshape(k, t, h, w)
    smoothed = result.smoothed().clamp_min(0)
    for i in range(k):
        if float(rng[i, 1] - rng[i, 0]) > 1e-6:
            assert maps[i].max() == 255 and maps[i].min() == 0
            # The brightest quantised pixel is the head's largest value over the whole clip.
            assert float(smoothed[i].flatten()[int(np.argmax(maps[i]))]) == pytest.approx(float(rng[i, 1]), rel=0.02)
    assert data["times"] == pytest.approx(result.times.tolist(), abs=1e-4) and data["steps"] == t
    assert data["grid"] == [h, w] and data["resized_size"] == list(result.geometry.resized_size)
    strip = result.smoothed().flatten(2).amax(dim=2)
    assert np.allclose([hd["strip"] for hd in data["heads"]], strip.numpy(), atol=1e-4)

    picture = Image.open(io.BytesIO(base64.b64decode(data["image"].split(",", 1)[1])))
    h0, w0 = result.geometry.original_size
    assert MIN_DISPLAY_WIDTH <= picture.width <= max(DISPLAY_WIDTH, MIN_DISPLAY_WIDTH)
    assert picture.height == pytest.approx(picture.width * h0 / w0, abs=1)
    with wave.open(io.BytesIO(base64.b64decode(data["audio"].split(",", 1)[1]))) as sound:
        assert sound.getframerate() == 16_000 and sound.getnframes() == result.waveform.numel()


# ----------------------------------------------------------------------------------------------- service


def test_service_grounds_and_writes_downloads_without_server_paths(service, fixture_dir):
    outcome = service.ground_image(fixture_dir / "image.png", fixture_dir / "audio.wav", names=("my cat.png", "x.wav"))
    assert {p.suffix for p in outcome.files} == {".json", ".png"}  # ready with the player
    files = service.render_image_video(outcome.request)  # the MP4 follows in a second step
    assert {p.suffix for p in files} == {".mp4", ".json", ".png"}
    video = probe(next(p for p in files if p.suffix == ".mp4"))
    assert video["frames"] >= outcome.payload["steps"]
    assert video["audio_seconds"] == pytest.approx(outcome.payload["duration"], abs=0.1)
    with pytest.raises(InputError, match="no longer on the server"):
        service.render_image_video(outcome.request)  # rendered once; the key is spent
    with pytest.raises(InputError, match="no longer on the server"):
        service.render_image_video("../../etc")  # a key, never a path
    assert all(p.is_relative_to(service.work_dir) for p in outcome.files)
    data = json.loads(next(p for p in outcome.files if p.suffix == ".json").read_text())
    assert data["image"] == "my cat.png" and data["heads"] == list(service.model.head_names)
    assert str(fixture_dir) not in json.dumps(data)
    assert outcome.payload["steps"] == len(data["times"])


def test_service_refuses_short_and_silent_sounds(service, fixture_dir, tmp_path):
    with pytest.raises(InputError, match=r"too short: 0\.100 s\. DenseAV needs at least 0\.185 s"):
        service.ground_image(fixture_dir / "image.png", _wav(tmp_path / "blip.wav", 0.1))
    with pytest.raises(InputError, match="silent"):
        service.ground_image(fixture_dir / "image.png", _wav(tmp_path / "quiet.wav", 1.0, amplitude=0.0))


def test_service_errors_name_the_upload_not_the_temp_path(service, fixture_dir, tmp_path):
    broken = tmp_path / "upload-7f3a" / "song.mp3"
    broken.parent.mkdir()
    broken.write_bytes(b"ID3" + bytes(300))
    with pytest.raises(InputError) as info:
        service.ground_image(fixture_dir / "image.png", broken, names=("image.png", "song.mp3"))
    assert "upload-7f3a" not in str(info.value)


def test_service_request_folders_are_cleaned(model, fixture_dir):
    svc = DemoService(model, keep_seconds=0)
    first = svc.ground_image(fixture_dir / "image.png", fixture_dir / "audio.wav").files[0].parent
    svc.ground_image(fixture_dir / "image.png", fixture_dir / "audio.wav")
    assert not first.exists()  # older than keep_seconds: removed when the next request starts
    svc.close()
    assert not svc.work_dir.exists()


@pytest.mark.slow
def test_service_video_renders_with_sound(service, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.5, fps=8)
    outcome = service.ground_video(clip, name="holiday.mp4")
    info = probe(outcome.video)
    assert info["frames"] == 12 and info["audio_seconds"] == pytest.approx(1.5, abs=0.1)
    data = json.loads(outcome.files[1].read_text())
    assert data["source"]["path"] == "holiday.mp4"


# ---------------------------------------------------------------------------------------------- examples


def test_examples_exist_and_are_small(tmp_path, monkeypatch):
    monkeypatch.setenv("DENSEAV_DEMO_CACHE", str(tmp_path))
    rows = image_examples()
    for image, sound in rows:
        assert Image.open(image).size[0] >= 224
        assert check_media(sound, Limits(), kind="audio").seconds > 0.5
    (video,) = video_examples()[0]
    info = probe(Path(video))
    assert info["frames"] > 1 and info["audio_seconds"] > 1
    shipped = Path(rows[0][0]).parent
    assert sum(p.stat().st_size for p in shipped.iterdir() if p.is_file()) < 1_000_000
    assert np.array_equal(rumble(0.5), rumble(0.5))  # made from code, the same every time


# ---------------------------------------------------------------------------------------- command + page


def test_demo_command_says_how_to_install_gradio(fixture_dir, monkeypatch, capsys):
    from denseav.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    assert main(["demo", "--weights", str(fixture_dir)]) == 1
    assert "pip install 'denseav[demo]'" in capsys.readouterr().err


def test_demo_command_options(capsys):
    from denseav.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--max-audio-seconds" in text and "127.0.0.1" in text
    with pytest.raises(SystemExit):
        main(["demo", "--port", "70000"])
    assert "port number" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_GRADIO, reason="gradio is not installed (pip install -e '.[demo]')")
def test_page_queues_every_model_call_in_one_slot(service, tmp_path, monkeypatch):
    from denseav.demo import build_demo, launch_kwargs

    monkeypatch.setenv("DENSEAV_DEMO_CACHE", str(tmp_path))
    demo = build_demo(service)
    model_calls = [f for f in demo.fns.values() if f.fn is not None and f.name.startswith("ground_")]
    assert len(model_calls) == 4  # two buttons, two example tables
    assert {(f.concurrency_id, f.concurrency_limit) for f in model_calls} == {("model", 1)}
    renders = [f for f in demo.fns.values() if f.name == "image_video"]
    assert len(renders) == 2 and {(f.concurrency_id, f.concurrency_limit) for f in renders} == {("render", 1)}
    kwargs = launch_kwargs(service, host="127.0.0.1", port=7860)
    assert kwargs["max_file_size"] == service.limits.max_file_bytes and kwargs["share"] is False
    assert "allowed_paths" not in kwargs
    assert not demo.analytics_enabled


def test_registering_the_demo_command_imports_neither_torch_nor_gradio():
    src = Path(__file__).resolve().parents[1] / "src"
    code = (
        "import sys; from denseav.cli import _build_parser; _build_parser(); "
        "print(sorted(m for m in ('torch', 'gradio', 'av') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_wheel_ships_the_page_and_the_examples(tmp_path):
    pytest.importorskip("setuptools")
    repo = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(tmp_path),
        str(repo),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    with zipfile.ZipFile(next(tmp_path.glob("denseav-*.whl"))) as wheel:
        names = set(wheel.namelist())
    shipped = [p.relative_to(repo / "src").as_posix() for p in (repo / "src/denseav/demo").rglob("*") if p.is_file()]
    wanted = [n for n in shipped if "__pycache__" not in n]
    assert [n for n in wanted if n not in names] == []
