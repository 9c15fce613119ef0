"""The `denseav` command line, end to end in subprocesses (`python -m denseav`), offline with fixture weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from _fixtures import PARITY_DIRS
from _media import make_clip, probe
from denseav import cli


def two_head_dir() -> Path:
    for folder in PARITY_DIRS:
        if json.loads((folder / "config.json").read_text()).get("sim_agg_heads") == 2:
            return folder
    pytest.skip("no two-head parity fixture")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "denseav", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("denseav: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.slow
def test_ground_writes_png_and_json(tmp_path):
    folder = two_head_dir()
    proc = run(
        "ground",
        folder / "image.png",
        folder / "audio.wav",
        "--weights",
        folder,
        "-o",
        "out.png",
        "--json",
        "out.json",
        "--time",
        "1.0",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "score:" in proc.stdout and "peak language" in proc.stdout and "peak sound" in proc.stdout
    with Image.open(tmp_path / "out.png") as im:
        assert im.format == "PNG" and im.width >= 480
    data = json.loads((tmp_path / "out.json").read_text())
    for key in ("model", "image", "audio", "heads", "score", "score_per_head", "times", "peak_over_time"):
        assert key in data
    assert data["heads"] == ["language", "sound"]


@pytest.mark.slow
def test_ground_json_to_stdout_and_quiet(tmp_path):
    folder = two_head_dir()
    proc = run(
        "ground",
        folder / "image.png",
        folder / "audio.wav",
        "--weights",
        folder / "checkpoint.ckpt",
        "--json",
        "-",
        "-q",
        "--raw-audio",
        "--channel",
        "first",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout is pure JSON
    assert data["image_size"] == {"width": 330, "height": 213}
    assert "loading" not in proc.stderr  # --quiet: no chatter


@pytest.mark.slow
def test_video_end_to_end(tmp_path):
    folder = two_head_dir()
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=48, fps=10, seconds=2.0)
    proc = run("video", clip, "--weights", folder, "--fps", "2", "--layout", "panels", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "clip_denseav.mp4"  # the documented default name, in the current folder
    info = probe(out)
    assert (info["width"], info["height"], info["frames"]) == (64 * 3, 48, 20)
    assert "analysed 4 frames" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, code, needle",
    [
        ("missing image", 1, "image file not found"),
        ("text as audio", 1, "could not decode audio"),
        ("video without audio", 1, "no audio track"),
        ("unknown model", 2, "unknown model 'no-such-model'"),
        ("bad dtype", 2, "--dtype"),
    ],
)
def test_clear_errors(tmp_path, case, code, needle):
    """Bad files and bad arguments: exit status 1 (runtime) or 2 (usage), one line on stderr, no traceback."""
    folder = two_head_dir()
    image, audio = folder / "image.png", folder / "audio.wav"
    if case == "missing image":
        args = ["ground", tmp_path / "nope.png", audio, "--weights", folder]
    elif case == "text as audio":
        (tmp_path / "notes.wav").write_text("this is not a sound\n")
        args = ["ground", image, tmp_path / "notes.wav", "--weights", folder]
    elif case == "video without audio":
        args = ["video", make_clip(tmp_path / "mute.mp4", audio=False, seconds=1.0), "--weights", folder]
    elif case == "unknown model":
        args = ["ground", image, audio, "--model", "no-such-model"]
    else:
        args = ["ground", image, audio, "--weights", folder, "--dtype", "float8"]
    proc = run(*args, "-q", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert needle in one_error_line(proc)


# In-process runs of the same `main` (the subprocess tests above cover the entry point itself): fast checks of
# argument handling, listings and messages.


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse exits by itself for --help and usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_errors_are_one_line(capsys, tmp_path):
    folder = two_head_dir()
    image, audio = folder / "image.png", folder / "audio.wav"
    cases = [
        ([], "required"),
        (["ground", image], "required"),
        (["ground", image, audio, "--image-size", "abc"], "--image-size"),
        (["ground", image, audio, "--channel", "left"], "--channel"),
        (["video", "in.mp4", "--fps", "-1"], "--fps"),
        (["video", "in.mp4", "--layout", "grid"], "--layout"),
        (["ground", image, audio, "--weights", folder, "-o", tmp_path / "out.jpg"], ".png"),
        (["download", "no-such-model"], "unknown model"),
        (["download", str(folder)], "local path"),
    ]
    for argv, needle in cases:
        code, _out, err = call(argv, capsys)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("denseav: error: ") and needle in lines[0], (argv, err)


def test_image_size_must_fit_the_models_patch(capsys):
    # The patch size belongs to the model, so this is checked once the model is known (runtime error, exit 1).
    folder = two_head_dir()
    code, _, err = call(
        ["ground", folder / "image.png", folder / "audio.wav", "--weights", folder, "--image-size", "100", "-q"],
        capsys,
    )
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--image-size 100 is not a positive multiple of the model's patch size 8" in err
    assert "--image-size 96 or --image-size 104, or --image-size native" in err


def test_missing_weights_and_debug(capsys, tmp_path):
    folder = two_head_dir()
    code, _, err = call(["ground", folder / "image.png", folder / "audio.wav", "--weights", tmp_path / "none"], capsys)
    assert code == 1 and err.strip().startswith("denseav: error: --weights") and len(err.strip().splitlines()) == 1
    with pytest.raises(FileNotFoundError):  # --debug: the real exception, with its traceback
        cli.main(
            [
                "ground",
                str(folder / "image.png"),
                str(folder / "audio.wav"),
                "--weights",
                str(tmp_path / "x"),
                "--debug",
            ]
        )


def test_models_download_and_help(capsys):
    code, out, _ = call(["models"], capsys)
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["NAME", "HF", "REPO"] and "CACHED" in header
    assert any(r.startswith("sound-language") and "language, sound" in r for r in rows)
    assert all(r.rstrip().endswith(("yes", "no", "?")) for r in rows)
    # Offline and not cached: a one-line runtime error that says how to get the weights.
    code, _, err = call(["download", "sound", "-q"], capsys)
    assert code == 1 and "denseav download" in err and len(err.strip().splitlines()) == 1
    code, out, _ = call(["--help"], capsys)
    assert code == 0 and "examples:" in out and "denseav video" in out
    code, out, _ = call(["video", "--help"], capsys)
    assert code == 0 and "--max-frames" in out and "--layout" in out


def test_unwritable_output_fails_before_the_model_loads(capsys):
    # /proc refuses new files even to root: a read-only place. The check must come before any work.
    folder = two_head_dir()
    code, _, err = call(
        ["ground", folder / "image.png", folder / "audio.wav", "--weights", folder, "-o", "/proc/x.png"], capsys
    )
    assert code == 2 and "cannot write in /proc" in err, err
    assert "loading model" not in err
