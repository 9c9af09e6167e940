"""The memory estimate script runs (meta device, a small size) and its figures say what the README says: one
frame from its two tiles stores less than one frame from the whole video, and checkpointing the decoder's blocks
stores less than not."""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def estimate_memory():
    path = Path(__file__).resolve().parents[1] / "scripts" / "estimate_memory.py"
    spec = importlib.util.spec_from_file_location("vader_ltx_estimate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiles_cost_less_than_the_whole_video(estimate_memory):
    r = estimate_memory.estimate("0.9.1", height=64, width=64, frames=49)
    assert 3.5 < r["transformer_weights"] < 3.7  # the 2B transformer in bf16
    assert 8.5 < r["text_encoder_weights"] < 9.2  # T5-XXL, offloaded: not in `weights`
    assert r["weights"] < r["transformer_weights"] + 2
    assert r["decode_tiles_off"] < r["decode_whole_off"] and r["decode_tiles_block"] < r["decode_whole_block"]
    assert r["decode_whole_block"] < r["decode_whole_off"]
    assert r["call_block"] < r["call_call"] < r["call_off"]
    assert r["peak_tiled"] < r["peak_whole"]


def test_ltx2_estimate_and_its_shares_on_several_gpus(estimate_memory):
    """LTX-2's video branch: the released 19B transformer (audio stream included), the kept step's 4 passes (CFG
    halves, STG, modality isolation), and per-GPU peaks that fall with FSDP and sequence parallelism."""
    r = estimate_memory.estimate_ltx2(height=64, width=64, frames=49)
    assert 18.5e9 < r["transformer_params"] < 19.5e9
    assert r["tokens"] == 7 * 2 * 2 and r["audio_tokens"] == 51
    assert r["kept_boundaries"] > 0 and r["decode_tiles_block"] <= r["decode_whole_block"]
    assert r["peak_tiled"] <= r["peak_whole"]
    one, eight = estimate_memory.per_gpu(r, 1), estimate_memory.per_gpu(r, 8)
    assert one == pytest.approx(r["peak_tiled"]) and eight < one / 3  # 35 GiB of weights shared by 8
