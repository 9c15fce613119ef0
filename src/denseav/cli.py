"""The `denseav` command line (also `python -m denseav`): ground, video, models, download."""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import DenseAVError, InputFileNotFoundError, OutputError
from .paths import check_input_file, check_output_path

EXAMPLES = """\
examples:
  denseav ground dog.jpg bark.wav -o dog.png          picture: where the bark is, per head
  denseav ground dog.jpg bark.wav --json dog.json     the numbers (scores, peaks, per-step maxima)
  denseav video clip.mp4 -o clip_denseav.mp4          video with the groundings, in sync with its sound
  denseav video clip.mp4 --layout panels --fps 2      one panel per head; analyse 2 frames per second
  denseav models                                      the published models, and which are downloaded
  denseav download sound-language                     fetch weights once, then run offline
  denseav ground img.png a.wav --weights ./my_ckpt    a local checkpoint folder or .ckpt file
  denseav demo                                        a web page where the heatmaps play with the sound

Models download from the Hugging Face Hub on first use (HF_HOME / HF_HUB_OFFLINE apply).
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `denseav: error: ...` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"denseav: error: {message} (see '{self.prog} --help')\n")


# The object `add_subparsers` returns (argparse has no public name for its type).
Subparsers = Any


class UsageError(Exception):
    """A bad argument found after parsing (exit status 2)."""


# --------------------------------------------------------------------------------------------- arguments


def _image_size(text: str) -> int | str | None:
    if text.lower() == "model":
        return "model"
    if text.lower() in ("native", "none", "full"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'model', 'native' or a multiple of the patch size (e.g. 224), got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, 'model' or 'native', got {value}")
    return value


def _channel(text: str) -> Any:
    if text in ("mix", "first"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'mix', 'first' or a channel number, got {text!r}") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def _max_frames(text: str) -> int | None:
    if text.lower() in ("0", "none", "all"):
        return None
    return positive_int(text)


def _time(text: str) -> Any:
    if text in ("mean", "max"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'mean', 'max' or seconds (e.g. 1.5), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds from the start of the clip (0 or more), got {text}")
    return value


def _step(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an audio step number (e.g. 3), got {text!r}") from None


@dataclass(frozen=True)
class Parents:
    """Option groups shared by subcommands (argparse parent parsers); other packages' subcommands use them too."""

    run: argparse.ArgumentParser  # -q, --debug
    model: argparse.ArgumentParser  # --model, --weights, --revision, --device, --dtype
    inputs: argparse.ArgumentParser  # image and audio preprocessing


def _parents() -> Parents:
    from .limits import MAX_LONG_SIDE
    from .pretrained import DEFAULT_MODEL, list_models

    run = _Parser(add_help=False)
    g = run.add_argument_group("output control")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status messages")
    g.add_argument("--debug", action="store_true", help="show full tracebacks on errors")

    model = _Parser(add_help=False)
    g = model.add_argument_group("model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"registry name ({', '.join(list_models())}; default {DEFAULT_MODEL}) or a Hugging Face repo id",
    )
    g.add_argument(
        "--weights",
        metavar="PATH",
        help="local checkpoint folder (config.json + model.safetensors) or .ckpt file; overrides --model",
    )
    g.add_argument("--revision", metavar="REV", help="Hub branch, tag or commit (default: the registry's)")
    g.add_argument("--device", help="cpu, cuda, cuda:1, mps ... (default: CUDA if available, else CPU)")
    g.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16", "auto"),
        default=None,
        help="weights dtype (default float32; auto: bfloat16 on CUDA and on CPUs with native bfloat16, else float32)",
    )

    inputs = _Parser(add_help=False)
    g = inputs.add_argument_group("preprocessing")
    g.add_argument(
        "--image-size",
        type=_image_size,
        default="model",
        metavar="N",
        help="short side the image is resized to: 'model' (the backbone's training size, 224 for the published "
        "models; default), a multiple of the patch size, or 'native'",
    )
    g.add_argument(
        "--max-long-side",
        type=positive_int,
        default=MAX_LONG_SIDE,
        metavar="N",
        help=f"refuse model inputs whose long side would exceed N pixels (default {MAX_LONG_SIDE}; the cost grows "
        "with its square)",
    )
    g.add_argument(
        "--channel",
        type=_channel,
        default="mix",
        help="audio channel: 'mix' (average, default), 'first' (the original demo) or a number",
    )
    g.add_argument(
        "--raw-audio",
        action="store_true",
        help="feed the waveform unnormalised (as the original demo) instead of zero-mean/unit-variance",
    )

    return Parents(run=run, model=model, inputs=inputs)


def _add_ground(sub: Subparsers, parents: Parents) -> None:
    p = sub.add_parser(
        "ground",
        parents=[parents.inputs, parents.model, parents.run],
        help="ground a sound in an image (picture + summary)",
        description="Ground a sound in an image: print a summary, optionally write a picture and JSON.",
        epilog="example:\n  denseav ground dog.jpg bark.wav -o dog.png --json dog.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="image file (PNG, JPEG, ...)")
    p.add_argument("audio", metavar="AUDIO", help="sound file (wav, flac, mp3, ogg, m4a, or a video's sound)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.png",
        help="write the overlay and time strip as a PNG, or (OUT.mp4) the image with its sound and a map per moment",
    )
    p.add_argument("--json", metavar="OUT.json", help="write scores, peaks and per-step maxima as JSON ('-': stdout)")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--time",
        type=_time,
        default="mean",
        metavar="WHEN",
        help="what the picture shows: 'mean' (default) or 'max' over the clip, or a moment in seconds",
    )
    when.add_argument("--step", type=_step, metavar="N", help="show audio step N instead (0 = the first)")
    p.set_defaults(func=_cmd_ground)


def _add_video(sub: Subparsers, parents: Parents) -> None:
    from .limits import DEFAULT_MAX_FPS, DEFAULT_MAX_FRAMES

    p = sub.add_parser(
        "video",
        parents=[parents.inputs, parents.model, parents.run],
        help="ground a video's sound in its frames (MP4 out)",
        description=textwrap.fill(
            "Ground a video's own soundtrack in its frames and write a video of it, with the original sound. "
            f"By default at most {DEFAULT_MAX_FPS:g} frames per second are analysed, and at most "
            f"{DEFAULT_MAX_FRAMES} frames in all (longer videos are sampled evenly); the frames in between "
            "show the nearest analysed one.",
            width=88,
        ),
        epilog="example:\n  denseav video clip.mp4 -o clip_denseav.mp4 --layout panels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="video file with sound (MP4, MOV, MKV, WebM, ...)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.mp4",
        help="output video (.mp4/.mov/.mkv; default: IN's name + '_denseav.mp4' in the current folder)",
    )
    p.add_argument(
        "--fps",
        type=positive_float,
        metavar="F",
        help=f"frames per second to analyse (default: the source rate, at most {DEFAULT_MAX_FPS:g})",
    )
    p.add_argument(
        "--max-frames",
        type=_max_frames,
        default=DEFAULT_MAX_FRAMES,
        metavar="N",
        help=f"analyse at most N frames (default {DEFAULT_MAX_FRAMES}; 0 = no limit)",
    )
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="frames per model call (default 8)")
    p.add_argument(
        "--layout",
        choices=("combined", "panels"),
        default="combined",
        help="combined: all heads over the video (default); panels: video + one panel per head",
    )
    p.add_argument("--json", metavar="OUT.json", help="also write per-frame peaks as JSON ('-': stdout)")
    p.set_defaults(func=_cmd_video)


def _add_registry_commands(sub: Subparsers, parents: Parents) -> None:
    p = sub.add_parser(
        "models",
        parents=[parents.run],
        help="list the published models and whether they are downloaded",
        description="List the published models and whether each is already in the local cache.",
    )
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "download",
        parents=[parents.run],
        help="download a model into the Hugging Face cache",
        description="Download a published model (or a Hub repo) into the Hugging Face cache, to run offline later.",
        epilog="example:\n  denseav download sound-language",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="registry name (see `denseav models`) or Hugging Face repo id")
    p.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: the registry's)")
    p.set_defaults(func=_cmd_download)


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="denseav",
        description="DenseAV: which pixels a sound or a spoken word refers to (Hamilton et al., CVPR 2024).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"denseav {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    parents = _parents()
    _add_ground(sub, parents)
    _add_video(sub, parents)
    _add_registry_commands(sub, parents)
    # Commands living in their own packages (their heavy imports happen only when they run).
    from .demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub, parents=[parents.model, parents.run])
    from .corpus.cli import add_parsers as add_corpus_parsers

    add_corpus_parsers(sub, parents)  # index, search, batch

    # `denseav eval ...` lives in its own package; only its registration is here.
    from .evaluation.cli import add_parsers as add_eval_parsers

    add_eval_parsers(sub, parents=[parents.model, parents.run])
    return parser


# ----------------------------------------------------------------------------------------------- helpers


def say(args: argparse.Namespace, message: str) -> None:
    """Status chatter: stderr, silenced by --quiet (results go to stdout)."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _check_model_name(name: str) -> None:
    from .errors import ModelNotFoundError
    from .pretrained import list_models, parse_model_ref

    try:
        parse_model_ref(name)
    except ModelNotFoundError:
        raise UsageError(
            f"unknown model {name!r}; choose one of {', '.join(list_models())} (see `denseav models`), a Hugging "
            "Face repo id 'user/repo', or pass a local checkpoint with --weights"
        ) from None


def load_model(args: argparse.Namespace) -> Any:
    from .build import load, resolve_device

    try:
        resolve_device(args.device)
    except ValueError as e:
        raise UsageError(f"--device: {e}") from None
    if args.weights:
        source = args.weights
        if not Path(source).expanduser().exists():
            raise InputFileNotFoundError(
                f"--weights {source}: no such file or folder; pass a checkpoint folder or .ckpt"
            )
    else:
        source = args.model
        _check_model_name(source)
    say(args, f"loading model {source} ...")
    return load(source, revision=args.revision, device=args.device, dtype=args.dtype, progress=not args.quiet)


def _write_json(data: dict[str, Any], target: str, args: argparse.Namespace) -> None:
    text = json.dumps(data, indent=2)
    if target == "-":
        print(text)
        return
    Path(target).write_text(text + "\n")
    say(args, f"wrote {target}")


def _check_outputs(args: argparse.Namespace, output: str | None, suffixes: tuple[str, ...], inputs: list[str]) -> None:
    """Every output path is checked before the model loads: a bad path must cost nothing."""

    if output is not None:
        check_output_path(output, suffixes=suffixes, what="-o", inputs=inputs)
    if args.json and args.json != "-":
        check_output_path(args.json, suffixes=(".json",), what="--json", inputs=inputs)


# ---------------------------------------------------------------------------------------------- commands


def _cmd_ground(args: argparse.Namespace) -> int:
    from .api import ground, model_label
    from .render import render_grounding_video, save_png

    check_input_file(args.image, "image")
    check_input_file(args.audio, "audio")
    _check_outputs(args, args.output, (".png", ".mp4"), [args.image, args.audio])
    model = load_model(args)
    result = ground(
        args.image,
        args.audio,
        model=model,
        image_size=args.image_size,
        max_long_side=args.max_long_side,
        channel=args.channel,
        normalize_audio=not args.raw_audio,
    )
    summary = result.to_dict()
    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON when it carries JSON
    h0, w0 = result.geometry.original_size
    print(f"heads: {', '.join(result.head_names)}", file=out)
    per_head = ", ".join(f"{n} {v:.4g}" for n, v in summary["score_per_head"].items())
    print(f"score: {result.score:.4g} ({per_head})", file=out)
    print(f"audio: {result.audio_duration:.2f} s in {len(result.times)} steps; image: {w0}x{h0}", file=out)
    for name, peak in summary["peak_over_time"].items():
        print(f"peak {name} (mean over time): x={peak['x']:g} y={peak['y']:g} (value {peak['value']:.4g})", file=out)
    if args.output:
        if Path(args.output).suffix.lower() == ".mp4":
            path = render_grounding_video(result, args.output, progress=not args.quiet)
        else:
            path = save_png(result, args.output, time=args.time, step=args.step)
        print(f"wrote {path}", file=out)
    elif not args.json and not args.quiet:
        print("(pass -o out.png for a picture, --json out.json for the numbers)", file=sys.stderr)
    if args.json:
        _write_json({"model": model_label(model), "image": args.image, "audio": args.audio, **summary}, args.json, args)
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    from .api import model_label
    from .media import video_encoder
    from .render import render_video
    from .video import ground_video

    output = args.output or f"{Path(args.input).stem}_denseav.mp4"
    check_input_file(args.input, "video")
    _check_outputs(args, output, (".mp4", ".mov", ".m4v", ".mkv"), [args.input])
    model = load_model(args)
    vg = ground_video(
        args.input,
        model=model,
        fps=args.fps,
        max_frames=args.max_frames,
        batch_size=args.batch_size,
        image_size=args.image_size,
        channel=args.channel,
        normalize_audio=not args.raw_audio,
        progress=not args.quiet,
    )
    path = render_video(vg, args.input, output, layout=args.layout, progress=not args.quiet)
    out = sys.stderr if args.json == "-" else sys.stdout
    s = vg.source
    print(
        f"video: {args.input} {s.width}x{s.height}, {s.frame_count} frames at {s.fps:.4g} fps, {s.duration:.2f} s",
        file=out,
    )
    print(f"analysed {vg.num_frames} frames ({vg.fps:.3g} per second); heads: {', '.join(vg.head_names)}", file=out)
    if vg.frames_without_sound:
        print(f"{vg.frames_without_sound} analysed frames lie outside the sound track: no map", file=out)
    print(f"wrote {path} ({args.layout}, {video_encoder()} + aac)", file=out)
    if args.json:
        _write_json({"model": model_label(model), **vg.to_dict()}, args.json, args)
    return 0


def _human_bytes(n: int | None) -> str:
    if not n:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} GB"


def _cmd_models(args: argparse.Namespace) -> int:
    from .pretrained import DEFAULT_MODEL, is_cached, pretrained_models

    rows = [("NAME", "HF REPO", "HEADS", "SIZE", "CACHED")]
    for m in pretrained_models().values():
        try:
            cached = "yes" if is_cached(m.name) else "no"
        except Exception:
            cached = "?"
        name = m.name + (" (default)" if m.name == DEFAULT_MODEL else "")
        rows.append((name, m.hf_repo, ", ".join(m.head_names), _human_bytes(m.weights_bytes), cached))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .pretrained import ResolvedFiles, resolve

    if Path(args.name).expanduser().exists():
        raise UsageError(f"{args.name} is a local path; there is nothing to download (use it with --weights)")
    _check_model_name(args.name)
    target = resolve(args.name, revision=args.revision, progress=not args.quiet)
    if not isinstance(target, ResolvedFiles):
        raise UsageError(f"{args.name} is a local path; there is nothing to download")
    label = target.pretrained.name if target.pretrained else args.name
    print(f"{label}: {target.weights.parent}")
    return 0


# -------------------------------------------------------------------------------------------------- main


# Library messages name options as Python keywords (channel='first'); on the command line they are flags.
_KEYWORD_OPTION = re.compile(r"\b(channel|image_size|max_long_side|fps|max_frames|batch_size)=(['\"]?)([\w.-]+)\2")
_RAW_AUDIO = re.compile(r"\bnormalize(?:_audio)?=False\b")


def _as_flags(text: str) -> str:
    text = _RAW_AUDIO.sub("--raw-audio", text)

    def flag(m: re.Match[str]) -> str:
        value = "native" if (m.group(1), m.group(3)) == ("image_size", "None") else m.group(3)
        return f"--{m.group(1).replace('_', '-')} {value}"

    return _KEYWORD_OPTION.sub(flag, text)


def _one_line(message: object) -> str:
    return _as_flags(" ".join(str(message).split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 runtime error, 2 usage error, 130 interrupted)."""
    parser = _build_parser()
    args = parser.parse_args(argv)

    def show_warning(message: Warning | str, *_: object, **__: object) -> None:
        print(f"denseav: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return int(args.func(args) or 0)
        except (UsageError, OutputError) as e:  # a bad argument, found before any work
            if args.debug:
                raise
            print(f"denseav: error: {_one_line(e)} (see '{parser.prog} {args.command} --help')", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("denseav: interrupted", file=sys.stderr)
            return 130
        except (DenseAVError, FileNotFoundError, ValueError, OSError) as e:
            if args.debug:
                raise
            print(f"denseav: error: {_one_line(e)}", file=sys.stderr)
            return 1
        except Exception as e:
            if args.debug:
                raise
            print(
                f"denseav: error: unexpected {type(e).__name__}: {_one_line(e)} (run with --debug for details)",
                file=sys.stderr,
            )
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
