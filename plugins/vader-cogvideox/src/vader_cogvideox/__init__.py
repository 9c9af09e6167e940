"""CogVideoX 1.0 / 1.5 for vader: the ``cogvideox`` (text-to-video) and ``cogvideox-i2v`` (image-to-video) backbones.

Registered through the ``vader`` entry point ``cogvideox``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import (
    COGVIDEOX_1_5_5B,
    COGVIDEOX_1_5_5B_I2V,
    CogVideoXBackbone,
    CogVideoXI2VBackbone,
    CogVideoXI2VOptions,
    CogVideoXOptions,
    nearest_frame_counts,
)

__version__ = "0.1.0"

__all__ = [
    "COGVIDEOX_1_5_5B",
    "COGVIDEOX_1_5_5B_I2V",
    "CogVideoXBackbone",
    "CogVideoXI2VBackbone",
    "CogVideoXI2VOptions",
    "CogVideoXOptions",
    "nearest_frame_counts",
    "register_backbones",
    "__version__",
]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``cogvideox`` and ``cogvideox-i2v`` backbone classes."""
    register(CogVideoXBackbone)
    register(CogVideoXI2VBackbone)
