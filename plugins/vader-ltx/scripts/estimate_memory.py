"""Estimate the GPU memory of a vader training step (K=1, bf16) on the LTX-Video 0.9.x checkpoints, without a GPU.

The real architectures (the released checkpoints' configurations: the 2B transformer, the 0.9.0, 0.9.1 and
0.9.5 VAE decoders, T5-XXL) are built on the ``meta`` device: no weights are allocated and no arithmetic runs,
but autograd records every tensor it would keep for backward (``vader_core.estimate``: attention counted as
GPUs' flash kernels keep it, weights once, shared storages once). Measured:

* one kept transformer call with guidance (batch 2) at each level of ``memory.gradient_checkpointing``
  (``kept_call_gib``: stored whole, recomputed whole, block boundaries plus the largest block);
* decoding the chosen frame with gradient, with the decoder's blocks checkpointed (``block``) or not:
  from the whole latent video (the decoder is not causal: one frame costs what all do), and with
  ``vae_temporal_tiling`` from the one or two temporal tiles that hold it (2 tiles, the worst case: a frame in a
  blend; a tile is ``tile_frames / 8 + 1`` latent frames).

The step's peak is ``vader_core.estimate.step_peak``: the weights resident on the GPU (T5-XXL waits on the CPU
with ``memory.offload_encoders``, the default on GPUs) plus the larger of the kept call's recomputation and the
decoding. These are estimates, not measurements: the CUDA allocator, kernel workspaces and fragmentation add to
them.

Usage::

    python plugins/vader-ltx/scripts/estimate_memory.py                       # 512x704x161, every VAE
    python plugins/vader-ltx/scripts/estimate_memory.py --height 480 --width 704 --frames 121 --vae 0.9.1
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.estimate import GIB, blocks_gib, kept_call_gib, step_peak

#: ``AutoencoderKLLTXVideo`` decoder configurations of the releases (the encoder does not run in training).
VAES: dict[str, dict[str, Any]] = {
    "0.9.0": {
        "decoder_block_out_channels": (128, 256, 512, 512),
        "decoder_layers_per_block": (4, 3, 3, 3, 4),
        "decoder_spatio_temporal_scaling": (True, True, True, False),
        "decoder_inject_noise": (False, False, False, False, False),
        "upsample_residual": (False, False, False, False),
        "upsample_factor": (1, 1, 1, 1),
        "timestep_conditioning": False,
    },
    "0.9.1": {
        "decoder_block_out_channels": (256, 512, 1024),
        "decoder_layers_per_block": (5, 6, 7, 8),
        "decoder_spatio_temporal_scaling": (True, True, True),
        "decoder_inject_noise": (True, True, True, False),
        "upsample_residual": (True, True, True),
        "upsample_factor": (2, 2, 2),
        "timestep_conditioning": True,
    },
    "0.9.5": {
        "decoder_block_out_channels": (256, 512, 1024),
        "decoder_layers_per_block": (5, 5, 5, 5),
        "decoder_spatio_temporal_scaling": (True, True, True),
        "decoder_inject_noise": (False, False, False, False),
        "upsample_residual": (True, True, True),
        "upsample_factor": (2, 2, 2),
        "timestep_conditioning": True,
    },
}
#: T5-XXL encoder (google/t5-v1_1-xxl), the text encoder of every 0.9.x checkpoint.
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64}


def estimate(
    vae_version: str = "0.9.1",
    height: int = 512,
    width: int = 704,
    frames: int = 161,
    tile_frames: int = 16,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, float]:
    """Memory figures in GiB for one K=1 training step (batch 1, guidance on), in ``dtype`` (bf16 by default).

    ``components`` (``transformer``, ``vae`` and ``text_encoder`` built on the ``meta`` device) replace the
    released architecture, in ``dtype``: benchmarks check the estimate against a measured step of a scaled-down
    architecture this way.

    Returns:
        `dict[str, float]`: ``transformer_weights``, ``weights`` (resident: transformer and VAE, T5-XXL too
        without ``offload_encoders``), ``text_encoder_weights``, the kept call at each level (``call_off``,
        ``call_call``, ``call_block``), the decoding of one frame with gradient from the whole video
        (``decode_whole_off``, ``decode_whole_block``) and from two temporal tiles (``decode_tiles_off``,
        ``decode_tiles_block``), and the step's peak at the default level (``block``) without and with tiling
        (``peak_whole``, ``peak_tiled``).
    """
    from diffusers import AutoencoderKLLTXVideo, LTXPipeline, LTXVideoTransformer3DModel
    from diffusers.utils import logging
    from transformers import T5Config, T5EncoderModel
    from vader_ltx import LTXBackbone

    logging.set_verbosity_error()
    size = torch.empty((), dtype=dtype).element_size()
    with torch.device("meta"):
        if components is not None:
            dit = components["transformer"].to(dtype=dtype).requires_grad_(False)
            vae = components["vae"].to(dtype=dtype).requires_grad_(False)
            text = components["text_encoder"]
        else:
            dit = LTXVideoTransformer3DModel().to(dtype=dtype).requires_grad_(False)
            vae = AutoencoderKLLTXVideo(**VAES[vae_version]).to(dtype=dtype).requires_grad_(False)
            text = T5EncoderModel(T5Config(**T5_XXL, feed_forward_proj="gated-gelu"))
        n_dit = sum(p.numel() for p in dit.parameters())
        n_vae = sum(p.numel() for p in vae.parameters())
        n_text = sum(p.numel() for p in text.parameters())
        st, sp = int(vae.temporal_compression_ratio), int(vae.spatial_compression_ratio)
        lat_f, h, w = (frames - 1) // st + 1, height // sp, width // sp
        x = torch.randn(1, dit.config.in_channels, lat_f, h, w, dtype=dtype, requires_grad=True)
        emb = torch.randn(1, 128, dit.config.caption_channels, dtype=dtype)
        mask = torch.ones(1, 128, dtype=torch.bool)

        def call(batch: int) -> Any:
            tokens = LTXPipeline._pack_latents(x.expand(batch, -1, -1, -1, -1))
            return dit(
                hidden_states=tokens,
                encoder_hidden_states=emb.expand(batch, -1, -1),
                timestep=torch.full((batch,), 500.0),
                encoder_attention_mask=mask.expand(batch, -1),
                num_frames=lat_f,
                height=h,
                width=w,
                rope_interpolation_scale=(st / 25, sp, sp),
                return_dict=False,
            )[0]

        kept = kept_call_gib(call, list(dit.transformer_blocks), batch=2)
        bb = LTXBackbone()
        bb.components = {"vae": vae}
        blocks = bb.decoder_checkpoint_blocks()
        temb = torch.full((1,), 0.05, dtype=dtype) if vae.config.timestep_conditioning else None
        z = torch.randn(1, vae.config.latent_channels, lat_f, h, w, dtype=dtype, requires_grad=True)
        whole = blocks_gib(lambda: vae.decoder(z, temb), blocks)
        tile_lat = tile_frames // st + 1
        tiles = blocks_gib(lambda: [vae.decoder(z[:, :, i : i + tile_lat], temb) for i in (0, 1)], blocks)
    weights = (n_dit + n_vae + (0 if offload_encoders else n_text)) * size / GIB
    return {
        "transformer_weights": n_dit * size / GIB,
        "vae_weights": n_vae * size / GIB,
        "weights": weights,
        "text_encoder_weights": n_text * size / GIB,
        "call_off": kept["off"],
        "call_call": kept["call"],
        "call_block": kept["block"],
        "decode_whole_off": whole["off"],
        "decode_whole_block": whole["block"],
        "decode_tiles_off": tiles["off"],
        "decode_tiles_block": tiles["block"],
        "peak_whole": step_peak(weights, kept, whole, "block"),
        "peak_tiled": step_peak(weights, kept, tiles, "block"),
        "peak_tiled_off": step_peak(weights, kept, tiles, "off"),
        # for per_gpu(): the parts the `distributed` section shares out
        "boundaries": kept["boundaries"],
        "largest_block": kept["largest_block"],
        "block_weights": max(sum(p.numel() for p in b.parameters()) for b in dit.transformer_blocks) * size / GIB,
        "root_weights": (n_dit - sum(p.numel() for b in dit.transformer_blocks for p in b.parameters())) * size / GIB,
        "other_weights": weights - n_dit * size / GIB,
        "heads": int(dit.config.num_attention_heads),
    }


def estimate_ltx2(
    height: int = 512, width: int = 768, frames: int = 121, tile_frames: int = 16, offload_encoders: bool = True
) -> dict[str, Any]:
    """Memory figures in GiB for one K=1 bf16 training step of ``ltx2`` (LTX-2's video branch, batch 1) at the stock
    guidance: classifier-free (both halves), spatio-temporal and modality isolation, so the kept step runs the
    transformer 4 times (the guidance halves one after the other under checkpointing), each keeping its block
    inputs. The transformer, video VAE and Gemma 3 12B in the released configurations (diffusers' defaults of
    ``LTX2VideoTransformer3DModel`` and ``AutoencoderKLLTX2Video``); the audio stream runs with the video (126
    audio latent frames at 121 video frames and 24 fps), its VAE and the vocoder never do."""
    from diffusers import AutoencoderKLLTX2Video, LTX2Pipeline, LTX2VideoTransformer3DModel
    from diffusers.utils import logging
    from vader_ltx import LTXBackbone

    logging.set_verbosity_error()
    dtype, size = torch.bfloat16, 2
    text_tokens, caption, audio_frames = 1024, 3840, round(frames / 24.0 * 16000 / 160 / 4)
    with torch.device("meta"):
        dit = LTX2VideoTransformer3DModel().to(dtype=dtype).requires_grad_(False)
        vae = AutoencoderKLLTX2Video().to(dtype=dtype).requires_grad_(False)
        n_dit = sum(p.numel() for p in dit.parameters())
        n_vae = sum(p.numel() for p in vae.parameters())
        lat_f, h, w = (frames - 1) // 8 + 1, height // 32, width // 32
        video = LTX2Pipeline._pack_latents(torch.randn(1, 128, lat_f, h, w, dtype=dtype, requires_grad=True))
        audio = torch.randn(1, audio_frames, 128, dtype=dtype, requires_grad=True)
        emb = torch.randn(1, text_tokens, caption, dtype=dtype)
        mask = torch.ones(1, text_tokens, dtype=torch.long)
        vcoords = dit.rope.prepare_video_coords(1, lat_f, h, w, video.device, fps=24.0)
        acoords = dit.audio_rope.prepare_audio_coords(1, audio_frames, video.device)

        def call(batch: int) -> Any:
            def rep(x: torch.Tensor) -> torch.Tensor:
                return x.expand(batch, *x.shape[1:])

            ts = torch.full((batch,), 500.0)
            v, a = dit(
                hidden_states=rep(video),
                audio_hidden_states=rep(audio),
                encoder_hidden_states=rep(emb),
                audio_encoder_hidden_states=rep(emb),
                timestep=ts,
                sigma=ts,
                encoder_attention_mask=rep(mask),
                audio_encoder_attention_mask=rep(mask),
                num_frames=lat_f,
                height=h,
                width=w,
                fps=24.0,
                audio_num_frames=audio_frames,
                video_coords=rep(vcoords),
                audio_coords=rep(acoords),
                return_dict=False,
            )
            return torch.cat([v.flatten(1), a.flatten(1)], 1)

        blocks = list(dit.transformer_blocks)
        kept = kept_call_gib(call, blocks, batch=2)
        bb = LTXBackbone()
        bb.components = {"vae": vae}
        dec_blocks = bb.decoder_checkpoint_blocks()
        z = torch.randn(1, 128, lat_f, h, w, dtype=dtype, requires_grad=True)
        whole = blocks_gib(lambda: vae.decoder(z), dec_blocks)
        tile_lat = tile_frames // 8 + 1
        tiles = blocks_gib(lambda: [vae.decoder(z[:, :, i : i + tile_lat]) for i in (0, 1)], dec_blocks)
    # Block level: the CFG call's block inputs (both halves) plus the STG and modality calls' (one video each).
    passes = 2
    kept_block = {
        "block": passes * kept["boundaries"] + kept["largest_block"],
        "boundaries": passes * kept["boundaries"],
        "largest_block": kept["largest_block"],
    }
    gemma = 12.2e9  # Gemma 3 12B
    weights = (n_dit + n_vae + (0 if offload_encoders else gemma)) * size / GIB
    n_blocks = sum(p.numel() for b in blocks for p in b.parameters())
    return {
        "transformer_params": n_dit,
        "transformer_weights": n_dit * size / GIB,
        "weights": weights,
        "text_encoder_weights": gemma * size / GIB,
        "tokens": lat_f * h * w,
        "audio_tokens": audio_frames,
        "kept_boundaries": kept_block["boundaries"],
        "largest_block": kept["largest_block"],
        "call_block": kept_block["block"],
        "decode_whole_block": whole["block"],
        "decode_tiles_block": tiles["block"],
        "peak_whole": step_peak(weights, kept_block, whole, "block"),
        "peak_tiled": step_peak(weights, kept_block, tiles, "block"),
        "block_weights": max(sum(p.numel() for p in b.parameters()) for b in blocks) * size / GIB,
        "root_weights": (n_dit - n_blocks) * size / GIB,
        "other_weights": weights - n_dit * size / GIB,
        "heads": int(dit.config.num_attention_heads),
    }


def per_gpu(r: dict[str, Any], gpus: int, decode: str = "decode_tiles_block") -> float:
    """Per-GPU peak GiB of :func:`estimate_ltx2`'s (or :func:`estimate`'s) figures on ``gpus`` GPUs:
    ``distributed.strategy: fsdp`` with sequence parallelism of the largest degree dividing the GPUs and the heads
    (diffusers declares a context-parallel plan for both LTX transformers)."""
    from vader_core.estimate import per_gpu_peak

    sp = max(d for d in range(1, gpus + 1) if gpus % d == 0 and int(r["heads"]) % d == 0)
    return per_gpu_peak(
        denoiser_weights=r["transformer_weights"],
        largest_unit=r["block_weights"],
        root_weights=r["root_weights"],
        other_weights=r["other_weights"],
        kept=r.get("kept_boundaries", r.get("boundaries", 0.0)),
        recompute=r["largest_block"],
        decode=r[decode],
        world=gpus,
        sequence_parallel=sp,
        strategy="fsdp",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", choices=sorted(VAES), default=None, help="default: all of them")
    parser.add_argument("--height", type=int, help="default 512")
    parser.add_argument("--width", type=int, help="default 704 (LTX-2: 768)")
    parser.add_argument("--frames", type=int, help="default 161 (LTX-2: 121)")
    parser.add_argument("--tile-frames", type=int, default=16)
    parser.add_argument("--encoders-on-gpu", action="store_true", help="memory.offload_encoders=false")
    parser.add_argument(
        "--ltx2", action="store_true", help="LTX-2's video branch (`ltx2`) instead; default size 512x768x121"
    )
    parser.add_argument("--gpus", default=None, help="per-GPU peaks on these GPU counts, e.g. 1,2,4,8 (fsdp + SP)")
    a = parser.parse_args()
    gpus = [int(g) for g in a.gpus.split(",")] if a.gpus else []
    if a.ltx2:
        h, w = a.height or 512, a.width or 768
        f = a.frames or 121
        r = estimate_ltx2(h, w, f, a.tile_frames, not a.encoders_on_gpu)
        print(
            "| model | size | weights (transformer / resident / Gemma 3) | kept step: block inputs of 4 passes + "
            "largest block | decode 1 frame, whole video / 2 tiles | peak: whole / tiled (default) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        print(
            f"| LTX-2 | {h}x{w}x{f} | {r['transformer_weights']:.1f} / {r['weights']:.1f} / "
            f"{r['text_encoder_weights']:.1f} | {r['kept_boundaries']:.1f} + {r['largest_block']:.1f} | "
            f"{r['decode_whole_block']:.1f} / {r['decode_tiles_block']:.1f} | {r['peak_whole']:.1f} / "
            f"{r['peak_tiled']:.1f} |"
        )
        if gpus:
            print()
            print("| model | size | " + " | ".join(f"{g} GPU{'s' if g > 1 else ''}" for g in gpus) + " |")
            print("| --- | --- | " + " | ".join("---" for _ in gpus) + " |")
            print(f"| LTX-2 | {h}x{w}x{f} | " + " | ".join(f"{per_gpu(r, g):.1f}" for g in gpus) + " |")
        return
    a.height, a.width, a.frames = a.height or 512, a.width or 704, a.frames or 161
    print(
        "| VAE | size | weights (transformer / resident / T5-XXL) | kept call off / call / block | decode 1 frame, "
        "whole video: off / block | decode 1 frame, 2 tiles: off / block | peak, block level: whole / tiled |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for v in [a.vae] if a.vae else list(VAES):
        r = estimate(v, a.height, a.width, a.frames, a.tile_frames, not a.encoders_on_gpu)
        rows.append((v, r))
        print(
            f"| {v} | {a.height}x{a.width}x{a.frames} | {r['transformer_weights']:.1f} / {r['weights']:.1f} / "
            f"{r['text_encoder_weights']:.1f} | {r['call_off']:.1f} / {r['call_call']:.1f} / {r['call_block']:.1f} "
            f"| {r['decode_whole_off']:.0f} / {r['decode_whole_block']:.1f} | {r['decode_tiles_off']:.1f} / "
            f"{r['decode_tiles_block']:.1f} | {r['peak_whole']:.1f} / {r['peak_tiled']:.1f} |"
        )
    if gpus:
        print()
        print("| VAE | size | " + " | ".join(f"{g} GPU{'s' if g > 1 else ''}" for g in gpus) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in gpus) + " |")
        for v, r in rows:
            cells = " | ".join(f"{per_gpu(r, g):.1f}" for g in gpus)
            print(f"| {v} | {a.height}x{a.width}x{a.frames} | {cells} |")


if __name__ == "__main__":
    main()
