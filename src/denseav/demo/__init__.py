"""`denseav demo`: a local web page where DenseAV's heatmaps play in sync with the sound.

Install with `pip install 'denseav[demo]'` (Gradio), then run `denseav demo` (see `denseav demo --help`) or,
from Python::

    import denseav
    from denseav.demo import DemoService, build_demo, launch_kwargs

    service = DemoService(denseav.load("sound-language"))
    build_demo(service).launch(**launch_kwargs(service))

Modules: `limits` (what uploads are accepted), `checks` (uploads checked from their headers), `service` (the work, framework-free),
`payload` (what the browser player draws from), `examples` (one-click inputs), `app` (the Gradio page),
`cli` (the command). Only `app` imports Gradio, and only when a page is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .limits import Limits

__all__ = ["DemoService", "Limits", "build_demo", "launch_kwargs"]

# Imported on first use: `denseav --help` registers the demo command without importing torch or Gradio.
_EXPORTS = {"DemoService": "service", "build_demo": "app", "launch_kwargs": "app"}

if TYPE_CHECKING:
    from .app import build_demo, launch_kwargs
    from .service import DemoService


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'denseav.demo' has no attribute {name!r}")
