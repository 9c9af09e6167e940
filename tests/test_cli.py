import json
import subprocess
import sys

import numpy as np

from vader_core.cli import main

FAST = [
    "--set",
    "optim.grad_accum=1",
    "--set",
    "output.logger=none",
    "--set",
    "validation.every=0",
    "--set",
    "validation.save_videos=false",
    "--set",
    "validation.seeds=[0]",
    "--set",
    "backbone.steps=2",
    "--device",
    "cpu",
    "-q",
]


def vader(*args, env=None):
    """Run the CLI in a subprocess (exit code and one-line errors as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "vader_core.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def _one_line_error(res, *needles):
    assert res.returncode >= 2, res
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_train_cli_end_to_end(tmp_path):
    main(
        [
            "train",
            "--backbone",
            "tiny",
            "--reward",
            "saturation=1",
            "--reward",
            "brightness=0.5",
            "--max-steps",
            "2",
            "--output-dir",
            str(tmp_path),
            *FAST,
        ]
    )
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]["rewards"]) == {"saturation", "brightness"}
    for k in ("step", "loss", "reward", "rewards"):
        assert k in rows[0]
    cfg = (tmp_path / "config.yaml").read_text()
    assert "saturation" in cfg and "max_steps: 2" in cfg
    assert (tmp_path / "tensorboard").exists() is False  # logger none


def test_errors_are_one_line(tmp_path):
    _one_line_error(
        vader("train", "--backbone", "tinyy", "--output-dir", str(tmp_path)),
        "unknown backbone `tinyy`",
        "did you mean `tiny`",
    )
    _one_line_error(
        vader("train", "--reward", "aesthetic", "--output-dir", str(tmp_path)), "pip install vader-clip-rewards"
    )
    _one_line_error(
        vader("train", "--set", "backbone.frames=0", "--output-dir", str(tmp_path)), "backbone.frames", "got 0"
    )
    _one_line_error(vader("train", "--config", str(tmp_path / "missing.yaml")), "config file not found")
    _one_line_error(vader("score", str(tmp_path / "missing.mp4"), "--reward", "brightness"), "video file not found")
    _one_line_error(
        vader("train", "--resume", str(tmp_path / "nockpt"), "--output-dir", str(tmp_path)),
        "checkpoint directory not found",
    )
    res = vader("--debug", "train", "--backbone", "tinyy")
    assert "Traceback" in res.stderr and res.returncode != 0


def test_generate_formats_and_lora(tmp_path):
    main(["train", "--max-steps", "1", "--output-dir", str(tmp_path / "run"), *FAST])
    ck = tmp_path / "run" / "checkpoints" / "step-1"
    for suffix in (".npy", ".mp4", ".gif"):
        main(
            [
                "generate",
                "--backbone",
                "tiny",
                "--prompt",
                "a cat",
                "--seed",
                "3",
                "--set",
                "backbone.steps=2",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / f"v{suffix}"),
            ]
        )
    v = np.load(tmp_path / "v.npy")
    assert v.shape == (4, 32, 32, 3) and v.dtype == np.float32 and 0 <= v.min() and v.max() <= 1
    main(
        [
            "generate",
            "--prompt",
            "a cat",
            "--seed",
            "3",
            "--set",
            "backbone.steps=2",
            "--device",
            "cpu",
            "--lora",
            str(ck),
            "--out",
            str(tmp_path / "l.npy"),
        ]
    )
    assert np.load(tmp_path / "l.npy").shape == v.shape
    main(
        [
            "generate",
            "--prompt",
            "a cat",
            "--seed",
            "3",
            "--set",
            "backbone.steps=2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "v2.npy"),
        ]
    )
    np.testing.assert_array_equal(np.load(tmp_path / "v2.npy"), v)


def test_score_and_config(tmp_path, capsys):
    frames = np.zeros((3, 8, 8, 3), dtype=np.float32)
    frames[..., 0] = 1.0
    np.save(tmp_path / "red.npy", frames)
    main(["score", str(tmp_path / "red.npy"), "--reward", "target_color", "--set", "color=red", "--device", "cpu"])
    value = float(capsys.readouterr().out.strip().split(":")[1])
    assert abs(value) < 1e-5
    main(["score", str(tmp_path / "red.npy"), "--reward", "brightness", "--device", "cpu"])
    assert "brightness: 0.299000" in capsys.readouterr().out
    main(["config", "--backbone", "tiny", "--reward", "target_color"])
    out = capsys.readouterr().out
    assert "color:" in out and "frames: 4" in out and "lr: 0.0002" in out


def test_help_lists_plugin_options():
    res = vader("train", "--help")
    assert res.returncode == 0
    assert "backbone tiny" in res.stdout and "reward target_color" in res.stdout and "color" in res.stdout
