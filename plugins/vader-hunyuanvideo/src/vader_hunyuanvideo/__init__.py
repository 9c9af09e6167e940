"""HunyuanVideo 1.5 for vader: the ``hunyuanvideo15`` (text-to-video) and ``hunyuanvideo15-i2v``
(image-to-video) backbones.

Registered through the ``vader`` entry point ``hunyuanvideo``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import (
    I2V_480P,
    T2V_480P,
    HunyuanVideoBackbone,
    HunyuanVideoI2VBackbone,
    HunyuanVideoI2VOptions,
    HunyuanVideoOptions,
    nearest_frame_counts,
)

__version__ = "0.1.0"

__all__ = [
    "I2V_480P",
    "T2V_480P",
    "HunyuanVideoBackbone",
    "HunyuanVideoI2VBackbone",
    "HunyuanVideoI2VOptions",
    "HunyuanVideoOptions",
    "nearest_frame_counts",
    "register_backbones",
    "__version__",
]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``hunyuanvideo15`` and ``hunyuanvideo15-i2v`` backbone classes."""
    register(HunyuanVideoBackbone)
    register(HunyuanVideoI2VBackbone)
