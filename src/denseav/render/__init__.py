"""Pictures and videos of groundings, drawn with PIL and numpy and encoded with PyAV.

Modules: `colors` (head colours, display range, colour layers, blending), `legend` (fonts, the legend box),
`picture` (`overlay`, `save_png`), `strip` (`time_strip`), `video` (`render_video`, `render_grounding_video`,
`frame_overlay`). Colours, opacity and the per-clip display normalisation are described in `render.colors`.
"""

from __future__ import annotations

from .colors import DEFAULT_ALPHA, DEFAULT_THRESHOLD, HEAD_COLORS, blend, colour_layer, display_range, head_colors
from .legend import draw_legend, legend_patch
from .picture import DEFAULT_MAX_SIDE, overlay, save_png
from .strip import time_strip
from .video import GROUNDING_VIDEO_MAX_SIDE, MAX_VIDEO_WIDTH, frame_overlay, render_grounding_video, render_video

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MAX_SIDE",
    "DEFAULT_THRESHOLD",
    "GROUNDING_VIDEO_MAX_SIDE",
    "HEAD_COLORS",
    "MAX_VIDEO_WIDTH",
    "blend",
    "colour_layer",
    "display_range",
    "draw_legend",
    "frame_overlay",
    "head_colors",
    "legend_patch",
    "overlay",
    "render_grounding_video",
    "render_video",
    "save_png",
    "time_strip",
]
