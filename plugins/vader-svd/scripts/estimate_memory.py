"""Estimate the GPU memory of a vader training step on Stable Video Diffusion, without a GPU.

The real architectures (``stabilityai/stable-video-diffusion-img2vid`` configuration) are built on the
``meta`` device: no weights are allocated and no arithmetic runs, but autograd records every tensor
it would keep for backward. Summing those bytes gives the activation memory of the parts of a step:

* one kept UNet call (classifier-free guidance doubles the batch) at each level of
  ``memory.gradient_checkpointing``: stored (``false``), recomputed whole in backward (``call``), or
  recomputed layer by layer (``true``/``block``: the resnets, transformers and down/upsamplers the
  backbone names in ``checkpoint_blocks()``, only their inputs kept), with ``memory.split_guidance``
  (the two guidance halves recomputed one after the other);
* the temporal decoder decoding the chunk of the chosen frame with gradient, as the backbone decodes it,
  stored or with its layers recomputed (``block`` level): everything alive at the worst moment of its
  forward and backward (``live_peak_gib``: the kept activations, the layer being recomputed and the
  gradients in flight), which a measured step of the scaled-down architecture matched within 3% where the
  kept tensors alone overstated it by 16% (docs/benchmarks.md, B8).

The peak of a K=1 step is about the weights on the GPU (the CLIP image encoder is off it with
``memory.offload_encoders``, on for GPU runs) plus the larger of the two, since the decoder's
activations are freed before the UNet call is recomputed. What is counted (attention as GPUs' flash
kernels keep it, weights once, shared storages once, the inputs block checkpoints hold) is described
in ``vader_core.estimate``, which all the backbone plugins' estimates share. The CUDA allocator, kernel
workspaces, fragmentation and the UNet's gradients in flight (its figures count saved tensors) add to these
figures: they are estimates, not measurements.

Usage::

    python plugins/vader-svd/scripts/estimate_memory.py --frames 14 --height 576 --width 1024 --chunk 2
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.checkpointing import decoder_checkpointing
from vader_core.estimate import GIB, kept_call_gib, live_peak_gib, step_peak

LEVELS = ("off", "call", "block")


def released_components() -> dict[str, Any]:
    """The UNet, temporal-decoder VAE and CLIP image encoder of ``stabilityai/stable-video-diffusion-img2vid``
    (``unet``, ``vae``, ``image_encoder``), built on the current device (``meta`` here; ``benchmarks.gpu`` builds
    them on a GPU)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return {
        "unet": UNetSpatioTemporalConditionModel(),
        "vae": AutoencoderKLTemporalDecoder(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
        ),
        "image_encoder": CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=16,
                image_size=224,
                patch_size=14,
                projection_dim=1024,
                hidden_act="gelu",
            )
        ),
    }


def estimate(
    height: int = 576,
    width: int = 1024,
    frames: int = 14,
    chunk: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
    split_guidance: bool = True,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, K=1, guidance on).

    Args:
        height (`int`, *optional*, defaults to `576`): frame height.
        width (`int`, *optional*, defaults to `1024`): frame width.
        frames (`int`, *optional*, defaults to `14`): frames per video.
        chunk (`int`, *optional*): frames the temporal decoder decodes together (`None`: all).
        dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`): weights and activations.
        split_guidance (`bool`, *optional*, defaults to `True`): ``memory.split_guidance``.
        offload_encoders (`bool`, *optional*, defaults to `True`): ``memory.offload_encoders``.
        components (`dict`, *optional*): ``unet``, ``vae`` and ``image_encoder`` built on the ``meta`` device in
            place of the released architectures (benchmarks check the estimate against a measured step of a
            scaled-down UNet this way).

    Returns:
        `dict[str, float]`: ``weights`` (all), ``weights_gpu`` (on the GPU during the step), ``unet`` /
        ``unet_call`` / ``unet_block`` (one kept call stored / recomputed whole / layer by layer),
        ``decoder`` / ``decoder_block`` (decoding frame 0's chunk with gradient, forward and backward: the most
        alive at once, layers stored / recomputed one by one), and ``peak``
        (block level, the default) with ``peak_off`` / ``peak_call`` / ``peak_block``.
    """
    from diffusers.utils import logging
    from vader_svd import SVDBackbone

    logging.set_verbosity_error()  # casting meta modules is harmless

    chunk = chunk or frames
    h, w = height // 8, width // 8
    with torch.device("meta"):
        comps = released_components() if components is None else components
        # (to "meta" as well: a module built under the meta device can still hold a CPU tensor)
        unet = comps["unet"].to(device="meta", dtype=dtype).requires_grad_(False)
        vae = comps["vae"].to(device="meta", dtype=dtype).requires_grad_(False)
        encoder = comps["image_encoder"]
        bb = SVDBackbone()
        bb.components = {"unet": unet, "vae": vae, "image_encoder": encoder}

        def call(b: int) -> object:
            x = torch.randn(b, frames, 8, h, w, dtype=dtype, requires_grad=True)
            emb = torch.randn(b, 1, unet.config.cross_attention_dim, dtype=dtype)
            ids = torch.randn(b, 3, dtype=dtype)
            return unet(x, torch.tensor(1.0), emb, ids).sample

        den = kept_call_gib(call, bb.checkpoint_blocks(), 2, split_guidance)
        # Decoding frame 0 as the backbone does (its whole chunk, which is always a full one), forward and
        # backward: everything alive at the worst moment (the layers' inputs kept, the layer recomputed, the
        # gradients in flight).
        z = torch.randn(1, frames, 4, h, w, dtype=dtype, requires_grad=True)

        def decoded(level: str | bool) -> float:
            with decoder_checkpointing(bb, level):
                return live_peak_gib(lambda: bb.decode(z, [0], chunk_size=chunk).sum().backward())

        dec = {"off": decoded(False), "block": decoded("block")}
    size_of = torch.empty((), dtype=dtype).element_size() / GIB
    weights = sum(p.numel() for m in (unet, vae, encoder) for p in m.parameters()) * size_of
    on_gpu = weights - (sum(p.numel() for p in encoder.parameters()) * size_of if offload_encoders else 0.0)
    peaks = {lv: step_peak(on_gpu, den, dec, lv) for lv in LEVELS}
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
        "peak": peaks["block"],
        **{f"peak_{lv}": v for lv, v in peaks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--chunk", type=int, default=None, help="decode chunk size (default: all frames)")
    parser.add_argument("--no-split-guidance", action="store_true")
    a = parser.parse_args()
    r = estimate(a.height, a.width, a.frames, a.chunk, split_guidance=not a.no_split_guidance)
    print(f"SVD {a.frames} frames {a.height}x{a.width}, decode chunk {a.chunk or a.frames}, bf16 (GiB, estimated):")
    print(f"  weights {r['weights']:.1f}, on the GPU during the step {r['weights_gpu']:.1f}")
    print(
        f"  one kept UNet call: stored {r['unet']:.1f}; recomputed whole {r['unet_call']:.1f}; layer by layer "
        f"{r['unet_block']:.1f} (boundaries {r['unet_boundaries']:.1f} + largest layer {r['unet_largest_block']:.1f})"
    )
    print(f"  decoder chunk with gradient: stored {r['decoder']:.1f}; layer by layer {r['decoder_block']:.1f}")
    print(
        f"  peak of a K=1 step: off {r['peak_off']:.0f}, call {r['peak_call']:.0f}, block (default) {r['peak_block']:.1f}"
    )


if __name__ == "__main__":
    main()
