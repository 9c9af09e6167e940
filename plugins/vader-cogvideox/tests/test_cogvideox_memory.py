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
