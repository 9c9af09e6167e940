"""Estimate the GPU memory of a vader training step on VideoCrafter2, without a GPU.

The real architectures (official 512 configuration) are built on the ``meta`` device: no weights are
allocated and no arithmetic runs, but autograd records every tensor it would keep for backward.
Summing those bytes gives the activation memory of one kept UNet call (guidance doubles the batch) at
each level of ``memory.gradient_checkpointing``: stored (``false``), recomputed whole in backward
(``call``), or recomputed layer by layer (``true``/``block``, the default: every residual block and
transformer, the layers the official ``use_checkpoint`` recomputes, only their inputs kept), with
``memory.split_guidance``; and of decoding frames with gradient (the 2-D VAE decodes frames
independently; its layers are recomputed too at block level). With ``memory.offload_encoders`` (on
for GPU runs) the OpenCLIP text tower is off the GPU during the step.

What is counted (attention as GPUs' flash kernels keep it, weights and their views once, with the
weights, a storage saved by several operations once, the inputs block checkpoints hold) is described
in ``vader_core.estimate``, which all the backbone plugins' estimates share. The CUDA allocator and
kernel workspaces add to these figures: they are estimates, not measurements.

Usage::

    python plugins/vader-videocrafter/scripts/estimate_memory.py --frames 12 --height 320 --width 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from vader_core.estimate import GIB, blocks_gib, kept_call_gib, step_peak

LEVELS = ("off", "call", "block")


def estimate(
    height: int = 320,
    width: int = 512,
    frames: int = 12,
    decoded_frames: int = 1,
    k: int = 1,
    dtype: torch.dtype = torch.bfloat16,
    split_guidance: bool = True,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, guidance on).

    ``components`` (``unet``, ``vae`` and ``text_encoder`` built on the ``meta`` device) replace the official
    architectures: benchmarks check the estimate against a measured step of a scaled-down UNet this way.

    Returns:
        `dict[str, float]`: ``weights`` / ``weights_gpu`` (all / on the GPU during the step), ``params``,
        ``unet`` / ``unet_call`` / ``unet_block`` (one kept call stored / recomputed whole / layer by layer),
        ``decoder`` / ``decoder_block``, ``peak`` (block level, the default) and ``peak_off`` / ``peak_call`` /
        ``peak_block``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import open_clip
    from diffusers import AutoencoderKL
    from diffusers.utils import logging
    from vader_videocrafter.backbone import VAE_CONFIG, VideoCrafterBackbone
    from vader_videocrafter.text_encoder import build_openclip_text_model
    from vader_videocrafter.unet import LVDMUNet3DModel

    logging.set_verbosity_error()
    h, w = height // 8, width // 8
    if components is not None:
        unet = components["unet"].to(dtype=dtype).requires_grad_(False)
        vae = components["vae"].to(dtype=dtype).requires_grad_(False)
        text = components["text_encoder"]
    else:
        with torch.device("meta"):
            unet = LVDMUNet3DModel().to(dtype=dtype).requires_grad_(False)
            vae = AutoencoderKL(**VAE_CONFIG).to(dtype=dtype).requires_grad_(False)
        text = build_openclip_text_model(open_clip.get_model_config("ViT-H-14"), "meta")
    context = unet.config.context_dim
    n_params = sum(p.numel() for m in (unet, vae, text) for p in m.parameters())
    bb = VideoCrafterBackbone()
    bb.components = {"unet": unet, "vae": vae, "text_encoder": text}
    with torch.device("meta"):

        def call(b: int) -> object:
            x = torch.randn(b, 4, frames, h, w, dtype=dtype, requires_grad=True)
            return unet(x, torch.ones(b, dtype=torch.long), torch.randn(b, 77, context, dtype=dtype), fps=24)

        den = kept_call_gib(call, bb.checkpoint_blocks(), 2, split_guidance)
        z = torch.randn(decoded_frames, 4, h, w, dtype=dtype, requires_grad=True)
        dec = blocks_gib(lambda: vae.decode(z).sample, bb.decoder_checkpoint_blocks())
    size_of = torch.empty((), dtype=dtype).element_size() / GIB
    weights = n_params * size_of
    on_gpu = weights - (sum(p.numel() for p in text.parameters()) * size_of if offload_encoders else 0.0)
    peaks = {lv: step_peak(on_gpu, den, dec, lv, k) for lv in LEVELS}
    return {
        "weights": weights,
        "weights_gpu": on_gpu,
        "params": n_params,
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
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--decoded-frames", type=int, default=1)
    a = parser.parse_args()
    r = estimate(a.height, a.width, a.frames, a.decoded_frames)
    print(
        f"VideoCrafter2 {a.frames} frames {a.height}x{a.width}, bf16 (GiB, estimated): weights {r['weights']:.1f} "
        f"({r['params'] / 1e9:.2f}B parameters), on the GPU during the step {r['weights_gpu']:.1f}"
    )
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
