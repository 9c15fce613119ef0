"""Video with sound -> MP4 showing, frame by frame, where the sound at that moment comes from.

python examples/ground_video.py clip.mp4 -o clip_denseav.mp4
python examples/ground_video.py clip.mp4 --fps 2 --layout panels --weights path/to/checkpoint_folder
"""

from __future__ import annotations

import argparse

import denseav
from denseav.render import render_video
from denseav.video import ground_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("-o", "--output", default="denseav.mp4", help="MP4 to write (default denseav.mp4)")
    parser.add_argument("--fps", type=float, default=None, help="frames per second to analyse (default: up to 5)")
    parser.add_argument("--layout", choices=("combined", "panels"), default="combined")
    parser.add_argument("--weights", help="local checkpoint folder or .ckpt (default: the registry model)")
    args = parser.parse_args()

    model = denseav.load(args.weights or denseav.DEFAULT_MODEL)
    vg = ground_video(args.video, model=model, fps=args.fps)
    print(vg)
    # Per sampled frame: vg.frame_times[i] (seconds), vg.frame_maps[i] ([heads, h, w]); vg.upsampled(i) puts
    # them on the video's pixels; vg.frame_grounding(i, model) gives that frame's full time-resolved volume.
    print("wrote", render_video(vg, args.video, args.output, layout=args.layout))


if __name__ == "__main__":
    main()
