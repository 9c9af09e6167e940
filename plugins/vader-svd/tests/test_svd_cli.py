"""The command line with the svd backbone: the CLI contract (training on images, generation, missing
weights), and errors a person can act on."""

import json

import pytest
import torch
from vader_svd import SVDBackbone, SVDOptions

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_core.testing import BackboneCLIContractTests

HUB_ID = "stabilityai/stable-video-diffusion-img2vid"


class TestSVDCommands(BackboneCLIContractTests):
    backbone_cls = SVDBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, image_encoder/, feature_extractor/, scheduler/"):
        SVDBackbone(SVDOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_frames_other_than_the_released_ones_warn(tiny_dir, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="vader"):
        SVDBackbone(SVDOptions(model=str(tiny_dir), frames=16, height=32, width=32)).load("cpu", torch.float32)
    warned = [r.getMessage() for r in caplog.records if r.name == "vader"]
    assert len(warned) == 1 and "`backbone.frames` is 16" in warned[0] and "14" in warned[0] and "25" in warned[0]
    caplog.clear()
    bb = SVDBackbone(SVDOptions(model=str(tiny_dir), frames=25, height=32, width=32))
    with caplog.at_level(logging.WARNING, logger="vader"):
        bb.load("cpu", torch.float32)
    assert not [r for r in caplog.records if r.name == "vader"]
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())


def test_generate_needs_an_image(tiny_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        vader(
            [
                "generate",
                "--backbone",
                "svd",
                "--set",
                f"backbone.model={tiny_dir}",
                "--out",
                str(tmp_path / "x.npy"),
                "--device",
                "cpu",
            ]
        )
    assert exit_.value.code == 2
    assert "--image" in capsys.readouterr().err


def test_missing_image_folder_is_reported_before_weights(tmp_path):
    """A wrong `train.images` says so in one line before the weights load (offline, no weights here)."""
    from vader_core.testing import assert_one_line_error, run_cli

    res = run_cli(
        [
            "train",
            "--backbone",
            "svd",
            "--set",
            f"train.images={tmp_path / 'no-such-folder'}",
            "--output-dir",
            tmp_path / "run",
            "--device",
            "cpu",
            "-q",
        ]
    )
    line = assert_one_line_error(res, "`train.images`: no such folder or file", "folder of images")
    assert "weights" not in line


def test_eval_with_images_from_the_cli(tiny_dir, tmp_path, make_image):
    """`vader eval --image` on an image-to-video backbone: each image conditions its own videos, named after it."""
    import numpy as np

    paths = []
    for i, name in enumerate(["a_red_kite", "a_boat_at_sea"]):
        paths.append(tmp_path / f"{name}.png")
        make_image(40, 48, seed=i).save(paths[-1])
    out = tmp_path / "eval"
    vader(
        [
            "eval",
            "--backbone",
            "svd",
            "--set",
            f"backbone.model={tiny_dir}",
            "--set",
            "backbone.height=32",
            "--set",
            "backbone.width=32",
            "--set",
            "backbone.frames=3",
            "--set",
            "backbone.steps=2",
            "--reward",
            "brightness",
            "--image",
            str(paths[0]),
            "--image",
            str(paths[1]),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    data = json.loads((out / "eval.json").read_text())
    rows = data["models"][0]["videos"]
    assert [r["prompt"] for r in rows] == ["a red kite", "a boat at sea"]
    a, b = (np.load(out / r["file"]) for r in rows)
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-3, "both videos came out the same: the image was not used"
    assert data["images"] == [str(p) for p in paths]
    assert (out / "grid.png").is_file() and (out / "eval.md").is_file()


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--prompt", "a", "--prompt", "b", "--prompt", "c", "--image", "{img}", "--image", "{img}"],
            "2 --image for 3 prompts",
        ),
        (["--image", "{tmp}/nope.png"], "no such file"),
    ],
)
def test_eval_image_errors_are_one_line(tmp_path, image_file, args, expected):
    from vader_core.testing import assert_one_line_error, run_cli

    args = [a.format(img=image_file, tmp=tmp_path) for a in args]
    res = run_cli(["eval", "--backbone", "svd", *args, "--out", tmp_path / "e", "--device", "cpu"])
    assert_one_line_error(res, expected)


def test_eval_image_on_a_text_backbone_is_one_line(tmp_path, image_file):
    from vader_core.testing import assert_one_line_error, run_cli

    res = run_cli(
        [
            "eval",
            "--backbone",
            "tiny",
            "--prompt",
            "a",
            "--image",
            image_file,
            "--out",
            tmp_path / "e",
            "--device",
            "cpu",
        ]
    )
    assert_one_line_error(res, "takes no conditioning image")


def test_trains_with_no_images_given(tmp_path, monkeypatch):
    """`vader train --backbone svd --reward ...` needs no `train.images`: vader's built-in conditioning images
    (drawn by code) stand in, and a warning line says so."""
    from vader_core.testing import QUIET_TRAINING, read_metrics, run_cli, set_options

    monkeypatch.setenv("VADER_CACHE", str(tmp_path / "cache"))
    opts = {**QUIET_TRAINING, "backbone.height": 32, "backbone.width": 32, "backbone.frames": 3, "backbone.steps": 2}
    args = ["train", "--backbone", "svd", "--reward", "brightness", "--random-weights", "--max-steps", "1"]
    rc, _, err = run_cli([*args, "--output-dir", tmp_path / "run", "--device", "cpu", "-q", *set_options(opts)])
    assert rc == 0, err
    assert "warning: `train.images` is not set: using vader's 8 built-in conditioning images" in err
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 8
    assert read_metrics(tmp_path / "run")[0]["step"] == 1


def test_eval_without_images_uses_the_built_in_ones(tmp_path, monkeypatch):
    """`vader eval --backbone svd --prompt ...` pairs the prompts with vader's built-in images, in turn."""
    from vader_core.testing import run_cli

    monkeypatch.setenv("VADER_CACHE", str(tmp_path / "cache"))
    sets = ["--set", "backbone.height=32", "--set", "backbone.width=32", "--set", "backbone.frames=3"]
    args = ["eval", "--backbone", "svd", "--random-weights", "--reward", "brightness", "--prompt", "a", "--prompt", "b"]
    rc, _, err = run_cli([*args, *sets, "--set", "backbone.steps=2", "--out", tmp_path / "e", "--device", "cpu"])
    assert rc == 0, err
    images = json.loads((tmp_path / "e" / "eval.json").read_text())["images"]
    assert len(images) == 2 and images[0] != images[1]
    assert all(str(tmp_path / "cache") in p and p.endswith(".png") for p in images)
