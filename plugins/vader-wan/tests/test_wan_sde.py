"""The stochastic step of ``ddpo`` on wan (Flow-GRPO's SDE, vader_core.dit_t2v): the sampled step follows the
stated Gaussian, its log-probability is that Gaussian's, and without noise it is the flow-matching Euler step."""

import math

import pytest
import torch
from vader_wan import WanBackbone, WanOptions


def _backbone(eta, scheduler="euler"):
    bb = WanBackbone(WanOptions(height=32, width=32, frames=5, steps=4, eta=eta, scheduler=scheduler, guidance=1.0))
    bb.load_tiny("cpu", torch.float32)
    return bb, bb.set_timesteps(4)


@pytest.mark.parametrize("step_index", [0, 2, 3])
def test_sampled_step_follows_the_stated_gaussian(step_index):
    bb, ts = _backbone(0.7)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 2, 4, 4, generator=g)
    v = torch.randn(x.shape, generator=g)
    mean, std = bb.sde_step_mean_std(v, x, step_index)
    s, s_next = bb.sigma(step_index), bb.sigma(step_index + 1)
    s_safe = bb.sigma(1) if s >= 1 else s  # sigma = 1 (the first step) has no finite std: Flow-GRPO uses the next
    assert std == pytest.approx(0.7 * math.sqrt(s / (1 - s_safe)) * math.sqrt(s - s_next))
    # 200 draws of the step from the same state: standardised residuals are N(0, 1), independent of the mean.
    z = torch.stack(
        [
            (bb.scheduler_step(v, ts[step_index], x, step_index, torch.Generator().manual_seed(k)) - mean) / std
            for k in range(200)
        ]
    )
    n = z.numel()
    assert abs(float(z.mean())) < 4 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 4 * math.sqrt(2 / n)
    assert abs(float((z**4).mean()) - 3) < 0.1  # Gaussian kurtosis
    # The log-probability is the Gaussian's, per video (mean over latent elements).
    prev = mean + std * z[0]
    ref = torch.distributions.Normal(mean, std).log_prob(prev).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(bb.step_log_prob(v, ts[step_index], x, prev, step_index), ref, rtol=1e-5, atol=1e-5)
    # ... and it is largest at the mean.
    assert (bb.step_log_prob(v, ts[step_index], x, mean, step_index) > ref).all()


def test_without_noise_the_mean_is_the_euler_step():
    bb, ts = _backbone(1e-6)
    ode, _ = _backbone(0.0)
    g = torch.Generator().manual_seed(1)
    x, v = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 16, 2, 4, 4, generator=g)
    for i in (1, 2):
        mean, std = bb.sde_step_mean_std(v, x, i)
        ode.scheduler._step_index = i  # the diffusers Euler scheduler keeps its own counter
        torch.testing.assert_close(mean, ode.scheduler.step(v, ts[i], x, return_dict=False)[0], rtol=1e-5, atol=1e-5)
        assert std < 1e-5


def test_deterministic_sampler_has_no_log_probability():
    from vader_core.errors import ConfigError

    bb, ts = _backbone(0.0, scheduler="unipc")
    x = torch.zeros(1, 16, 2, 4, 4)
    with pytest.raises(ConfigError, match="sampling.eta"):
        bb.step_log_prob(x, ts[0], x, x, 0)
