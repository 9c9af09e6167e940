"""Estimate the GPU memory of a vader training step on VideoCrafter2, without a GPU.

The real architectures (official 512 configuration) are built on the ``meta`` device: no weights are
allocated and no arithmetic runs, but autograd records every tensor it would keep for backward.
Summing those bytes gives the activation memory of one kept UNet call (guidance doubles the batch),
with or without ``backbone.block_checkpointing`` (per-block recomputation, the official
``use_checkpoint``), and of decoding frames with gradient (the 2-D VAE decodes frames independently).

What is counted (attention as GPUs' flash kernels keep it, weights and their views once, with the
weights, a storage saved by several operations once) is described in ``vader_core.estimate``, which
all the backbone plugins' estimates share. With block checkpointing the figure is the block inputs
kept for the whole call plus what the largest single block saves when it is recomputed in backward.
The CUDA allocator and kernel workspaces add to these figures: they are estimates, not measurements.

Usage::

    python plugins/vader-videocrafter/scripts/estimate_memory.py --frames 12 --height 320 --width 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vader_core.estimate import GIB, saved_gib


def estimate(height: int = 320, width: int = 512, frames: int = 12, decoded_frames: int = 1, k: int = 1,
             block_checkpointing: bool = False, dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, guidance on, vader's gradient checkpointing on).

    Returns:
        `dict[str, float]`: ``weights``, ``unet`` (one kept call), ``decoder`` and ``peak``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import open_clip
    from diffusers import AutoencoderKL
    from diffusers.utils import logging

    from vader_videocrafter.backbone import VAE_CONFIG
    from vader_videocrafter.text_encoder import build_openclip_text_model
    from vader_videocrafter.unet import LVDMUNet3DModel

    logging.set_verbosity_error()
    h, w = height // 8, width // 8
    with torch.device("meta"):
        unet = LVDMUNet3DModel().to(dtype=dtype).requires_grad_(False)
        vae = AutoencoderKL(**VAE_CONFIG).to(dtype=dtype).requires_grad_(False)
    text = build_openclip_text_model(open_clip.get_model_config("ViT-H-14"), "meta")
    n_params = sum(p.numel() for m in (unet, vae, text) for p in m.parameters())
    layers = [m for blocks in (unet.input_blocks, [unet.init_attn, unet.middle_block], unet.output_blocks)
              for block in blocks for m in block]
    with torch.device("meta"):
        x = torch.randn(2, 4, frames, h, w, dtype=dtype, requires_grad=True)
        emb = torch.randn(2, 77, 1024, dtype=dtype)
        unet_gib, largest_block = saved_gib(lambda: unet(x, torch.tensor([1, 1]), emb, fps=24), layers)
        if block_checkpointing:
            unet.enable_gradient_checkpointing()
            inputs_gib, _ = saved_gib(lambda: unet(x, torch.tensor([1, 1]), emb, fps=24))
            unet_gib = inputs_gib + largest_block  # block inputs, plus one block recomputed at a time
        z = torch.randn(decoded_frames, 4, h, w, dtype=dtype, requires_grad=True)
        dec_gib, _ = saved_gib(lambda: vae.decode(z).sample)
    weights = n_params * torch.empty((), dtype=dtype).element_size() / GIB
    # vader's gradient checkpointing frees the decoder's activations before the kept calls are recomputed
    # one at a time.
    return {"weights": weights, "unet": unet_gib, "decoder": dec_gib, "peak": weights + max(unet_gib, dec_gib),
            "params": n_params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--decoded-frames", type=int, default=1)
    a = parser.parse_args()
    for block in (False, True):
        r = estimate(a.height, a.width, a.frames, a.decoded_frames, block_checkpointing=block)
        print(f"VideoCrafter2 {a.frames} frames {a.height}x{a.width}, bf16, block_checkpointing={block} "
              f"(GiB, estimated): weights {r['weights']:.1f} ({r['params'] / 1e9:.2f}B parameters); one kept UNet "
              f"call {r['unet']:.1f}; decoding {a.decoded_frames} frame(s) {r['decoder']:.2f}; peak about {r['peak']:.0f}")


if __name__ == "__main__":
    main()
