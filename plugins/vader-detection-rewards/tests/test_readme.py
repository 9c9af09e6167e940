"""Every YAML block of the README loads through vader's configuration, and the first one (VADER's
objective) gives the official loss: the total is ``1 - mean confidence``, the official ``reward``."""

import re
from pathlib import Path

import pytest
import torch
import yaml

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_yaml_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_yaml_resolves(block, tmp_path):
    from vader_core.config import build_config
    from vader_core.resolve import resolve_config

    data = yaml.safe_load(block)
    # rewards of other plugins (aesthetic: vader-clip-rewards) are not loaded in this suite
    data["rewards"] = [r for r in data["rewards"] if r["name"] == "object_removal"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    cfg = resolve_config(build_config(tmp_path / "run.yaml"))
    assert [r.name for r in cfg.rewards] == ["object_removal"] * len(data["rewards"])


def test_the_official_objective(tmp_path, saved):
    from vader_core.config import build_config
    from vader_core.resolve import build_objective, resolve_config

    (tmp_path / "run.yaml").write_text(BLOCKS[0])
    cfg = resolve_config(build_config(tmp_path / "run.yaml"))
    assert cfg.memory.decoded_frames == 1 and cfg.memory.frame_selection == "random"
    objective = build_objective(cfg.rewards)
    for t in objective.terms:  # the tiny saved detector with the COCO labels, target `book` seen
        t.reward.options = t.reward.Options.model_validate(
            {**t.reward.options.model_dump(), "model": str(saved.yolos_coco)}
        )
    objective.load("cpu", torch.float32)
    reward = objective.terms[0].reward
    with torch.no_grad():
        reward.model.class_labels_classifier.layers[-1].bias[84] += 6.0
        video = torch.rand(2, 1, 3, 40, 64, generator=torch.Generator().manual_seed(0))
        total, scores = objective(video, ["a cat", "a dog"])
        confidence = reward.confidence(video.flatten(0, 1))
    assert (confidence > 0).all()
    torch.testing.assert_close(total, 1 - confidence)  # the official `reward`; the loss is -total = loss - 1
