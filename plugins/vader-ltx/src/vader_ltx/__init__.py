"""LTX-Video for vader: the ``ltx`` (text-to-video) and ``ltx-i2v`` (image-to-video) backbones, and ``ltx2`` / ``ltx2-i2v`` (the video
branch of LTX-2).

Registered through the ``vader`` entry point ``ltx``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import LTX_VIDEO, LTXBackbone, LTXI2VBackbone, LTXOptions, nearest_frame_counts
from .ltx2 import LTX_2, LTX2Backbone, LTX2I2VBackbone, LTX2Options

__version__ = "0.1.0"

__all__ = [
    "LTX_2",
    "LTX_VIDEO",
    "LTX2Backbone",
    "LTX2I2VBackbone",
    "LTX2Options",
    "LTXBackbone",
    "LTXI2VBackbone",
    "LTXOptions",
    "nearest_frame_counts",
    "register_backbones",
    "__version__",
]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``ltx``, ``ltx-i2v``, ``ltx2`` and ``ltx2-i2v`` backbone classes."""
    register(LTXBackbone)
    register(LTXI2VBackbone)
    register(LTX2Backbone)
    register(LTX2I2VBackbone)
