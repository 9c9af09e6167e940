"""Stable Video Diffusion for vader: the ``svd`` image-to-video backbone.

Registered through the ``vader`` entry point ``svd``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import SVDBackbone, SVDCondition, SVDOptions

__version__ = "0.1.0"

__all__ = ["SVDBackbone", "SVDCondition", "SVDOptions", "register_backbones", "__version__"]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``svd`` backbone class."""
    register(SVDBackbone)
