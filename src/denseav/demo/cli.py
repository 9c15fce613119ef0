"""`denseav demo`: the command that serves the page (registered by `denseav.cli`; Gradio is imported only here,
when the command runs)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from ..cli import positive_float
from .limits import Limits

__all__ = ["add_parser"]

_DEFAULTS = Limits()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {value}")
    return value


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `demo` to the `denseav` command's subparsers (parents: the shared model and output options)."""
    p = subparsers.add_parser(
        "demo",
        parents=parents,
        help="serve a web page where the heatmaps play along with the sound (needs denseav[demo])",
        description=textwrap.fill(
            "Serve the DenseAV demo page: upload or record a sound with a photo, or a video, and watch each "
            "head's heatmap follow the sound. Needs `pip install 'denseav[demo]'`. Binds to 127.0.0.1 (this "
            "machine only) unless --host says otherwise. Requests are queued and run one at a time.",
            width=88,
        ),
        epilog=(
            "examples:\n  denseav demo                               the default model on http://127.0.0.1:7860\n"
            "  denseav demo --weights ./ckpt --port 8080  a local checkpoint folder\n"
            "  denseav demo --host 0.0.0.0                reachable from other machines (think first)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 = every network)")
    g.add_argument("--port", type=_port, default=7860, help="port (default 7860)")
    g = p.add_argument_group("limits (checked before anything is decoded)")
    g.add_argument(
        "--max-audio-seconds",
        type=positive_float,
        default=_DEFAULTS.max_audio_seconds,
        metavar="S",
        help=f"longest sound accepted (default {_DEFAULTS.max_audio_seconds:g})",
    )
    g.add_argument(
        "--max-video-seconds",
        type=positive_float,
        default=_DEFAULTS.max_video_seconds,
        metavar="S",
        help=f"longest video accepted (default {_DEFAULTS.max_video_seconds:g})",
    )
    g.add_argument(
        "--max-file-mb",
        type=positive_float,
        default=_DEFAULTS.max_file_mb,
        metavar="MB",
        help=f"largest upload accepted, per file (default {_DEFAULTS.max_file_mb:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import load_model  # the same model options as every other command
    from .app import INSTALL_HINT, build_demo, launch_kwargs, require_gradio
    from .service import DemoService

    try:
        require_gradio()
    except ImportError:
        print(f"denseav: error: {INSTALL_HINT}", file=sys.stderr)
        return 1
    limits = Limits(
        max_audio_seconds=args.max_audio_seconds,
        max_video_seconds=args.max_video_seconds,
        max_file_mb=args.max_file_mb,
    )
    service = DemoService(load_model(args), limits, name=args.weights or args.model)
    try:
        demo = build_demo(service)
        if not args.quiet:
            print(f"denseav demo: open http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        demo.launch(**launch_kwargs(service, host=args.host, port=args.port), quiet=args.quiet)
    finally:
        service.close()
    return 0
