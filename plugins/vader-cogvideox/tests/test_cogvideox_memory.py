"""Frame subsampling decodes only the VAE groups the chosen frames need, and the memory estimator runs on the
meta device."""

import importlib.util
from pathlib import Path

import torch
from vader_cogvideox import CogVideoXBackbone, CogVideoXOptions


def test_subset_decodes_only_the_needed_groups():
    """17 frames (5 latent frames, groups of 3 and 2): frame 4 decodes the first group alone, and its values are
    the full decode's."""
    bb = CogVideoXBackbone(CogVideoXOptions(height=32, width=32, frames=17, steps=2, max_sequence_length=16))
    bb.load_tiny("cpu", torch.float32)
    bb.set_timesteps(2)
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    seen = []
    vae = bb.components["vae"]
    handle = vae.decoder.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[2])))
    try:
        with torch.no_grad():
            full = bb.decode(z)
            seen.clear()
            sub = bb.decode(z, [4, 0])
    finally:
        handle.remove()
    assert seen == [3], seen  # one group of 3 latent frames, not the 5
    torch.testing.assert_close(sub, full[:, [4, 0]], atol=1e-5, rtol=1e-5)


def test_estimator_runs_on_the_meta_device():
    path = Path(__file__).parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("cogvideox_estimate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on = module.estimate("1.0-2b", 64, 96, 17)
    off = module.estimate("1.0-2b", 64, 96, 17, guidance=False)
    assert 3.0 < on["transformer_weights"] < 3.5  # 1.7B parameters in bf16
    assert on["boundaries"] > 1.9 * off["boundaries"] > 0  # guidance keeps both halves' block inputs
    assert 0 < on["decoder"] < on["decoder_last"]
    assert on["peak"] > on["weights"]


def _tiny(**options):
    bb = CogVideoXBackbone(CogVideoXOptions(height=32, width=32, steps=2, max_sequence_length=16, **options))
    bb.load_tiny("cpu", torch.float64)
    bb.set_timesteps(2)
    return bb


def test_gradient_reaches_only_the_groups_that_hold_the_chosen_frames():
    """25 frames (7 latent frames, groups of 3, 2 and 2): frame 20 is in latent frame 5, the third group. By default
    the earlier groups decode without gradient (the same frames); with vae_history_gradient they keep it."""
    grads = {}
    for history in (False, True):
        bb = _tiny(frames=25, vae_history_gradient=history)
        z = bb.prepare_latents(1, torch.Generator().manual_seed(0)).double()
        with torch.no_grad():
            full = bb.decode(z)
        z.requires_grad_(True)
        modes = []
        decoder = bb.components["vae"].decoder
        handle = decoder.register_forward_hook(lambda _m, _a, out, seen=modes: seen.append(out[0].requires_grad))
        frames = bb.decode(z, [20])
        handle.remove()
        torch.testing.assert_close(frames.detach(), full[:, [20]], rtol=0, atol=1e-12)
        assert modes == ([True] * 3 if history else [False, False, True])
        frames.sum().backward()
        # per latent frame: (B, F, C, H, W), after the front padding of CogVideoX 1.5's temporal patches
        grads[history] = z.grad.abs().sum(dim=(0, 2, 3, 4))[bb.latent_padding :]
    assert len(grads[False]) == 7
    assert (grads[False][:5] == 0).all() and (grads[False][5] > 0)
    assert (grads[True][:5] > 0).any() and (grads[True][5] > 0)


def test_tiled_decoder_is_recomputed_tile_by_tile_with_the_same_gradient():
    """vae_tiling: the VAE's own tiled decode (tiles forced small here); at the block level the core checkpoints each
    decoder call (one tile of one group), and the frames and latent gradient equal storing everything."""
    from vader_core.checkpointing import decoder_checkpointing

    bb = _tiny(frames=17, vae_tiling=True)
    vae = bb.components["vae"]
    # frames within one tile (the default tiles are 240x360): the VAE does not tile, the resnets are the blocks
    assert vae.use_tiling and vae.decoder not in bb.decoder_checkpoint_blocks()
    vae.enable_tiling(tile_sample_min_height=16, tile_sample_min_width=16)  # several tiles at 32x32
    assert bb.decoder_checkpoint_blocks() == [vae.decoder]
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0)).double()
    runs, out = [], {}
    # (a hook on a layer inside the decoder: the recomputation calls the decoder's forward, not the module)
    handle = vae.decoder.conv_in.register_forward_pre_hook(lambda *_: runs.append(torch.is_grad_enabled()))
    for level in ("off", "block"):
        runs.clear()
        zz = z.clone().requires_grad_(True)
        with decoder_checkpointing(bb, level):
            frames = bb.decode(zz, [12, 3])  # latent frames 3 and 1: groups 1 and 0
            w = torch.randn(frames.shape, generator=torch.Generator().manual_seed(1), dtype=frames.dtype)
            (frames * w).sum().backward()
        out[level] = (frames.detach(), zz.grad, len(runs))
    handle.remove()
    torch.testing.assert_close(out["block"][0], out["off"][0], rtol=0, atol=0)
    torch.testing.assert_close(out["block"][1], out["off"][1], rtol=1e-9, atol=1e-12)
    tiles = out["off"][2] // 2  # 2 groups per tile
    assert tiles > 1 and out["block"][2] == 2 * out["off"][2]  # each tile's call again in backward
    with torch.no_grad():
        stock = vae.decode(z.permute(0, 2, 1, 3, 4)[:, :, bb.latent_padding :] / vae.config.scaling_factor).sample
    torch.testing.assert_close(
        out["off"][0], ((stock / 2 + 0.5).clamp(0, 1)).permute(0, 2, 1, 3, 4)[:, [12, 3]].float()
    )
