"""Untrusted and degenerate input to the CLIP rewards: planted pickles in every weight option run no
code without `allow_pickle`; an all-zero embedding scores finite."""

import numpy as np
import pytest
from safetensors.torch import save_file
from vader_clip_rewards import pickscore as pickscore_mod
from vader_clip_rewards._common import TINY_CLIP
from vader_clip_rewards.aesthetic import tiny_components

from vader_core.testing import assert_one_line_error, plant_pickle, planted_pickle_works, run_cli


@pytest.fixture
def video(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    return tmp_path / "v.npy"


def _score(video, reward, *sets):
    args = ["score", video, "--reward", reward, "--device", "cpu"]
    for s in sets:
        args += ["--set", s]
    return run_cli(args)


def test_control_payload_runs(tmp_path):
    assert planted_pickle_works(tmp_path)


def test_hps_checkpoint(tmp_path, video):
    marker = tmp_path / "MARKER"
    f = plant_pickle(tmp_path / "HPS_v2.1_compressed.pt", marker)
    res = _score(video, "hps", f"checkpoint={f}", f"clip_model={TINY_CLIP}")
    assert not marker.exists()
    assert_one_line_error(res, "holds Python objects besides tensors", "allow_pickle")
    # the explicit opt-in unpickles (the payload runs; the file then does not fit the model)
    res = _score(video, "hps", f"checkpoint={f}", f"clip_model={TINY_CLIP}", "allow_pickle=true")
    assert marker.exists() and res[0] == 2


def test_aesthetic_mlp_path(tmp_path, video):
    clip, _ = tiny_components(0)
    clip_file = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(clip_file))
    marker = tmp_path / "MARKER"
    f = plant_pickle(tmp_path / "mlp.pth", marker)
    res = _score(video, "aesthetic", f"mlp_path={f}", f"clip_pretrained={clip_file}", f"clip_model={TINY_CLIP}")
    assert not marker.exists()
    assert_one_line_error(res, "holds Python objects besides tensors", "allow_pickle")


@pytest.mark.parametrize("reward", ["aesthetic", "clip_score"])
def test_open_clip_file(tmp_path, video, reward):
    marker = tmp_path / "MARKER"
    f = plant_pickle(tmp_path / "open_clip_pytorch_model.bin", marker)
    mlp = plant_pickle(tmp_path / "mlp.pth", tmp_path / "MARKER2", tensors=True) if reward == "aesthetic" else None
    sets = [f"clip_pretrained={f}", f"clip_model={TINY_CLIP}"] + ([f"mlp_path={mlp}"] if mlp else [])
    res = _score(video, reward, *sets)
    assert not marker.exists() and not (tmp_path / "MARKER2").exists()
    assert_one_line_error(res)


def test_pickscore_model_directory(tmp_path, video):
    d = tmp_path / "pick"
    pickscore_mod.tiny_model(0).save_pretrained(d)
    (d / "model.safetensors").unlink()
    marker = tmp_path / "MARKER"
    plant_pickle(d / "pytorch_model.bin", marker)
    res = _score(video, "pickscore", f"model={d}")
    assert not marker.exists()
    assert_one_line_error(res, "not unpickled")


def test_aesthetic_zero_embedding_scores_the_mlp_at_zero():
    """An all-zero CLIP embedding has no direction: the score is the MLP's value at 0 (the LAION
    reference), finite, with a finite gradient, instead of the NaN of dividing by a zero norm."""
    import torch
    from vader_clip_rewards import Aesthetic

    r = Aesthetic()
    r.load_tiny("cpu", torch.float32)
    width = r.mlp.layers[0].in_features

    class Zero(torch.nn.Module):
        def forward(self, x):
            return x.mean() * torch.zeros(x.shape[0], width)

    r.visual = Zero()
    video = torch.rand(1, 2, 3, 32, 32, requires_grad=True)
    score = r(video, ["a cat"])
    expected = r.mlp(torch.zeros(1, width)).squeeze()
    assert torch.isfinite(score).all() and torch.allclose(score[0], expected)
    score.sum().backward()
    assert torch.isfinite(video.grad).all()
