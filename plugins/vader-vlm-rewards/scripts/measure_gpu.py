"""Measure what one reward call costs at the released sizes on a GPU, next to the estimate.

    python plugins/vader-vlm-rewards/scripts/measure_gpu.py                   # both rewards, CUDA, bf16
    python plugins/vader-vlm-rewards/scripts/measure_gpu.py --tiny --device cpu   # the same code, tiny, any machine

The real architectures (Qwen2-VL-7B with HPSv3's head, Qwen2-VL-2B with VideoReward's) with random
weights (memory and time do not depend on the values; nothing is downloaded), loaded through the
rewards' own ``_setup`` (frozen, bf16, gradient checkpointing as configured), the prompt tokenized by
the tiny test tokenizer (its template runs to about 750 / 1050 tokens, Qwen2's vocabulary to 536 /
827: slightly more than the real prompt). One call with gradient to the pixels on a Wan 2.1 frame
(480x832, HPSv3) or clip (81 frames at 16 fps, VideoReward), then its backward; printed: the weights,
the peak of ``torch.cuda.max_memory_allocated`` above them over call and backward, seconds, and the
estimate of ``estimate_memory.py`` (meta device).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch

GIB = 2**30


def _estimate_module() -> Any:
    path = Path(__file__).resolve().parent / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("vlm_estimate_memory", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def build(name: str, tiny: bool, device: Any, dtype: Any, checkpointing: bool) -> Any:
    """The reward with a real-size (or tiny) random model, set up as ``load`` sets it up."""
    from transformers import Qwen2VLConfig
    from vader_vlm_rewards import HPSv3, VideoReward, hpsv3, video_reward
    from vader_vlm_rewards.qwen_vl import RewardModel, tiny_config, tiny_qwen2vl

    cls, module = (HPSv3, hpsv3) if name == "hpsv3" else (VideoReward, video_reward)
    reward = cls(cls.Options(gradient_checkpointing=checkpointing))
    model, head, tokenizer = module.tiny_parts(0)
    if not tiny:
        arch = _estimate_module().ARCHITECTURES[name]
        ids = tiny_config(tokenizer).to_dict()
        config = Qwen2VLConfig(
            text_config=arch["text"],
            vision_config=arch["vision"],
            tie_word_embeddings=arch["tie"],
            **{k: ids[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")},
        )
        with torch.device(device):
            model = tiny_qwen2vl(config).to(dtype)
            hidden = config.text_config.hidden_size
            head = hpsv3.hpsv3_head(hidden) if name == "hpsv3" else torch.nn.Linear(hidden, 1, bias=False)
    if name == "hpsv3":
        head_dtype = torch.float32
        reward._setup(RewardModel(model, head, head_dtype=head_dtype), tokenizer, reward.pixels, device, dtype)
    else:
        meta = {"data_config": video_reward.RELEASE_DATA, "inference_config": video_reward.RELEASE_NORM}
        reward._setup(RewardModel(model, head), tokenizer, meta, device, dtype)
    return reward


def measure(name: str, tiny: bool, device: Any, checkpointing: bool = True) -> dict[str, float]:
    dtype = torch.bfloat16
    reward = build(name, tiny, device, dtype, checkpointing)
    frames = 1 if name == "hpsv3" else 81
    video = torch.rand(1, frames, 3, 480, 832, device=device)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    x = video.requires_grad_(True)
    start = time.perf_counter()
    reward(x, ["a red kite flying over a beach at sunset, cinematic, highly detailed"]).sum().backward()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for p in reward.model.parameters()) / GIB
    peak = (torch.cuda.max_memory_allocated() - base) / GIB if cuda else float("nan")
    return {
        "weights": weights,
        "peak_above_weights": peak,
        "seconds": seconds,
        "grad_finite": bool(x.grad.isfinite().all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (checks the script on any machine)")
    parser.add_argument("--reward", choices=["hpsv3", "video_reward"], action="append")
    parser.add_argument("--no-checkpointing", action="store_true")
    a = parser.parse_args()
    names = a.reward or ["hpsv3", "video_reward"]
    est = _estimate_module()
    print(
        "| reward | input | weights GiB | measured peak above weights GiB | estimate GiB | seconds (call + backward) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        m = measure(name, a.tiny, a.device, not a.no_checkpointing)
        e = est.reward_estimate(name, 480, 832, 1 if name == "hpsv3" else 81)
        guess = e["off" if a.no_checkpointing else "block"]
        what = "one 480x832 frame" if name == "hpsv3" else "81 frames of 480x832 at 16 fps"
        print(
            f"| {name} | {what} | {m['weights']:.1f} | {m['peak_above_weights']:.2f} | {guess:.2f} | {m['seconds']:.2f} |"
        )
        assert m["grad_finite"]


if __name__ == "__main__":
    main()
