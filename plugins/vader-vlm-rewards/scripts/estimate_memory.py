"""Estimate the GPU memory a Qwen2-VL reward adds to a vader training step (K=1, bf16), without a GPU.

The reward models' real architectures (Qwen2-VL-7B for HPSv3, Qwen2-VL-2B for VideoReward) are built on
the ``meta`` device and one reward call at the run's frame size is traced with ``vader_core.estimate``
(attention counted as flash kernels keep it, weights once): what autograd keeps with every layer
stored, and with the vision blocks and decoder layers checkpointed (``gradient_checkpointing``, the
default: each layer's input kept, one layer recomputed at a time in backward). The call is the
reward's: the vision tower on the frames' patches, the language model on the prompt with the
picture's tokens in it, cut after the last reward token read, the head at that token. (The scatter of
the picture features into the prompt's embeddings is a concatenation here: the meta device cannot
run a data-dependent scatter; it saves nothing for backward either way.) Prompt lengths are measured
with Qwen2's vocabulary and a 12-word prompt (HPSv3: 536 tokens before the picture's; VideoReward:
309 / 576 / 827 up to its VQ / MQ / TA token).

The step: the backbone's figures come from its own estimate (``plugins/vader-wan/scripts/
estimate_memory.py`` for Wan), combined by ``vader_core.estimate.peak_with_reward``: the larger of
(decoding + the reward's weights and activations) and (the denoiser's recomputation, + the reward's
weights unless ``offload``). Estimates, not measurements: the CUDA allocator, kernel workspaces and
fragmentation add to them.

Usage::

    python plugins/vader-vlm-rewards/scripts/estimate_memory.py            # Wan 2.1 1.3B, 480x832x81
    python plugins/vader-vlm-rewards/scripts/estimate_memory.py --height 480 --width 832 --frames 33
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import torch

from vader_core.estimate import GIB, blocks_gib, peak_with_reward

_MROPE = {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}
_VISION = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4}
#: The released models' configurations (Qwen2-VL-7B-Instruct and -2B-Instruct, embeddings resized for the
#: reward tokens).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "hpsv3": {
        "text": {"vocab_size": 151658, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                 "num_attention_heads": 28, "num_key_value_heads": 4, "rope_parameters": _MROPE},
        "vision": {**_VISION, "hidden_size": 3584},
        "tie": False,
    },
    "video_reward": {
        "text": {"vocab_size": 151660, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                 "num_attention_heads": 12, "num_key_value_heads": 2, "rope_parameters": _MROPE},
        "vision": {**_VISION, "hidden_size": 1536},
        "tie": True,
    },
}  # fmt: skip
#: Prompt tokens before the picture's and after them, up to the reward token read (Qwen2's vocabulary).
TEXT_TOKENS = {"hpsv3": 536, "video_reward": 827}


def reward_estimate(name: str, height: int, width: int, frames: int, video_fps: float = 16.0) -> dict[str, Any]:
    """GiB of one reward call in bf16: ``weights`` and activations ``off`` (stored) and ``block``
    (checkpointed: layer inputs + the largest layer recomputed); ``frames`` are the decoded frames
    (HPSv3: each one an image; VideoReward: the clip, sampled at 2 fps of ``video_fps``)."""
    from transformers import Qwen2VLConfig, Qwen2VLModel
    from transformers.utils import logging
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids
    from vader_vlm_rewards.hpsv3 import PIXELS, hpsv3_head
    from vader_vlm_rewards.preprocess import num_sampled_frames, smart_resize
    from vader_vlm_rewards.video_reward import VIDEO_MIN_PIXELS

    logging.set_verbosity_error()
    arch = ARCHITECTURES[name]
    config = Qwen2VLConfig(text_config=arch["text"], vision_config=arch["vision"], tie_word_embeddings=arch["tie"])
    with torch.device("meta"):
        model = Qwen2VLModel(config).to(torch.bfloat16).requires_grad_(False)
        head = (hpsv3_head(3584) if name == "hpsv3" else torch.nn.Linear(1536, 1, bias=False)).requires_grad_(False)
    if name == "hpsv3":
        h, w = smart_resize(height, width, PIXELS, PIXELS)
        items, t = frames, 1  # each frame an image of one temporal patch
    else:
        h, w = smart_resize(height, width, VIDEO_MIN_PIXELS, 200704)
        n = num_sampled_frames(frames, video_fps, 2.0)
        items, t = 1, n // 2
    grid = torch.tensor([[t, h // 14, w // 14]] * items)
    patches = int(grid.prod(-1).sum())
    picture_tokens = patches // 4 // items
    x = torch.empty(patches, 1176, device="meta", dtype=torch.bfloat16, requires_grad=True)
    kwargs = {"position_ids": get_vision_position_ids(grid, 2).to("meta"), "cu_seqlens": get_vision_cu_seqlens(grid)}
    text = TEXT_TOKENS[name]
    lm = model.language_model

    def call() -> torch.Tensor:
        features = model.visual(x, grid_thw=grid, **kwargs).pooler_output.view(items, picture_tokens, -1)
        prompt = lm.embed_tokens(torch.zeros(items, text, dtype=torch.long, device="meta"))
        embeds = torch.cat([prompt[:, :20], features, prompt[:, 20:]], dim=1)
        hidden = lm(inputs_embeds=embeds, use_cache=False).last_hidden_state[:, -1]
        return head.to(hidden.dtype)(hidden)

    acts = blocks_gib(call, [*model.visual.blocks, *lm.layers])
    params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    return {
        **acts,
        "weights": params * 2 / GIB,
        "params": params,
        "size": (h, w),
        "patches": patches,
        "llm_tokens": items * (text + picture_tokens),
        "sampled_frames": t * 2 if name == "video_reward" else frames,
    }


def _wan_estimate() -> Any:
    path = Path(__file__).resolve().parents[2] / "vader-wan" / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("vader_wan_estimate", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--video-fps", type=float, default=16.0)
    a = parser.parse_args()
    wan = _wan_estimate()("t2v-1.3b", a.height, a.width, a.frames)
    denoise = 2 * wan["transformer_call"] + wan["block"]
    print(
        f"Wan 2.1 T2V 1.3B at {a.height}x{a.width}x{a.frames}: weights {wan['weights']:.1f} GiB, denoiser recompute "
        f"{denoise:.1f}, decoding one frame {wan['decoder']:.1f} (frame 0) / {wan['decoder_last']:.1f} (last), every "
        f"frame {wan['decoder_all']:.0f}; step without a reward {wan['peak']:.1f} GiB\n"
    )
    print(
        "| reward | frames scored | reward weights | reward activations, stored / checkpointed | "
        "step peak (default) | with `offload` | layers stored |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    cases = [
        ("hpsv3", 1, wan["decoder"], "1 decoded frame (frame 0)"),
        ("hpsv3", 1, wan["decoder_last"], "1 decoded frame (the last)"),
        ("video_reward", a.frames, wan["decoder_all"], f"whole clip ({a.frames} frames decoded)"),
    ]
    for name, frames, decode, what in cases:
        r = reward_estimate(name, a.height, a.width, frames, a.video_fps)
        peak = peak_with_reward(wan["weights"], denoise, decode, r["weights"], r["block"])
        off = peak_with_reward(wan["weights"], denoise, decode, r["weights"], r["block"], offload=True)
        stored = peak_with_reward(wan["weights"], denoise, decode, r["weights"], r["off"])
        print(
            f"| {name} | {what}: {r['sampled_frames']} x {r['size'][0]}x{r['size'][1]}, {r['llm_tokens']} LLM tokens "
            f"| {r['weights']:.1f} | {r['off']:.2f} / {r['block']:.2f} | **{peak:.1f}** | {off:.1f} | {stored:.1f} |"
        )


if __name__ == "__main__":
    main()
