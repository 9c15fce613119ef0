"""`denseav demo`: a local web page where DenseAV's heatmaps play in sync with the sound.

Install with `pip install 'denseav[demo]'` (Gradio), then run `denseav demo` (see `denseav demo --help`) or,
from Python::

    import denseav
    from denseav.demo import DemoService, build_demo, launch_kwargs

    service = DemoService(denseav.load("sound-language"))
    build_demo(service).launch(**launch_kwargs(service))

Modules: `limits` (what uploads are accepted, checked from headers), `service` (the work, framework-free),
`payload` (what the browser player draws from), `examples` (one-click inputs), `app` (the Gradio page),
`cli` (the command). Only `app` imports Gradio, and only when a page is built.
"""

from __future__ import annotations

from typing import Any

from .limits import Limits
from .service import DemoService

__all__ = ["DemoService", "Limits", "build_demo", "launch_kwargs"]


def __getattr__(name: str) -> Any:  # the Gradio-dependent names load lazily, so `import denseav.demo` needs no Gradio
    if name in ("build_demo", "launch_kwargs"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'denseav.demo' has no attribute {name!r}")
