"""The memory estimate script runs (meta device, a small size) and its figures say what the README says: the
8.3B transformer's weights, the block inputs diffusers' checkpointing keeps, and a later frame of the causal VAE
costing more to decode than frame 0."""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def estimate_memory():
    path = Path(__file__).resolve().parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("vader_hunyuanvideo_estimate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_at_a_small_size(estimate_memory):
    r = estimate_memory.estimate(height=64, width=96, frames=9)
    assert 15.3 < r["transformer_weights"] < 15.7  # 8.3B parameters in bf16
    assert r["transformer_weights"] < r["weights"] < r["transformer_weights"] + 3  # + the VAE; encoders offloaded
    assert 14 < r["encoder_weights"] < 15  # Qwen2.5-VL-7B's language model, byT5, SigLIP: on the CPU
    assert r["tokens"] == 3 * 4 * 6 + 1985
    assert r["boundaries"] == pytest.approx(54 * r["tokens"] * 2048 * 2 / 2**30)
    assert 0 < r["block"] and 0 < r["decoder_first"] < r["decoder_last"]
    assert r["peak_first"] <= r["peak_last"]
    # FSDP shares out the transformer's weights (no sequence parallelism: every GPU keeps its block inputs)
    one, eight = estimate_memory.per_gpu(r, 1), estimate_memory.per_gpu(r, 8)
    assert one == pytest.approx(r["peak_first"])
    assert eight == pytest.approx(one - r["transformer_weights"] * 7 / 8 + r["root_weights"] + 2 * r["block_weights"])
