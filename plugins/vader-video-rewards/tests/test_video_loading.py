"""Loading through the real code path: tiny random models saved with `save_pretrained` (a local directory,
and an offline Hugging Face cache), and one-line errors when weights are missing or of another model."""

import pytest
import torch
from vader_video_rewards import VJEPA, Action
from vader_video_rewards import action as action_mod
from vader_video_rewards import vjepa as vjepa_mod

from vader_core.errors import ConfigError, MissingWeightsError

SEED = 3
VIDEO = torch.rand(2, 3, 3, 40, 64, generator=torch.Generator().manual_seed(0))
PROMPTS = ["a man playing guitar", "dancing ballet"]
MODULES = {VJEPA: vjepa_mod, Action: action_mod}
REPOS = {VJEPA: vjepa_mod.VJEPA2_REPO, Action: action_mod.VIDEOMAE_REPO}


def _scores(r):
    with torch.no_grad():
        return r(VIDEO, PROMPTS)


def _in_memory(cls):
    r = cls()
    r.load_tiny("cpu", torch.float32, seed=SEED)
    return r


def _loaded(cls, **opts):
    r = cls(cls.Options(**opts))
    r.load("cpu", torch.float32)
    return r


@pytest.mark.parametrize("cls", [VJEPA, Action], ids=lambda c: c.name)
def test_loads_a_save_pretrained_directory(tmp_path, cls):
    MODULES[cls].tiny_model(SEED).save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    r = _loaded(cls, model=str(tmp_path / "model"))
    torch.testing.assert_close(_scores(r), _scores(_in_memory(cls)), rtol=1e-6, atol=1e-6)
    assert not any(p.requires_grad for p in r.model.parameters()) and not r.model.training


@pytest.mark.parametrize("cls", [VJEPA, Action], ids=lambda c: c.name)
def test_loads_the_default_repo_from_the_hub_cache(tmp_path, hub_cache, cls):
    MODULES[cls].tiny_model(SEED).save_pretrained(tmp_path / "model")
    hub_cache.put(REPOS[cls], tmp_path / "model")
    torch.testing.assert_close(_scores(_loaded(cls)), _scores(_in_memory(cls)), rtol=1e-6, atol=1e-6)


def test_loaded_model_keeps_its_labels_and_sizes(tmp_path):
    MODULES[Action].tiny_model(SEED).save_pretrained(tmp_path / "m")
    r = _loaded(Action, model=str(tmp_path / "m"), label="Playing Chess")
    assert r.frames == 4 and r.size == (32, 32) and r.fixed == action_mod.TINY_LABELS.index("playing chess")
    MODULES[VJEPA].tiny_model(SEED).save_pretrained(tmp_path / "v")
    r = _loaded(VJEPA, model=str(tmp_path / "v"))
    assert r.frames == 4 and r.size == (32, 32) and len(r.masks) == 4


@pytest.mark.parametrize("cls", [VJEPA, Action], ids=lambda c: c.name)
def test_missing_weights_offline_is_one_line(hub_cache, cls):
    with pytest.raises(MissingWeightsError) as e:
        _loaded(cls)
    msg = str(e.value)
    assert "\n" not in msg and REPOS[cls] in msg and "HF_HUB_OFFLINE" in msg and "`model`" in msg


def test_missing_local_directory(tmp_path, hub_cache):
    with pytest.raises(MissingWeightsError, match="no such directory"):
        _loaded(VJEPA, model=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="not available"):
        _loaded(Action, model=str(tmp_path / "empty"))


def test_config_without_weights_is_missing_weights(tmp_path, hub_cache):
    action_mod.tiny_config().save_pretrained(tmp_path / "cfg-only")
    with pytest.raises(MissingWeightsError) as e:
        _loaded(Action, model=str(tmp_path / "cfg-only"))
    assert "\n" not in str(e.value)


def test_a_checkpoint_of_the_other_architecture_is_refused(tmp_path):
    action_mod.tiny_model(SEED).save_pretrained(tmp_path / "videomae")
    with pytest.raises(ConfigError, match="is a `videomae` checkpoint, not `vjepa2`"):
        _loaded(VJEPA, model=str(tmp_path / "videomae"))
    vjepa_mod.tiny_model(SEED).save_pretrained(tmp_path / "vjepa")
    with pytest.raises(ConfigError, match="is a `vjepa2` checkpoint, not `videomae`"):
        _loaded(Action, model=str(tmp_path / "vjepa"))
