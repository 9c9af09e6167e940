"""Peak GPU memory and time of one reward step of ``mps`` and ``image_reward`` at their released sizes.

Random weights of the real architectures (no download): the score of ``frames`` decoded frames of 480x832,
forward and backward to the pixels, in bf16, with and without ``gradient_checkpointing``. Printed per setting:
the weights' memory, the peak memory above the weights during the step, and the median time of 3 steps after
a warm-up. Needs a CUDA GPU::

    python plugins/vader-clip-rewards/scripts/measure_memory.py --frames 1 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def build(name: str, checkpointing: bool):  # noqa: ANN201
    import torch
    from transformers import BlipTextModel, BlipVisionModel, CLIPModel
    from vader_clip_rewards import MPS, ImageReward
    from vader_clip_rewards import image_reward as ir_mod
    from vader_clip_rewards import mps as mps_mod
    from vader_clip_rewards._mlp import LaionAestheticMLP
    from vader_clip_rewards._mps_model import CrossModel

    if name == "mps":
        r = MPS(MPS.Options(gradient_checkpointing=checkpointing))
        clip = CLIPModel(mps_mod.clip_h_config())
        r._setup(clip, CrossModel(1024, **mps_mod.CROSS_H), "cuda", torch.bfloat16)
    else:
        r = ImageReward(ImageReward.Options(gradient_checkpointing=checkpointing))
        vision = BlipVisionModel(ir_mod.vision_config())
        text = BlipTextModel(ir_mod.text_config(1024), add_pooling_layer=False)
        r._setup(vision, text, LaionAestheticMLP(768), ir_mod.tiny_tokenizer(), "cuda", torch.bfloat16)
    return r


def measure(name: str, frames_list: list[int], checkpointing: bool) -> list[dict]:
    import torch

    torch.cuda.empty_cache()
    with torch.device("cuda"):  # random initialisation on the GPU: a CPU init of a billion weights takes minutes
        r = build(name, checkpointing)
    weights = torch.cuda.memory_allocated()
    rows = []
    for frames in frames_list:
        times = []
        for i in range(4):
            video = torch.rand(1, frames, 3, 480, 832, device="cuda", requires_grad=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            t = time.perf_counter()
            r(video, ["a corgi running on the beach at sunset"]).sum().backward()
            torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t)
            peak = torch.cuda.max_memory_allocated() - base
        rows.append(
            {
                "reward": name,
                "frames": frames,
                "gradient_checkpointing": checkpointing,
                "weights_gb": weights / 2**30,
                "step_peak_above_weights_and_input_gb": peak / 2**30,
                "step_s": statistics.median(times),
            }
        )
    del r
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, nargs="+", default=[1, 4])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    rows = [row for n in ("mps", "image_reward") for c in (False, True) for row in measure(n, a.frames, c)]
    for r in rows:
        print(json.dumps(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
