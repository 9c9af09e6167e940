"""A planted pickle as the UNet weights of `backbone.model` runs no code (issue 18)."""

import shutil

from vader_core.testing import assert_one_line_error, plant_pickle, run_cli


def test_model_directory_with_planted_unet(tmp_path, tiny_dir):
    d = tmp_path / "model"
    shutil.copytree(tiny_dir, d)
    for f in (d / "unet").glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "MARKER"
    plant_pickle(d / "unet" / "diffusion_pytorch_model.bin", marker)
    res = run_cli(
        [
            "generate",
            "--backbone",
            "modelscope",
            "--prompt",
            "a cat",
            "--set",
            f"backbone.model={d}",
            "--set",
            "backbone.steps=1",
            "--device",
            "cpu",
            "--out",
            tmp_path / "v.npy",
        ]
    )
    assert not marker.exists() and not (tmp_path / "v.npy").exists()
    assert_one_line_error(res)
