"""The command line with the videocrafter2 backbone: a training smoke run on tiny random weights,
and generation with a trained LoRA."""

import json
import math

import numpy as np
from safetensors import safe_open

from vader_core.cli import main as vader

SIZE = ["--set", "backbone.height=32", "--set", "backbone.width=32", "--set", "backbone.frames=3",
        "--set", "backbone.steps=2"]


def test_train_smoke_from_the_cli(tmp_path):
    out = tmp_path / "run"
    vader(["train", "--backbone", "videocrafter2", "--random-weights", "--reward", "brightness", "--max-steps", "2",
           "--set", "optim.grad_accum=1", "--set", "validation.every=0", "--set", "output.logger=none",
           "--set", "validation.save_videos=false", "--set", "validation.seeds=[0]", *SIZE,
           "--set", "lora.rank=4", "--output-dir", str(out), "--device", "cpu", "-q"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows)
    weights = out / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        keys = list(f.keys())
        b = [f.get_tensor(k) for k in keys if "lora_B" in k]
    assert b and any(t.abs().sum() > 0 for t in b), "the LoRA did not change (lora_B starts at zero)"
    assert "unet.init_attn.0.transformer_blocks.0.attn1.to_q.lora_A.weight" in keys


def test_generate_with_lora_from_a_checkpoint(tmp_path, tiny_architecture, tiny_ckpt):
    """`vader generate --lora` on a model.ckpt: the LoRA changes the frames; the seed fixes them."""
    from vader_core.lora import WEIGHTS_NAME, add_lora, config_metadata, lora_state_dict, save_lora
    from vader_videocrafter.tiny import tiny_components

    unet = tiny_components(0)["unet"]
    config = add_lora(unet, 4, 4, 0.0, ["to_q", "to_k", "to_v"])
    with __import__("torch").no_grad():
        for n, p in unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    lora = tmp_path / "lora"
    lora.mkdir()
    save_lora(lora / WEIGHTS_NAME, lora_state_dict(unet, "unet"), config_metadata(config, "unet"))

    def run(name, *extra):
        out = tmp_path / f"{name}.npy"
        vader(["generate", "--backbone", "videocrafter2", "--set", f"backbone.model={tiny_ckpt}", "--prompt", "a cat",
               "--seed", "3", "--out", str(out), "--device", "cpu", "--precision", "fp32", *SIZE, *extra])
        return np.load(out)

    plain, with_lora, again = run("plain"), run("lora", "--lora", str(lora)), run("again", "--lora", str(lora))
    assert plain.shape == (3, 32, 32, 3)
    assert np.abs(with_lora - plain).max() > 1e-3
    np.testing.assert_array_equal(with_lora, again)
