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
