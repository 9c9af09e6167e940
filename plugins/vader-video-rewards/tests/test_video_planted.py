"""A planted pickle as the weights of a `model` directory runs no code (issue 18)."""

import numpy as np
import pytest
from vader_video_rewards import action as action_mod
from vader_video_rewards import vjepa as vjepa_mod

from vader_core.testing import assert_one_line_error, plant_pickle, run_cli


@pytest.mark.parametrize("reward,mod", [("vjepa", vjepa_mod), ("action", action_mod)])
def test_model_directory_with_planted_weights(tmp_path, reward, mod):
    d = tmp_path / "model"
    mod.tiny_model(0).save_pretrained(d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "MARKER"
    plant_pickle(d / "pytorch_model.bin", marker)
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32))
    res = run_cli(["score", tmp_path / "v.npy", "--reward", reward, "--set", f"model={d}", "--device", "cpu"])
    assert not marker.exists()
    assert_one_line_error(res, "not unpickled")
