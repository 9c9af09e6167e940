"""The reward contract (vader_core.testing) for each reward, on tiny random models of the real classes."""

import pytest
import torch
from vader_video_rewards import METRICS, VJEPA, Action

from vader_core.testing import PluginPackageContractTests, RewardContractTests


class TestVJEPAContract(RewardContractTests):
    reward_cls = VJEPA
    video_size = (2, 3, 24, 40)  # 3 frames of 24x40: resampled to 4 frames of 32x32
    invalid_options = [
        {"no_such_option_xyz": 1},
        {"mask_draws": 0},
        {"context": "masked"},
        {"num_frames": 0},
        {"resize_mode": "pad"},
    ]


class TestVJEPAFullContextContract(RewardContractTests):
    reward_cls = VJEPA
    video_size = (2, 6, 40, 24)

    def make_reward(self):
        r = VJEPA(VJEPA.Options(context="full", mask_draws=1, resize_mode="crop", gradient_checkpointing=True))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestActionContract(RewardContractTests):
    reward_cls = Action
    video_size = (2, 5, 24, 40)
    # the target class comes from the prompt: both name one of the tiny model's Kinetics classes
    prompts = ["a cat playing chess", "a man Playing Guitar on the beach"]
    invalid_options = [{"no_such_option_xyz": 1}, {"resize_mode": "pad"}, {"label": 3}]


class TestActionLabelContract(RewardContractTests):
    reward_cls = Action

    def make_reward(self):
        r = Action(Action.Options(label="surfing water", resize_mode="crop", gradient_checkpointing=True))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


ALL = [VJEPA, Action]


class TestPackage(PluginPackageContractTests):
    package = "vader_video_rewards"
    distribution = "vader-video-rewards"
    plugin_classes = [*ALL, *METRICS]
    heavy_modules = (*PluginPackageContractTests.heavy_modules, "torchvision")


def test_both_score_whole_clips():
    assert all(cls.scores == "clip" for cls in ALL)


def test_unknown_reward_name_suggests_the_closest():
    from vader_core import plugins
    from vader_core.errors import PluginNotFoundError

    with pytest.raises(PluginNotFoundError, match="did you mean `vjepa`"):
        plugins.get_reward("vjepa2")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_frozen_eval_and_run_dtype(cls):
    r = cls()
    r.load_tiny("cpu", torch.bfloat16, seed=0)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in r.model.parameters())
    assert not r.model.training and not any(m.training for m in r.model.modules())
    out = r(torch.rand(1, 3, 3, 32, 48), ["playing guitar"])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_seed_changes_the_tiny_model(cls):
    v = torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = cls(), cls()
    a.load_tiny("cpu", torch.float32, seed=0)
    b.load_tiny("cpu", torch.float32, seed=1)
    assert not torch.allclose(a(v, ["playing chess"]), b(v, ["playing chess"]))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_identical_clips_get_identical_rewards(cls):
    r = cls()
    r.load_tiny("cpu", torch.float32, seed=0)
    v = torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    out = r(torch.cat([v, v, v.flip(1)]), ["playing chess"] * 3)
    assert out[0] == out[1]
    assert out[0] != out[2]  # the same frames in reverse order are another clip


def _first_encoder_mlp(r):
    return r.model.encoder.layer[0].mlp if isinstance(r, VJEPA) else r.model.videomae.encoder.layer[0].intermediate


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_gradient_checkpointing_recomputes_and_keeps_gradients(cls):
    """With the option on, the encoder layers run again in backward, and the pixel gradient is unchanged."""
    grads, calls = [], []
    for flag in (False, True):
        r = cls(cls.Options(gradient_checkpointing=flag, **({"mask_draws": 1} if cls is VJEPA else {})))
        r.load_tiny("cpu", torch.float32, seed=0)
        n = []
        # a pre-hook: non-reentrant checkpointing stops recomputing once the saved tensors are back
        _first_encoder_mlp(r).register_forward_pre_hook(lambda *a, n=n: n.append(1))
        v = torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        r(v, ["playing guitar"]).sum().backward()
        grads.append(v.grad)
        calls.append(len(n))
    per_pass = calls[0]  # vjepa: one encoder pass per mask (+ the no-grad target pass)
    assert per_pass >= 1 and calls[1] > per_pass
    assert not any(m.training for m in r.model.modules() if isinstance(m, torch.nn.Dropout))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)
