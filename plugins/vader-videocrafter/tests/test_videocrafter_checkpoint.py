"""Loading VideoCrafter2 checkpoints (official LDM layout) on tiny random weights; errors a person can act on."""

import pytest
import torch
from vader_videocrafter import HUB_ID, VideoCrafterBackbone, VideoCrafterOptions

from vader_core.cli import main as vader
from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.sampling import generate

OPTS = {"height": 32, "width": 32, "frames": 3, "steps": 2}


def _video(bb, seed=0):
    return generate(bb, ["a panda riding a bike"], None, torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def reference_video():
    bb = VideoCrafterBackbone(VideoCrafterOptions(**OPTS))
    bb.load_tiny("cpu", torch.float32, seed=0)
    return _video(bb)


def test_nested_lightning_checkpoint_loads(tiny_architecture, tiny_ckpt, reference_video):
    """Every tensor lands in place: the same frames as the components the checkpoint was written from."""
    bb = VideoCrafterBackbone(VideoCrafterOptions(model=str(tiny_ckpt), **OPTS))
    bb.load("cpu", torch.float32)
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
    torch.testing.assert_close(_video(bb), reference_video, rtol=0, atol=1e-6)


def test_directory_plain_and_safetensors_layouts(tiny_architecture, tmp_path, official_sd, tiny_ckpt, reference_video):
    from safetensors.torch import save_file

    bb = VideoCrafterBackbone(VideoCrafterOptions(model=str(tiny_ckpt.parent), **OPTS))  # directory with model.ckpt
    bb.load("cpu", torch.float32)
    save_file({k: v.contiguous() for k, v in official_sd.items()}, tmp_path / "vc2.safetensors")
    torch.save({"module": {f"_forward_module.{k}": v for k, v in official_sd.items()}}, tmp_path / "ds.pt")
    for name in ("vc2.safetensors", "ds.pt"):
        bb = VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / name), **OPTS))
        bb.load("cpu", torch.float32)
        torch.testing.assert_close(_video(bb), reference_video, rtol=0, atol=1e-6)


def test_missing_and_unexpected_keys_one_error(tiny_architecture, tmp_path, official_sd):
    sd = dict(official_sd)
    del sd["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]
    sd["model.diffusion_model.input_blocks.1.1.extra.weight"] = torch.zeros(3)
    sd["model.diffusion_model.out.2.bias"] = torch.zeros(7)
    torch.save({"state_dict": sd}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError) as err:
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "bad.ckpt"), **OPTS)).load("cpu", torch.float32)
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing" in msg and "attn2.to_k.weight" in msg
    assert "1 unexpected" in msg and "input_blocks.1.1.extra.weight" in msg
    assert "1 with another shape" in msg and "out.2.bias (7,) vs model (4,)" in msg


def test_unused_vae_key_is_reported(tiny_architecture, tmp_path, official_sd):
    sd = {**official_sd, "first_stage_model.decoder.mid.attn_2.q.weight": torch.zeros(1)}
    torch.save(sd, tmp_path / "plain.ckpt")  # plain (not nested) layout
    with pytest.raises(CheckpointError, match=r"1 unexpected .*first_stage_model.decoder.mid.attn_2.q.weight"):
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "plain.ckpt"), **OPTS)).load("cpu", torch.float32)


def test_other_schedule_is_refused(tiny_architecture, tmp_path, official_sd):
    torch.save({**official_sd, "alphas_cumprod": official_sd["alphas_cumprod"] * 0.9}, tmp_path / "s.ckpt")
    with pytest.raises(CheckpointError, match="alphas_cumprod"):
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "s.ckpt"), **OPTS)).load("cpu", torch.float32)


def test_pickled_objects_need_opt_in(tiny_architecture, tmp_path, official_sd, reference_video):
    import argparse

    # Python objects besides tensors, as a Lightning checkpoint may carry (hyper-parameters)
    torch.save({"state_dict": official_sd, "hyper_parameters": argparse.Namespace(lr=1e-4)}, tmp_path / "obj.ckpt")
    with pytest.raises(CheckpointError, match="allow_pickle"):
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "obj.ckpt"), **OPTS)).load("cpu", torch.float32)
    bb = VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "obj.ckpt"), allow_pickle=True, **OPTS))
    bb.load("cpu", torch.float32)
    torch.testing.assert_close(_video(bb), reference_video, rtol=0, atol=1e-6)


def test_missing_weights_one_line(empty_hub_cache):
    with pytest.raises(MissingWeightsError) as err:
        VideoCrafterBackbone(VideoCrafterOptions()).load("cpu", torch.float32)
    msg = str(err.value)
    assert "\n" not in msg
    assert HUB_ID in msg and "model.ckpt" in msg and "backbone.model" in msg and "HF_HUB_OFFLINE" in msg


def test_missing_local_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="backbone.model"):
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path / "nope.ckpt"))).load("cpu", torch.float32)
    with pytest.raises(MissingWeightsError, match="has no model.ckpt"):
        VideoCrafterBackbone(VideoCrafterOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_missing_weights_from_the_cli(empty_hub_cache, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        vader(
            [
                "generate",
                "--backbone",
                "videocrafter2",
                "--prompt",
                "a cat",
                "--out",
                str(tmp_path / "x.npy"),
                "--device",
                "cpu",
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and HUB_ID in err and "backbone.model" in err
