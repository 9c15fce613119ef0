"""The denseav demo as a Hugging Face Space (Gradio SDK runs `python app.py`).

The same page as `denseav demo`. Settings come from the environment (a Space's "Variables"):
DENSEAV_MODEL (registry name or repo id, default "sound-language") or DENSEAV_WEIGHTS (a local checkpoint
folder), DENSEAV_DTYPE (float32 / bfloat16 / float16). Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT,
which Spaces set; run locally, it binds 127.0.0.1:7860. See README "Demo" for the Space's requirements.txt.
"""

from __future__ import annotations

import atexit
import os

import denseav
from denseav.demo import DemoService, Limits, build_demo, launch_kwargs

source = os.environ.get("DENSEAV_WEIGHTS") or os.environ.get("DENSEAV_MODEL", denseav.DEFAULT_MODEL)
service = DemoService(denseav.load(source, dtype=os.environ.get("DENSEAV_DTYPE") or None), Limits(), name=source)
atexit.register(service.close)  # the downloads folder goes with the server
demo = build_demo(service)

if __name__ == "__main__":
    demo.launch(**launch_kwargs(service))
