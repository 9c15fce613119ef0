"""The corpus subcommands of the `denseav` command line: index, search, batch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import Parents, UsageError, load_model, positive_float, positive_int, say
from ..errors import InputError

EXAMPLES = {
    "index": "examples:\n  denseav index videos/ photos/*.jpg --out store/\n"
    "  denseav index manifest.csv --out store/ --fps 2 --engine ray --address auto",
    "search": "examples:\n  denseav search store/ --audio bark.wav -k 5 -o hits/\n  denseav search store/ --image dog.jpg",
    "batch": "example:\n  denseav batch pairs.csv --out results.parquet --maps",
}


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """`--engine`, `--address`, `--workers`: where encoding runs (also used by `denseav eval`)."""
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default) or ray (pip install 'denseav[ray]')",
    )
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (default: start a local one)")
    p.add_argument("--workers", type=positive_int, metavar="N", help="Ray actors (default: one per GPU, else per CPU)")


def check_engine_options(args: argparse.Namespace) -> None:
    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")
    if args.workers and args.engine != "ray":
        raise UsageError("--workers needs --engine ray")


def add_parsers(sub: Any, parents: Parents) -> None:
    """Add `index`, `search` and `batch` to the main parser's subcommands (with the shared option groups)."""
    run, model, inputs = parents.run, parents.model, parents.inputs
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "index",
        parents=[inputs, model, run],
        help="encode a collection once into a Parquet feature store",
        description="Encode images, sound files and videos (frames + sound windows) into a feature store. "
        "Re-running skips what is already there.",
        epilog=EXAMPLES["index"],
        formatter_class=fmt,
    )
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="folder, glob, media file, or manifest (.csv/.jsonl/.parquet)"
    )
    p.add_argument("--out", required=True, metavar="STORE", help="the store folder (created, or resumed)")
    p.add_argument("--fps", type=positive_float, default=1.0, metavar="F", help="video frames per second (default 1)")
    p.add_argument("--window", type=positive_float, default=10.0, metavar="S", help="sound window seconds (default 10)")
    p.add_argument("--hop", type=positive_float, default=5.0, metavar="S", help="seconds between windows (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="images per model call (default 8)")
    p.add_argument(
        "--features-dtype",
        choices=("float16", "float32"),
        default="float16",
        help="stored precision of the features (default float16: half the bytes; float32 keeps them exact)",
    )
    p.add_argument(
        "--shard-size", type=positive_int, default=256, metavar="N", help="items per Parquet shard (default 256)"
    )
    add_engine_options(p)
    p.add_argument("--strict", action="store_true", help="exit with an error if any item failed")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser(
        "search",
        parents=[inputs, model, run],
        help="find the frames matching a sound, or the sounds matching an image",
        description="Search a feature store with a sound (finds images and video frames) or an image (finds "
        "sound windows). The store's own model is used unless --model/--weights say otherwise (they must match).",
        epilog=EXAMPLES["search"],
        formatter_class=fmt,
    )
    p.add_argument("store", metavar="STORE", help="a store built by `denseav index`")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--audio", metavar="FILE", help="query sound: find the images and frames it best matches")
    query.add_argument("--image", metavar="FILE", help="query image: find the sound windows it best matches")
    p.add_argument("-k", type=positive_int, default=10, metavar="K", help="number of results (default 10)")
    p.add_argument("-o", "--output", metavar="DIR", help="write an overlay PNG per hit into DIR")
    p.add_argument("--json", metavar="OUT.json", help="write the hits as JSON ('-': stdout)")
    p.set_defaults(func=_cmd_search, model=None)

    p = sub.add_parser(
        "batch",
        parents=[inputs, model, run],
        help="ground a manifest of (image, audio) pairs into a Parquet table",
        description="Ground every (image, audio) pair of a manifest (.csv/.jsonl/.parquet with image and audio "
        "columns) into a Parquet table: score, per-head scores and peaks, and the error of any failed pair.",
        epilog=EXAMPLES["batch"],
        formatter_class=fmt,
    )
    p.add_argument("pairs", metavar="PAIRS", help="manifest with 'image' and 'audio' columns (optional 'id')")
    p.add_argument("--out", required=True, metavar="OUT.parquet", help="the results table")
    p.add_argument("--maps", action="store_true", help="also store each pair's heatmaps (float16)")
    p.add_argument("--strict", action="store_true", help="stop at the first pair that fails")
    p.set_defaults(func=_cmd_batch)


def need_pyarrow(commands: str = "the corpus commands (index, search, batch)") -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(f"{commands} need pyarrow: pip install 'denseav[corpus]'") from None


def _cmd_index(args: argparse.Namespace) -> int:
    need_pyarrow()
    from .indexing import check_store_target, index
    from .sources import expand_sources

    if args.hop > args.window:
        raise UsageError(f"--hop {args.hop:g} is longer than --window {args.window:g}: sound would be skipped")
    check_engine_options(args)
    check_store_target(Path(args.out).expanduser())
    entries = expand_sources(args.sources)  # a bad source or manifest fails before the model loads
    if not entries:
        raise InputError(f"nothing to index: no image, sound or video files in {' '.join(args.sources)}")
    net = load_model(args)
    summary = index(
        entries,
        args.out,
        model=net,
        fps=args.fps,
        window=args.window,
        hop=args.hop,
        image_size=args.image_size,
        channel=args.channel,
        normalize=not args.raw_audio,
        max_long_side=args.max_long_side,
        features_dtype=args.features_dtype,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        strict=args.strict,
        progress=not args.quiet,
    )
    print(summary)
    if summary.errors:
        say(
            args, f"{summary.errors} item(s) failed; see FeatureStore.open({args.out!r}).errors() or {args.out}/errors/"
        )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    need_pyarrow()
    from ..paths import check_output_path, check_writable_folder
    from .search import encode_query, save_hit_pngs, search
    from .store import FeatureStore

    if args.output:
        check_writable_folder(args.output, what="-o", create=True)
    if args.json and args.json != "-":
        check_output_path(args.json, suffixes=(".json",), what="--json")
    store = FeatureStore.open(args.store)
    if args.model or args.weights:
        net = load_model(args)
        store.check_model_of(net)
    else:
        say(args, f"loading the store's model {store.identity.name} ...")
        net = store.load_model(device=args.device, dtype=args.dtype)
    query = encode_query(
        net, args.audio, args.image, None, args.channel, not args.raw_audio, args.image_size, args.max_long_side
    )
    hits = search(store, audio=query if args.audio else None, image=query if args.image else None, k=args.k, model=net)
    out = sys.stderr if args.json == "-" else sys.stdout
    for h in hits:
        when = "" if h.start is None else f" t={h.start:.2f}s" if h.kind == "image" else f" {h.start:.2f}-{h.end:.2f}s"
        where = "; ".join(f"{p.head} x={p.x:g} y={p.y:g} t={p.t:.2f}s" for p in h.peaks)
        print(f"{h.rank:3d}  {h.score:9.4f}  {h.id}{when}  [{where}]", file=out)
    if args.output:
        paths = save_hit_pngs(hits, query, args.output, net)
        say(args, f"wrote {len(paths)} overlay(s) to {args.output}")
    if args.json:
        text = json.dumps({"store": str(store.path), "hits": [h.to_dict() for h in hits]}, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    need_pyarrow()
    from ..paths import check_output_path
    from .batch import ground_pairs, read_pairs

    check_output_path(args.out, suffixes=(".parquet",), what="--out", inputs=[args.pairs])
    read_pairs(Path(args.pairs))  # a bad manifest fails before the model loads
    net = load_model(args)
    summary = ground_pairs(
        args.pairs,
        args.out,
        model=net,
        maps=args.maps,
        image_size=args.image_size,
        channel=args.channel,
        normalize=not args.raw_audio,
        max_long_side=args.max_long_side,
        strict=args.strict,
        progress=not args.quiet,
    )
    print(summary)
    return 0
