"""The Gradio page: widgets wired to `DemoService`.

Why Gradio (and not a small FastAPI app with a static page): the one interaction Gradio has no widget for, the
heatmaps replayed in sync with the sound, is a plain `gr.HTML` component whose JavaScript (static/player.js)
draws on a canvas from the audio clock; everything else a public demo needs comes with Gradio and would have
to be rewritten otherwise: uploads with size limits, microphone recording, a request queue that shows each
visitor their place in it, progress, example rows, friendly error pop-ups, temporary-file clean-up, and
Hugging Face Spaces hosting (`app.py` at the repository root).

Serving rules kept here: one model in memory (the service's), every model call through one queue slot
(`concurrency_id="model"`, limit 1; rendering the image + sound MP4, which needs no model, in its own slot), uploads over the size limit refused by Gradio before they are stored,
no `allowed_paths` (the page can only fetch what Gradio itself stored: uploads, examples, results), cache
files deleted after an hour, analytics off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import InputError
from .examples import image_examples, video_examples
from .service import DemoService

__all__ = ["INSTALL_HINT", "build_demo", "launch_kwargs", "require_gradio"]

INSTALL_HINT = "the demo needs Gradio: pip install 'denseav[demo]'"
QUEUE_SIZE = 20  # visitors waiting beyond this are told the demo is busy
CACHE_CLEANUP = (600, 3600)  # every 10 minutes, delete Gradio's cached uploads/results older than an hour

log = logging.getLogger("denseav.demo")


def require_gradio() -> Any:
    """Import Gradio with analytics off (no network calls at start); a clear error when it is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return gradio


def _static(name: str) -> str:
    return resources.files("denseav.demo").joinpath(f"static/{name}").read_text(encoding="utf-8")


def _upload_name(path: str) -> str:
    """The file name as the visitor uploaded it (Gradio keeps it as the last path component)."""
    return Path(path).name


def _header(service: DemoService) -> str:
    model = service.model
    heads = ", ".join(model.head_names)
    limits = service.limits
    return (
        "# DenseAV: where in the picture is the sound?\n"
        "DenseAV (Hamilton et al., CVPR 2024) learned, from videos alone, which pixels a sound or a spoken word "
        "refers to. Give it a photo and a sound (or a video) and press **Ground**; then press play: each head's "
        "heatmap follows the sound step by step. The *language* head (red) answers to words, the *sound* head "
        f"(blue) to other sounds.\n\nModel: `{service.name}` · heads: {heads} · limits: {limits.max_audio_seconds:g} s "
        f"of sound, {limits.max_video_seconds:g} s of video, {limits.max_file_mb:g} MB per file."
    )


@contextmanager
def _page_errors(gr: Any) -> Iterator[None]:
    """Visitors' mistakes become a friendly pop-up; anything else a short note (with the traceback in the log)."""
    try:
        yield
    except InputError as e:
        raise gr.Error(_sentence(str(e)), title="Cannot ground this", duration=None) from None
    except gr.Error:
        raise
    except Exception as e:
        log.exception("demo request failed")
        raise gr.Error(
            f"Something went wrong on the server ({type(e).__name__}); the details are in the server's log.",
            duration=None,
        ) from None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


@dataclass(frozen=True)
class _Handlers:
    """What the page's events call: each wraps one DemoService call with Gradio's progress and page errors."""

    ground_image: Callable[..., tuple[dict, list[str], str]]
    image_video: Callable[..., list[str]]
    ground_video: Callable[..., tuple[str, list[str]]]


def _handlers(gr: Any, service: DemoService) -> _Handlers:
    # Gradio passes a progress tracker to a parameter whose default is gr.Progress().
    def ground_image(
        image: str | None,
        sound: str | None,
        progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[dict, list[str], str]:
        with _page_errors(gr):
            if not image or not sound:
                raise InputError("choose an image and a sound first (or click one of the examples)")
            names = (_upload_name(image), _upload_name(sound))
            outcome = service.ground_image(image, sound, names=names, progress=lambda f, m: progress(f, desc=m))
        log.info("image request: %s", outcome.summary)
        return outcome.payload, [str(p) for p in outcome.files], outcome.request

    def image_video(
        request: str,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008  (the rendering bar shows)
    ) -> list[str]:
        with _page_errors(gr):
            files = service.render_image_video(request, progress=lambda f, m: progress(f, desc=m))
        return [str(p) for p in files]

    def ground_video(
        video: str | None,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008  (the frame and rendering bars show too)
    ) -> tuple[str, list[str]]:
        with _page_errors(gr):
            if not video:
                raise InputError("choose a video with sound first (or click the example)")
            outcome = service.ground_video(video, name=_upload_name(video), progress=lambda f, m: progress(f, desc=m))
        log.info("video request: %s", outcome.summary)
        return str(outcome.video), [str(p) for p in outcome.files]

    return _Handlers(ground_image, image_video, ground_video)


def _image_tab(gr: Any) -> SimpleNamespace:
    """Inputs, examples, the player and the downloads of the image + sound tab."""
    with gr.Tab("Image + sound"), gr.Row():
        with gr.Column(scale=2, min_width=320):
            image = gr.Image(
                type="filepath",
                image_mode=None,  # hand over the upload as it is: nothing decoded before the checks
                label="Image",
                sources=["upload", "clipboard"],
                height=260,
                elem_id="input-image",
            )
            sound = gr.Audio(
                type="filepath",
                format=None,  # no conversion: PyAV reads whatever was uploaded or recorded
                label="Sound",
                sources=["upload", "microphone"],
                elem_id="input-sound",
            )
            run_image = gr.Button("Ground", variant="primary", elem_id="ground-image")
            image_examples_table = gr.Examples(
                examples=image_examples(),
                inputs=[image, sound],
                cache_examples=False,
                label="Examples: one click grounds them",
            )
        with gr.Column(scale=3, min_width=420):
            player = gr.HTML(
                value=None,
                html_template=_static("player.html"),
                css_template=_static("player.css"),
                js_on_load=_static("player.js"),
                elem_id="denseav-player",
            )
            image_files = gr.File(
                label="Downloads: the heatmaps as a video with the sound (MP4), the numbers (JSON), a summary picture (PNG)",
                file_count="multiple",
                elem_id="downloads-image",
            )
    return SimpleNamespace(
        image=image, sound=sound, run=run_image, examples=image_examples_table, player=player, files=image_files
    )


def _video_tab(gr: Any) -> SimpleNamespace:
    """The video tab: the upload, its example, the rendered video and its downloads."""
    with gr.Tab("Video"), gr.Row():
        with gr.Column(scale=2, min_width=320):
            video = gr.Video(label="Video with sound", sources=["upload"], height=300, elem_id="input-video")
            run_video = gr.Button("Ground the video", variant="primary", elem_id="ground-video")
            video_examples_table = gr.Examples(
                examples=video_examples(), inputs=[video], cache_examples=False, label="Example: one click"
            )
        with gr.Column(scale=3, min_width=420):
            video_out = gr.Video(
                label="The video with each head's heatmap, and its sound", interactive=False, height=420
            )
            video_files = gr.File(
                label="Downloads: the video (MP4), the numbers (JSON)",
                file_count="multiple",
                elem_id="downloads-video",
            )
    return SimpleNamespace(video=video, run=run_video, examples=video_examples_table, out=video_out, files=video_files)


def _wire(gr: Any, on: _Handlers, im: SimpleNamespace, vid: SimpleNamespace) -> None:
    """Every model call, from a button or an example click, waits in the one "model" queue slot; the image's MP4
    follows in a second step with a slot of its own (it does not use the model), so the player never waits."""
    request = gr.State("")  # names this visitor's last result for its video step (a key, never a path)
    image_run = {"fn": on.ground_image, "inputs": [im.image, im.sound], "outputs": [im.player, im.files, request]}
    image_mp4 = {
        "fn": on.image_video,
        "inputs": [request],
        "outputs": [im.files],
        "concurrency_id": "render",
        "concurrency_limit": 1,
    }
    video_run = {"fn": on.ground_video, "inputs": [vid.video], "outputs": [vid.out, vid.files]}
    model_slot = {"concurrency_id": "model", "concurrency_limit": 1}
    im.run.click(**image_run, **model_slot).success(**image_mp4)
    im.examples.load_input_event.then(**image_run, **model_slot).success(**image_mp4)
    vid.run.click(**video_run, **model_slot)
    vid.examples.load_input_event.then(**video_run, **model_slot)


def build_demo(service: DemoService) -> Any:
    """The whole page as a `gr.Blocks` (queued; call `.launch(**launch_kwargs(service))`)."""
    gr = require_gradio()
    on = _handlers(gr, service)
    with gr.Blocks(title="DenseAV demo", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(_header(service))
        _wire(gr, on, _image_tab(gr), _video_tab(gr))
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def launch_kwargs(service: DemoService, *, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """What `demo.launch` gets: the upload size limit, no share link, no API page, CSR rendering; host/port
    None leave Gradio's own default (127.0.0.1:7860, or GRADIO_SERVER_NAME/PORT as Spaces set them)."""
    return {
        "server_name": host,
        "server_port": port,
        "max_file_size": service.limits.max_file_bytes,
        "share": False,
        "ssr_mode": False,
        "footer_links": [],
        "show_error": True,
    }
