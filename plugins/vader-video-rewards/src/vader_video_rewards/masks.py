"""V-JEPA 2's spatio-temporal multi-block masks, drawn deterministically from a seed.

A mask is the union of ``num_blocks`` boxes of the token grid ``(T, H, W)`` (``T = frames //
tubelet_size``, ``H = W = crop_size // patch_size``), all of one size drawn once per mask: a
temporal extent ``t = max(1, int(T * temporal_scale))``, a spatial area ``keep = int(H * W *
spatial_scale)`` and an aspect ratio ``a``, giving ``h = round(sqrt(keep * a))`` and ``w =
round(sqrt(keep / a))`` (at most the grid, at least one token); each box is placed uniformly at
random. The tokens in the union are the prediction targets, the rest is the context; a draw whose
context would be empty is drawn again. This is the block generator of V-JEPA 2's pretraining
(``src/masks/multiseq_multiblock3d.py``), whose ViT-L configuration uses two kinds of mask:
:data:`VJEPA2_MASKS`.

Token indices are those of transformers' ``VJEPA2Model``: time-major, ``t * H * W + y * W + x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vader_core.lazy import torch


@dataclass(frozen=True)
class BlockMaskSpec:
    """One kind of multi-block mask.

    Args:
        num_blocks (`int`): boxes whose union is masked.
        spatial_scale (`tuple[float, float]`): range of a box's area, as a fraction of a frame's tokens.
        temporal_scale (`tuple[float, float]`, *optional*, defaults to `(1.0, 1.0)`):
            range of a box's duration, as a fraction of the clip's token frames (1.0: the whole clip).
        aspect_ratio (`tuple[float, float]`, *optional*, defaults to `(0.75, 1.5)`): range of ``h / w``.
    """

    num_blocks: int
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


#: The masks of V-JEPA 2's pretraining (``configs/train/vitl16/pretrain-256px-16f.yaml``): short-range
#: (8 boxes of 15% of a frame) and long-range (2 boxes of 70%), both spanning the whole clip in time.
VJEPA2_MASKS = (BlockMaskSpec(8, (0.15, 0.15)), BlockMaskSpec(2, (0.7, 0.7)))


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + float(torch.rand(1, generator=g)) * (hi - lo)


def _randint(g: torch.Generator, high: int) -> int:
    return int(torch.randint(0, high, (1,), generator=g))


def block_mask(
    grid: tuple[int, int, int], spec: BlockMaskSpec, generator: torch.Generator, max_tries: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask of kind ``spec`` on the token grid ``(T, H, W)``.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: sorted int64 indices of the context tokens and of the
        target tokens; together they are every token once.
    """
    t_n, h_n, w_n = grid
    t = max(1, int(t_n * _uniform(generator, *spec.temporal_scale)))
    keep = int(h_n * w_n * _uniform(generator, *spec.spatial_scale))
    ratio = _uniform(generator, *spec.aspect_ratio)
    h = min(h_n, max(1, round(math.sqrt(keep * ratio))))
    w = min(w_n, max(1, round(math.sqrt(keep / ratio))))
    t = min(t, t_n)
    for _ in range(max_tries):
        masked = torch.zeros(t_n, h_n, w_n, dtype=torch.bool)
        for _ in range(spec.num_blocks):
            top, left, start = (
                _randint(generator, h_n - h + 1),
                _randint(generator, w_n - w + 1),
                _randint(generator, t_n - t + 1),
            )
            masked[start : start + t, top : top + h, left : left + w] = True
        masked = masked.flatten()
        if not masked.all():
            return torch.nonzero(~masked).flatten(), torch.nonzero(masked).flatten()
    raise ValueError(f"{spec} masks the whole {grid} token grid in {max_tries} draws; use a larger grid")


def draw_masks(
    grid: tuple[int, int, int], specs: tuple[BlockMaskSpec, ...] = VJEPA2_MASKS, draws: int = 1, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``draws`` masks of each kind in ``specs`` (draw-major), the same for the same arguments.

    Returns:
        `list[tuple[torch.Tensor, torch.Tensor]]`: ``(context, target)`` index pairs, see :func:`block_mask`.
    """
    g = torch.Generator().manual_seed(seed)
    return [block_mask(grid, spec, g) for _ in range(draws) for spec in specs]
