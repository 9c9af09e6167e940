"""Estimate the GPU memory of a vader training step on Stable Video Diffusion, without a GPU.

The real architectures (``stabilityai/stable-video-diffusion-img2vid`` configuration) are built on the
``meta`` device: no weights are allocated and no arithmetic runs, but autograd records every tensor
it would keep for backward. Summing those bytes gives the activation memory of the parts of a step:

* one kept UNet call (classifier-free guidance doubles the batch), as recomputed in backward by
  vader's gradient checkpointing; with the UNet's own resnet checkpointing (option
  ``unet_gradient_checkpointing``) the stored part plus the largest recomputed resnet;
* the temporal decoder decoding one chunk with gradient, with and without its block checkpointing
  (option ``vae_gradient_checkpointing``).

The peak of a step with truncation K=1 is about the weights plus the larger of the two, since the
decoder's activations are freed before the UNet call is recomputed. What is counted (attention as
GPUs' flash kernels keep it, weights once, shared storages once) is described in
``vader_core.estimate``, which all the backbone plugins' estimates share. The CUDA allocator, kernel
workspaces and fragmentation add to these figures: they are estimates, not measurements.

Usage::

    python plugins/vader-svd/scripts/estimate_memory.py --frames 14 --height 576 --width 1024 --chunk 2
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch

from vader_core.estimate import GIB, saved_gib


def _profile(
    model: torch.nn.Module, blocks: list[torch.nn.Module], fn: Callable[[], object]
) -> tuple[float, float, float]:
    """(saved without checkpointing, saved with the model's own checkpointing, largest block) in GiB."""
    model.disable_gradient_checkpointing()
    full, largest = saved_gib(fn, blocks)
    model.enable_gradient_checkpointing()
    try:
        stored, _ = saved_gib(fn)
    finally:
        model.disable_gradient_checkpointing()
    return full, stored, largest


def estimate(height: int = 576, width: int = 1024, frames: int = 14, chunk: int | None = None,
             dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, K=1, guidance on).

    Args:
        height (`int`, *optional*, defaults to `576`): frame height.
        width (`int`, *optional*, defaults to `1024`): frame width.
        frames (`int`, *optional*, defaults to `14`): frames per video.
        chunk (`int`, *optional*): frames the temporal decoder decodes together (`None`: all).
        dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`): weights and activations.

    Returns:
        `dict[str, float]`: ``weights``, ``unet`` / ``unet_ckpt`` (one kept UNet call without / with
        resnet checkpointing), ``decoder`` / ``decoder_ckpt`` (one chunk with gradient, without / with
        block checkpointing), and ``peak`` (weights + the larger of ``unet_ckpt`` and ``decoder_ckpt``).
    """
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from diffusers.models.resnet import SpatioTemporalResBlock
    from diffusers.utils import logging
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    logging.set_verbosity_error()  # casting meta modules is harmless

    chunk = chunk or frames
    h, w = height // 8, width // 8
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel().to(device="meta", dtype=dtype).requires_grad_(False)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2, latent_channels=4,
        ).to(device="meta", dtype=dtype).requires_grad_(False)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=1024, hidden_act="gelu",
        ))
        n_params = sum(p.numel() for m in (unet, vae, encoder) for p in m.parameters())
        x = torch.randn(2, frames, 8, h, w, dtype=dtype, requires_grad=True)
        emb, ids = torch.randn(2, 1, 1024, dtype=dtype), torch.randn(2, 3, dtype=dtype)
        resnets = [m for m in unet.modules() if isinstance(m, SpatioTemporalResBlock)]
        unet_full, unet_stored, unet_block = _profile(
            unet, resnets, lambda: unet(x, torch.tensor(1.0), emb, ids).sample)
        z = torch.randn(chunk, 4, h, w, dtype=dtype, requires_grad=True)
        blocks = [vae.decoder.mid_block, *vae.decoder.up_blocks]
        dec_full, dec_stored, dec_block = _profile(vae, blocks, lambda: vae.decode(z, num_frames=chunk).sample)
    weights = n_params * torch.empty((), dtype=dtype).element_size() / GIB
    out = {
        "weights": weights,
        "unet": unet_full, "unet_ckpt": unet_stored + unet_block,
        "decoder": dec_full, "decoder_ckpt": dec_stored + dec_block,
    }
    out["peak"] = weights + max(out["unet_ckpt"], out["decoder_ckpt"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--chunk", type=int, default=None, help="decode chunk size (default: all frames)")
    a = parser.parse_args()
    r = estimate(a.height, a.width, a.frames, a.chunk)
    print(f"SVD {a.frames} frames {a.height}x{a.width}, decode chunk {a.chunk or a.frames}, bf16 (GiB, estimated):")
    print(f"  weights {r['weights']:.1f}")
    print(f"  one kept UNet call: {r['unet']:.1f}; with resnet checkpointing {r['unet_ckpt']:.1f}")
    print(f"  decoder chunk with gradient: {r['decoder']:.1f}; with block checkpointing {r['decoder_ckpt']:.1f}")
    print(f"  peak of a K=1 step (both checkpointing options on): about {r['peak']:.0f}")


if __name__ == "__main__":
    main()
