"""Memory options that must not change results, and the one that does (the temporal decoder's chunks)."""

import random

import pytest
import torch
from vader_svd import SVDBackbone, SVDOptions

from vader_core.config import MemorySection, TruncationSection
from vader_core.lora import add_lora, lora_parameters
from vader_core.sampling import sample_with_grad
from vader_core.testing import randomize_lora_b


def _backbone(**options):
    bb = SVDBackbone(SVDOptions(**{"height": 32, "width": 32, "frames": 4, "steps": 3, **options}))
    bb.load_tiny("cpu", torch.float32, seed=0)
    return bb


def _lora_grads(gradient_checkpointing: bool, image, **options):
    bb = _backbone(**options)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    randomize_lora_b(bb.denoiser, seed=1, std=0.02)
    with torch.no_grad():
        cond = bb.encode_condition(["a kite"], [image])
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
    named = {n: p for n, p in bb.denoiser.named_parameters() if "lora_" in n}
    assert len(named) == len(lora_parameters(bb.denoiser))
    return video.detach(), {n: p.grad.clone() for n, p in named.items()}, kept, frames


def test_gradient_checkpointing_gives_the_same_lora_gradients(make_image):
    image = make_image(32, 32, seed=3)
    v1, g1, kept, frames = _lora_grads(False, image)
    v2, g2, _, _ = _lora_grads(True, image)
    assert kept == [1, 2] and len(frames) == 2
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in g1.values()), "some LoRA weight got no gradient"
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-7, msg=f"gradient of {n} differs")


@pytest.mark.parametrize("level", ["call", "block"])
def test_checkpointing_levels_give_the_same_lora_gradients(make_image, level):
    """The core's whole-call and block-by-block recomputation (UNet layers and temporal decoder blocks)."""
    image = make_image(32, 32, seed=3)
    v1, g1, _, _ = _lora_grads(False, image)
    v2, g2, _, _ = _lora_grads(level, image)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-4, atol=1e-7, msg=f"gradient of {n} differs")


def test_folded_checkpointing_options_are_rejected_with_a_hint():
    from pydantic import ValidationError

    for name in ("unet_gradient_checkpointing", "vae_gradient_checkpointing"):
        with pytest.raises(ValidationError, match="memory.gradient_checkpointing"):
            SVDOptions.model_validate({name: True})


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_decoded_subset_equals_the_same_frames_of_a_full_decode(chunk):
    """Frame subsampling decodes the chunks that hold the chosen frames: no change to their pixels."""
    bb = _backbone(frames=5)
    latents = torch.randn(2, 5, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = bb.decode(latents, None, chunk_size=chunk)
        for frames in ([0], [4], [1, 3], [3, 1]):
            sub = bb.decode(latents, frames, chunk_size=chunk)
            torch.testing.assert_close(sub, full[:, frames], rtol=0, atol=1e-6)
    assert full.shape == (2, 5, 3, 32, 32)


def test_subset_gradient_reaches_only_the_decoded_chunk():
    """Decoding frame 4 with chunks of 2 decodes frames 4 (its chunk [4]) only; with chunks of 3, frames 3-4."""
    bb = _backbone(frames=5)
    for chunk, touched in ((2, {4}), (3, {3, 4}), (None, {0, 1, 2, 3, 4})):
        latents = torch.randn(1, 5, 4, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        bb.decode(latents, [4], chunk_size=chunk).mean().backward()
        got = {i for i in range(5) if latents.grad[:, i].abs().sum() > 0}
        assert got == touched, f"chunk {chunk}: gradient reached frames {got}"


def test_chunk_size_changes_temporal_decoder_frames():
    """Unlike a 2-D VAE, the temporal decoder mixes the frames it decodes together (temporal convolutions,
    group norms over the chunk): chunks of 1 are not the full decode. The stock pipeline behaves alike
    (its `decode_chunk_size`); test_svd_reference checks we match it for a chunked decode."""
    bb = _backbone(frames=4)
    latents = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = bb.decode(latents, None, chunk_size=None)
        whole = bb.decode(latents, None, chunk_size=4)
        ones = bb.decode(latents, None, chunk_size=1)
    torch.testing.assert_close(whole, full, rtol=0, atol=0)
    assert (ones - full).abs().max() > 1e-4


def test_chunk_option_and_memory_override():
    """`memory.decode_chunk_size` (the `chunk_size` argument) wins over the backbone option."""
    bb = _backbone(frames=4, decode_chunk_size=1)
    latents = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        by_option = bb.decode(latents, None)
        by_arg = bb.decode(latents, None, chunk_size=1)
        overridden = bb.decode(latents, None, chunk_size=4)
        plain = _backbone(frames=4).decode(latents, None)
    torch.testing.assert_close(by_option, by_arg, rtol=0, atol=0)
    torch.testing.assert_close(overridden, plain, rtol=0, atol=0)


def test_memory_estimator_runs_on_the_meta_device():
    """scripts/estimate_memory.py (the README's figures) traces the real architecture without allocating it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("svd_estimate_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    whole, chunked = module.estimate(64, 128, 4, None), module.estimate(64, 128, 4, 2)
    assert 4.0 < whole["weights"] < 4.5  # 2.26e9 parameters in bf16
    assert (
        0 < whole["unet_block"] < whole["unet_call"] < whole["unet"] and 0 < whole["decoder_block"] < whole["decoder"]
    )
    assert whole["peak"] == whole["peak_block"] < whole["peak_call"] < whole["peak_off"]
    assert chunked["decoder"] < whole["decoder"] and chunked["unet"] == whole["unet"]
