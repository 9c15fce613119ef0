"""``denseav eval segmentation|retrieval``: parsers and run functions, registered by :mod:`denseav.cli`.

Outputs are checked before any work, and written only at the end (examples first, then the JSON, each to a
temporary name renamed into place), so a failed run leaves nothing half written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli import positive_int
from ..corpus.cli import add_engine_options, check_engine_options, need_pyarrow
from ..paths import check_output_path, check_writable_folder

if TYPE_CHECKING:
    from .retrieval import RetrievalResult
    from .segmentation import SegmentationResult

__all__ = ["add_parsers"]

EXAMPLES = """\
examples:
  denseav eval segmentation ade_speech_prompted/ --prompts speech --json seg.json --examples seg_examples/
  denseav eval segmentation ade_sound_prompted/ --prompts sound --model sound
  denseav eval retrieval pairs.csv --json retrieval.json --store features/ --engine ray --address auto
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", metavar="OUT.json", help="write every metric, per-item details and provenance ('-': stdout)"
    )
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="files per model call (default 8)")
    p.add_argument(
        "--store",
        metavar="DIR",
        help="keep the encoded features in this feature store: a rerun (or a resumed run) skips what it holds "
        "(default: a temporary store, removed at the end)",
    )
    add_engine_options(p)


def add_parsers(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``eval`` with its two tasks; ``parents`` are the main CLI's shared option groups (model, run)."""
    shared = list(parents)
    p = subparsers.add_parser(
        "eval",
        help="evaluate like the paper: prompted segmentation, retrieval, head disentanglement",
        description="Evaluate a model with the original DenseAV evaluation protocol.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tasks = p.add_subparsers(dest="eval_task", metavar="TASK", parser_class=type(p))
    tasks.required = True

    s = tasks.add_parser(
        "segmentation",
        parents=shared,
        help="speech/sound-prompted semantic segmentation: AP and best IoU per class",
        description="Prompted semantic segmentation on ROOT (prompted_segmentation.csv, frames/, annotations/, audio/).",
    )
    s.add_argument("root", metavar="ROOT", help="dataset folder in the original's prompted-segmentation layout")
    s.add_argument(
        "--prompts",
        choices=("speech", "sound", "both"),
        default="speech",
        help="which prompt set to evaluate (default speech; 'both' adds the heads' disentanglement on 2-head models)",
    )
    s.add_argument("--examples", metavar="DIR", help="write per class a PNG grid of the best and worst items")
    _add_common(s)
    s.set_defaults(func=_cmd_segmentation)

    r = tasks.add_parser(
        "retrieval",
        parents=shared,
        help="cross-modal retrieval recall@1/5/10 (and head disentanglement)",
        description="Retrieval recall@1/5/10 both ways on PAIRS (CSV: set = speech|sound, image, audio[, pair_id]).",
    )
    r.add_argument("pairs", metavar="PAIRS", help="CSV of image/audio pairs; paths relative to its folder")
    r.add_argument(
        "--disentangle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="head disentanglement scores (default: when the model has 2 heads and both sets are present)",
    )
    _add_common(r)
    r.set_defaults(func=_cmd_retrieval)


def _check_outputs(args: argparse.Namespace, inputs: list[str]) -> None:
    need_pyarrow("denseav eval (its feature store)")
    check_engine_options(args)
    if args.store:
        from ..corpus.indexing import check_store_target

        check_store_target(Path(args.store).expanduser(), "--store")
    if args.json and args.json != "-":
        check_output_path(args.json, suffixes=(".json",), what="--json", inputs=inputs)
    examples = getattr(args, "examples", None)
    if examples:
        folder = Path(examples).expanduser()
        # Created only at the end; now just check that it (or the folder it goes in) takes files.
        check_writable_folder(folder if folder.exists() else folder.parent, what=f"--examples {examples}")


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model and how features are made, as the evaluate_* functions take them."""
    return {
        "model": args.weights or args.model,
        "revision": args.revision,
        "device": args.device,
        "dtype": args.dtype,
        "store": args.store,
        "engine": args.engine,
        "address": args.address,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "progress": not args.quiet,
    }


def _finish(args: argparse.Namespace, result: SegmentationResult | RetrievalResult) -> int:
    from .report import markdown, to_json, write_atomically

    table = markdown(result)
    if args.json == "-":
        print(table, file=sys.stderr)
        print(json.dumps(to_json(result), indent=2))
        return 0
    print(table)
    if args.json:
        path = write_atomically(args.json, json.dumps(to_json(result), indent=2) + "\n")
        if not args.quiet:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_segmentation(args: argparse.Namespace) -> int:
    from .api import evaluate_segmentation
    from .examples import write_examples

    _check_outputs(args, [args.root])
    result = evaluate_segmentation(args.root, prompts=args.prompts, **_run_options(args))
    if args.examples:
        paths = write_examples(result, args.examples)
        if not args.quiet:
            print(f"wrote {len(paths)} example grid(s) to {args.examples}", file=sys.stderr)
    return _finish(args, result)


def _cmd_retrieval(args: argparse.Namespace) -> int:
    from .api import evaluate_retrieval

    _check_outputs(args, [args.pairs])
    result = evaluate_retrieval(args.pairs, disentangle=args.disentangle, **_run_options(args))
    return _finish(args, result)
