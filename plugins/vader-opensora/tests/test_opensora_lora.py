"""LoRA on STDiT3: export to the official VADER-Open-Sora layout (loaded the official way, with peft),
import back, block checkpointing."""

import peft
import pytest
import torch
from vader_opensora import export
from vader_opensora.tiny import tiny_stdit3

from vader_core.errors import ConfigError
from vader_core.lora import add_lora, load_lora
from vader_core.testing import save_random_lora

TARGETS = ["qkv", "q_linear", "kv_linear"]


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 5, 8, 8, generator=g)
    y = torch.randn(2, 1, 12, 16, generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 5:] = 0
    kw = {"fps": torch.tensor([24.0, 24.0]), "height": torch.tensor([64.0, 64.0]), "width": torch.tensor([64.0, 64.0])}
    return (x, torch.tensor([1000.0, 300.0]), y), {"mask": mask, **kw}


def _forward(model):
    args, kw = _inputs()
    with torch.no_grad():
        return model(*args, **kw)


def test_export_loads_the_official_way(tmp_path, capsys):
    """An exported LoRA loads as VADER-Open-Sora loads one (peft.get_peft_model on the STDiT3 with peft's
    default alpha, then set_peft_model_state_dict) and gives the same output."""
    model = tiny_stdit3(0)
    lora_dir = save_random_lora(
        model, tmp_path / "lora", prefix="transformer", rank=4, alpha=6.0, targets=TARGETS, seed=1
    )
    ours = _forward(model)
    assert (ours - _forward(tiny_stdit3(0))).abs().max() > 1e-4  # the LoRA matters
    out = tmp_path / "peft_model_1.pt"
    assert export.main([str(lora_dir), "--export", "official", "--out", str(out)]) == 0
    assert "lora_rank = 4" in capsys.readouterr().out
    sd = torch.load(out, weights_only=True)
    assert "base_model.model.spatial_blocks.0.attn.qkv.lora_A.weight" in sd
    assert "base_model.model.temporal_blocks.1.cross_attn.kv_linear.lora_B.weight" in sd

    official = peft.get_peft_model(tiny_stdit3(0), peft.LoraConfig(r=4, target_modules=TARGETS, lora_dropout=0.01))
    result = peft.set_peft_model_state_dict(official, sd)
    assert not result.unexpected_keys
    official.eval()
    torch.testing.assert_close(_forward(official), ours, rtol=1e-5, atol=1e-6)

    back = tmp_path / "back"
    assert export.main([str(out), "--export", "vader", "--out", str(back)]) == 0
    fresh = tiny_stdit3(0)
    load_lora(fresh, back, prefix="transformer")
    torch.testing.assert_close(_forward(fresh), ours, rtol=1e-5, atol=1e-6)


def test_export_refuses_targets_the_official_code_lacks(tmp_path, capsys):
    lora_dir = save_random_lora(tiny_stdit3(0), tmp_path / "lora", prefix="transformer", targets=[*TARGETS, "proj"])
    from vader_core.lora import read_lora

    sd, meta = read_lora(lora_dir)
    with pytest.raises(ConfigError, match="proj"):
        export.to_official(sd, meta)
    assert export.main([str(lora_dir), "--export", "official", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lora.target_modules" in err


def test_block_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny_stdit3(0)
        add_lora(model, 4, 4, 0.0, TARGETS)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.full(p.shape, 0.01))
        if checkpointing:
            model.enable_gradient_checkpointing()
        args, kw = _inputs()
        model(*args, **kw).square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0] and all(g.abs().sum() > 0 for g in grads[0].values())
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=1e-4, atol=1e-8, msg=n)


def test_text_mask_and_fps_matter():
    model = tiny_stdit3(0)
    args, kw = _inputs()
    with torch.no_grad():
        base = model(*args, **kw)
        nomask = model(*args, **{**kw, "mask": None})
        fps = model(*args, **{**kw, "fps": torch.tensor([8.0, 8.0])})
    assert (base[1] - nomask[1]).abs().max() > 1e-4 and torch.allclose(base[0], nomask[0], atol=1e-6)
    assert (base - fps).abs().max() > 1e-4


def test_block_checkpointing_follows_the_core_level():
    """STDiT3's own per-block switch is on only for the core's block level; the old option is one line."""
    from vader_opensora import OpenSoraBackbone, OpenSoraOptions

    from vader_core.checkpointing import CheckpointPlan

    bb = OpenSoraBackbone(OpenSoraOptions(height=32, width=32, frames=17, steps=2))
    bb.load_tiny("cpu", torch.float32)
    assert bb.denoiser.gradient_checkpointing is False
    for level, on in ((True, True), ("call", False), (False, False)):
        CheckpointPlan.for_backbone(bb, level, True)
        assert bb.denoiser.gradient_checkpointing is on, level
    with pytest.raises(ValueError, match="memory.gradient_checkpointing"):
        OpenSoraOptions(block_checkpointing=True)


def test_fps_is_required():
    """The official STDiT3 has no default frame rate: a call without one fails instead of assuming 24."""
    model = tiny_stdit3(0)
    args, kw = _inputs()
    with pytest.raises(ValueError, match="fps"), torch.no_grad():
        model(*args, **{**kw, "fps": None})
