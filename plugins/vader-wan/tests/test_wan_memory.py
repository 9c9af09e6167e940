"""Memory options and frame subsampling: per-block checkpointing gives the same gradients, and decoding a
subset of frames through the causal VAE gives the same frames as a full decode for only the latent prefix."""

import random

import pytest
import torch
from vader_wan import WanBackbone, WanOptions

from vader_core.config import MemorySection, TruncationSection
from vader_core.lora import add_lora
from vader_core.sampling import sample_with_grad
from vader_core.testing import randomize_lora_b


def _backbone(**options):
    bb = WanBackbone(WanOptions(**{"height": 32, "width": 32, "frames": 9, "steps": 3, **options}))
    bb.load_tiny("cpu", torch.float32, seed=0)
    return bb


def _lora_grads(gradient_checkpointing: bool, scheduler: str, seen: list):
    bb = _backbone(scheduler=scheduler)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    randomize_lora_b(bb.denoiser, seed=1, std=0.02)
    with torch.no_grad():
        cond = bb.encode_condition(["a panda riding a bike"])
    # Every run of the first block (module hooks do not fire when a checkpoint recomputes it in backward).
    block = bb.denoiser.blocks[0]
    forward = block.forward

    def counted(*args, **kwargs):
        seen.append((torch.is_grad_enabled(), bb.denoiser.gradient_checkpointing))
        return forward(*args, **kwargs)

    block.forward = counted
    video, kept, frames = sample_with_grad(
        bb,
        cond,
        1,
        torch.Generator().manual_seed(0),
        random.Random(0),
        TruncationSection(mode="last", k=2),
        MemorySection(gradient_checkpointing=gradient_checkpointing, decoded_frames=2),
    )
    video.mean().backward()
    del block.forward
    grads = {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if "lora_" in n}
    return video.detach(), grads, kept, frames


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_gradient_checkpointing_gives_the_same_lora_gradients(scheduler):
    seen_off, seen_on = [], []
    v1, g1, kept, frames = _lora_grads(False, scheduler, seen_off)
    v2, g2, _, _ = _lora_grads(True, scheduler, seen_on)
    assert kept == [1, 2] and len(frames) == 2
    # With the option on (the core's block level), diffusers' switch is on for every call under autograd, and
    # each of the 4 kept halves (2 kept steps x cond + uncond) runs three times: forward, the core's recompute
    # of the call, and diffusers' recompute of each block inside it.
    assert all(not ck for _, ck in seen_off) and all(ck for grad, ck in seen_on if grad)
    assert len(seen_on) == len(seen_off) + 8
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in g1.values()), "some LoRA weight got no gradient"
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-7, msg=f"gradient of {n} differs")


@pytest.mark.parametrize("wan22", [False, True], ids=["wan2.1-vae", "wan2.2-vae"])
def test_decoded_subset_equals_the_same_frames_of_a_full_decode(wan22):
    from vader_wan.tiny import tiny_components

    bb = WanBackbone(WanOptions(height=32, width=32, frames=17, steps=2))
    comps = tiny_components(0, wan22_vae=wan22)
    comps["scheduler"] = bb.make_scheduler()
    bb.setup(comps, "cpu", torch.float32)
    latents = bb.prepare_latents(2, torch.Generator().manual_seed(0))  # 5 latent frames -> 17 frames
    assert bb.num_latent_frames(latents) == 17
    calls = []
    h = bb.components["vae"].decoder.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[2]))
    with torch.no_grad():
        full = bb.decode(latents, None)
        n_full = len(calls)
        for subset, latent_frames in (([0], 1), ([1, 4], 2), ([5, 2], 3), ([16], 5), ([8, 0, 13], 5)):
            calls.clear()
            sub = bb.decode(latents, subset)
            assert sub.shape == (2, len(subset), 3, 32, 32)
            # Bit-equal with the Wan 2.1 VAE; the Wan 2.2 one rounds convolutions of other lengths differently.
            torch.testing.assert_close(sub, full[:, subset], rtol=0, atol=1e-6)
            assert len(calls) == latent_frames, f"{subset}: decoded {len(calls)} latent frames, need {latent_frames}"
    h.remove()
    assert full.shape == (2, 17, 3, 32, 32) and n_full == 5


@pytest.mark.parametrize("history", [False, True])
def test_decoded_frame_gradient(history):
    """With gradient the frames are the same; the gradient reaches the chosen frames' latent frames, and the
    earlier ones only with vae_history_gradient."""
    bb = _backbone(frames=13, vae_history_gradient=history)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0)).requires_grad_(True)  # 4 latent frames
    with torch.no_grad():
        full = bb.decode(latents, None)
    calls = []
    h = bb.components["vae"].decoder.register_forward_hook(lambda m, a, o: calls.append(o.requires_grad))
    sub = bb.decode(latents, [5, 2])  # latent frames 2 and 1
    h.remove()
    torch.testing.assert_close(sub.detach(), full[:, [5, 2]], rtol=0, atol=1e-6)
    assert calls == ([True] * 3 if history else [False, True, True])
    sub.mean().backward()
    per_frame = latents.grad.abs().sum(dim=(0, 1, 3, 4))
    assert (per_frame[1:3] > 0).all() and per_frame[3] == 0
    assert (per_frame[0] > 0) == history


def test_memory_estimator_runs_on_the_meta_device():
    """scripts/estimate_memory.py (the README's figures) traces the real architectures without allocating them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("wan_estimate_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    small = module.estimate("t2v-1.3b", height=64, width=64, frames=5)
    assert 2.2 < small["transformer_weights"] < 2.8  # 1.42e9 parameters in bf16
    assert small["transformer_call"] > 0 and 0 < small["decoder"] < small["decoder_last"] < small["decoder_all"]
    assert module.estimate("t2v-1.3b", height=64, width=64, frames=9)["transformer_call"] > small["transformer_call"]


@pytest.mark.parametrize("wan22", [False, True], ids=["wan2.1-vae", "wan2.2-vae"])
def test_decoder_block_checkpointing_keeps_the_gradient_through_the_causal_cache(wan22):
    """At the block level the core recomputes the decoder's blocks in backward; they update the causal cache in
    place, so each is replayed from the cache as it was at its call: the same frames and latent gradient as
    storing everything, with the two kept latent frames linked through the cache (frame 5's gradient reaches
    latent frame 1 through the cache as well)."""
    from vader_wan.tiny import tiny_components

    from vader_core.checkpointing import decoder_checkpointing

    bb = WanBackbone(WanOptions(height=32, width=32, frames=13, steps=2))
    comps = tiny_components(0, wan22_vae=wan22)
    comps["scheduler"] = bb.make_scheduler()
    bb.setup(comps, "cpu", torch.float64)
    blocks = bb.decoder_checkpoint_blocks()
    assert blocks and all(
        any(p is q for q in bb.components["vae"].decoder.parameters()) for b in blocks for p in b.parameters()
    )
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0)).double()  # 4 latent frames
    runs = []
    forward = blocks[-1].forward
    blocks[-1].forward = lambda *a, **k: runs.append(torch.is_grad_enabled()) or forward(*a, **k)
    out = {}
    for level in ("off", "block"):
        runs.clear()
        z = latents.clone().requires_grad_(True)
        with decoder_checkpointing(bb, level):
            frames = bb.decode(z, [5, 2])
            w = torch.randn(frames.shape, generator=torch.Generator().manual_seed(1), dtype=frames.dtype)
            (frames * w).sum().backward()
        out[level] = (frames.detach(), z.grad, list(runs))
    del blocks[-1].forward
    torch.testing.assert_close(out["block"][0], out["off"][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out["block"][1], out["off"][1], rtol=1e-9, atol=1e-12)
    assert out["off"][1][0, :, 1:3].abs().sum() > 0
    # latent frames 0..2 decoded (0 without gradient); at block level the 2 kept ones are run again in backward
    assert len(out["off"][2]) == 3 and len(out["block"][2]) == 5


def test_tiled_decoder_is_recomputed_tile_by_tile_with_the_same_gradient():
    """vae_tiling: the VAE's own tiled decode (tiles forced small here); by default only the chosen frame's latent
    frame keeps gradient, in every tile; at the block level the core checkpoints each decoder call (one latent frame
    of one tile), and the frames and latent gradient equal storing everything."""
    from vader_wan.tiny import tiny_components

    from vader_core.checkpointing import decoder_checkpointing

    bb = WanBackbone(WanOptions(height=32, width=32, frames=13, steps=2, vae_tiling=True))
    comps = tiny_components(0)
    comps["scheduler"] = bb.make_scheduler()
    bb.setup(comps, "cpu", torch.float64)
    vae = bb.components["vae"]
    assert vae.use_tiling and vae.decoder not in bb.decoder_checkpoint_blocks()  # frames within one 256x256 tile
    vae.enable_tiling(tile_sample_min_height=16, tile_sample_min_width=16, tile_sample_stride_height=8,
                      tile_sample_stride_width=8)  # fmt: skip
    assert bb.decoder_checkpoint_blocks() == [vae.decoder]
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0)).double()  # 4 latent frames
    runs, out = [], {}
    handle = vae.decoder.conv_in.register_forward_hook(lambda m, a, o: runs.append(o.requires_grad))
    for level in ("off", "block"):
        runs.clear()
        z = latents.clone().requires_grad_(True)
        with decoder_checkpointing(bb, level):
            frames = bb.decode(z, [5])  # latent frame 2
            w = torch.randn(frames.shape, generator=torch.Generator().manual_seed(1), dtype=frames.dtype)
            (frames * w).sum().backward()
        out[level] = (frames.detach(), z.grad, list(runs))
    handle.remove()
    tiles = len(out["off"][2]) // 3  # latent frames 0..2 decoded in each tile
    assert tiles == 16 and out["off"][2] == [False, False, True] * tiles  # 4 x 4 tiles of 2 x 2 latents
    assert len(out["block"][2]) == 4 * tiles  # each tile's kept call again in backward
    torch.testing.assert_close(out["block"][0], out["off"][0], rtol=0, atol=0)
    torch.testing.assert_close(out["block"][1], out["off"][1], rtol=1e-9, atol=1e-12)
    per_frame = out["off"][1].abs().sum(dim=(0, 1, 3, 4))
    assert per_frame[2] > 0 and (per_frame[[0, 1, 3]] == 0).all()
    with torch.no_grad():
        full = bb.decode(latents)
    torch.testing.assert_close(out["off"][0], full[:, [5]], rtol=0, atol=1e-6)
