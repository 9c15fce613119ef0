"""The demo's work, without any web framework: check an upload, ground it with the one loaded model, write the
downloads. The Gradio page (`denseav.demo.app`) only wires these calls to widgets, so everything here is tested
without a browser.

Every problem a visitor can cause comes out as `denseav.errors.InputError` whose message is written for the page
(no server paths, what was wrong and what to do). Output files live in one private temporary folder per server;
each request's folder is deleted after `keep_seconds` (and all of them when the server stops), because Gradio
copies what it serves into its own cache (which `delete_cache` empties).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..api import ground, model_label
from ..audio import SAMPLE_RATE, prepare_audio
from ..errors import InputError
from ..modeling import DenseAV
from ..render import render_grounding_video, render_video, save_png
from ..result import Grounding
from ..video import ground_video
from .checks import check_image, check_media
from .limits import Limits
from .payload import player_payload

__all__ = ["SILENCE_PEAK", "DemoService", "ImageOutcome", "VideoOutcome"]

# A clip whose loudest sample is below this (-80 dBFS) is silence for the demo: grounding it shows noise.
SILENCE_PEAK = 1e-4
# Largest video width rendered back to the page (the model sees 224 px anyway; this keeps rendering quick).
RENDER_MAX_WIDTH = 1280
# Results kept for their video step; older ones are dropped (their visitors left or the page was reloaded).
MAX_PENDING = 16

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass
class ImageOutcome:
    payload: dict[str, Any]  # for the page's player
    files: list[Path]  # downloads ready now (JSON, PNG); `render_image_video(request)` adds the MP4
    summary: str
    request: str  # names this result for `render_image_video`


@dataclass
class _Pending:
    """A grounding whose MP4 is still to be rendered (kept in the service, never sent to the page)."""

    result: Grounding
    folder: Path
    stem: str
    files: list[Path]


@dataclass
class VideoOutcome:
    video: Path  # the rendered video with its sound
    files: list[Path]
    summary: str


def _friendly(error: InputError, path: str | Path, name: str) -> InputError:
    """The same error with the server-side temporary path replaced by the name the visitor knows."""
    text = str(error).replace(repr(str(path)), repr(name)).replace(str(path), name)
    return InputError(text)


class DemoService:
    """One model, the limits, and a private folder for the files the page offers for download."""

    def __init__(
        self, model: DenseAV, limits: Limits | None = None, *, name: str | None = None, keep_seconds: float = 3600.0
    ):
        """name: how the page names the model (default: `denseav.api.model_label`); a path shows as its last
        component, so the page never shows the server's folders."""
        self.model = model
        label = name or model_label(model)
        self.name = Path(label).name if Path(label).exists() else label
        self.limits = limits or Limits()
        self.keep_seconds = keep_seconds
        self.work_dir = Path(tempfile.mkdtemp(prefix="denseav-demo-"))
        self._pending: dict[str, _Pending] = {}

    def close(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _request_dir(self) -> Path:
        """A fresh folder for one request; folders older than keep_seconds are removed first."""
        cutoff = time.time() - self.keep_seconds
        for old in self.work_dir.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.work_dir))

    def check_sound(self, path: str | Path, name: str) -> torch.Tensor:
        """Decode an (already size/duration-checked) sound; refuse silence and too-short clips; return the
        16 kHz mono waveform (not yet normalised)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # silence is reported below, in the page's words
                wave = prepare_audio(path, normalize=False)
        except InputError as e:
            raise _friendly(e, path, name) from None
        need = self.model.min_audio_samples
        if wave.numel() < need:
            raise InputError(
                f"the sound is too short: {wave.numel() / SAMPLE_RATE:.3f} s. DenseAV needs at least "
                f"{need / SAMPLE_RATE:.3f} s of sound; record or upload a longer clip."
            )
        if float(wave.abs().max()) < SILENCE_PEAK:
            raise InputError("the sound is silent (no audible signal); record or upload a clip with sound in it")
        return wave

    def ground_image(
        self,
        image: str | Path,
        sound: str | Path,
        *,
        names: tuple[str, str] | None = None,
        progress: Progress = _no_progress,
    ) -> ImageOutcome:
        """Ground an uploaded sound in an uploaded image: the player payload, and as downloads the numbers (JSON)
        and a summary picture (PNG). The overlay video (MP4) is a second step, `render_image_video`, so the page
        can show the player while the video renders."""
        image_name, sound_name = names or (Path(image).name, Path(sound).name)
        progress(0.05, "checking the files")
        check_image(image, self.limits)
        check_media(sound, self.limits, kind="audio")
        wave = self.check_sound(sound, sound_name)
        progress(0.2, "running DenseAV")
        try:
            result = ground(image, wave, model=self.model, sample_rate=SAMPLE_RATE)
        except InputError as e:
            raise _friendly(e, image, image_name) from None
        progress(0.75, "preparing the player")
        out = self._request_dir()
        stem = Path(image_name).stem or "grounding"
        summary = result.to_dict()
        json_path = out / f"{stem}_denseav.json"
        json_path.write_text(json.dumps({"image": image_name, "sound": sound_name, **summary}, indent=2) + "\n")
        png_path = save_png(result, out / f"{stem}_denseav.png")
        per_head = ", ".join(f"{n} {v:.3f}" for n, v in summary["score_per_head"].items())
        text = f"score {result.score:.3f} ({per_head}); {result.audio_duration:.2f} s in {len(result.times)} steps"
        files = [json_path, png_path]
        self._remember(out.name, _Pending(result, out, stem, files))
        return ImageOutcome(player_payload(result), files, text, out.name)

    def _remember(self, request: str, pending: _Pending) -> None:
        self._pending[request] = pending
        while len(self._pending) > MAX_PENDING:  # visitors who left before their video: forget the oldest
            self._pending.pop(next(iter(self._pending)))

    def render_image_video(self, request: str, *, progress: Progress = _no_progress) -> list[Path]:
        """The overlay video with its sound (MP4) for an `ImageOutcome.request`; returns every download of that
        result. A second call for the same request (or one for an unknown request) is an InputError."""
        pending = self._pending.pop(request, None)
        if pending is None or not pending.folder.exists():
            raise InputError("this result is no longer on the server (it expires after a while); press Ground again")
        progress(0.0, "rendering the video with its sound")
        mp4_path = render_grounding_video(pending.result, pending.folder / f"{pending.stem}_denseav.mp4", progress=True)
        return [mp4_path, *pending.files]

    def ground_video(
        self, video: str | Path, *, name: str | None = None, progress: Progress = _no_progress
    ) -> VideoOutcome:
        """Ground an uploaded video's sound in its frames; render the video with its sound; JSON download."""
        name = name or Path(video).name
        progress(0.02, "checking the file")
        check_media(video, self.limits, kind="video")
        self.check_sound(video, name)
        progress(0.05, "running DenseAV on the frames")
        out = self._request_dir()
        stem = Path(name).stem or "video"
        try:
            grounding = ground_video(video, model=self.model, progress=True)
            progress(0.6, "rendering the video")
            rendered = render_video(grounding, video, out / f"{stem}_denseav.mp4", max_width=RENDER_MAX_WIDTH)
        except InputError as e:
            raise _friendly(e, video, name) from None
        data = grounding.to_dict()
        data["source"]["path"] = name  # never hand out the server's temporary path
        json_path = out / f"{stem}_denseav.json"
        json_path.write_text(json.dumps(data, indent=2) + "\n")
        s = grounding.source
        text = (
            f"{s.width}x{s.height}, {s.duration:.1f} s; analysed {grounding.num_frames} frames "
            f"({grounding.fps:.3g} per second); heads: {', '.join(grounding.head_names)}"
        )
        return VideoOutcome(rendered, [rendered, json_path], text)
