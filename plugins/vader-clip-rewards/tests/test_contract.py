"""The reward contract (vader_core.testing) for each reward, on tiny random models of the real classes."""

import pytest
import torch
from vader_clip_rewards import HPS, MPS, Aesthetic, ClipScore, ImageReward, PickScore

from vader_core.testing import PluginPackageContractTests, RewardContractTests


class TestAestheticContract(RewardContractTests):
    reward_cls = Aesthetic
    video_size = (2, 2, 24, 40)
    invalid_options = [{"no_such_option_xyz": 1}, {"resize_mode": "crop"}]

    def make_reward(self):
        r = Aesthetic()
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestHPSContract(RewardContractTests):
    reward_cls = HPS
    invalid_options = [{"no_such_option_xyz": 1}, {"version": "v3"}, {"resize_mode": "crop"}]

    def make_reward(self):
        r = HPS(HPS.Options(version="v2.0"))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestPickScoreContract(RewardContractTests):
    reward_cls = PickScore
    video_size = (2, 2, 40, 24)
    invalid_options = [{"no_such_option_xyz": 1}, {"resize_mode": 3}]

    def make_reward(self):
        r = PickScore(PickScore.Options(gradient_checkpointing=True))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestClipScoreContract(RewardContractTests):
    reward_cls = ClipScore
    invalid_options = [{"no_such_option_xyz": 1}, {"scale": 0}, {"quick_gelu": "maybe"}]

    def make_reward(self):
        r = ClipScore(ClipScore.Options(scale=100.0, resize_mode="squash"))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


ALL = [Aesthetic, HPS, PickScore, ClipScore]


class TestPackage(PluginPackageContractTests):
    package = "vader_clip_rewards"
    distribution = "vader-clip-rewards"
    plugin_classes = [*ALL, MPS, ImageReward]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_frozen_eval_and_run_dtype(cls):
    r = cls()
    r.load_tiny("cpu", torch.bfloat16, seed=0)
    modules = [m for m in vars(r).values() if isinstance(m, torch.nn.Module)]
    assert modules
    for m in modules:
        assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in m.parameters())
        assert not any(sub.training for sub in m.modules() if isinstance(sub, torch.nn.Dropout))
    out = r(torch.rand(1, 2, 3, 32, 48), ["a red car"])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", [HPS, PickScore, ClipScore], ids=lambda c: c.name)
def test_text_rewards_depend_on_the_prompt(cls):
    r = cls()
    r.load_tiny("cpu", torch.float32, seed=0)
    v = torch.rand(1, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1, -1)
    out = r(v, ["a cat", "a photo of a dog on the beach", "a cat"])
    assert out[0] == out[2] and not torch.isclose(out[0], out[1])


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_seed_changes_the_tiny_model(cls):
    v = torch.rand(1, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = cls(), cls()
    a.load_tiny("cpu", torch.float32, seed=0)
    b.load_tiny("cpu", torch.float32, seed=1)
    assert not torch.allclose(a(v, ["x"]), b(v, ["x"]))


def _first_vision_mlp(r):
    if isinstance(r, (PickScore, MPS)):
        return r.model.vision_model.encoder.layers[0].mlp
    if isinstance(r, ImageReward):
        return r.vision.encoder.layers[0].mlp
    visual = r.visual if isinstance(r, Aesthetic) else r.model.visual
    return visual.transformer.resblocks[0].mlp


@pytest.mark.parametrize("cls", [*ALL, MPS, ImageReward], ids=lambda c: c.name)
def test_gradient_checkpointing_recomputes_and_keeps_gradients(cls):
    """With the option on, the vision layers run again in backward, and the pixel gradient is unchanged."""
    grads, calls = [], []
    for flag in (False, True):
        r = cls(cls.Options(gradient_checkpointing=flag))
        r.load_tiny("cpu", torch.float32, seed=0)
        n = []
        # a pre-hook: non-reentrant checkpointing stops recomputing once the saved tensors are back,
        # which can be before the MLP's forward (and a post-hook) completes
        _first_vision_mlp(r).register_forward_pre_hook(lambda *a, n=n: n.append(1))
        v = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        r(v, ["a cat"]).sum().backward()
        grads.append(v.grad)
        calls.append(len(n))
    assert calls == [1, 2]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_clip_score_scale_and_range():
    one, hundred = ClipScore(), ClipScore(ClipScore.Options(scale=100))
    one.load_tiny("cpu", torch.float32)
    hundred.load_tiny("cpu", torch.float32)
    v = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(hundred(v, ["a", "b"]), 100 * one(v, ["a", "b"]))
    assert hundred.value_range == (-100.0, 100.0)


def test_hps_version_aliases():
    assert HPS.Options(version="v2.0").version == "v2"
    assert HPS.Options(version="2.1").version == "v2.1"
    assert HPS.Options().version == "v2.1"
