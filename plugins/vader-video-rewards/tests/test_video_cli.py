"""The rewards through vader's CLI: `vader score` with tiny random weights, and a few training steps on the
built-in `tiny` backbone, where vader decodes every frame because both rewards score whole clips."""

import json
import math

import numpy as np
import pytest

from vader_core.cli import main


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "video.npy"
    np.save(path, np.random.default_rng(0).random((6, 40, 64, 3), dtype=np.float32))  # (F, H, W, 3) in [0, 1]
    return path


def _score(capsys, *args):
    main(["score", *map(str, args), "--device", "cpu", "--random-weights"])
    name, value = capsys.readouterr().out.strip().rsplit(":", 1)
    return name.strip(), float(value)


@pytest.mark.parametrize("reward", ["vjepa", "action"])
def test_vader_score_random_weights(reward, video, capsys):
    name, value = _score(capsys, video, "--reward", reward, "--prompt", "a man playing guitar")
    assert name == reward and math.isfinite(value) and value <= 0


def test_vader_score_takes_reward_options(video, capsys):
    _, guitar = _score(capsys, video, "--reward", "action", "--prompt", "a man playing guitar")
    _, fixed = _score(capsys, video, "--reward", "action", "--prompt", "a cat", "--set", "label=playing guitar")
    assert fixed == pytest.approx(guitar, abs=1e-6)
    _, one = _score(capsys, video, "--reward", "vjepa", "--set", "mask_draws=1")
    _, other = _score(capsys, video, "--reward", "vjepa", "--set", "mask_draws=1", "--set", "mask_seed=5")
    assert one != other


def test_vader_score_errors_are_one_line(video, capsys):
    for args, expected in ((["--prompt", "a cat"], "no class name of the model occurs in the prompt 'a cat'"),
                           (["--prompt", "a cat", "--set", "label=playing guitr"], "did you mean `playing guitar`")):
        with pytest.raises(SystemExit) as e:
            main(["score", str(video), "--reward", "action", "--device", "cpu", "--random-weights", *args])
        assert e.value.code == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and expected in err[0]


@pytest.mark.parametrize("reward,rewards", [
    ("vjepa", "[{name: vjepa, mask_draws: 1}]"),
    ("action", "[{name: action}]"),  # the class is read from each prompt
])
def test_training_steps_on_the_tiny_backbone(tmp_path, reward, rewards):
    main(["train", "--backbone", "tiny", "--set", f"rewards={rewards}", "--random-weights", "--max-steps", "2",
          "--set", "train.prompts=[a bear riding a bike, a panda playing piano]", "--set", "backbone.steps=2",
          "--set", "optim.grad_accum=1", "--set", "validation.every=0", "--set", "validation.max_prompts=1",
          "--set", "output.logger=none", "--set", "validation.save_videos=false", "--set", "memory.decoded_frames=1",
          "--output-dir", str(tmp_path), "--device", "cpu", "-q"])
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row["rewards"]) == {reward}
        assert math.isfinite(row["rewards"][reward]) and math.isfinite(row["loss"])
        # a clip reward: every latent frame is decoded, whatever memory.decoded_frames says
        assert row["extras"]["decoded_frames"] == 4
    assert (tmp_path / "checkpoints" / "step-2").is_dir()
