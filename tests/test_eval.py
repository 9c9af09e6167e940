"""`vader eval`: files, numbers equal to `vader score` of the same videos, adapters that do not mix, scales."""

import json

import numpy as np
import pytest
import torch

from vader_core.cli import main
from vader_core.lora import load_lora, set_lora_scale
from vader_core.sampling import generate
from vader_core.testing import save_random_lora
from vader_plugins.tiny import TinyBackbone


def _score(capsys, path, reward, *extra):
    capsys.readouterr()
    main(["score", str(path), "--reward", reward, "--device", "cpu", *extra])
    out = capsys.readouterr().out.strip()
    return float(out.split(":")[1])


def _tiny_loras(tmp_path):
    paths = []
    for seed, targets in ((0, ("to_q", "to_k", "to_v", "to_out.0")), (1, ("to_q", "to_k"))):
        bb = TinyBackbone(TinyBackbone.Options(steps=2))
        bb.load("cpu", torch.float32)
        paths.append(
            save_random_lora(
                bb.denoiser, tmp_path / f"run{seed}" / "checkpoints" / "step-5", seed=seed, std=0.5, targets=targets
            )
        )
    return paths


def test_eval_on_tiny_writes_files_and_matches_score(tmp_path, capsys):
    a, b = _tiny_loras(tmp_path)
    out = tmp_path / "eval"
    main(
        [
            "eval",
            "--backbone",
            "tiny",
            "--set",
            "backbone.steps=2",
            "--device",
            "cpu",
            "--lora",
            str(a),
            "--lora",
            str(b),
            "--lora-scale",
            "0.5",
            "--lora-scale",
            "1",
            "--reward",
            "saturation",
            "--metric",
            "brightness",
            "--prompt",
            "a cat",
            "--prompt",
            "a dog",
            "--prompt",
            "a fox",
            "--seed",
            "0",
            "--seed",
            "1",
            "--batch-size",
            "2",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "run0/step-5@0.5" in printed and "saturation" in printed
    for name in ("eval.json", "eval.md", "grid.png", "grid.mp4"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    data = json.loads((out / "eval.json").read_text())
    labels = [m["model"] for m in data["models"]]
    assert labels == ["base", "run0/step-5@0.5", "run0/step-5@1", "run1/step-5@0.5", "run1/step-5@1"]
    for m in data["models"]:
        assert len(m["videos"]) == 6 and m["scores"]["saturation"]["n"] == 6
        vals = [v["scores"]["saturation"] for v in m["videos"]]
        assert m["scores"]["saturation"]["mean"] == pytest.approx(np.mean(vals))
        assert m["scores"]["saturation"]["std"] == pytest.approx(np.std(vals))
        assert f"| {m['model']} |" in (out / "eval.md").read_text()
    # Every number is what `vader score` says of the saved video.
    for m in (data["models"][0], data["models"][2], data["models"][3]):
        for v in m["videos"][:3]:
            for reward in ("saturation", "brightness"):
                assert _score(capsys, out / v["file"], reward) == pytest.approx(v["scores"][reward], abs=2e-6)

    # The videos are the models': base = no LoRA, each LoRA alone, its scale as set_lora_scale gives.
    def fresh(lora=None, scale=1.0):
        bb = TinyBackbone(TinyBackbone.Options(steps=2))
        bb.load("cpu", torch.float32)
        if lora is not None:
            load_lora(bb.denoiser, lora, prefix="unet")
            set_lora_scale(bb.denoiser, scale)
        return generate(bb, ["a cat", "a dog"], None, torch.Generator().manual_seed(1000))

    for idx, lora, scale in ((0, None, 1.0), (2, a, 1.0), (3, b, 0.5)):
        want = fresh(lora, scale)
        for j in range(2):
            got = np.load(out / data["models"][idx]["videos"][3 + j]["file"])
            np.testing.assert_allclose(got, want[j].permute(0, 2, 3, 1).numpy(), atol=1e-5)
    v_base = np.load(out / data["models"][0]["videos"][0]["file"])
    assert not np.allclose(v_base, np.load(out / data["models"][2]["videos"][0]["file"]))


def test_eval_on_toy_with_guard_metric(tmp_path, capsys):
    from vader_plugins.toy.quality import score

    prompts = ["a red circle moving left on a gray background", "a blue square moving up on a black background"]
    out = tmp_path / "eval"
    main(
        [
            "eval",
            "--backbone",
            "toy",
            "--set",
            "backbone.steps=6",
            "--device",
            "cpu",
            "--reward",
            "brightness",
            "--metric",
            "toy_color",
            "--metric",
            "toy_direction",
            *sum((["--prompt", p] for p in prompts), []),
            "--out",
            str(out),
            "--frames",
            "0,7",
        ]
    )
    data = json.loads((out / "eval.json").read_text())
    (base,) = data["models"]
    videos = torch.stack([torch.from_numpy(np.load(out / v["file"])).permute(0, 3, 1, 2) for v in base["videos"]])
    check = score(videos, prompts)
    assert base["scores"]["toy_color"]["mean"] == check["color_accuracy"]
    assert base["scores"]["toy_direction"]["mean"] == check["direction_accuracy"]
    for v in base["videos"]:
        assert _score(capsys, out / v["file"], "brightness") == pytest.approx(v["scores"]["brightness"], abs=2e-6)
    assert (out / "grid.png").is_file() and (out / "grid.mp4").is_file()


def _one_line_error(args, needle):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "vader_core.cli", *args], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.returncode >= 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert needle in lines[0], lines[0]


def test_eval_errors(tmp_path):
    _one_line_error(
        ["eval", "--backbone", "tiny", "--no-base", "--prompt", "a", "--device", "cpu", "--out", str(tmp_path)],
        "nothing to evaluate",
    )
    _one_line_error(
        ["eval", "--backbone", "tiny", "--prompt", "a", "--frames", "x", "--device", "cpu", "--out", str(tmp_path)],
        "--frames",
    )
    _one_line_error(
        ["generate", "--backbone", "tiny", "--prompt", "a", "--lora-scale", "0.5", "--out", str(tmp_path / "a.npy")],
        "--lora-scale needs --lora",
    )


def test_generate_lora_scale(tmp_path):
    (a, _) = _tiny_loras(tmp_path)
    outs = {}
    for scale in ("0", "0.5", "1"):
        main(
            [
                "generate",
                "--backbone",
                "tiny",
                "--prompt",
                "a cat",
                "--set",
                "backbone.steps=2",
                "--device",
                "cpu",
                "--lora",
                str(a),
                "--lora-scale",
                scale,
                "--out",
                str(tmp_path / f"s{scale}.npy"),
            ]
        )
        outs[scale] = np.load(tmp_path / f"s{scale}.npy")
    main(
        [
            "generate",
            "--backbone",
            "tiny",
            "--prompt",
            "a cat",
            "--set",
            "backbone.steps=2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "base.npy"),
        ]
    )
    np.testing.assert_allclose(outs["0"], np.load(tmp_path / "base.npy"), atol=1e-6)
    d_half, d_full = (np.abs(outs[s] - outs["0"]).mean() for s in ("0.5", "1"))
    assert 0 < d_half < d_full


def test_eval_images_pairing(tmp_path):
    """How `vader eval` pairs --image with prompts on an image-to-video backbone: one image for every prompt,
    one per prompt, names as prompts when no prompt is given, else train.images' images in turn."""
    from pathlib import Path

    from vader_core.cli import _eval_images
    from vader_core.errors import ConfigError

    a, b = tmp_path / "a_red_kite.png", tmp_path / "boat.png"
    assert _eval_images([a], ["x", "y"], None, "svd") == ([str(a), str(a)], ["x", "y"])
    assert _eval_images([a, b], ["x", "y"], None, "svd") == ([str(a), str(b)], ["x", "y"])
    assert _eval_images([a, b], [], None, "svd") == ([str(a), str(b)], ["a red kite", "boat"])
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("one.png", "two.jpg", "notes.txt"):
        (folder / name).write_bytes(b"")
    images, prompts = _eval_images([], ["p", "q", "r"], str(folder), "svd")
    assert prompts == ["p", "q", "r"]
    assert [Path(x).name for x in images] == ["one.png", "two.jpg", "one.png"]
    with pytest.raises(ConfigError, match="2 --image for 3 prompts"):
        _eval_images([a, b], ["x", "y", "z"], None, "svd")
    images, prompts = _eval_images([], ["x", "y"], None, "svd")  # no train.images: the built-in images
    assert prompts == ["x", "y"] and [Path(x).suffix for x in images] == [".png", ".png"] and images[0] != images[1]
