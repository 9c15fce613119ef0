"""One image, many sounds: encode the image once, each sound once, then compare them cheaply.

    python examples/encode_once.py photo.jpg dog.wav car.wav speech.wav
    python examples/encode_once.py image.png a.wav b.wav --weights path/to/checkpoint_folder

The image encoder is the expensive part; `denseav.similarity` only multiplies features, so ranking many sounds
against one picture (or many pictures against one sound) costs one encoder pass per input.
"""

from __future__ import annotations

import argparse

import denseav


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("sounds", nargs="+")
    parser.add_argument("--weights", help="local checkpoint folder or .ckpt (default: the registry model)")
    args = parser.parse_args()

    model = denseav.load(args.weights or denseav.DEFAULT_MODEL)
    image = denseav.encode_image(args.image, model=model)
    results = []
    for path in args.sounds:
        audio = denseav.encode_audio(path, model=model)
        g = denseav.similarity(image, audio, model=model)
        results.append((g.score, path, g))
    # Higher score = the sound fits the picture better (same model, so the scores compare).
    for score, path, g in sorted(results, key=lambda r: r[0], reverse=True):
        heads = ", ".join(f"{n} {float(s):.3g}" for n, s in zip(g.head_names, g.score_per_head))
        print(f"{score:8.4g}  {path}  ({heads})")


if __name__ == "__main__":
    main()
