import os

# Nothing downloads in these tests; entry points load only this plugin (plus vader's built-ins).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["VADER_PLUGINS"] = "clip_rewards"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from vader_core import plugins

    # Per test: the core suite, run in the same session, sets its own value.
    monkeypatch.setenv("VADER_PLUGINS", "clip_rewards")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache; ``hub_cache.put(repo_id, {name: file_or_dir})`` fills a snapshot
    of a repo exactly where ``hf_hub_download`` / ``from_pretrained`` look for it."""
    from huggingface_hub import constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))

    def put(repo_id: str, files: dict) -> Path:
        repo = root / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT)
        snap = repo / "snapshots" / COMMIT
        snap.mkdir(parents=True, exist_ok=True)
        for name, src in files.items():
            src = Path(src)
            if src.is_dir():
                for f in src.iterdir():
                    shutil.copy(f, snap / f.name)
            else:
                shutil.copy(src, snap / name)
        return snap

    return SimpleNamespace(put=put, root=root)


def draw_image(h: int, w: int, seed: int = 0):
    """A real-looking RGB PIL image: smooth colour gradients, filled shapes, hard edges and a thin line."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.5 * np.sin(3 * xx + 1), 0.5 + 0.5 * np.cos(2 * yy + xx), (xx + yy) / 2], -1)
    im = Image.fromarray((base * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(im)
    for i in range(8):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(3, max(4, w // 2))), y0 + int(rng.integers(3, max(4, h // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if i % 2 else d.rectangle)((x0, y0, x1, y1), fill=colour)
    d.polygon([(w // 4, h - 1), (w // 2, h // 3), (3 * w // 4, h - 1)], outline=(255, 255, 255))
    d.line((0, 0, w - 1, h - 1), fill=(20, 20, 20), width=max(1, min(h, w) // 60))
    return im


def to_tensor(im):
    """PIL image to ``(1, 3, H, W)`` float32 in [0, 1] (the 8-bit values, as a decoded frame would be)."""
    import torch

    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


@pytest.fixture
def image_tools():
    return draw_image, to_tensor
