import os

# Nothing downloads in these tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch):
    """Entry points load only this plugin (plus vader's built-ins), with a fresh registry per test."""
    from vader_core import plugins

    monkeypatch.setenv("VADER_PLUGINS", "wan")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Wan 2.1 T2V layout, tiny."""
    from vader_wan.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-wan"))


def draw_image(h: int, w: int, seed: int = 0):
    """An RGB PIL image with smooth gradients and a few hard-edged shapes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.5 * np.sin(5 * xx + seed), 0.5 + 0.5 * np.cos(3 * yy + xx), (xx + yy) / 2], -1)
    im = Image.fromarray((base * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(im)
    for i in range(4):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if i % 2 else d.rectangle)((x0, y0, x0 + w // 3, y0 + h // 3), fill=colour)
    return im


@pytest.fixture(scope="session")
def image_file(tmp_path_factory) -> Path:
    """A conditioning image whose size differs from the video's (so the resize runs)."""
    p = tmp_path_factory.mktemp("images") / "a_red_kite.png"
    draw_image(40, 56, seed=1).save(p)
    return p


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache."""
    from huggingface_hub import constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


@pytest.fixture
def make_image():
    return draw_image
