"""The command line with the opensora backbone: training on tiny random weights, generation from a saved
tiny release with a trained LoRA, ddpo refused in one line."""

import json
import math

import numpy as np
import pytest
from safetensors import safe_open

from vader_core.cli import main as vader

SIZE = ["--set", "backbone.height=32", "--set", "backbone.width=32", "--set", "backbone.frames=17",
        "--set", "backbone.steps=2"]
QUIET = ["--set", "optim.grad_accum=1", "--set", "validation.every=0", "--set", "output.logger=none",
         "--set", "validation.save_videos=false", "--set", "validation.seeds=[0]", "--device", "cpu", "-q"]


def test_train_from_the_cli(tmp_path):
    out = tmp_path / "run"
    vader(["train", "--backbone", "opensora", "--random-weights", "--reward", "brightness", "--max-steps", "2",
           *QUIET, *SIZE, "--set", "lora.rank=4", "--output-dir", str(out)])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows)
    weights = out / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        keys = list(f.keys())
        b = [f.get_tensor(k) for k in keys if "lora_B" in k]
    assert b and any(t.abs().sum() > 0 for t in b), "the LoRA did not change (lora_B starts at zero)"
    assert "transformer.spatial_blocks.0.attn.qkv.lora_A.weight" in keys
    assert "transformer.temporal_blocks.0.cross_attn.q_linear.lora_B.weight" in keys


def test_generate_with_lora_from_a_saved_release(tmp_path, tiny_release, tiny_architecture):
    """`vader generate --lora` on the released layout: the LoRA changes the frames; the seed fixes them."""
    from vader_core.testing import save_random_lora
    from vader_opensora.tiny import tiny_stdit3

    lora = save_random_lora(tiny_stdit3(0), tmp_path / "lora", prefix="transformer",
                            targets=["qkv", "q_linear", "kv_linear"], std=0.5)
    src = ["--set", f"backbone.model={tiny_release['model']}", "--set", f"backbone.vae={tiny_release['vae']}",
           "--set", f"backbone.text_encoder={tiny_release['text_encoder']}"]

    def run(name, *extra):
        out = tmp_path / f"{name}.npy"
        vader(["generate", "--backbone", "opensora", *src, "--prompt", "a cat", "--seed", "3", "--out", str(out),
               "--device", "cpu", "--precision", "fp32", *SIZE, *extra])
        return np.load(out)

    plain, with_lora, again = run("plain"), run("lora", "--lora", str(lora)), run("again", "--lora", str(lora))
    assert plain.shape == (17, 32, 32, 3)
    assert np.abs(with_lora - plain).max() > 1e-3
    np.testing.assert_array_equal(with_lora, again)


def test_ddpo_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        vader(["train", "--backbone", "opensora", "--random-weights", "--method", "ddpo", "--reward", "brightness",
               "--max-steps", "1", *QUIET, *SIZE, "--output-dir", str(tmp_path / "run")])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stochastic" in err, err


def test_official_sizes_pass_the_config_checks():
    """276x368 (240p 3:4, the recipe's default) is not a multiple of 8 and must still pass; --random-weights
    picks a frame count the timestep transform accepts."""
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config, resolve

    cfg = resolve(build_config(None, [], {"backbone.name": "opensora", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["width"]) == (276, 368)
    assert "backbone.frames=17" in random_weight_sets("opensora", None, [])
