"""Differentiable detector preprocessing on float tensors.

The reference pipelines (transformers' image processors) take PIL images or 8-bit tensors, which cut
the gradient; these functions do the same geometry on frames ``(N, 3, H, W)`` in [0, 1]:

- :func:`resize_to_height`, for closed-vocabulary detectors (YOLOS): height to ``height`` (VADER:
  512), width ``height * W // H``, bilinear without antialiasing, which is exactly the official
  VADER code's ``torchvision.transforms.Resize((512, 512 * w // h), antialias=False)`` on tensors.
- :func:`resize_square`, for OWL-ViT: a square resize to the model's input size (768 for
  ``google/owlvit-base-patch32``) ignoring the aspect ratio, bicubic and antialiased like
  ``OwlViTImageProcessor`` (``size={"height": 768, "width": 768}``, no centre crop), clamped to [0, 1]
  as an 8-bit pipeline would be.

Then :func:`normalize` with the processor's mean/std: ImageNet for YOLOS and DETR, CLIP for OWL-ViT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vader_core.lazy import F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_to_height(frames: Any, height: int) -> Any:
    """Frames to ``(N, 3, height, height * W // H)``, bilinear, no antialiasing (float32)."""
    x = frames.float()
    h, w = int(x.shape[-2]), int(x.shape[-1])
    size = (int(height), max(1, int(height) * w // h))
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def resize_square(frames: Any, size: int) -> Any:
    """Frames to ``(N, 3, size, size)``, bicubic, antialiased, clamped to [0, 1] (float32)."""
    x = frames.float()
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)


def normalize(pixels: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``(pixels - mean) / std`` per channel."""
    m = pixels.new_tensor(tuple(mean)).view(1, -1, 1, 1)
    s = pixels.new_tensor(tuple(std)).view(1, -1, 1, 1)
    return (pixels - m) / s
