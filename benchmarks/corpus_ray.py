#!/usr/bin/env python
"""Ray engine vs local engine: indexing throughput on a local 2-CPU Ray cluster (needs `denseav[ray]`).

    .venv/bin/python benchmarks/corpus_ray.py [--images 60] [--clips 6] [--fixture two_head] [--cpus 2]

Same corpus, same fixture model, both engines from scratch; prints items/s of each. On 2 cores Ray is expected
to be slower: each actor process loads its own model, is limited to one torch thread, and every encoded row
travels through Ray's object store back to the writing process, while the local engine uses both cores for
one model and decodes in a thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--fixture", default="two_head")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    import denseav
    from _fixtures import fixtures_root
    from corpus_throughput import make_media

    fixture = fixtures_root() / "parity" / args.fixture
    with tempfile.TemporaryDirectory(prefix="denseav_ray_bench_") as tmp:
        root = Path(tmp)
        make_media(root / "media", args.images, args.clips, 20.0)
        t0 = time.perf_counter()
        local = denseav.index(root / "media", root / "local", model=str(fixture), progress=False)
        local_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        started_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            remote = denseav.index(
                root / "media", root / "ray", model=str(fixture), engine="ray", workers=args.cpus, progress=False
            )
            ray_s = time.perf_counter() - t0
        finally:
            ray.shutdown()
    n = local.encoded
    assert remote.encoded == n
    print(f"{n} items ({args.images} images, {args.clips} x 20 s clips), fixture {args.fixture}")
    print(f"local engine: {n / local_s:6.2f} items/s ({local_s:.1f} s)")
    print(
        f"ray engine:   {n / ray_s:6.2f} items/s ({ray_s:.1f} s; cluster start {started_s:.1f} s not counted), "
        f"{args.cpus} actors x 1 CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
