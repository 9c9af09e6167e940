"""Estimate the GPU memory of a vader training step on Open-Sora 1.2, without a GPU.

The real architectures (STDiT3-XL/2, the Open-Sora 1.2 VAE, T5 v1.1 XXL's encoder) are built on the
``meta`` device: no weights are allocated and no arithmetic runs, but autograd records every tensor it
would keep for backward. Summing those bytes gives the activation memory of one kept STDiT3 call
(guidance doubles the batch), with or without ``backbone.block_checkpointing`` (per-block
recomputation, the official ``grad_checkpoint``), and of decoding frames with gradient: the temporal
decoder on the 5-latent chunk that holds the frame, then the SD-XL spatial decoder on that frame alone.

What is counted (attention as GPUs' flash / memory-efficient kernels keep it, weights and their views
once, a storage saved by several operations once) is described in ``vader_core.estimate``, which all
the backbone plugins' estimates share. With block checkpointing the figure is the block inputs kept
for the whole call plus what the largest single block saves when it is recomputed in backward. The
CUDA allocator and kernel workspaces add to these figures: they are estimates, not measurements.

Usage (the VADER-Open-Sora recipe: 240p 3:4, 51 frames)::

    python plugins/vader-opensora/scripts/estimate_memory.py --height 276 --width 368 --frames 51
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from vader_core.estimate import GIB, saved_gib


def estimate(
    height: int = 276,
    width: int = 368,
    frames: int = 51,
    decoded_frames: int = 1,
    block_checkpointing: bool = False,
    dtype: torch.dtype = torch.bfloat16,
    text_encoder: bool = True,
    split_guidance: bool = True,
    components: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, guidance on, vader's gradient checkpointing on).

    ``components`` (``transformer``, ``vae`` and ``text_encoder`` built on the ``meta`` device) replace the
    released architectures: benchmarks check the estimate against a measured step of a scaled-down STDiT3 this
    way. ``block_checkpointing`` false is ``memory.gradient_checkpointing: call`` (the kept call stored whole
    while it is recomputed).

    With ``split_guidance`` (``memory.split_guidance``, the default) the kept call's text and null halves are
    recomputed one after the other, so one kept call holds what a batch of 1 keeps; else the doubled batch's.

    Returns:
        `dict[str, float]`: ``weights`` (all frozen weights), ``transformer`` (one kept STDiT3 call),
        ``decoder`` (decoding ``decoded_frames`` frames with gradient), ``peak`` and ``params``.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from diffusers.utils import logging
    from vader_opensora.stdit3 import STDiT3, STDiT3Config
    from vader_opensora.vae import OpenSoraVAE

    logging.set_verbosity_error()
    if components is not None:
        model = components["transformer"].to(dtype=dtype).requires_grad_(False)
        vae = components["vae"].to(dtype=dtype).requires_grad_(False)
    else:
        with torch.device("meta"):
            model = STDiT3(STDiT3Config()).to(dtype=dtype).requires_grad_(False)
            vae = OpenSoraVAE().to(dtype=dtype).requires_grad_(False)
    modules = [model, vae]
    if components is not None:
        if text_encoder:
            modules.append(components["text_encoder"])
    elif text_encoder:
        from transformers import T5Config, T5EncoderModel

        # DeepFloyd/t5-v1_1-xxl's encoder: d_model 4096, 24 layers, 64 heads of 64, d_ff 10240, gated GELU
        cfg = T5Config(
            d_model=4096,
            d_kv=64,
            d_ff=10240,
            num_layers=24,
            num_heads=64,
            vocab_size=32128,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        )
        with torch.device("meta"):
            modules.append(T5EncoderModel(cfg))
    n_params = {type(m).__name__: sum(p.numel() for p in m.parameters()) for m in modules}
    lat_t, h, w = vae.latent_frames(frames), height // 8, width // 8
    n = 1 if split_guidance else 2
    hw = {"height": torch.full((n,), float(height)), "width": torch.full((n,), float(width))}
    with torch.device("meta"):
        x = torch.randn(n, 4, lat_t, h, w, dtype=dtype, requires_grad=True)
        y = torch.randn(n, 300, model.config.caption_channels, dtype=dtype)
        mask = torch.ones(n, 300, dtype=torch.long)
        t = torch.full((n,), 500.0)
        fps = torch.full((n,), 24.0)
        call = lambda: model(x, t, y, mask=mask, fps=fps, **hw)  # noqa: E731
        tr_gib, largest_block = saved_gib(call, model.blocks())
        if block_checkpointing:
            model.enable_gradient_checkpointing()
            inputs_gib, _ = saved_gib(call)
            tr_gib = inputs_gib + largest_block  # block inputs, plus one block recomputed at a time
        z = torch.randn(1, 4, lat_t, h, w, dtype=dtype, requires_grad=True)
        dec_gib, _ = saved_gib(lambda: vae.decode(z, frames, list(range(decoded_frames))))
    total = sum(n_params.values())
    weights = total * torch.empty((), dtype=dtype).element_size() / GIB
    # vader's gradient checkpointing frees the decoder's activations before the kept calls are recomputed.
    return {
        "weights": weights,
        "transformer": tr_gib,
        "decoder": dec_gib,
        "peak": weights + max(tr_gib, dec_gib),
        "params": total,
        **{f"params_{k}": v for k, v in n_params.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=276)
    parser.add_argument("--width", type=int, default=368)
    parser.add_argument("--frames", type=int, default=51)
    parser.add_argument("--decoded-frames", type=int, default=1)
    parser.add_argument(
        "--no-split-guidance",
        action="store_true",
        help="memory.split_guidance: false (the kept call recomputed on the doubled batch at once)",
    )
    a = parser.parse_args()
    for block in (False, True):
        r = estimate(
            a.height,
            a.width,
            a.frames,
            a.decoded_frames,
            block_checkpointing=block,
            split_guidance=not a.no_split_guidance,
        )
        parts = ", ".join(f"{k[7:]} {v / 1e9:.2f}B" for k, v in r.items() if k.startswith("params_"))
        print(
            f"Open-Sora 1.2 {a.frames} frames {a.height}x{a.width}, bf16, K=1, block_checkpointing={block} "
            f"(GiB, estimated): weights {r['weights']:.1f} ({parts}); one kept STDiT3 call {r['transformer']:.2f}; "
            f"decoding {a.decoded_frames} frame(s) {r['decoder']:.2f}; peak about {r['peak']:.1f}"
        )


if __name__ == "__main__":
    main()
