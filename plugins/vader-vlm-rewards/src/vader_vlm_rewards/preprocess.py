"""Qwen2-VL's image and video preprocessing, differentiable: pixel budget, frame sampling, resize,
normalisation and the patch layout of ``pixel_values`` / ``pixel_values_videos``.

What the released reward pipelines do (qwen-vl-utils' ``fetch_image`` / ``fetch_video``, then
transformers' ``Qwen2VLImageProcessor``), and what this module does instead:

* size: :func:`smart_resize`, qwen-vl-utils' rule (both sides multiples of 28, the pixel count inside
  ``[min_pixels, max_pixels]``, the aspect ratio kept as well as that allows). Same integers.
* frames of a video: :func:`sample_frames`, qwen-vl-utils' ``smart_nframes`` at ``fps`` and
  ``torch.linspace(0, n - 1, k).round()``. Same indices.
* resize: the pipelines resize 8-bit pictures (PIL ``Image.resize(BICUBIC)`` for HPSv3's images,
  torchvision's antialiased bicubic on ``uint8`` tensors for VideoReward's videos) and round the result
  to 8 bits. Here frames stay floating point: ``interpolate(mode="bicubic", antialias=True)``, the same
  separable filter (Keys' cubic with ``a = -0.5``, support widened by the scale factor when shrinking,
  as PIL computes it), without the two roundings to 8 bits. That rounding is the whole difference
  (``scripts/compare_reference.py`` measures it); it has no gradient, so it is left out.
* ``rescale`` by 1/255 and OpenAI-CLIP mean/std: the same arithmetic on ``[0, 1]`` frames.
* patches: :func:`patchify`, the processor's reshape/transpose, in torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vader_core.errors import ConfigError
from vader_core.lazy import F, torch

#: OpenAI CLIP mean / std, the defaults of ``Qwen2VLImageProcessor`` (``OPENAI_CLIP_MEAN`` / ``_STD``).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Qwen2-VL's vision geometry: 14-pixel patches, 2x2 of them merged into one LLM token, 2 frames a patch.
PATCH = 14
MERGE = 2
TEMPORAL = 2
FACTOR = PATCH * MERGE
#: qwen-vl-utils' bound on the aspect ratio.
MAX_RATIO = 200


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """The size qwen-vl-utils resizes a ``height x width`` picture to (its ``smart_resize``).

    Both sides become multiples of ``factor`` (rounded to the nearest, at least ``factor``); when the
    area leaves ``[min_pixels, max_pixels]`` both sides are scaled by the same factor and rounded down
    (too large) or up (too small). The upward branch rounds up, so ``min_pixels == max_pixels`` can end
    a little above the budget (320x512 -> 364x588).

    Raises:
        `ConfigError`: the aspect ratio is above 200 (qwen-vl-utils refuses it too).
    """
    if min(height, width) < 1:
        raise ConfigError(f"frames of {height}x{width} pixels have no area")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ConfigError(
            f"frames of {height}x{width} have an aspect ratio above {MAX_RATIO}, which Qwen2-VL does not take"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def num_sampled_frames(total: int, video_fps: float, fps: float, min_frames: int = 4, max_frames: int = 768) -> int:
    """How many frames qwen-vl-utils takes from a ``total``-frame video at ``video_fps`` when sampling at
    ``fps`` (``smart_nframes``): ``total / video_fps * fps``, kept in ``[min_frames, min(max_frames,
    total)]`` (both made even), rounded to an even number (Python's ``round``), at most ``total``.

    Raises:
        `ConfigError`: fewer than 2 frames would be taken (a video of one frame).
    """
    lo = math.ceil(min_frames / TEMPORAL) * TEMPORAL
    hi = math.floor(min(max_frames, total) / TEMPORAL) * TEMPORAL
    n = min(max(total / video_fps * fps, lo), hi)
    n = min(round(n / TEMPORAL) * TEMPORAL, total)
    if n < TEMPORAL:
        raise ConfigError(
            f"a video of {total} frame(s) is too short for Qwen2-VL's video input: it takes frames in pairs, "
            f"at least {TEMPORAL}"
        )
    return n


def sample_frames(total: int, count: int) -> list[int]:
    """The indices qwen-vl-utils keeps (``sample_type: uniform``): ``linspace(0, total - 1, count)``
    rounded half to even, as ``torch.round`` does."""
    return torch.linspace(0, total - 1, count).round().long().tolist()


def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames ``(N, 3, H, W)`` to ``size`` with antialiased bicubic interpolation (the filter of PIL's and
    torchvision's bicubic resize); the identity at the same size, as PIL's resize is."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bicubic", antialias=True, align_corners=False)


def normalize(frames: torch.Tensor, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(..., 3, H, W)`` frames in [0, 1]."""
    m = torch.tensor(mean, device=frames.device, dtype=frames.dtype).view(3, 1, 1)
    s = torch.tensor(std, device=frames.device, dtype=frames.dtype).view(3, 1, 1)
    return (frames - m) / s


def patchify(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised clips ``(B, T, 3, H, W)`` (``T`` even, ``H`` and ``W`` multiples of 28) as Qwen2-VL's
    flattened patches and grid, exactly as ``Qwen2VLImageProcessor`` lays them out.

    Rows are ordered (clip, temporal patch, 2x2 block row, block column, row and column inside the
    block), columns (channel, frame of the pair, 14 x 14 pixels): what the vision tower's ``PatchEmbed``
    reads as ``Conv3d`` input. An image is a clip of two identical frames (the processor's ``tile``).

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: ``pixel_values`` ``(B * T/2 * H/14 * W/14, 1176)`` and
        ``grid_thw`` ``(B, 3)`` (long, on the clips' device).
    """
    b, t, c, h, w = clips.shape
    gt, gh, gw = t // TEMPORAL, h // PATCH, w // PATCH
    x = clips.reshape(b, gt, TEMPORAL, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    pixel_values = x.reshape(b * gt * gh * gw, c * TEMPORAL * PATCH * PATCH)
    grid = torch.tensor([[gt, gh, gw]] * b, dtype=torch.long, device=clips.device)
    return pixel_values, grid


def check_frame_size(height: int, width: int, reward: str) -> None:
    """One line when frames are smaller than one merged patch (28 x 28 pixels), the smallest picture
    transformers' Qwen2-VL processor takes (such frames carry too little to score), or longer than 200
    times their width (qwen-vl-utils refuses them)."""
    if max(height, width) > MAX_RATIO * min(height, width):
        raise ConfigError(
            f"{reward}: frames of {height}x{width} pixels have an aspect ratio above {MAX_RATIO}, which Qwen2-VL's "
            f"preprocessing refuses"
        )
    if height < FACTOR or width < FACTOR:
        raise ConfigError(
            f"{reward}: frames of {height}x{width} pixels are too small for Qwen2-VL, whose smallest input is "
            f"{FACTOR}x{FACTOR} (one merged patch); generate larger videos (backbone.height / backbone.width)"
        )


def image_inputs(frames: torch.Tensor, min_pixels: int, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames ``(N, 3, H, W)`` in [0, 1] as Qwen2-VL image inputs: resized to the pixel budget,
    normalised, each one an image of its own. Returns ``pixel_values`` and ``image_grid_thw``."""
    size = smart_resize(frames.shape[-2], frames.shape[-1], min_pixels, max_pixels)
    x = normalize(resize(frames, size))
    return patchify(x.unsqueeze(1).expand(-1, TEMPORAL, -1, -1, -1))


def video_inputs(video: torch.Tensor, min_pixels: int, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled clips ``(B, T, 3, H, W)`` in [0, 1] (``T`` even) as Qwen2-VL video inputs: each frame
    resized to the pixel budget and normalised. Returns ``pixel_values_videos`` and ``video_grid_thw``."""
    b, t, c, h, w = video.shape
    size = smart_resize(h, w, min_pixels, max_pixels)
    x = normalize(resize(video.reshape(b * t, c, h, w), size))
    return patchify(x.reshape(b, t, c, *size))
