"""Estimate the GPU memory of a vader training step on ModelScope text-to-video, without a GPU.

The real architectures (``damo-vilab/text-to-video-ms-1.7b`` configuration) are built on the ``meta``
device: no weights are allocated and no arithmetic runs, but autograd records every tensor it would
keep for backward. Summing those bytes gives the activation memory of one kept UNet call (guidance
doubles the batch) at each level of ``memory.gradient_checkpointing`` (``false``: stored; ``call``:
recomputed whole in backward; ``true``/``block``: recomputed layer by layer, with the layers the
backbone names in ``checkpoint_blocks()``, only their inputs kept), with and without
``memory.split_guidance``, and of decoding frames with gradient (the 2-D VAE decodes frames
independently, so it scales with ``memory.decoded_frames``; at block level its layers are recomputed
too). With ``memory.offload_encoders`` (on for GPU runs) the text encoder is off the GPU during the step.

What is counted (attention as GPUs' flash kernels keep it, weights once, shared storages once, the
inputs block checkpoints hold) is described in ``vader_core.estimate``, which all the backbone
plugins' estimates share. The CUDA allocator, kernel workspaces, gradients of the activations in
flight and fragmentation add to these figures: they are estimates, not measurements.

Usage::

    python plugins/vader-modelscope/scripts/estimate_memory.py --frames 16 --size 384 --decoded-frames 1
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.estimate import GIB, blocks_gib, kept_call_gib, step_peak

LEVELS = {"off": False, "call": "call", "block": True}


def released_components() -> dict[str, Any]:
    """The UNet, VAE and text encoder of ``damo-vilab/text-to-video-ms-1.7b`` (``unet``, ``vae``, ``text_encoder``),
    built on the current device (``meta`` here; ``benchmarks.gpu`` builds them on a GPU)."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet3DConditionModel(
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=64,
        cross_attention_dim=1024,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        layers_per_block=2,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_attention_heads=16,
            num_hidden_layers=23,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
        )
    )
    return {"unet": unet, "vae": vae, "text_encoder": text}


def estimate(
    size: int = 384,
    frames: int = 16,
    decoded_frames: int = 1,
    k: int = 1,
    checkpointing: bool | str = True,
    dtype: torch.dtype = torch.bfloat16,
    split_guidance: bool = True,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, guidance on).

    Args:
        size (`int`, *optional*, defaults to `384`): frame height and width.
        frames (`int`, *optional*, defaults to `16`): frames per video.
        decoded_frames (`int`, *optional*, defaults to `1`): frames decoded with gradient.
        k (`int`, *optional*, defaults to `1`): kept denoising steps (truncation).
        checkpointing (`bool` or `str`, *optional*, defaults to `True`): ``memory.gradient_checkpointing``
            (``True``/``"block"``, ``"call"`` or ``False``).
        dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`): weights and activations.
        split_guidance (`bool`, *optional*, defaults to `True`): ``memory.split_guidance``.
        offload_encoders (`bool`, *optional*, defaults to `True`): ``memory.offload_encoders``.
        components (`dict`, *optional*): ``unet``, ``vae`` and ``text_encoder`` built on the ``meta`` device
            instead of the released architecture's (benchmarks check the estimate against a measured step of
            a scaled-down architecture this way).

    Returns:
        `dict[str, float]`: ``weights`` (all components), ``weights_gpu`` (those on the GPU during the step),
        ``unet`` (one kept call stored whole), ``unet_call`` / ``unet_block`` (recomputed whole / layer by
        layer), ``unet_boundaries``, ``decoder`` / ``decoder_block``, ``peak`` (at ``checkpointing``) and
        ``peak_off`` / ``peak_call`` / ``peak_block``.
    """
    from diffusers.utils import logging
    from vader_modelscope import ModelScopeBackbone

    from vader_core.checkpointing import level_of

    logging.set_verbosity_error()  # casting meta modules is harmless
    h = size // 8
    with torch.device("meta"):
        comps = components if components is not None else released_components()
        unet, vae, text = (comps[k].to(dtype=dtype).requires_grad_(False) for k in ("unet", "vae", "text_encoder"))
        cross = unet.config.cross_attention_dim
        bb = ModelScopeBackbone()
        bb.components = {"unet": unet, "vae": vae, "text_encoder": text}

        def call(b: int) -> object:
            x = torch.randn(b, 4, frames, h, h, dtype=dtype, requires_grad=True)
            return unet(x, torch.tensor(1.0), torch.randn(b, 77, cross, dtype=dtype)).sample

        den = kept_call_gib(call, bb.checkpoint_blocks(), 2, split_guidance)
        z = torch.randn(decoded_frames, 4, h, h, dtype=dtype, requires_grad=True)
        dec = blocks_gib(lambda: vae.decode(z).sample, bb.decoder_checkpoint_blocks())
    size_of = torch.empty((), dtype=dtype).element_size() / GIB
    weights = sum(p.numel() for m in (unet, vae, text) for p in m.parameters()) * size_of
    on_gpu = weights - (sum(p.numel() for p in text.parameters()) * size_of if offload_encoders else 0.0)
    peaks = {lv: step_peak(on_gpu, den, dec, lv, k) for lv in LEVELS}
    return {
        "weights": weights,
        "weights_gpu": on_gpu,
        "unet": den["off"],
        "unet_call": den["call"],
        "unet_block": den["block"],
        "unet_boundaries": den["boundaries"],
        "unet_largest_block": den["largest_block"],
        "decoder": dec["off"],
        "decoder_block": dec["block"],
        "peak": peaks[level_of(checkpointing)],
        **{f"peak_{lv}": v for lv, v in peaks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--decoded-frames", type=int, default=1)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--no-split-guidance", action="store_true")
    parser.add_argument("--no-offload-encoders", action="store_true")
    a = parser.parse_args()
    r = estimate(
        a.size,
        a.frames,
        a.decoded_frames,
        a.k,
        split_guidance=not a.no_split_guidance,
        offload_encoders=not a.no_offload_encoders,
    )
    print(f"ModelScope {a.frames} frames {a.size}x{a.size}, K={a.k}, bf16 (GiB, estimated):")
    print(f"  weights {r['weights']:.1f}, on the GPU during the step {r['weights_gpu']:.1f}")
    print(
        f"  one kept UNet call: stored {r['unet']:.1f}; recomputed whole {r['unet_call']:.1f}; layer by layer "
        f"{r['unet_block']:.2f} (boundaries {r['unet_boundaries']:.2f} + largest layer {r['unet_largest_block']:.2f})"
    )
    print(f"  decoding {a.decoded_frames} frame(s): stored {r['decoder']:.2f}; layer by layer {r['decoder_block']:.2f}")
    print(
        f"  peak of a step: off {r['peak_off']:.1f}, call {r['peak_call']:.1f}, block (default) {r['peak_block']:.1f}"
    )


if __name__ == "__main__":
    main()
