"""Image + sound -> PNG: where in the picture the sound comes from, per head, with a time strip.

python examples/ground_image.py dog.jpg bark.wav -o dog_bark.png
python examples/ground_image.py image.png audio.wav --weights path/to/checkpoint_folder   # offline
"""

from __future__ import annotations

import argparse

import denseav
from denseav.render import save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("audio")
    parser.add_argument("-o", "--output", default="grounding.png", help="PNG to write (default grounding.png)")
    parser.add_argument("--weights", help="local checkpoint folder or .ckpt (default: the registry model)")
    args = parser.parse_args()

    model = denseav.load(args.weights or denseav.DEFAULT_MODEL)
    result = denseav.ground(args.image, args.audio, model=model)
    print(result)
    for name, peak in result.to_dict()["peak_over_time"].items():
        print(f"  {name}: strongest at x={peak['x']}, y={peak['y']}")
    # The mean over the clip; time=1.5 would show the moment 1.5 s in, step=3 the fourth audio step.
    print("wrote", save_png(result, args.output, time="mean"))


if __name__ == "__main__":
    main()
