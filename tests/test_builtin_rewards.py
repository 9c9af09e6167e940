import pytest
import torch

from vader_core.testing import RewardContractTests
from vader_plugins.rewards import Brightness, Contrast, Saturation, Sharpness, TargetColor, TemporalSmoothness


class TestBrightness(RewardContractTests):
    reward_cls = Brightness


class TestSaturation(RewardContractTests):
    reward_cls = Saturation


class TestContrast(RewardContractTests):
    reward_cls = Contrast


class TestSharpness(RewardContractTests):
    reward_cls = Sharpness


class TestTemporalSmoothness(RewardContractTests):
    reward_cls = TemporalSmoothness


class TestTargetColor(RewardContractTests):
    reward_cls = TargetColor
    invalid_options = [{"color": [2, 0, 0]}, {"color": "nocolour"}, {"unknown": 1}]


def _video(rgb, frames=2, size=4):
    return torch.tensor(rgb, dtype=torch.float32).view(1, 1, 3, 1, 1).expand(1, frames, 3, size, size).clone()


def _load(cls, **opts):
    r = cls(cls.Options(**opts))
    r.load("cpu", torch.float32)
    return r


def test_formulas():
    assert _load(Brightness)(_video([1, 1, 1]), [""]).item() == pytest.approx(1.0)
    assert _load(Brightness)(_video([1, 0, 0]), [""]).item() == pytest.approx(0.299)
    assert _load(Saturation)(_video([1, 0.5, 0]), [""]).item() == pytest.approx(1.0)
    assert _load(Saturation)(_video([0.3, 0.3, 0.3]), [""]).item() == pytest.approx(0.0)
    assert _load(Contrast)(_video([0.5, 0.5, 0.5]), [""]).item() == pytest.approx(0.0, abs=1e-5)
    assert _load(TargetColor, color="red")(_video([1, 0, 0]), [""]).item() == pytest.approx(0.0, abs=1e-5)
    assert _load(TargetColor, color="#000000")(_video([1, 1, 1]), [""]).item() == pytest.approx(-1.0)
    checker = torch.zeros(1, 1, 3, 4, 4)
    checker[..., ::2, ::2] = 1
    checker[..., 1::2, 1::2] = 1
    assert _load(Sharpness)(checker, [""]).item() == pytest.approx(2.0)
    v = torch.zeros(1, 3, 3, 2, 2)
    v[:, 1] = 1
    assert _load(TemporalSmoothness)(v, [""]).item() == pytest.approx(-1.0)
    assert TemporalSmoothness.scores == "clip"
