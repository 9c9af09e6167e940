"""LoRA on the VideoCrafter2 UNet: export to the official VADER layout (loaded the official way, with peft),
import back, block-wise gradient checkpointing."""

import peft
import pytest
import torch
from vader_videocrafter import export
from vader_videocrafter.tiny import tiny_components

from vader_core.errors import ConfigError
from vader_core.lora import add_lora, load_lora
from vader_core.testing import save_random_lora

TARGETS = ["to_q", "to_k", "to_v"]


def _inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 3, 8, 8, generator=g), torch.tensor([961, 41]), torch.randn(2, 77, 32, generator=g))


def _trained_lora_dir(tmp_path, rank=4, alpha=8.0, targets=TARGETS):
    unet = tiny_components(0)["unet"]
    d = save_random_lora(unet, tmp_path / "lora", rank=rank, alpha=alpha, targets=targets, seed=1)
    with torch.no_grad():
        out = unet(*_inputs(), fps=24)
    return d, out


class _LatentDiffusionLike(torch.nn.Module):
    """The module path of the official code: ``LatentDiffusion.model.diffusion_model``."""

    def __init__(self, unet):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.diffusion_model = unet


def test_export_loads_the_official_way(tmp_path, capsys):
    """An exported LoRA loads as VADER-VideoCrafter loads one (peft.get_peft_model on the whole model with
    peft's default alpha, then set_peft_model_state_dict) and gives the same UNet output."""
    lora_dir, ours = _trained_lora_dir(tmp_path, rank=4, alpha=6.0)
    out = tmp_path / "official.pt"
    assert export.main([str(lora_dir), "--export", "official", "--out", str(out)]) == 0
    assert "--lora_rank 4" in capsys.readouterr().out
    sd = torch.load(out, weights_only=True)
    assert all(k.startswith("base_model.model.model.diffusion_model.") for k in sd)
    assert "base_model.model.model.diffusion_model.init_attn.0.transformer_blocks.0.attn1.to_q.lora_A.weight" in sd

    unet = tiny_components(0)["unet"]
    model = peft.get_peft_model(
        _LatentDiffusionLike(unet), peft.LoraConfig(r=4, target_modules=["to_k", "to_v", "to_q"], lora_dropout=0.01)
    )
    result = peft.set_peft_model_state_dict(model, sd)
    assert not result.unexpected_keys
    model.eval()
    with torch.no_grad():
        theirs = unet(*_inputs(), fps=24)
    # The exported B is rescaled for peft's default alpha: same function, other rounding (1.4e-6 on CI's CPU);
    # 1e-5 is far below what a wrong scale moves (the LoRA moves this output by 0.47).
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)

    # and back: the official file as a vader LoRA (what `vader generate --lora` reads)
    back = tmp_path / "back"
    assert export.main([str(out), "--export", "vader", "--out", str(back)]) == 0
    fresh = tiny_components(0)["unet"]
    load_lora(fresh, back, prefix="unet")
    with torch.no_grad():
        torch.testing.assert_close(fresh(*_inputs(), fps=24), ours, rtol=1e-5, atol=1e-5)


def test_export_refuses_targets_the_official_code_lacks(tmp_path, capsys):
    lora_dir, _ = _trained_lora_dir(tmp_path, targets=["to_q", "to_k", "to_v", "to_out.0"])
    from vader_core.lora import read_lora

    sd, meta = read_lora(lora_dir)
    with pytest.raises(ConfigError, match=r"to_out\.0"):
        export.to_official(sd, meta)
    assert export.main([str(lora_dir), "--export", "official", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lora.target_modules" in err


def test_block_gradient_checkpointing_gives_the_same_gradients():
    """The core recomputing every layer the UNet names (checkpoint_layers, the official use_checkpoint's)."""
    from vader_core.checkpointing import checkpointed_modules

    grads = []
    for checkpointing in (False, True):
        unet = tiny_components(0)["unet"]
        add_lora(unet, 4, 4, 0.0, TARGETS)
        with torch.no_grad():
            for n, p in unet.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.full(p.shape, 0.01))
        with checkpointed_modules(unet.checkpoint_layers() if checkpointing else []):
            unet(*_inputs(), fps=24).square().mean().backward()
        grads.append({n: p.grad for n, p in unet.named_parameters() if p.requires_grad})
    assert grads[0] and all(g.abs().sum() > 0 for g in grads[0].values())
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=1e-4, atol=1e-8, msg=n)


def test_fps_conditioning_matters():
    unet = tiny_components(0)["unet"]
    with torch.no_grad():
        a, b = unet(*_inputs(), fps=24), unet(*_inputs(), fps=torch.tensor([8, 8]))
    assert (a - b).abs().max() > 1e-4


def test_block_checkpointing_option_folded_into_the_core():
    """`block_checkpointing` is now the core's `memory.gradient_checkpointing`; the backbone names its layers."""
    from pydantic import ValidationError
    from vader_videocrafter import VideoCrafterBackbone, VideoCrafterOptions

    with pytest.raises(ValidationError, match="memory.gradient_checkpointing"):
        VideoCrafterOptions(block_checkpointing=True)
    bb = VideoCrafterBackbone(VideoCrafterOptions(height=32, width=32, frames=2, steps=2))
    bb.load_tiny("cpu", torch.float32)
    layers = bb.checkpoint_blocks()
    n_res = sum(type(m).__name__ == "ResBlock" for m in bb.denoiser.modules())
    assert n_res and sum(type(m).__name__ == "ResBlock" for m in layers) == n_res
