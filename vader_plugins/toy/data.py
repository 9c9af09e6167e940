"""Procedural text-to-video data for the ``toy`` backbone: coloured shapes moving over plain backgrounds.

Every clip shows one shape (circle, square, triangle, diamond) in one named colour moving in one
direction (left, right, up, down) over a gray, black or white background, plain or with a faint
static texture, and comes with its caption, e.g. ``"a red circle moving left on a gray background"``.
Position, size and speed vary per clip; everything is drawn from a seeded generator, so a
``(seed, index)`` pair always gives the same clip.

A fixed subset of caption combinations (:data:`HELDOUT_CAPTIONS`) never appears in training: each of
its words is seen in training, only the combination is new. This module imports numpy only when a
clip is drawn, so the caption lists cost nothing to import.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
#: Primaries and secondaries only: every name maps to one unambiguous RGB corner of the cube.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.1),
    "blue": (0.1, 0.2, 0.9),
    "yellow": (0.95, 0.9, 0.1),
    "cyan": (0.1, 0.85, 0.9),
    "magenta": (0.9, 0.1, 0.85),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "gray": (0.5, 0.5, 0.5),
    "black": (0.05, 0.05, 0.05),
    "white": (0.95, 0.95, 0.95),
}
#: Unit motion per direction in (x, y) image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class Spec:
    """What a caption says: shape, colour, direction and background names."""

    shape: str
    color: str
    direction: str
    background: str

    @property
    def caption(self) -> str:
        return f"a {self.color} {self.shape} moving {self.direction} on a {self.background} background"


def parse_caption(caption: str) -> Spec:
    """Inverse of :attr:`Spec.caption`.

    Args:
        caption (`str`): a caption of the form ``"a COLOR SHAPE moving DIRECTION on a BACKGROUND background"``.

    Returns:
        `Spec`: the named attributes. Raises `ValueError` for any other sentence.
    """
    words = caption.strip().lower().split()
    if (
        len(words) != 9
        or words[0] != "a"
        or words[3] != "moving"
        or words[5:7] != ["on", "a"]
        or words[8] != "background"
    ):
        raise ValueError(f"not a toy caption: {caption!r}")
    spec = Spec(shape=words[2], color=words[1], direction=words[4], background=words[7])
    if (
        spec.shape not in SHAPES
        or spec.color not in COLORS
        or spec.direction not in DIRECTIONS
        or spec.background not in BACKGROUNDS
    ):
        raise ValueError(f"unknown word in toy caption: {caption!r}")
    return spec


def _all_specs() -> list[Spec]:
    return [Spec(s, c, d, b) for s, c, d, b in itertools.product(SHAPES, COLORS, DIRECTIONS, BACKGROUNDS)]


def _is_heldout(spec: Spec) -> bool:
    # A fixed arithmetic rule rather than a random draw: the split never depends on library versions.
    # With modulus 7 it takes 1/7 of the 288 combinations and still leaves every (colour, direction),
    # (colour, background) and (direction, background) pair in training.
    i = (
        SHAPES.index(spec.shape),
        list(COLORS).index(spec.color),
        list(DIRECTIONS).index(spec.direction),
        list(BACKGROUNDS).index(spec.background),
    )
    return (i[0] + 2 * i[1] + 3 * i[2] + 5 * i[3]) % 7 == 0


TRAIN_SPECS: tuple[Spec, ...] = tuple(s for s in _all_specs() if not _is_heldout(s))
# Shuffled once with a fixed seed so that the first few held-out prompts (the trainer validates on the
# first two by default) differ in colour and direction.
HELDOUT_SPECS: tuple[Spec, ...] = tuple(
    random.Random(4).sample([s for s in _all_specs() if _is_heldout(s)], k=sum(_is_heldout(s) for s in _all_specs()))
)
TRAIN_CAPTIONS: tuple[str, ...] = tuple(s.caption for s in TRAIN_SPECS)
HELDOUT_CAPTIONS: tuple[str, ...] = tuple(s.caption for s in HELDOUT_SPECS)


@dataclass(frozen=True)
class ClipConfig:
    """Geometry of the clips.

    Args:
        frames (`int`, *optional*, defaults to 8): frames per clip.
        size (`int`, *optional*, defaults to 32): height and width in pixels.
        radius (`tuple[float, float]`, *optional*, defaults to `(4.5, 6.0)`): range of the shape's half-size, pixels.
        speed (`tuple[float, float]`, *optional*, defaults to `(1.25, 2.0)`): range of the speed, pixels per frame.
        texture (`float`, *optional*, defaults to 0.04): amplitude of the faint static background texture.
        texture_prob (`float`, *optional*, defaults to 0.5): share of clips whose background is textured.
        random_colors (`float`, *optional*, defaults to 0.0): share of clips whose background and object
            colours are drawn uniformly from the RGB cube instead of the caption's. The caption no longer
            describes those clips: only the VAE trains on them, so that it can encode and decode any colour
            (a reward may ask for colours the captions never name).
    """

    frames: int = 8
    size: int = 32
    radius: tuple[float, float] = (4.5, 6.0)
    speed: tuple[float, float] = (1.25, 2.0)
    texture: float = 0.04
    texture_prob: float = 0.5
    random_colors: float = 0.0


def _mask(shape: str, xx: Any, yy: Any, cx: float, cy: float, r: float) -> Any:
    """Anti-aliased coverage in [0, 1] from an approximate signed distance (soft one-pixel edge)."""
    import numpy as np

    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        d = np.sqrt(dx**2 + dy**2) - r
    elif shape == "square":
        d = np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * r
    elif shape == "diamond":
        d = (np.abs(dx) + np.abs(dy) - 1.2 * r) / np.sqrt(2)
    elif shape == "triangle":
        # Upward triangle: the intersection of three half-planes (base and two 60-degree sides).
        s = np.sqrt(3) / 2
        d = np.maximum.reduce([dy - 0.6 * r, -s * dx - 0.5 * dy - 0.6 * r, s * dx - 0.5 * dy - 0.6 * r]) * 1.2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - d, 0.0, 1.0)


def render(spec: Spec, rng: Any, config: ClipConfig = ClipConfig()) -> Any:
    """Draw one clip.

    Args:
        spec (`Spec`): what to draw.
        rng (`numpy.random.Generator`): source of position, size, speed and texture.
        config (`ClipConfig`, *optional*): geometry.

    Returns:
        `numpy.ndarray`: ``(frames, 3, size, size)`` float32 in [0, 1].
    """
    import numpy as np

    n, f = config.size, config.frames
    r = rng.uniform(*config.radius) * n / 32
    speed = rng.uniform(*config.speed) * n / 32
    ux, uy = DIRECTIONS[spec.direction]
    travel = speed * (f - 1)
    margin = r + 1.0
    # Start so that the shape stays fully inside the frame for the whole clip.
    lo_x = margin + (travel if ux < 0 else 0.0)
    hi_x = n - 1 - margin - (travel if ux > 0 else 0.0)
    lo_y = margin + (travel if uy < 0 else 0.0)
    hi_y = n - 1 - margin - (travel if uy > 0 else 0.0)
    x0, y0 = rng.uniform(lo_x, max(lo_x, hi_x)), rng.uniform(lo_y, max(lo_y, hi_y))
    bg = np.array(BACKGROUNDS[spec.background], dtype=np.float32).reshape(3, 1, 1)
    color = np.array(COLORS[spec.color], dtype=np.float32).reshape(3, 1, 1)
    # No draw at all when off, so the captioned clips of a seed never depend on this option.
    if config.random_colors > 0 and rng.random() < config.random_colors:
        bg, color = rng.uniform(0, 1, size=(2, 3, 1, 1)).astype(np.float32)
    canvas = np.broadcast_to(bg, (3, n, n)).copy()
    if rng.random() < config.texture_prob:
        # Faint static noise, smoothed over 2x2 cells: texture that must not be mistaken for motion.
        noise = rng.uniform(-1, 1, size=(1, n // 2, n // 2)).repeat(2, axis=1).repeat(2, axis=2)
        canvas = np.clip(canvas + config.texture * noise, 0.0, 1.0)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    out = np.empty((f, 3, n, n), dtype=np.float32)
    for t in range(f):
        m = _mask(spec.shape, xx, yy, x0 + ux * speed * t, y0 + uy * speed * t, r)[None]
        out[t] = canvas * (1 - m) + color * m
    return out


class ToyVideoDataset:
    """Deterministic, infinite-by-index procedural dataset.

    Args:
        split (`str`, *optional*, defaults to `"train"`): ``"train"`` or ``"heldout"`` caption combinations.
        seed (`int`, *optional*, defaults to 0): clip ``i`` is a function of ``(seed, split, i)`` only.
        config (`ClipConfig`, *optional*): geometry.
    """

    def __init__(self, split: str = "train", seed: int = 0, config: ClipConfig | None = None) -> None:
        if split not in ("train", "heldout"):
            raise ValueError(f"`split` must be 'train' or 'heldout', got {split!r}")
        self.split, self.seed, self.config = split, seed, config or ClipConfig()
        self.specs = TRAIN_SPECS if split == "train" else HELDOUT_SPECS

    def __getitem__(self, index: int) -> tuple[Any, str]:
        """Clip ``index``: ``((frames, 3, H, W) float32 array in [0, 1], caption)``."""
        import numpy as np

        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        spec = self.specs[int(rng.integers(len(self.specs)))]
        return render(spec, rng, self.config), spec.caption

    def batch(self, start: int, size: int) -> tuple[Any, list[str]]:
        """Clips ``start .. start + size - 1`` stacked: ``((B, F, 3, H, W) array, captions)``."""
        import numpy as np

        items = [self[i] for i in range(start, start + size)]
        return np.stack([v for v, _ in items]), [c for _, c in items]
