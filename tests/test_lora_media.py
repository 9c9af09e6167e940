import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from vader_core.errors import CheckpointError, ConfigError, MediaError
from vader_core.lora import add_lora, config_metadata, load_lora, lora_state_dict, save_lora
from vader_core.media import read_video, side_by_side, slug, write_video
from vader_plugins.tiny import tiny_components


def test_lora_targets_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"no module of the denoiser matches \['to_qq'\]"):
        add_lora(tiny_components(0)["unet"], 4, None, 0.0, ["to_q", "to_qq"])
    # `conv2` also names the temporal convolutions' nn.Sequential, which peft cannot adapt.
    with pytest.raises(ConfigError, match=r"\['conv2'\] match modules peft cannot adapt") as e:
        add_lora(tiny_components(0)["unet"], 4, None, 0.0, ["to_q", "conv2"])
    assert "\n" not in str(e.value)


def test_lora_file_format_and_roundtrip(tmp_path):
    unet = tiny_components(0)["unet"]
    cfg = add_lora(unet, 4, 8, 0.0, ["to_q", "to_k", "to_v", "to_out.0"])
    for n, p in unet.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    path = tmp_path / "pytorch_lora_weights.safetensors"
    save_lora(path, lora_state_dict(unet, "unet"), config_metadata(cfg, "unet"))
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    assert all(k.startswith("unet.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert meta["unet.r"] == 4 and meta["unet.lora_alpha"] == 8
    assert sorted(meta["unet.target_modules"]) == ["to_k", "to_out.0", "to_q", "to_v"]

    fresh = tiny_components(0)["unet"]
    load_lora(fresh, path, prefix="unet")
    x = torch.randn(1, 4, 2, 16, 16)
    t = torch.tensor(10)
    ehs = torch.randn(1, 77, 32)
    unet.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, ehs).sample, fresh(x, t, ehs).sample)
        plain = tiny_components(0)["unet"](x, t, ehs).sample
    assert not torch.allclose(plain, fresh(x, t, ehs).sample)


def test_corrupt_lora_file(tmp_path):
    p = tmp_path / "pytorch_lora_weights.safetensors"
    p.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_lora(tiny_components(0)["unet"], p, prefix="unet")


@pytest.mark.parametrize("suffix,tol", [(".npy", 0), (".gif", 0.03), (".mp4", 0.1)])  # gif: 256-colour palette
def test_video_roundtrip(tmp_path, suffix, tol):
    f, h, w = 6, 33, 30  # odd height: mp4 pads to even sizes
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    frames = np.stack([np.stack([yy, xx, np.full_like(yy, i / f)], -1) for i in range(f)]).astype(np.float32)
    path = write_video(tmp_path / f"v{suffix}", frames)
    back = read_video(path)
    assert back.shape[0] == f and back.shape[-1] == 3
    back = back[:, :h, :w]
    assert np.abs(back - frames).mean() <= max(tol, 1e-7)


def test_media_errors(tmp_path):
    with pytest.raises(MediaError, match="unsupported"):
        write_video(tmp_path / "v.xyz", np.zeros((2, 4, 4, 3)))
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaError, match="cannot read"):
        read_video(tmp_path / "bad.mp4")
    grid = side_by_side([np.zeros((2, 4, 4, 3)), np.ones((2, 4, 5, 3))], gap=1)
    assert grid.shape == (2, 4, 10, 3)


@pytest.mark.parametrize(
    "text, sample, model",
    [
        ("a Cat riding a BIKE!", "a_cat_riding_a_bike", "a_Cat_riding_a_BIKE"),
        ("demo-toy/step-30@0.75", "demo_toy_step_30_0_75", "demo-toy_step-30@0.75"),
        ("__x__y..", "x_y", "x__y.."),
        ("¿?", "video", "model"),
        ("", "video", "model"),
        ("an owl dancing in the rain under a very long sky of stars", "an_owl_dancing_in_the_rain_under_a_very_", None),
    ],
)
def test_slug_names_samples_and_eval_folders_as_before(text, sample, model):
    """One helper, the two file layouts it serves unchanged: validation samples (lower case, 40 characters)
    and `vader eval`'s model folders (case and `._@-` kept)."""
    assert slug(text, lower=True, max_len=40) == sample
    if model is not None:
        assert slug(text, keep="._@-", fallback="model") == model
