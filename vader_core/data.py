"""Training and validation prompts (and conditioning images for image-to-video backbones)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, warn
from .method import Batch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

_ANIMALS = ["cat", "dog", "horse", "rabbit", "fox", "panda", "tiger", "owl", "duck", "deer", "bear", "penguin"]
_ACTIVITIES = [
    "playing chess",
    "riding a bike",
    "surfing a wave",
    "reading a book",
    "dancing in the rain",
    "cooking pasta",
    "skiing down a slope",
    "painting on a canvas",
    "playing the guitar",
    "flying a kite",
]

#: Built-in prompt sets: name -> (training prompts, held-out prompts).
PROMPT_SETS: dict[str, tuple[list[str], list[str]]] = {
    "animals": (
        [f"a {a} {act}" for a in _ANIMALS[:9] for act in _ACTIVITIES[:8]],
        [f"a {a} {act}" for a, act in zip(_ANIMALS[9:], _ACTIVITIES[8:] + _ACTIVITIES[:1], strict=False)],
    ),
}


@dataclass
class Source:
    """Where training batches come from: prompts, and images for image-to-video."""

    prompts: list[str]
    images: list[Any] | None = None  # image paths, aligned with prompts

    def batch(self, batch_size: int, rng: random.Random) -> Batch:
        idx = [rng.randrange(len(self.prompts)) for _ in range(batch_size)]
        prompts = [self.prompts[i] for i in idx]
        images = None
        if self.images is not None:
            from .media import read_image

            images = [read_image(self.images[i]) for i in idx]
        return Batch(prompts, images)


def _read_lines(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"prompt file not found: {p}")
    lines = [ln.strip() for ln in p.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ConfigError(f"prompt file {p} has no prompts")
    return lines


def image_source(spec: str) -> Source:
    """A folder of images (caption from a same-named .txt, else the file stem) or a list file
    (``path[<TAB>caption]`` per line)."""
    p = Path(spec)
    paths: list[Path] = []
    captions: list[str] = []
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(f)
                txt = f.with_suffix(".txt")
                captions.append(txt.read_text().strip() if txt.is_file() else f.stem.replace("_", " "))
    elif p.is_file():
        for line in _read_lines(spec):
            path, _, cap = line.partition("\t")
            f = Path(path) if Path(path).is_absolute() else p.parent / path
            if not f.is_file():
                raise ConfigError(f"image listed in {p} not found: {f}")
            paths.append(f)
            captions.append(cap.strip() or f.stem.replace("_", " "))
    else:
        raise ConfigError(f"`train.images`: no such folder or file: {p}")
    if not paths:
        raise ConfigError(f"`train.images`: no images ({', '.join(IMAGE_SUFFIXES)}) in {p}")
    return Source(captions, [str(x) for x in paths])


def _prompt_set(train: Any, backbone: Any) -> tuple[list[str], list[str]]:
    if train.prompt_set is None:
        own = backbone.default_prompts() if backbone is not None else None
        if own is not None:
            return own
        return PROMPT_SETS["animals"]
    if train.prompt_set not in PROMPT_SETS:
        raise ConfigError(f"unknown `train.prompt_set` {train.prompt_set!r}; built-in: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[train.prompt_set]


#: The built-in conditioning images: (file stem, caption, sky top, sky bottom, ground, shape, shape colour).
_SCENES: list[tuple[str, str, tuple[int, ...], tuple[int, ...], tuple[int, ...], str, tuple[int, ...]]] = [
    (
        "red_ball_on_grass",
        "a red ball on green grass under a blue sky",
        (70, 130, 220),
        (170, 210, 250),
        (60, 150, 60),
        "ball",
        (210, 40, 40),
    ),
    (
        "sun_over_the_sea",
        "a yellow sun over a calm blue sea",
        (250, 170, 90),
        (250, 220, 160),
        (40, 90, 170),
        "sun",
        (250, 220, 60),
    ),
    (
        "moon_over_snow",
        "a white moon over a snowy field at night",
        (10, 20, 60),
        (40, 60, 110),
        (230, 235, 245),
        "moon",
        (245, 245, 230),
    ),
    (
        "kite_over_a_beach",
        "an orange kite over a sandy beach",
        (90, 160, 230),
        (190, 225, 250),
        (225, 200, 140),
        "kite",
        (240, 120, 30),
    ),
    (
        "boat_on_a_lake",
        "a small white boat on a lake at sunset",
        (230, 110, 80),
        (250, 190, 120),
        (50, 80, 140),
        "boat",
        (245, 245, 245),
    ),
    (
        "green_ball_on_sand",
        "a green ball on desert sand",
        (120, 170, 230),
        (220, 230, 240),
        (210, 170, 110),
        "ball",
        (40, 170, 70),
    ),
    (
        "purple_kite_over_hills",
        "a purple kite over green hills",
        (100, 150, 220),
        (200, 220, 245),
        (80, 140, 70),
        "kite",
        (140, 60, 180),
    ),
    (
        "sun_over_a_desert",
        "a low orange sun over a red desert",
        (200, 80, 60),
        (250, 170, 100),
        (170, 80, 50),
        "sun",
        (250, 140, 40),
    ),
]

#: Version of the built-in images: a change of the drawing writes a new folder, never mixes old and new.
DEFAULT_IMAGES_VERSION = 1


def _draw_scene(scene: tuple[Any, ...], w: int = 512, h: int = 320) -> Any:
    """One scene: a sky gradient, the ground, and a shape; deterministic, drawn by code (no licence to honour)."""
    import numpy as np
    from PIL import Image, ImageDraw

    _, _, top, bottom, ground, shape, colour = scene
    horizon = int(h * 0.62)
    t = np.linspace(0, 1, horizon)[:, None, None]
    sky = (np.array(top)[None, None] * (1 - t) + np.array(bottom)[None, None] * t).repeat(w, axis=1)
    g = np.linspace(1.0, 0.75, h - horizon)[:, None, None]
    land = (np.array(ground)[None, None] * g).repeat(w, axis=1)
    im = Image.fromarray(np.concatenate([sky, land]).round().clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    c = tuple(colour)
    if shape == "ball":
        r = h // 8
        d.ellipse((w // 2 - r, horizon + 10 - r, w // 2 + r, horizon + 10 + r), fill=c)
    elif shape in ("sun", "moon"):
        r = h // 9
        cx, cy = int(w * 0.7), int(horizon * 0.45)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=c)
        if shape == "moon":
            d.ellipse((cx - r // 2, cy - r, cx + r + r // 2, cy + r), fill=tuple(top))
    elif shape == "kite":
        cx, cy, s = int(w * 0.4), int(horizon * 0.4), h // 8
        d.polygon([(cx, cy - s), (cx + s // 2, cy), (cx, cy + s), (cx - s // 2, cy)], fill=c)
        d.line([(cx, cy + s), (cx + s, horizon + s)], fill=(60, 60, 60), width=2)
    elif shape == "boat":
        cx, cy, s = w // 2, horizon + 18, h // 7
        d.polygon([(cx - s, cy), (cx + s, cy), (cx + s // 2, cy + s // 3), (cx - s // 2, cy + s // 3)], fill=c)
        d.polygon([(cx, cy - s), (cx, cy - 4), (cx + s // 2, cy - 4)], fill=c)
    return im


def default_images_dir() -> Path:
    """The folder of vader's built-in conditioning images for image-to-video backbones, written on first use.

    Eight scenes drawn by code (:data:`_SCENES`: a sky, the ground, a ball, sun, moon, kite or boat), each
    beside a ``.txt`` caption that serves as its prompt, under ``$XDG_CACHE_HOME/vader`` (default
    ``~/.cache/vader``), or ``$VADER_CACHE`` when set. So an image-to-video backbone trains and evaluates with
    no ``train.images``, as text-to-video backbones do with their default prompts; they are for smoke runs
    and first tries, not for results: give your own images in ``train.images``.
    """
    import os
    import shutil
    import tempfile

    root = os.environ.get("VADER_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vader"
    )
    out = Path(root) / f"default-images-v{DEFAULT_IMAGES_VERSION}"
    if out.is_dir() and len(list(out.glob("*.png"))) == len(_SCENES):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".images-"))
    for scene in _SCENES:
        _draw_scene(scene).save(tmp / f"{scene[0]}.png")
        (tmp / f"{scene[0]}.txt").write_text(scene[1] + "\n")
    try:
        tmp.rename(out)  # whole or not at all: another process may be writing the same folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def training_source(train: Any, conditioning: str, backbone: Any = None) -> Source:
    """Build the training source from the ``train`` section for a backbone's conditioning kind (for an
    image-to-video backbone without ``train.images``: :func:`default_images_dir`)."""
    if "image" in conditioning:
        if not train.images:
            folder = default_images_dir()
            warn(
                f"`train.images` is not set: using vader's {len(_SCENES)} built-in conditioning images ({folder}), "
                "drawn by code for first runs; set `train.images` to a folder of your own images for real results"
            )
            return image_source(str(folder))
        return image_source(train.images)
    if train.prompts:
        return Source(list(train.prompts))
    if train.prompt_file:
        return Source(_read_lines(train.prompt_file))
    return Source(list(_prompt_set(train, backbone)[0]))


def validation_prompts(config: Any, source: Source, backbone: Any = None) -> tuple[list[str], list[str] | None]:
    """Held-out prompts (and images for image-to-video)."""
    v = config.validation
    n = v.max_prompts
    if source.images is not None:
        return source.prompts[:n], source.images[:n]
    if v.prompts:
        return list(v.prompts), None
    t = config.train
    if not t.prompts and not t.prompt_file:
        return list(_prompt_set(t, backbone)[1][:n]), None
    return source.prompts[:n], None
