"""Memory options: activation checkpointing inside the reward (same gradient, layers recomputed in backward)
and `offload` (the model on the run's device only from the call to the end of its backward)."""

import warnings

import pytest
import torch
from vader_vlm_rewards import HPSv3, VideoReward

PROMPTS = ["a red kite over a beach", "a dog surfing a wave"]


def _reward(cls, seed=0, **options):
    r = cls(cls.Options(**options))
    r.load_tiny("cpu", torch.float32, seed=seed)
    return r


def _grad(r, video):
    v = video.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        r(v, PROMPTS).sum().backward()
    return v.grad


@pytest.mark.parametrize("cls, shape", [(HPSv3, (2, 2, 3, 32, 40)), (VideoReward, (2, 8, 3, 32, 40))])
def test_checkpointing_recomputes_layers_and_keeps_the_gradient(cls, shape):
    video = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    calls = {True: 0, False: 0}
    grads = {}
    for enabled in (True, False):
        r = _reward(cls, gradient_checkpointing=enabled)
        # modules inside the layers (transformers checkpoints a layer's forward; hooks do not run in recompute)
        for inner in (r.model.model.visual.blocks[0].mlp, r.model.model.language_model.layers[-1].mlp):

            def counted(*args, forward=inner.forward, enabled=enabled, **kwargs):
                calls[enabled] += 1
                return forward(*args, **kwargs)

            inner.forward = counted
        grads[enabled] = _grad(r, video)
        assert not any(m.training for m in r.model.modules() if m not in r.model.layers())
    assert calls == {True: 4, False: 2}  # each layer once in forward, once more in backward
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)


def test_offload_keeps_the_model_on_the_device_until_its_backward(monkeypatch):
    r = _reward(HPSv3, offload=True)
    moves = []
    real_to = r.model.to

    def spy(*args, **kwargs):
        moves.append(str(args[0]) if args else str(kwargs))
        return real_to(*args, **kwargs)

    monkeypatch.setattr(r.model, "to", spy)
    video = torch.rand(2, 1, 3, 32, 32, requires_grad=True)
    out = r(video, PROMPTS)
    assert moves == ["cpu"], "the model is fetched for the call and kept for its backward"
    out.sum().backward()
    assert moves == ["cpu", "cpu"] and video.grad is not None
    with torch.no_grad():
        r(video, PROMPTS)
    assert len(moves) == 4
    ref = _reward(HPSv3)
    torch.testing.assert_close(_grad(r, video.detach()), _grad(ref, video.detach()))
