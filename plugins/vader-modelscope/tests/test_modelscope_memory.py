"""Memory options that must not change results: gradient checkpointing and VAE decode chunks."""

import random

import pytest
import torch
from vader_modelscope import ModelScopeBackbone, ModelScopeOptions

from vader_core.config import MemorySection, TruncationSection
from vader_core.lora import add_lora
from vader_core.sampling import sample_with_grad
from vader_core.testing import randomize_lora_b


def _backbone(**options):
    bb = ModelScopeBackbone(ModelScopeOptions(**{"height": 32, "width": 32, "frames": 4, "steps": 3, **options}))
    bb.load_tiny("cpu", torch.float32, seed=0)
    return bb


def _lora_grads(gradient_checkpointing: bool, scheduler: str):
    bb = _backbone(scheduler=scheduler)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    randomize_lora_b(bb.denoiser, seed=1, std=0.02)
    with torch.no_grad():
        cond = bb.encode_condition(["a panda riding a bike"])
    video, kept, frames = sample_with_grad(
        bb,
        cond,
        1,
        torch.Generator().manual_seed(0),
        random.Random(0),
        TruncationSection(mode="last", k=2),
        MemorySection(gradient_checkpointing=gradient_checkpointing, decoded_frames=2, split_guidance=False),
    )
    video.mean().backward()
    grads = {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if "lora_" in n}
    return video.detach(), grads, kept, frames


@pytest.mark.parametrize("scheduler", ["dpmsolver", "ddim"])
def test_gradient_checkpointing_gives_the_same_lora_gradients(scheduler):
    v1, g1, kept, frames = _lora_grads(False, scheduler)
    v2, g2, _, _ = _lora_grads(True, scheduler)
    assert kept == [1, 2] and len(frames) == 2
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in g1.values()), "some LoRA weight got no gradient"
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-7, msg=f"gradient of {n} differs")


def test_decode_chunks_give_the_same_frames():
    bb = _backbone()
    latents = torch.randn(2, 4, 4, 16, 16, generator=torch.Generator().manual_seed(0))  # (B, C, F, h, w)
    # Equal up to float rounding: CPU convolutions round differently for different batch sizes.
    with torch.no_grad():
        full = bb.decode(latents, None, chunk_size=None)
        for chunk in (1, 3):
            torch.testing.assert_close(bb.decode(latents, None, chunk_size=chunk), full, rtol=0, atol=1e-5)
        torch.testing.assert_close(bb.decode(latents, [2, 0], chunk_size=1), full[:, [2, 0]], rtol=0, atol=1e-5)
    assert full.shape == (2, 4, 3, 32, 32)


def test_memory_estimator_runs_on_the_meta_device():
    """scripts/estimate_memory.py (the README's figures) traces the real architecture without allocating it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("modelscope_estimate_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    one, two = module.estimate(64, 4, 1, 1), module.estimate(64, 4, 1, 2, checkpointing=False)
    assert 3.0 < one["weights"] < 3.6  # 1.84e9 parameters in bf16
    assert one["unet"] > one["decoder"] > 0
    assert two["peak"] > one["peak"]
    # block by block < whole call recomputed (half of it: guidance halves one after the other) < stored
    assert 0 < one["unet_block"] < one["unet_call"] < one["unet"] and one["decoder_block"] < one["decoder"]
    assert one["weights_gpu"] < one["weights"]  # the text encoder offloaded
