"""Wan 2.1 / 2.2 for vader: the ``wan`` (text-to-video) and ``wan-i2v`` (image-to-video) backbones.

Registered through the ``vader`` entry point ``wan``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import T2V_1_3B, WanBackbone, WanI2VBackbone, WanOptions, nearest_frame_counts

__version__ = "0.1.0"

__all__ = [
    "T2V_1_3B",
    "WanBackbone",
    "WanI2VBackbone",
    "WanOptions",
    "nearest_frame_counts",
    "register_backbones",
    "__version__",
]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``wan`` and ``wan-i2v`` backbone classes."""
    register(WanBackbone)
    register(WanI2VBackbone)
