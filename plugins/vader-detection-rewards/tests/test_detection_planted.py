"""A planted pickle as the detector weights runs no code (issue 18)."""

import shutil

import numpy as np

from vader_core.testing import assert_one_line_error, plant_pickle, run_cli


def test_detector_directory_with_planted_weights(tmp_path, saved):
    d = tmp_path / "yolos"
    shutil.copytree(saved.yolos_coco, d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "MARKER"
    plant_pickle(d / "pytorch_model.bin", marker)
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    res = run_cli(["score", tmp_path / "v.npy", "--reward", "object_removal", "--set", f"model={d}", "--device", "cpu"])
    assert not marker.exists()
    assert_one_line_error(res, "not unpickled")
