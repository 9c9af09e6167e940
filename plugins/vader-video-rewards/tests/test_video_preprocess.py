"""The differentiable clip preprocessing against the transformers processors and torchvision."""

import numpy as np
import pytest
import torch
from vader_video_rewards._common import IMAGENET_MEAN, IMAGENET_STD, normalize, resample_clip

STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _frames(f, h, w):
    """8-bit frames with smooth waves, edges and a moving square: (F, H, W, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for t in range(f):
        img = np.stack([0.5 + 0.5 * np.sin(9 * xx + t), 0.5 + 0.5 * np.cos(5 * yy + 3 * xx), (xx + yy) / 2], -1)
        y0, x0 = (5 * t) % (h // 2), (7 * t) % (w // 2)
        img[y0 : y0 + h // 4, x0 : x0 + w // 4] = (1.0, 0.1, 0.2)
        out.append(img)
    return (np.stack(out) * 255).round().astype(np.uint8)


def _tensor(u8):
    return torch.from_numpy(u8.astype(np.float32) / 255).permute(0, 3, 1, 2)[None]


@pytest.mark.parametrize("h,w", [(90, 160), (160, 90), (64, 64), (48, 40)])
def test_crop_matches_videomae_processor(h, w):
    from transformers import VideoMAEImageProcessor

    u8 = _frames(4, h, w)
    p = VideoMAEImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )
    ref = p(list(u8), return_tensors="pt")["pixel_values"]
    ours = normalize(resample_clip(_tensor(u8), 4, (32, 32), "crop"))
    assert ref.shape == ours.shape
    assert ((ref - ours) * STD).abs().mean() < 2e-3  # 8-bit rounding of the processor (measured: 1.0e-3)


@pytest.mark.parametrize("h,w", [(90, 160), (160, 90)])
def test_crop_matches_vjepa2_video_processor(h, w):
    from transformers import VJEPA2VideoProcessor

    u8 = _frames(4, h, w)
    ref = VJEPA2VideoProcessor(crop_size=32)(u8, return_tensors="pt")["pixel_values_videos"]
    ours = normalize(resample_clip(_tensor(u8), 4, (32, 32), "crop", 256 / 224))
    assert ref.shape == ours.shape
    assert ((ref - ours) * STD).abs().mean() < 2e-3


def test_squash_is_torchvision_resize_as_in_vader():
    """VADER's action reward: torchvision Resize((224, 224), antialias=True) on float frames."""
    tvf = pytest.importorskip("torchvision.transforms.functional")
    v = torch.rand(1, 3, 3, 45, 70, generator=torch.Generator().manual_seed(0))
    ref = torch.stack([tvf.resize(f, [32, 32], antialias=True) for f in v[0]])[None]
    torch.testing.assert_close(resample_clip(v, 3, (32, 32), "squash"), ref)


def test_time_resampling_is_linear_and_keeps_the_ends():
    v = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 3, 2, 2)
    up = resample_clip(v, 7, (2, 2))
    torch.testing.assert_close(up[0, :, 0, 0, 0], torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3]))
    down = resample_clip(v, 3, (2, 2))
    torch.testing.assert_close(down[0, :, 0, 0, 0], torch.tensor([0, 1.5, 3]))
    one = resample_clip(v[:, :1], 4, (2, 2))
    assert one.shape == (1, 4, 3, 2, 2) and (one == 0).all()


def test_resampling_is_differentiable_everywhere():
    v = torch.rand(2, 5, 3, 20, 36, requires_grad=True)
    for frames, mode in ((16, "squash"), (3, "crop")):
        v.grad = None
        resample_clip(v, frames, (16, 16), mode, 256 / 224).sum().backward()
        assert torch.isfinite(v.grad).all()
    # squash reaches every pixel of every frame
    v.grad = None
    resample_clip(v, 16, (16, 16), "squash").square().sum().backward()
    assert (v.grad.abs().sum(dim=(0, 2)) > 0).all()
