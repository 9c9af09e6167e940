"""LTX-Video for vader: the ``ltx`` (text-to-video) and ``ltx-i2v`` (image-to-video) backbones.

Registered through the ``vader`` entry point ``ltx``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import LTX_VIDEO, LTXBackbone, LTXI2VBackbone, LTXOptions, nearest_frame_counts

__version__ = "0.1.0"

__all__ = [
    "LTX_VIDEO",
    "LTXBackbone",
    "LTXI2VBackbone",
    "LTXOptions",
    "nearest_frame_counts",
    "register_backbones",
    "__version__",
]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``ltx`` and ``ltx-i2v`` backbone classes."""
    register(LTXBackbone)
    register(LTXI2VBackbone)
