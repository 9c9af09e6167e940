"""The reward through vader's CLI and configuration: `vader score`, one-line errors, and training runs on
the built-in `tiny` backbone."""

import json
import math

import numpy as np
import pytest
import torch

from vader_core.cli import main


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "video.npy"
    np.save(path, np.random.default_rng(0).random((3, 40, 64, 3), dtype=np.float32))  # (F, H, W, 3) in [0, 1]
    return path


def _score(capsys, *args):
    main(["score", *map(str, args), "--device", "cpu", "--random-weights"])
    name, value = capsys.readouterr().out.strip().rsplit(":", 1)
    return name.strip(), float(value)


@pytest.mark.parametrize("sets", [[], ["--set", "detector=owlvit", "--set", "target=a red umbrella"],
                                  ["--set", "target=dog", "--set", "threshold=0.005", "--set", "top_class_only=false"]])
def test_vader_score_random_weights(video, capsys, sets):
    name, value = _score(capsys, video, "--reward", "object_removal", *sets)
    assert name == "object_removal" and math.isfinite(value) and 0 <= value <= 1


def test_vader_score_bad_target_is_one_line(video, capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", str(video), "--reward", "object_removal", "--set", "target=bok", "--device", "cpu",
              "--random-weights"])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "did you mean `book`" in err[0], err


def test_vader_score_bad_option_is_one_line(video, capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", str(video), "--reward", "object_removal", "--set", "threshold=2", "--device", "cpu",
              "--random-weights"])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "threshold" in err[0], err


RUN = """
backbone: {name: tiny}
rewards:
  - {name: object_removal, weight: 1.0, target: book, threshold: 0.005, top_class_only: false}
"""


def test_training_steps_on_the_tiny_backbone(tmp_path):
    """Two optimiser steps of `vader train --random-weights` with the reward from a YAML file: finite losses,
    rewards in [0, 1], and LoRA weights that moved (the reward's gradient reached them)."""
    from safetensors.torch import load_file

    (tmp_path / "run.yaml").write_text(RUN)
    out = tmp_path / "run"
    main(["train", "--config", str(tmp_path / "run.yaml"), "--random-weights", "--max-steps", "2",
          "--set", "optim.grad_accum=1", "--set", "validation.every=0", "--set", "output.logger=none",
          "--set", "validation.save_videos=false", "--set", "output.checkpoint_every=1",
          "--output-dir", str(out), "--device", "cpu", "-q"])
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row["rewards"]) == {"object_removal"} and 0 <= row["rewards"]["object_removal"] <= 1
        assert math.isfinite(row["loss"])
    ckpts = sorted(out.glob("checkpoints/step-*"))
    assert len(ckpts) >= 2, ckpts
    first, last = (load_file(str(next(c.glob("*.safetensors")))) for c in (ckpts[0], ckpts[-1]))
    assert any(not torch.equal(first[k], last[k]) for k in first), "LoRA weights did not change"
