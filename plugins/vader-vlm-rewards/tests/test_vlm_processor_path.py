"""The differentiable float32 path against transformers' own, non-differentiable processing: the chat
template rendered by ``Qwen2VLProcessor.apply_chat_template``, tokenized, and the pictures turned into
patches by ``Qwen2VLImageProcessor`` / ``Qwen2VLVideoProcessor`` (8-bit pictures, resized with rounding
to 8 bits), then the same tiny model.

Tolerance: equal (within 1e-6) when the processor does not resize. When it does, the processor rounds
the resized picture to 8 bits and the reward does not: the tiny HPSv3's mu then differs by up to 3.5e-4
(measured over 15 procedural pictures of 30x30 to 200x260, whose scores spread with a standard
deviation of 5e-3), VideoReward's raw outputs by less; the tests allow 5e-4."""

import numpy as np
import pytest
import torch
from PIL import Image
from vader_vlm_rewards import HPSv3, VideoReward, hpsv3, video_reward
from vader_vlm_rewards.qwen_vl import CHAT_TEMPLATE

from vader_core.testing import draw_image

PROMPT = "a red kite over a beach"


def _processor(reward, pixels):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": pixels[0], "longest_edge": pixels[1]}
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size, do_sample_frames=False),
        tokenizer=reward.runtime.prompter.tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def _rendered(processor, kind, text):
    messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("size, tol", [((56, 56), 1e-6), ((40, 72), 5e-4), ((120, 90), 5e-4)])
def test_hpsv3_equals_the_processor_path(size, tol):
    r = HPSv3()
    r.load_tiny("cpu", torch.float32, seed=0)
    picture = np.asarray(draw_image(*size, seed=0).convert("RGB"))
    text = hpsv3.template().format(text_prompt=PROMPT)
    proc = _processor(r, r.pixels)
    batch = proc(text=[_rendered(proc, "image", text)], images=[Image.fromarray(picture)], return_tensors="pt")
    p = r.runtime.prompter
    with torch.no_grad():
        ref = r.model(
            batch["pixel_values"],
            batch["image_grid_thw"],
            batch["input_ids"],
            None,
            p.ids["<|image_pad|>"],
            p.reward_ids,
        )[0, 0, 0]
        ours = r(torch.from_numpy(picture).permute(2, 0, 1).float().div(255)[None, None], [PROMPT])[0]
    ids = p.batch([text], "<|image_pad|>", int(batch["image_grid_thw"][0].prod()) // 4, 0, "cpu")[0][0].tolist()
    assert ids == batch["input_ids"][0, : len(ids)].tolist(), "prompt ids differ from the chat template's"
    assert abs(float(ours - ref)) <= tol, (float(ours), float(ref))


@pytest.mark.parametrize("size, tol", [((56, 56), 1e-6), ((44, 70), 5e-4)])
def test_videoreward_equals_the_processor_path(size, tol):
    r = VideoReward(VideoReward.Options(video_fps=4, normalize=False))
    r.load_tiny("cpu", torch.float32, seed=0)
    frames = [np.asarray(draw_image(*size, seed=i).convert("RGB")) for i in range(8)]
    clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    idx = r.sampled_frames(clip.shape[0])  # 8 frames at 4 fps: 2 s, 4 frames
    text = video_reward.template().format(text_prompt=PROMPT)
    proc = _processor(r, r.pixels)
    batch = proc(text=[_rendered(proc, "video", text)], videos=[clip[idx]], return_tensors="pt")
    p = r.runtime.prompter
    with torch.no_grad():
        ref = r.model(
            batch["pixel_values_videos"],
            batch["video_grid_thw"],
            batch["input_ids"],
            None,
            p.ids["<|video_pad|>"],
            p.reward_ids,
        )[0, :, 0]
        dims = r.dimension_scores(clip[None].float() / 255, [PROMPT])
    ours = torch.stack([dims["vq"][0], dims["mq"][0], dims["ta"][0]])
    assert len(idx) == 4 and batch["video_grid_thw"][0, 0] == 2
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol)
