#!/usr/bin/env python
"""Peak RSS of `denseav.index` vs corpus size, with a tiny fixture model: memory must stay flat.

    python benchmarks/corpus_memory.py [--counts 500,2000] [--fixture two_head]

Each count runs in a fresh process (so each peak RSS, `ru_maxrss`, belongs to one run) on a corpus of that many
items: 4 of 5 are 240x320 JPEG images, 1 of 5 a 4 s WAV (one sound window). Target: the peaks differ by at
most 50 MB between 500 and 2,000 items.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_corpus(root: Path, count: int) -> None:
    from PIL import Image

    from _media import write_wav

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(count):
        if i % 5 == 4:
            write_wav(root / f"c{i:05d}.wav", 4.0)
        else:
            Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(root / f"i{i:05d}.jpg")


def child(corpus: Path, fixture: Path, out: Path) -> None:
    import denseav

    t0 = time.perf_counter()
    summary = denseav.index(corpus, out, model=str(fixture), progress=False)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{summary.encoded} {peak_mb:.1f} {seconds:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="500,2000")
    parser.add_argument("--fixture", default="two_head")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*map(Path, args.child))
        return 0
    from _fixtures import fixtures_root

    fixture = fixtures_root() / "parity" / args.fixture
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="denseav_corpus_mem_") as tmp:
        for count in map(int, args.counts.split(",")):
            corpus = Path(tmp) / f"corpus{count}"
            make_corpus(corpus, count)
            cmd = [sys.executable, __file__, "--child", str(corpus), str(fixture), str(Path(tmp) / f"store{count}")]
            items, peak, seconds = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
            peaks[count] = float(peak)
            print(
                f"{count:6d} sources: {items} items in {float(seconds):6.1f} s "
                f"({int(items) / float(seconds):6.1f} items/s), peak RSS {float(peak):7.1f} MB"
            )
    counts = sorted(peaks)
    print(
        f"peak RSS difference {counts[0]} -> {counts[-1]}: {peaks[counts[-1]] - peaks[counts[0]]:+.1f} MB (target +-50)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
