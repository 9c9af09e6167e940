"""Loading the released layout: STDiT3 and VAE safetensors with no renaming, the strict key check, T5 from a
directory, missing weights as one line."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from vader_opensora import OpenSoraBackbone, OpenSoraOptions

from vader_core.errors import CheckpointError, MissingWeightsError

TINY = {"height": 32, "width": 32, "frames": 17, "steps": 2}


def _load(paths, **kw):
    bb = OpenSoraBackbone(
        OpenSoraOptions(
            **TINY, model=str(paths["model"]), vae=str(paths["vae"]), text_encoder=str(paths["text_encoder"]), **kw
        )
    )
    bb.load("cpu", torch.float32)
    return bb


def test_released_layout_loads_and_matches_the_tiny_components(tiny_release, tiny_architecture):
    from vader_core.sampling import generate

    loaded = _load(tiny_release)
    ref = OpenSoraBackbone(OpenSoraOptions(**TINY))
    ref.load_tiny("cpu", torch.float32, seed=0)
    for name in ("transformer", "vae", "text_encoder"):
        a, b = loaded.components[name].state_dict(), ref.components[name].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    videos = [generate(bb, ["a cat"], None, torch.Generator().manual_seed(0)) for bb in (loaded, ref)]
    torch.testing.assert_close(videos[0], videos[1])
    # the official names, as in hpcai-tech/OpenSora-STDiT-v3 and OpenSora-VAE-v1.2
    keys = load_file(str(tiny_release["model"] / "model.safetensors")).keys()
    for k in (
        "rope.freqs",
        "y_embedder.y_embedding",
        "spatial_blocks.0.attn.q_norm.weight",
        "temporal_blocks.1.cross_attn.kv_linear.weight",
        "final_layer.scale_shift_table",
        "t_block.1.weight",
    ):
        assert k in keys
    vae_keys = load_file(str(tiny_release["vae"] / "model.safetensors")).keys()
    for k in (
        "scale",
        "shift",
        "spatial_vae.module.decoder.conv_out.weight",
        "temporal_vae.decoder.conv_out.conv.weight",
        "temporal_vae.encoder.block_res_blocks.0.0.conv1.conv.weight",
        "temporal_vae.post_quant_conv.conv.bias",
    ):
        assert k in vae_keys


def test_a_single_safetensors_file_is_accepted(tiny_release, tiny_architecture):
    paths = {
        **tiny_release,
        "vae": tiny_release["vae"] / "model.safetensors",
        "model": tiny_release["model"] / "model.safetensors",
    }
    bb = _load(paths)
    assert bb.denoiser.config.hidden_size == 32  # config.json beside the file was read


def test_strict_check_lists_every_problem_in_one_line(tiny_release, tiny_architecture, tmp_path):
    sd = load_file(str(tiny_release["model"] / "model.safetensors"))
    del sd["spatial_blocks.0.attn.qkv.weight"]
    sd["spatial_blocks.0.attn.extra.weight"] = torch.zeros(1)
    sd["final_layer.linear.bias"] = torch.zeros(3)
    d = tmp_path / "broken"
    d.mkdir()
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text((tiny_release["model"] / "config.json").read_text())
    with pytest.raises(CheckpointError) as e:
        _load({**tiny_release, "model": d})
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    assert "1 missing (spatial_blocks.0.attn.qkv.weight)" in msg
    assert "1 unexpected (spatial_blocks.0.attn.extra.weight)" in msg
    assert "1 with another shape (final_layer.linear.bias (3,) vs model (32,))" in msg


def test_wrong_architecture_is_misshapen(tiny_release, tiny_architecture, tmp_path):
    d = tmp_path / "other"
    d.mkdir()
    (d / "model.safetensors").write_bytes((tiny_release["model"] / "model.safetensors").read_bytes())
    cfg = json.loads((tiny_release["model"] / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "depth": 3}))
    with pytest.raises(CheckpointError, match="missing"):
        _load({**tiny_release, "model": d})


def test_missing_weights_are_one_line(tmp_path, empty_hub_cache, tiny_release):
    from vader_core.cli import main as vader

    with pytest.raises(MissingWeightsError) as e:
        _load({**tiny_release, "model": tmp_path / "nowhere"})
    assert len(str(e.value).splitlines()) == 1 and "backbone.model" in str(e.value)
    with pytest.raises(MissingWeightsError) as e:
        OpenSoraBackbone(OpenSoraOptions(**TINY)).load("cpu", torch.float32)  # the hub ids, offline
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "HF_HUB_OFFLINE" in msg and "hpcai-tech/OpenSora-STDiT-v3" in msg
    with pytest.raises(MissingWeightsError, match="text encoder"):
        _load({**tiny_release, "text_encoder": "nobody/no-such-t5"})
    with pytest.raises(SystemExit) as ex:
        vader(
            [
                "generate",
                "--backbone",
                "opensora",
                "--prompt",
                "a cat",
                "--out",
                str(tmp_path / "x.npy"),
                "--device",
                "cpu",
                "--set",
                "backbone.frames=17",
            ]
        )
    assert ex.value.code != 0


def test_save_pretrained_round_trip(tmp_path, tiny_architecture):
    bb = OpenSoraBackbone(OpenSoraOptions(**TINY))
    bb.load_tiny("cpu", torch.float32, seed=3)
    bb.save_pretrained(tmp_path / "saved")
    again = _load(
        {
            "model": tmp_path / "saved" / "stdit3",
            "vae": tmp_path / "saved" / "vae",
            "text_encoder": tmp_path / "saved" / "t5",
        }
    )
    a, b = bb.denoiser.state_dict(), again.denoiser.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
