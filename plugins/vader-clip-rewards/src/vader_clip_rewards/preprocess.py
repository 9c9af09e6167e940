"""Differentiable CLIP preprocessing on tensors.

The reference pipelines of these rewards (open_clip's ``preprocess``, HPSv2's scorer, the
transformers ``CLIPImageProcessor``) take PIL images or 8-bit tensors, which cut the gradient. The
functions here do the same geometry on float tensors, so the reward gradient reaches the pixels:

- ``shortest``: resize the short side to the model size keeping the aspect ratio, then take the
  centre crop (open_clip's default ``preprocess``, OpenAI CLIP, the transformers processor).
- ``longest``: resize the long side to the model size keeping the aspect ratio, then pad the short
  side with black, centred (HPSv2's ``hpsv2.score``; open_clip's ``resize_mode="longest"``).
- ``squash``: resize to the model size, ignoring the aspect ratio (the VADER training code).

Resizing is ``torch.nn.functional.interpolate`` with ``antialias=True`` (the PIL-like kernel: a
bicubic of ``a = -0.5`` stretched over the source pixels when downscaling). What is left of the
difference to the references is the 8-bit rounding of PIL's two resampling passes; the tests
measure it on real-looking images (below 2e-3 mean absolute difference in [0, 1] units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vader_core.lazy import F, torch

#: Normalisation of OpenAI CLIP, also used by the LAION OpenCLIP models and PickScore.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ResizeMode = Literal["shortest", "longest", "squash"]


@dataclass(frozen=True)
class ImageSpec:
    """How a model wants its input image.

    Args:
        size (`tuple[int, int]`, *optional*, defaults to `(224, 224)`):
            Height and width of the model input.
        mean (`tuple[float, float, float]`, *optional*, defaults to the CLIP mean):
            Per-channel mean subtracted after resizing.
        std (`tuple[float, float, float]`, *optional*, defaults to the CLIP std):
            Per-channel standard deviation divided by after resizing.
        resize_mode (`str`, *optional*, defaults to `"shortest"`):
            `shortest` (resize + centre crop), `longest` (resize + pad) or `squash` (plain resize).
        interpolation (`str`, *optional*, defaults to `"bicubic"`):
            `bicubic` or `bilinear`, always antialiased.
        crop_offset (`str`, *optional*, defaults to `"round"`):
            Where the centre crop starts when the excess is odd: `round` (torchvision and open_clip:
            ``round(excess / 2)``, ties to even) or `floor` (transformers: ``excess // 2``).
        clamp (`bool`, *optional*, defaults to `True`):
            Clamp resized pixels to [0, 1], as a pipeline that resizes 8-bit images does; HPSv2
            resizes float tensors and does not.
        fill (`float`, *optional*, defaults to `0.0`):
            Value of the padding of `longest`, in [0, 1] pixel units (0 is black).
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize_mode: ResizeMode = "shortest"
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    crop_offset: Literal["round", "floor"] = "round"
    clamp: bool = True
    fill: float = 0.0


def _resize(x: torch.Tensor, size: tuple[int, int], spec: ImageSpec) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    y = F.interpolate(x, size=size, mode=spec.interpolation, align_corners=False, antialias=True)
    return y.clamp(0.0, 1.0) if spec.clamp else y


def _crop_start(excess: int, how: str) -> int:
    return int(round(excess / 2.0)) if how == "round" else excess // 2


def resize_to_input(frames: torch.Tensor, spec: ImageSpec) -> torch.Tensor:
    """Resize (and crop or pad) frames to the model input size, still in [0, 1] pixel units.

    Args:
        frames (`torch.Tensor`): ``(N, 3, H, W)`` in [0, 1], any float dtype.
        spec (`ImageSpec`): the model's input description.

    Returns:
        `torch.Tensor`: ``(N, 3, *spec.size)`` float32, differentiable in ``frames``.
    """
    x = frames.float()
    h, w = int(x.shape[-2]), int(x.shape[-1])
    th, tw = spec.size
    if spec.resize_mode == "squash":
        return _resize(x, (th, tw), spec)
    if spec.resize_mode == "shortest":
        if th == tw:
            # torchvision's Resize(int) and transformers' `shortest_edge`: the long side is truncated
            if h <= w:
                nh, nw = th, int(th * w / h)
            else:
                nh, nw = int(tw * h / w), tw
        else:
            scale = max(th / h, tw / w)
            nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        x = _resize(x, (nh, nw), spec)
        top, left = _crop_start(nh - th, spec.crop_offset), _crop_start(nw - tw, spec.crop_offset)
        return x[:, :, top : top + th, left : left + tw]
    if spec.resize_mode == "longest":
        scale = min(th / h, tw / w)
        nh, nw = min(th, round(h * scale)), min(tw, round(w * scale))
        x = _resize(x, (nh, nw), spec)
        pad_h, pad_w = th - nh, tw - nw
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=spec.fill)
        return x
    raise ValueError(f"`resize_mode` must be shortest, longest or squash, got {spec.resize_mode!r}")


def normalize(pixels: torch.Tensor, spec: ImageSpec) -> torch.Tensor:
    """``(pixels - mean) / std`` per channel."""
    mean = pixels.new_tensor(spec.mean).view(1, -1, 1, 1)
    std = pixels.new_tensor(spec.std).view(1, -1, 1, 1)
    return (pixels - mean) / std


def preprocess(frames: torch.Tensor, spec: ImageSpec) -> torch.Tensor:
    """Frames ``(N, 3, H, W)`` in [0, 1] to normalised model input ``(N, 3, *spec.size)`` (float32)."""
    return normalize(resize_to_input(frames, spec), spec)


#: Frames with a shorter side reach the model as interpolation artefacts: less than one ViT patch (14-16 px)
#: of image upscaled to 224.
MIN_FRAME_SIDE = 16


def check_frame_size(frames: torch.Tensor, reward: str, minimum: int = MIN_FRAME_SIDE) -> None:
    """One line (a :class:`~vader_core.errors.ConfigError`) when frames ``(N, 3, H, W)`` are too small to score."""
    h, w = int(frames.shape[-2]), int(frames.shape[-1])
    if min(h, w) < minimum:
        from vader_core.errors import ConfigError

        raise ConfigError(
            f"{reward}: frames of {h}x{w} pixels are too small to score (the model sees them resized to 224x224; "
            f"the short side must be at least {minimum}): generate larger frames (`backbone.height`, "
            "`backbone.width`)"
        )
