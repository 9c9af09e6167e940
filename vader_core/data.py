"""Training and validation prompts (and conditioning images for image-to-video backbones)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
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


def training_source(train: Any, conditioning: str, backbone: Any = None) -> Source:
    """Build the training source from the ``train`` section for a backbone's conditioning kind."""
    if "image" in conditioning:
        if not train.images:
            raise ConfigError("this backbone is image-to-video: set `train.images` to a folder or list of images")
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
