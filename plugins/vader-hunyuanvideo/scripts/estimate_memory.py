"""Estimate the GPU memory of a vader training step (K=1, bf16) on HunyuanVideo 1.5, without a GPU.

The released architecture (8.3B transformer: 54 blocks of width 2048; the 16x/4x causal VAE) is built on
the ``meta`` device: no weights are allocated and no arithmetic runs, but autograd records every tensor it
would keep for backward (``vader_core.estimate``: attention counted as GPUs' flash kernels keep it, weights
once, shared storages once). The transformer's top-level forward selects the valid text tokens with
boolean indexing, which the meta device cannot run, so its parts are measured one by one: the embedders and
the output layers as a whole, one transformer block (the most a recomputed block saves), and the block
inputs diffusers' per-block checkpointing keeps (``tokens x 2048`` in bf16 per block, counted).

The stock attention processor passes a dense boolean mask of ``(video + text tokens)^2`` elements to
``scaled_dot_product_attention``; a GPU's memory-efficient kernel (flash takes no mask) turns it into a bf16
bias that it keeps for backward. That term is added to the recomputed block (bias + the boolean mask), and
the same way to the VAE's mid-block attention, whose frame-causal mask is a bf16 ``tokens^2`` tensor.

With ``memory.gradient_checkpointing`` (the default) the kept call is recomputed in backward; vader runs the
two guidance calls each as its own checkpoint, so backward holds the block inputs of one call plus one block
at a time. The decoder's blocks (mid block, up blocks' layers) are checkpointed while the chosen frames are
decoded; the decoder's activations are freed before the kept call is recomputed. Estimates, not
measurements: the CUDA allocator, kernel workspaces and fragmentation add to them.

Usage::

    python plugins/vader-hunyuanvideo/scripts/estimate_memory.py                 # 480p and 720p defaults
    python plugins/vader-hunyuanvideo/scripts/estimate_memory.py --height 480 --width 848 --frames 61
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.estimate import GIB, blocks_gib, saved_gib

#: The released transformer configuration (diffusers' conversion script, 480p and 720p alike).
TRANSFORMER = {
    "in_channels": 65,
    "out_channels": 32,
    "num_attention_heads": 16,
    "attention_head_dim": 128,
    "num_layers": 54,
    "num_refiner_layers": 2,
    "mlp_ratio": 4.0,
    "patch_size": 1,
    "patch_size_t": 1,
    "qk_norm": "rms_norm",
    "text_embed_dim": 3584,
    "text_embed_2_dim": 1472,
    "image_embed_dim": 1152,
    "rope_axes_dim": (16, 56, 56),
}
#: Default sizes (height, width, frames): the stock pipelines' 16:9 buckets of target sizes 640 and 960.
SIZES = {"480p": (480, 848, 121), "720p": (720, 1280, 121)}
TEXT_TOKENS = 1000 + 256 + 729  # Qwen2.5-VL, byT5, SigLIP (zeros for text-to-video): the joint attention's text
#: Weights that stay off the GPU between encodings with memory.offload_encoders (parameters).
QWEN_7B_TEXT = 7_070_619_136  # Qwen2.5-VL-7B's language model without the LM head
BYT5_GLYPH = 219_000_000  # Glyph-SDXL-v2 byT5-small encoder (approximate)
SIGLIP = 428_000_000  # siglip-so400m vision tower (approximate)


def estimate(
    height: int = 480,
    width: int = 848,
    frames: int = 121,
    components: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.bfloat16,
    frame: int | None = None,
) -> dict[str, float]:
    """Memory figures in GiB for one K=1 training step (batch 1) in ``dtype`` (bf16 by default) at the default
    checkpointing, with or without guidance alike (the two guidance calls are recomputed one after the other).

    ``components`` (``transformer`` and ``vae`` built on the ``meta`` device) replace the released architecture,
    in ``dtype``: benchmarks check the estimate against a measured step of a scaled-down one this way, decoding
    pixel frame ``frame`` (``decoder_frame`` / ``peak_frame``).

    Returns:
        `dict[str, float]`: ``weights`` (transformer + VAE on the GPU; encoders offloaded),
        ``encoder_weights``, ``boundaries`` (the block inputs of one call), ``outside`` (embedders and output
        layers of one call), ``block`` (one block recomputed, flash accounting), ``mask`` (its attention mask
        terms), ``decoder_first`` / ``decoder_last`` (decoding frame 0 / the last frame with gradient, decoder
        blocks checkpointed), ``peak_first`` / ``peak_last``.
    """
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel
    from diffusers.utils import logging

    from vader_core.checkpointing import layers_of

    logging.set_verbosity_error()
    size = torch.empty((), dtype=dtype).element_size()
    with torch.device("meta"):
        if components is not None:
            dit = components["transformer"].to(dtype=dtype).requires_grad_(False)
            vae = components["vae"].to(dtype=dtype).requires_grad_(False)
        else:
            dit = HunyuanVideo15Transformer3DModel(**TRANSFORMER).to(dtype=dtype).requires_grad_(False)
            vae = AutoencoderKLHunyuanVideo15().to(dtype=dtype).requires_grad_(False)
        cfg = dit.config
        sp, st = int(vae.config.spatial_compression_ratio), int(vae.config.temporal_compression_ratio)
        lat_f, h, w = (frames - 1) // st + 1, height // sp, width // sp
        video_tokens = lat_f * h * w
        tokens = video_tokens + TEXT_TOKENS
        inner = cfg.num_attention_heads * cfg.attention_head_dim
        n_dit = sum(p.numel() for p in dit.parameters())
        n_vae = sum(p.numel() for p in vae.parameters())
        x = torch.randn(1, cfg.in_channels, lat_f, h, w, dtype=dtype, requires_grad=True)
        t = torch.tensor([500.0])
        rope = dit.rope(x)
        temb = dit.time_embed(t).to(dtype)
        hs = torch.randn(1, video_tokens, inner, dtype=dtype, requires_grad=True)
        ehs = torch.randn(1, TEXT_TOKENS, inner, dtype=dtype, requires_grad=True)
        mask = torch.ones(1, TEXT_TOKENS, dtype=torch.bool)
        block, _ = saved_gib(lambda: dit.transformer_blocks[0](hs, ehs, temb, mask, rope))
        text = torch.randn(1, 1000, cfg.text_embed_dim, dtype=dtype)
        outside_in, _ = saved_gib(
            lambda: (dit.x_embedder(x), dit.context_embedder(text, t, torch.ones(1, 1000, dtype=dtype)))
        )
        outside_out, _ = saved_gib(lambda: dit.proj_out(dit.norm_out(hs, temb)))
        z = torch.randn(1, vae.config.latent_channels, lat_f, h, w, dtype=dtype, requires_grad=True)
        blocks = layers_of(vae.decoder.mid_block, *vae.decoder.up_blocks)

        def decoded(latent_frames: int) -> float:
            return blocks_gib(lambda: vae.decode(z[:, :, :latent_frames]).sample, blocks)["block"]

        first, last = decoded(1), decoded(lat_f)
        if frame is not None and not 0 <= frame < frames:
            raise ValueError(f"frame {frame} outside the {frames} frames")
        # the latent frames decoding pixel frame `frame` needs (the causal VAE decodes the prefix up to it)
        prefix = None if frame is None else (0 if frame == 0 else (frame - 1) // st + 1) + 1
        chosen = None if prefix is None else decoded(prefix)
    boundaries = len(dit.transformer_blocks) * tokens * inner * size / GIB
    outside = outside_in + outside_out
    # The dense boolean mask (1 byte) and the bf16 bias SDPA's memory-efficient kernel keeps for backward.
    mask_gib = tokens**2 * (1 + size) / GIB
    # The VAE mid block's frame-causal attention over all latent tokens: a bf16 mask and the kept bias.
    vae_mask = lambda n: 2 * (n * h * w) ** 2 * size / GIB  # noqa: E731
    decoder_first, decoder_last = first + vae_mask(1), last + vae_mask(lat_f)
    decoder_frame = None if prefix is None else chosen + vae_mask(prefix)
    weights = (n_dit + n_vae) * size / GIB
    # Forward of the kept step keeps only each guidance call's inputs; backward recomputes one call at a time:
    # its block inputs and outside-of-block activations, then one block at a time.
    denoise = boundaries + outside + block + mask_gib
    return {
        "weights": weights,
        "transformer_weights": n_dit * size / GIB,
        "encoder_weights": (QWEN_7B_TEXT + BYT5_GLYPH + SIGLIP) * size / GIB,
        "boundaries": boundaries,
        "outside": outside,
        "block": block,
        "mask": mask_gib,
        "decoder_first": decoder_first,
        "decoder_last": decoder_last,
        "peak_first": weights + max(denoise, decoder_first),
        "peak_last": weights + max(denoise, decoder_last),
        **(
            {}
            if decoder_frame is None
            else {"decoder_frame": decoder_frame, "peak_frame": weights + max(denoise, decoder_frame)}
        ),
        # for per_gpu(): the parts FSDP shares out
        "block_weights": max(sum(p.numel() for p in b.parameters()) for b in dit.transformer_blocks) * size / GIB,
        "root_weights": (n_dit - sum(p.numel() for b in dit.transformer_blocks for p in b.parameters())) * size / GIB,
        "vae_weights": n_vae * size / GIB,
        "tokens": tokens,
        "height": height,
        "width": width,
        "frames": frames,
    }


def per_gpu(r: dict[str, Any], gpus: int, frame: str = "decoder_first") -> float:
    """Per-GPU peak GiB on ``gpus`` GPUs under ``distributed.strategy: fsdp`` (diffusers declares no context-parallel
    plan for HunyuanVideo 1.5, so every GPU keeps its video's block inputs); ``frame``: which decode figure."""
    from vader_core.estimate import per_gpu_peak

    return per_gpu_peak(
        denoiser_weights=r["transformer_weights"],
        largest_unit=r["block_weights"],
        root_weights=r["root_weights"],
        other_weights=r["vae_weights"],
        kept=r["boundaries"] + r["outside"],
        recompute=r["block"] + r["mask"],
        decode=r[frame],
        world=gpus,
        strategy="fsdp",
    )


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {r['height']}x{r['width']}x{r['frames']} | {r['tokens']:,} | {r['transformer_weights']:.1f} / "
        f"{r['weights']:.1f} | {r['boundaries']:.1f} + {r['outside']:.1f} | {r['block']:.1f} + {r['mask']:.1f} | "
        f"{r['decoder_first']:.1f} / {r['decoder_last']:.0f} | **{r['peak_first']:.0f}** / {r['peak_last']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--gpus", default=None, help="per-GPU peaks on these GPU counts, e.g. 1,2,4,8 (fsdp, frame 0)")
    a = parser.parse_args()
    if a.gpus:
        gpus = [int(g) for g in a.gpus.split(",")]
        print("| size | H x W x F | " + " | ".join(f"{g} GPU{'s' if g > 1 else ''}" for g in gpus) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in gpus) + " |")
        h0, w0, f0 = SIZES["480p"]
        sizes = (
            {"custom": (a.height or h0, a.width or w0, a.frames or f0)} if a.height or a.width or a.frames else SIZES
        )
        for name, (h, w, f) in sizes.items():
            r = estimate(h, w, f)
            print(f"| {name} | {h}x{w}x{f} | " + " | ".join(f"{per_gpu(r, g):.1f}" for g in gpus) + " |")
        return
    print(
        "| size | H x W x F | joint tokens | weights on the GPU (transformer / with VAE) | one call's block inputs "
        "+ outside the blocks | one block recomputed + its attention mask | decoding frame 0 / the last frame | "
        "peak, frame 0 / last frame |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    if a.height or a.width or a.frames:
        h, w, f = SIZES["480p"]
        print(_row("custom", estimate(a.height or h, a.width or w, a.frames or f)))
        return
    for name, (h, w, f) in SIZES.items():
        print(_row(name, estimate(h, w, f)))
    print(f"\nencoders kept on the CPU (memory.offload_encoders): {estimate(32, 32, 1)['encoder_weights']:.1f} GiB")


if __name__ == "__main__":
    main()
