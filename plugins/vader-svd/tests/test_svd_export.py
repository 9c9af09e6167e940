"""A vader SVD LoRA in the layouts ComfyUI and kohya-style tools read.

ComfyUI's LoraLoader finds a LoRA's layers by the names of the model it runs, which for SVD is the original
(SGM) UNet: ``diffusion_model.<name>`` (or ``lora_unet_<name with _>``) must be a layer of that model. The names
are checked against the released checkpoint's 1428 parameter names (tests/data), at the released size; the
tensors, ranks and alpha are checked by rebuilding the adapted model from the exported file alone, the way a
loader merges it (``W + alpha / rank * B @ A`` on the named layer)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from vader_svd.export import export_original, main, original_name
from vader_svd.tiny import tiny_components

from vader_core.testing import run_cli, save_random_lora

ORIGINAL_KEYS = Path(__file__).parent / "data" / "svd_unet_original_keys.txt"
TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "ff_in.net.2", "proj_in", "time_emb_proj")


def test_every_parameter_has_its_name_in_the_released_checkpoint():
    """diffusers' SVD UNet at the released size (its default config) maps one to one onto the original names."""
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()
    original = {line.strip() for line in ORIGINAL_KEYS.read_text().splitlines() if line and not line.startswith("#")}
    mapped = [original_name(k, unet.config.layers_per_block) for k in unet.state_dict()]
    assert len(original) == 1428 and len(mapped) == len(set(mapped)) == 1428
    assert set(mapped) == original
    assert original_name("up_blocks.3.attentions.2.temporal_transformer_blocks.0.attn2.to_q.weight", 2) == (
        "output_blocks.11.1.time_stack.0.attn2.to_q.weight"
    )


def _forward(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 3, 8, 8, 8, generator=g)
    cond = torch.randn(1, 1, 32, generator=g)
    with torch.no_grad():
        return unet(sample, torch.tensor([10.0]), cond, added_time_ids=torch.tensor([[6.0, 127.0, 0.02]])).sample


def _unet():
    return tiny_components(0, num_frames=3)["unet"].eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    unet = _unet()
    d = save_random_lora(unet, tmp_path_factory.mktemp("lora"), rank=4, alpha=2.0, targets=TARGETS)
    return d, _forward(unet)


def _merge_as_a_loader_does(path: Path, style: str) -> torch.nn.Module:
    """A fresh tiny UNet with the exported LoRA merged in by original name only (``W += alpha/r * B @ A``)."""
    unet = _unet()
    layers = unet.config.layers_per_block
    params = dict(unet.named_parameters())
    by_original = {original_name(k, layers): k for k in params}
    prefix = "diffusion_model." if style == "comfyui" else "lora_unet_"
    if style == "kohya":  # the loader's key map: every original name with `_` for `.`
        by_original = {k.replace(".", "_"): v for k, v in by_original.items()}
    down, up = ("lora_A", "lora_B") if style == "comfyui" else ("lora_down", "lora_up")
    sd = load_file(str(path))
    bases = {k[: -len(".alpha")] for k in sd if k.endswith(".alpha")}
    assert len(sd) == 3 * len(bases)
    with torch.no_grad():
        for base in bases:
            assert base.startswith(prefix)
            a, b = sd[f"{base}.{down}.weight"], sd[f"{base}.{up}.weight"]
            weight = params[by_original[base[len(prefix) :] + ("_weight" if style == "kohya" else ".weight")]]
            assert weight.shape == (b.shape[0], a.shape[1])
            weight += float(sd[f"{base}.alpha"]) / a.shape[0] * (b @ a)
    return unet


@pytest.mark.parametrize("layout", ["comfyui", "kohya"])
def test_exported_layout_rebuilds_the_trained_model(trained, tmp_path, layout):
    lora_dir, expected = trained
    written = export_original(lora_dir, tmp_path)
    sd = load_file(str(written[f"{layout}/lora.safetensors"]))
    if layout == "comfyui":
        assert "diffusion_model.input_blocks.1.1.time_stack.0.attn1.to_q.lora_A.weight" in sd
        assert "diffusion_model.output_blocks.2.1.transformer_blocks.0.ff.net.2.alpha" in sd
        assert "diffusion_model.middle_block.0.emb_layers.1.lora_B.weight" in sd
    else:
        assert "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight" in sd
        assert "lora_unet_output_blocks_3_0_time_stack_emb_layers_1.lora_up.weight" in sd
    assert {float(v) for k, v in sd.items() if k.endswith(".alpha")} == {2.0}
    base = _forward(_unet())
    out = _forward(_merge_as_a_loader_does(written[f"{layout}/lora.safetensors"], layout))
    assert not torch.allclose(base, expected, atol=1e-4)  # the LoRA changes the output...
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)  # ...and the exported file gives it back


def test_command_line_and_one_line_errors(trained, tmp_path, capsys):
    lora_dir, _ = trained
    assert main([str(lora_dir), "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "kohya" / "lora.safetensors").is_file()
    from vader_core.lora import WEIGHTS_NAME, save_lora

    bad = tmp_path / "bad"
    bad.mkdir()
    save_lora(bad / WEIGHTS_NAME, {"unet.nonsense.lora_A.weight": torch.zeros(2, 2)}, {"unet.lora_alpha": 2})
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no name in the original SVD layout" in err[0]
    assert not (bad / "comfyui").exists()  # nothing written before the error


def test_vader_export_command(trained, tmp_path):
    lora_dir, _ = trained
    rc, out, err = run_cli(["export", lora_dir, "--backbone", "svd", "--out", tmp_path])
    assert rc == 0, err
    assert f"comfyui/lora.safetensors: {tmp_path / 'comfyui' / 'lora.safetensors'}" in out
    assert (tmp_path / "kohya" / "lora.safetensors").is_file()
