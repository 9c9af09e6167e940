"""The differentiable Qwen2-VL preprocessing: the pipelines' integers (sizes, frame counts, indices), the
processor's patch layout, the resize against PIL's, and the prompt template bytes."""

import hashlib
import math

import numpy as np
import pytest
import torch
from PIL import Image
from vader_vlm_rewards import hpsv3, preprocess, video_reward

from vader_core.errors import ConfigError

BUDGET = 256 * 28 * 28


@pytest.mark.parametrize(
    "size, budget, expected",
    [
        ((480, 832), (BUDGET, BUDGET), (336, 588)),  # a Wan 2.1 frame: 252 image tokens
        ((1024, 1024), (BUDGET, BUDGET), (448, 448)),
        ((256, 256), (BUDGET, BUDGET), (448, 448)),  # small pictures are scaled up to the budget
        ((320, 512), (BUDGET, BUDGET), (364, 588)),  # the upward branch rounds up, past the budget
        ((752, 1360), (128 * 28 * 28, BUDGET), (308, 588)),  # VideoAlign's example_1_A
        ((144, 176), (128 * 28 * 28, BUDGET), (308, 364)),
    ],
)
def test_smart_resize_is_qwen_vl_utils_rule(size, budget, expected):
    assert preprocess.smart_resize(*size, *budget) == expected


def test_smart_resize_agrees_with_transformers_where_the_rules_meet():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for h, w in [(480, 832), (720, 1280), (300, 451), (512, 600), (768, 1280), (64, 4000)]:
        assert preprocess.smart_resize(h, w, 3136, 1003520) == smart_resize(h, w, 28, 3136, 1003520)
    with pytest.raises(ConfigError, match="aspect ratio"):
        preprocess.smart_resize(10, 2500, 3136, BUDGET)


@pytest.mark.parametrize(
    "total, fps, n",
    [(81, 16, 10), (126, 24, 10), (152, 30, 10), (144, 24, 12), (60, 16, 8), (16, 8, 4), (3, 16, 2), (5, 16, 4)],
)
def test_frame_count_is_smart_nframes_at_2_fps(total, fps, n):
    assert preprocess.num_sampled_frames(total, fps, 2.0) == n


def test_frame_indices_and_too_short_videos():
    assert preprocess.sample_frames(81, 10) == [0, 9, 18, 27, 36, 44, 53, 62, 71, 80]
    assert preprocess.sample_frames(126, 10) == torch.linspace(0, 125, 10).round().long().tolist()
    with pytest.raises(ConfigError, match="too short"):
        preprocess.num_sampled_frames(1, 16, 2.0)


def test_frames_smaller_than_a_merged_patch_are_one_line():
    preprocess.check_frame_size(28, 28, "hpsv3")
    with pytest.raises(ConfigError, match=r"frames of 16x40 pixels are too small for Qwen2-VL.*28x28"):
        preprocess.check_frame_size(16, 40, "hpsv3")


def test_image_patches_are_the_image_processors():
    """Our patchify of a frame at a size the processor keeps equals ``Qwen2VLImageProcessor``'s output."""
    from transformers import Qwen2VLImageProcessor

    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (56, 84, 3), dtype=np.uint8) for _ in range(2)]
    proc = Qwen2VLImageProcessor()(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
    frames = torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in pictures])
    ours, grid = preprocess.image_inputs(frames, 28 * 28, 56 * 84)
    torch.testing.assert_close(grid, proc["image_grid_thw"])
    torch.testing.assert_close(ours, proc["pixel_values"], atol=1e-5, rtol=0)


def test_video_patches_are_the_video_processors():
    from transformers import Qwen2VLVideoProcessor

    video = torch.randint(0, 256, (4, 3, 56, 84), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    proc = Qwen2VLVideoProcessor()(videos=[video], do_resize=False, return_tensors="pt")
    ours, grid = preprocess.video_inputs(video[None].float() / 255, 28 * 28, 56 * 84)
    torch.testing.assert_close(grid, proc["video_grid_thw"])
    torch.testing.assert_close(ours, proc["pixel_values_videos"], atol=1e-5, rtol=0)


def _noisy_picture() -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:120, 0:200]
    smooth = 127 + 100 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[..., None] * np.ones(3)
    return np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(84, 140), (224, 364)], ids=["down", "up"])
def test_resize_is_pils_bicubic_filter(size):
    """PIL's 8-bit bicubic resize is the same filter run width then height, each pass rounded to 8 bits and
    clipped to [0, 255]: our float resize with those two roundings gives PIL's pixels (all but a few in
    ten thousand, one level off: PIL's fixed-point filter weights). Without them (the reward's path) the
    difference is 0.3 levels on average; the clipping of the filter's overshoot after the first pass
    makes the largest ones (a few levels, at clipped extremes)."""
    picture = _noisy_picture()
    x = torch.from_numpy(picture).permute(2, 0, 1).double()[None] / 255
    pil = torch.from_numpy(np.asarray(Image.fromarray(picture).resize(size[::-1], Image.BICUBIC))).permute(2, 0, 1)
    width_first = (preprocess.resize(x, (120, size[1])) * 255).round().clamp(0, 255) / 255
    two_pass = (preprocess.resize(width_first, size) * 255).round().clamp(0, 255)[0]
    assert (two_pass - pil.double()).abs().max() <= 1 and (two_pass != pil).double().mean() < 1e-3
    float_path = (preprocess.resize(x, size) * 255)[0]
    assert (float_path - pil.double()).abs().mean() < 0.35


def test_resize_is_torchvisions_uint8_bicubic_before_rounding():
    """VideoAlign resizes uint8 frames with torchvision's antialiased bicubic: our float result, rounded and
    clipped, is the same picture (all but a few pixels in 10^4); unrounded it differs by a quarter of a level
    on average (half a level at most, and torchvision's fixed-point weights, but where the overshoot is clipped)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    u8 = torch.from_numpy(_noisy_picture()).permute(2, 0, 1)[None].contiguous()
    for size in [(84, 140), (224, 364)]:
        tv = TF.resize(u8, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True).double()
        ours = preprocess.resize(u8.double() / 255, size) * 255
        assert (ours.round().clamp(0, 255) != tv).double().mean() < 1e-3
        inside = (ours >= 0) & (ours <= 255)
        assert (ours - tv)[inside].abs().max() < 0.51 and (ours - tv).abs().mean() < 0.3


def test_the_gradient_reaches_every_pixel_through_the_preprocessing():
    x = torch.rand(1, 3, 40, 60, requires_grad=True)
    pixel_values, _ = preprocess.image_inputs(x, BUDGET // 4, BUDGET // 4)
    pixel_values.square().sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.99


def test_templates_are_the_authors_bytes():
    """sha256 of the authors' strings (``INSTRUCTION + prompt_with_special_token`` of hpsv3 1.0.0, and
    VideoAlign's ``DETAILED_PROMPT_WITH_SPECIAL_TOKEN``), trailing spaces included: an editor that strips
    them changes what the model reads."""
    for text, digest, trailing in [
        (hpsv3.template(), "f6ee57479d4e9eee76b49c00dc962e1e696a5a2b3cc32cebd9b1fa76fe27502c", 4),
        (video_reward.template(), "fdb6309bac618dd0c8b1b589d3a0970a974f7856eecbb355a190b2dce54af700", 5),
    ]:
        assert hashlib.sha256(text.encode()).hexdigest() == digest
        assert sum(line.endswith(" ") for line in text.split("\n")) == trailing
        assert text.count("{text_prompt}") == 1 and text.count("{") == 1
    assert hpsv3.template().rstrip().endswith("<|Reward|>\n\nEND")
    assert [video_reward.template().index(t) for t in video_reward.REWARD_TOKENS] == sorted(
        video_reward.template().index(t) for t in video_reward.REWARD_TOKENS
    )
    assert math.isclose(len(hpsv3.template()), 2590)


def test_frame_rates_unlike_training_are_reported_once_per_clip_length():
    import warnings

    from vader_vlm_rewards import VideoReward

    r = VideoReward()
    r.load_tiny("cpu", torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(r.sampled_frames(81)) == 10  # Wan 2.1: 81 frames at 16 fps, sampled as trained
        assert len(r.sampled_frames(16)) == len(r.sampled_frames(16)) == 4  # a 1 s clip: at least 4 frames
    assert [str(w.message) for w in caught] == [
        "video_reward: scores 4 of the 16 frames of a 1.00 s clip (video_fps 16): 4.00 frames per second, while "
        "VideoReward was trained on 2 per second; its scores grow with the number of frames, so they are not "
        "comparable with those of clips sampled at 2 per second"
    ]
