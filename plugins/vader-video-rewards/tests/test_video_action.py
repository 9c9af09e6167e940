"""The action reward: which class a prompt names, the one-line errors, and the score against
transformers' own cross-entropy."""

import pytest
import torch
from vader_video_rewards import Action
from vader_video_rewards.action import TINY_LABELS, Labels

from vader_core.errors import ConfigError

KINETICS = [
    "playing guitar",
    "playing",
    "riding a bike",
    "riding mechanical bull",
    "dancing ballet",
    "skiing (not slalom or crosscountry)",
    "ice skating",
    "skating",
    "bike",
]


@pytest.fixture
def labels():
    return Labels(dict(enumerate(KINETICS)))


def _reward(**opts):
    r = Action(Action.Options(**opts))
    r.load_tiny("cpu", torch.float32, seed=0)
    return r


@pytest.mark.parametrize(
    "prompt,name",
    [
        ("a man playing guitar on a beach", "playing guitar"),  # longest name wins over `playing`
        ("A Man PLAYING   Guitar", "playing guitar"),  # case and spaces ignored
        ("kids playing in the snow", "playing"),
        ("a girl riding a bike, cinematic", "riding a bike"),  # over `bike`
        ("skiing (not slalom or crosscountry) in the Alps", "skiing (not slalom or crosscountry)"),
        ("ice skating at night", "ice skating"),
        ("skating", "skating"),
        ("a bike", "bike"),
    ],
)
def test_label_from_the_prompt(labels, prompt, name):
    assert KINETICS[labels.from_prompt(prompt)] == name


def test_names_match_whole_words_only(labels):
    assert KINETICS[labels.from_prompt("a biker is skating")] == "skating"  # not `bike` inside `biker`
    with pytest.raises(ConfigError):
        labels.from_prompt("a motorbike")


def test_equal_lengths_go_to_the_lower_class_index():
    lab = Labels({0: "zz aa", 1: "aa zz"})
    assert lab.from_prompt("aa zz aa") == 0


def test_no_label_in_the_prompt_is_one_line_with_suggestions(labels):
    with pytest.raises(ConfigError) as e:
        labels.from_prompt("a woman plays the guitar")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean `playing guitar`" in msg and "`label`" in msg
    with pytest.raises(ConfigError, match="no class name of the model occurs in the prompt 'a cat'; put one"):
        labels.from_prompt("a cat")


def test_label_option_validated_with_did_you_mean(labels):
    assert labels.index("Dancing  Ballet") == 4
    with pytest.raises(ConfigError) as e:
        labels.index("playing guitr")
    assert "\n" not in str(e.value) and "did you mean `playing guitar`" in str(e.value)
    with pytest.raises(ConfigError, match="is not a class of the model"):
        labels.index("xyzzy")


def test_label_option_is_checked_when_the_model_loads():
    with pytest.raises(ConfigError, match="did you mean `surfing water`"):
        _reward(label="surfing watr")


def test_label_option_overrides_the_prompts():
    fixed, free = _reward(label="juggling balls"), _reward()
    v = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fixed(v, ["a cat", "playing chess"]), free(v, ["juggling balls", "juggling balls!"]))
    assert fixed.targets(["playing chess"]) == [TINY_LABELS.index("juggling balls")]


def test_score_is_minus_transformers_cross_entropy():
    """log p(label) == -(the model's own `labels=` loss) on the same preprocessed clip, and <= 0."""
    from vader_video_rewards._common import normalize, resample_clip

    r = _reward(resize_mode="crop")
    v = torch.rand(2, 7, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    prompts, names = ["dancing ballet on stage", "a boy skateboarding"], ["dancing ballet", "skateboarding"]
    x = normalize(resample_clip(v, 4, (32, 32), "crop"))
    with torch.no_grad():
        out = r(v, prompts)
        for i, name in enumerate(names):
            loss = r.model(pixel_values=x[i : i + 1], labels=torch.tensor([TINY_LABELS.index(name)])).loss
            torch.testing.assert_close(out[i], -loss)
    assert (out <= 0).all()


def test_different_prompts_score_different_classes():
    r = _reward()
    v = torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2)).expand(3, -1, -1, -1, -1)
    with torch.no_grad():
        out = r(v, ["playing guitar", "playing piano", "a man playing guitar"])
    assert out[0] == out[2] and out[0] != out[1]
    # the probabilities of all classes sum to one
    with torch.no_grad():
        total = sum(r(v[:1], [name]).exp() for name in TINY_LABELS)
    torch.testing.assert_close(total, torch.ones(1))
