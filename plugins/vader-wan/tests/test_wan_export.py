"""A vader Wan LoRA in the layouts ComfyUI and kohya-style trainers read, read back the way loaders map them:
diffusers' converters of the original Wan names (``diffusion_model.…``) and of musubi/kohya names
(``lora_unet_…``) give back the same adapter, so a tiny Wan transformer computes the same output."""

import pytest
import torch
from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin
from safetensors.torch import load_file
from vader_wan.export import export_original, main
from vader_wan.tiny import tiny_transformer

from vader_core.testing import save_random_lora

TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "add_v_proj", "ffn.net.0.proj", "ffn.net.2")


def _forward(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, 2, 8, 8, generator=g)
    text = torch.randn(1, 6, 32, generator=g)
    image = torch.randn(1, 257, 32, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([500]), text, encoder_hidden_states_image=image, return_dict=False)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An image-to-video tiny transformer with a random LoRA on every layer kind ComfyUI names, alpha != rank."""
    torch.manual_seed(0)
    model = tiny_transformer(image_dim=32).eval()
    d = save_random_lora(
        model, tmp_path_factory.mktemp("lora"), prefix="transformer", rank=4, alpha=2.0, targets=TARGETS
    )
    return d, _forward(model)


@pytest.mark.parametrize("layout", ["comfyui", "kohya"])
def test_exported_layout_loads_back_to_the_same_model(trained, tmp_path, layout):
    lora_dir, expected = trained
    written = export_original(lora_dir, tmp_path)
    sd = load_file(str(written[f"{layout}/lora.safetensors"]))
    first = sorted(sd)[0]
    if layout == "comfyui":
        assert first.startswith("diffusion_model.blocks.0.") and "attn1" not in first
        assert (
            "diffusion_model.blocks.1.cross_attn.k_img.lora_A.weight" in sd
            and "diffusion_model.blocks.0.ffn.0.alpha" in sd
        )
    else:
        assert "lora_unet_blocks_0_self_attn_q.lora_down.weight" in sd and "lora_unet_blocks_1_ffn_2.alpha" in sd
    assert float(sd[next(k for k in sd if k.endswith(".alpha"))]) == 2.0
    # diffusers reads the file as it reads ComfyUI's / musubi's Wan LoRAs (its own converter of those names).
    converted = WanLoraLoaderMixin.lora_state_dict(str(written[f"{layout}/lora.safetensors"]))
    torch.manual_seed(0)
    fresh = tiny_transformer(image_dim=32).eval()
    base = _forward(fresh)
    fresh.load_lora_adapter(converted, prefix="transformer", adapter_name="exported")
    out = _forward(fresh)
    assert not torch.allclose(base, expected, atol=1e-4)  # the LoRA changes the output...
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)  # ...and the exported file gives it back


def test_command_line_and_one_line_errors(trained, tmp_path, capsys):
    lora_dir, _ = trained
    assert main([str(lora_dir), "--comfy", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "comfyui" / "lora.safetensors").is_file()
    assert (tmp_path / "x" / "kohya" / "lora.safetensors").is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    from vader_core.lora import WEIGHTS_NAME, save_lora

    save_lora(
        bad / WEIGHTS_NAME, {"transformer.proj_out.lora_A.weight": torch.zeros(2, 2)}, {"transformer.lora_alpha": 2}
    )
    assert main([str(bad), "--comfy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no name in the original Wan layout" in err[0]


def test_vader_export_command(trained, tmp_path):
    from vader_core.testing import run_cli

    lora_dir, _ = trained
    rc, out, err = run_cli(["export", lora_dir, "--backbone", "wan", "--out", tmp_path])
    assert rc == 0, err
    assert f"comfyui/lora.safetensors: {tmp_path / 'comfyui' / 'lora.safetensors'}" in out
    assert (tmp_path / "kohya" / "lora.safetensors").is_file()
    rc, _, err = run_cli(["export", lora_dir, "--out", tmp_path])  # a bare LoRA does not name its backbone
    assert rc == 2 and "pass --backbone NAME" in err and len(err.strip().splitlines()) == 1
