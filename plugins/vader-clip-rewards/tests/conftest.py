import numpy as np
import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("clip_rewards")


def draw_image(h: int, w: int, seed: int = 0):
    """A real-looking RGB PIL image: smooth colour gradients, filled shapes, hard edges and a thin line (the
    preprocessing tests measure resampling differences on it, and store some)."""
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
