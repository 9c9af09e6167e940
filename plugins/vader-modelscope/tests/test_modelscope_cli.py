"""The command line with the modelscope backbone: a training smoke run, and errors a person can act on."""

import json
import math

import pytest
import torch
from safetensors import safe_open

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_modelscope import HUB_ID, ModelScopeBackbone, ModelScopeOptions


def test_train_smoke_from_the_cli(tmp_path):
    out = tmp_path / "run"
    vader(["train", "--backbone", "modelscope", "--random-weights", "--reward", "brightness", "--max-steps", "2",
           "--set", "optim.grad_accum=1", "--set", "validation.every=0", "--set", "output.logger=none",
           "--set", "validation.save_videos=false", "--set", "validation.seeds=[0]",
           "--set", "backbone.height=32", "--set", "backbone.width=32", "--set", "backbone.frames=3",
           "--set", "backbone.steps=2", "--set", "lora.rank=4", "--output-dir", str(out), "--device", "cpu", "-q"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows)
    with safe_open(str(out / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors"), framework="pt") as f:
        b = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
    assert b and any(t.abs().sum() > 0 for t in b), "the LoRA did not change (lora_B starts at zero)"


def test_missing_weights_one_line(empty_hub_cache):
    with pytest.raises(MissingWeightsError) as err:
        ModelScopeBackbone(ModelScopeOptions()).load("cpu", torch.float32)
    msg = str(err.value)
    assert "\n" not in msg
    assert HUB_ID in msg and "backbone.model" in msg and "HF_HUB_OFFLINE" in msg


def test_missing_weights_from_the_cli(empty_hub_cache, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        vader(["generate", "--backbone", "modelscope", "--prompt", "a cat", "--out", str(tmp_path / "x.npy"),
               "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and HUB_ID in err and "backbone.model" in err


def test_local_directory_loads(tiny_dir):
    bb = ModelScopeBackbone(ModelScopeOptions(model=str(tiny_dir), height=32, width=32, frames=2, steps=2))
    bb.load("cpu", torch.float32)
    from diffusers import DPMSolverMultistepScheduler

    assert isinstance(bb.scheduler, DPMSolverMultistepScheduler)
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
