"""Image preprocessing of the conditioning image, as ``StableVideoDiffusionPipeline`` does it.

Two views of one image: the CLIP image encoder sees it resized to 224x224 with an antialiasing
Gaussian blur before a bicubic resize (the resize of Stability AI's reference sampler, which the
diffusers pipeline reproduces), the VAE sees it resized to the video size by diffusers'
``VideoProcessor`` (Lanczos for PIL images) and mapped to [-1, 1].
"""

from __future__ import annotations

import os
from typing import Any

from vader_core.errors import ConfigError
from vader_core.lazy import np, torch

#: Input size of the CLIP ViT-H/14 image encoder of Stable Video Diffusion.
CLIP_SIZE = (224, 224)


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length ``size``, computed in ``dtype``."""
    s = torch.tensor([[sigma]], dtype=dtype)
    x = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-x.pow(2.0) / (2 * s.pow(2.0)))
    return (g / g.sum(-1, keepdim=True))[0]


def _blur_1d(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise convolution of ``(N, C, H, W)`` with ``kernel`` along ``dim`` (2: rows, 3: columns),
    reflect-padded so the size is kept."""
    n, c, h, w = x.shape
    k = kernel.numel()
    front, rear = (k - 1) // 2, (k - 1) - (k - 1) // 2
    if dim == 3:
        weight = kernel.view(1, 1, 1, k)
        pad = (front, rear, 0, 0)
    else:
        weight = kernel.view(1, 1, k, 1)
        pad = (0, 0, front, rear)
    x = torch.nn.functional.pad(x, pad, mode="reflect")
    weight = weight.to(device=x.device, dtype=x.dtype).expand(c, 1, *weight.shape[2:])
    return torch.nn.functional.conv2d(x, weight, groups=c)


def resize_with_antialiasing(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``size`` with a Gaussian pre-blur against aliasing, then bicubic.

    The blur's standard deviation per axis is ``max((factor - 1) / 2, 0.001)`` for the downscaling
    factor of that axis, its length ``max(4 * sigma, 3)`` rounded down and made odd; the bicubic
    resize uses ``align_corners=True``. These are the choices of the reference SVD sampler (and of
    diffusers' ``StableVideoDiffusionPipeline``), so CLIP sees exactly the pixels it saw there.

    Args:
        image (`torch.Tensor`): ``(N, C, H, W)`` images, any value range.
        size (`tuple[int, int]`): target ``(height, width)``.

    Returns:
        `torch.Tensor`: ``(N, C, *size)`` in the dtype of ``image``.
    """
    h, w = image.shape[-2:]
    sigmas = (max((h / size[0] - 1.0) / 2.0, 0.001), max((w / size[1] - 1.0) / 2.0, 0.001))
    ks = [int(max(2.0 * 2 * s, 3)) for s in sigmas]
    ks = [k + 1 if k % 2 == 0 else k for k in ks]
    out = _blur_1d(image, _gaussian_kernel(ks[1], sigmas[1], image.dtype), dim=3)
    out = _blur_1d(out, _gaussian_kernel(ks[0], sigmas[0], image.dtype), dim=2)
    return torch.nn.functional.interpolate(out, size=size, mode="bicubic", align_corners=True)


def load_image(image: Any) -> Any:
    """A conditioning image as a PIL RGB image or a ``(3, H, W)`` float tensor in [0, 1].

    Accepts PIL images, ``(3, H, W)`` (or ``(1, 3, H, W)``) tensors in [0, 1], and paths to image files
    (the trainer's validation passes the paths of ``train.images``).
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from vader_core.media import read_image

        return read_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, torch.Tensor):
        t = image[0] if image.ndim == 4 and image.shape[0] == 1 else image
        if t.ndim != 3 or t.shape[0] != 3:
            raise ConfigError(
                f"a conditioning image tensor must be (3, H, W) in [0, 1], got shape {tuple(image.shape)}"
            )
        return t.detach().float()
    raise ConfigError(
        f"a conditioning image must be a PIL image, a (3, H, W) tensor or a path, got {type(image).__name__}"
    )


def to_unit_tensor(image: Any) -> torch.Tensor:
    """``(1, 3, H, W)`` float32 CPU tensor in [0, 1] of a PIL image or ``(3, H, W)`` tensor (8-bit
    values divided by 255 in float32, as diffusers' ``pil_to_numpy`` does)."""
    if isinstance(image, torch.Tensor):
        return image.detach().float().cpu()[None]
    arr = np.asarray(image).astype(np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]


def vae_pixels(image: Any, height: int, width: int, processor: Any) -> torch.Tensor:
    """The image the VAE encodes: ``(1, 3, height, width)`` float32 in [-1, 1].

    PIL images go through diffusers' ``VideoProcessor.preprocess`` (Lanczos resize), exactly as in
    the stock pipeline. Tensors that already have the video size are used as they are; others are
    resized bicubically with antialiasing (the stock pipeline would use nearest-neighbour there).
    """
    if isinstance(image, torch.Tensor):
        x = to_unit_tensor(image)
        if tuple(x.shape[-2:]) != (height, width):
            x = torch.nn.functional.interpolate(
                x, size=(height, width), mode="bicubic", antialias=True, align_corners=False
            ).clamp(0, 1)
        return x * 2.0 - 1.0
    return processor.preprocess(image, height=height, width=width).float()
