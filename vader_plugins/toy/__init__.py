"""The bundled ``toy`` text-to-video backbone, its procedural data, training script and quality check."""

from .backbone import ToyBackbone

__all__ = ["ToyBackbone"]
