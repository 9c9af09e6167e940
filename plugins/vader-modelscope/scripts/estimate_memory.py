"""Estimate the GPU memory of a vader training step on ModelScope text-to-video, without a GPU.

The real architectures (``damo-vilab/text-to-video-ms-1.7b`` configuration) are built on the ``meta``
device: no weights are allocated and no arithmetic runs, but autograd records every tensor it would
keep for backward. Summing those bytes gives the activation memory of one kept UNet call (guidance
doubles the batch), which vader's gradient checkpointing recomputes in backward, and of decoding
frames with gradient (the 2-D VAE decodes frames independently, so it scales with
``memory.decoded_frames``).

What is counted (attention as GPUs' flash kernels keep it, weights once, shared storages once) is
described in ``vader_core.estimate``, which all the backbone plugins' estimates share. The CUDA
allocator, kernel workspaces and fragmentation add to these figures: they are estimates, not
measurements.

Usage::

    python plugins/vader-modelscope/scripts/estimate_memory.py --frames 16 --size 384 --decoded-frames 1
"""

from __future__ import annotations

import argparse

import torch

from vader_core.estimate import GIB, saved_gib


def estimate(size: int = 384, frames: int = 16, decoded_frames: int = 1, k: int = 1, checkpointing: bool = True,
             dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, guidance on).

    Args:
        size (`int`, *optional*, defaults to `384`): frame height and width.
        frames (`int`, *optional*, defaults to `16`): frames per video.
        decoded_frames (`int`, *optional*, defaults to `1`): frames decoded with gradient.
        k (`int`, *optional*, defaults to `1`): kept denoising steps (truncation).
        checkpointing (`bool`, *optional*, defaults to `True`): vader's ``memory.gradient_checkpointing``.
        dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`): weights and activations.

    Returns:
        `dict[str, float]`: ``weights``, ``unet`` (one kept call), ``decoder`` and ``peak``.
    """
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from diffusers.utils import logging
    from transformers import CLIPTextConfig, CLIPTextModel

    logging.set_verbosity_error()  # casting meta modules is harmless
    h = size // 8
    with torch.device("meta"):
        unet = UNet3DConditionModel(
            block_out_channels=(320, 640, 1280, 1280), attention_head_dim=64, cross_attention_dim=1024,
            down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3, layers_per_block=2, norm_num_groups=32,
        ).to(device="meta", dtype=dtype).requires_grad_(False)
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
        ).to(device="meta", dtype=dtype).requires_grad_(False)
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
            max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
        ))
        n_params = sum(p.numel() for m in (unet, vae, text) for p in m.parameters())
        x = torch.randn(2, 4, frames, h, h, dtype=dtype, requires_grad=True)
        emb = torch.randn(2, 77, 1024, dtype=dtype)
        unet_gib, _ = saved_gib(lambda: unet(x, torch.tensor(1.0), emb).sample)
        z = torch.randn(decoded_frames, 4, h, h, dtype=dtype, requires_grad=True)
        dec_gib, _ = saved_gib(lambda: vae.decode(z).sample)
    weights = n_params * torch.empty((), dtype=dtype).element_size() / GIB
    # With checkpointing the decoder's activations are freed before the kept calls are recomputed one by one;
    # without, all K calls and the decoder are stored at once.
    activations = max(unet_gib, dec_gib) if checkpointing else k * unet_gib + dec_gib
    return {"weights": weights, "unet": unet_gib, "decoder": dec_gib, "peak": weights + activations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--decoded-frames", type=int, default=1)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--no-checkpointing", action="store_true")
    a = parser.parse_args()
    r = estimate(a.size, a.frames, a.decoded_frames, a.k, not a.no_checkpointing)
    print(f"ModelScope {a.frames} frames {a.size}x{a.size}, K={a.k}, bf16 (GiB, estimated):")
    print(f"  weights {r['weights']:.1f}; one kept UNet call {r['unet']:.1f}; "
          f"decoding {a.decoded_frames} frame(s) {r['decoder']:.2f}")
    print(f"  peak of a step: about {r['peak']:.0f}")


if __name__ == "__main__":
    main()
