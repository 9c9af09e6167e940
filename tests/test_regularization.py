"""The KL guard: zero with LoRA at zero, positive otherwise, gradient only into LoRA, and it never changes
the trajectory it measures (stateful schedulers included)."""

import random

import pytest
import torch

from vader_core.backbone import BackbonePlugin
from vader_core.config import MemorySection, TruncationSection
from vader_core.lora import add_lora, lora_parameters
from vader_core.regularization import KLGuard, adapters_disabled
from vader_core.sampling import sample_with_grad


class _Net(torch.nn.Module):
    """A denoiser small enough to test every scheduler kind: conv in, two linears, conv out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv_in = torch.nn.Conv2d(4, 8, 1)
        self.to_q = torch.nn.Linear(8, 8)
        self.to_k = torch.nn.Linear(8, 8)
        self.conv_out = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x).permute(0, 2, 3, 1)
        h = torch.tanh(self.to_k(torch.tanh(self.to_q(h)))) * (1 + float(t) / 1000)
        return self.conv_out(h.permute(0, 3, 1, 2))


class _Mini(BackbonePlugin):
    """A backbone on any diffusers scheduler (epsilon, v or flow prediction), 2D latents ``(B, 4, 1, 4, 4)``."""

    name = "mini"
    summary = "test"

    def __init__(self, scheduler) -> None:  # noqa: ANN001
        super().__init__(BackbonePlugin.Options(steps=4, height=8, width=8, frames=1))
        self.install_components({"unet": _Net(), "scheduler": scheduler}, "cpu", torch.float32)

    def encode_condition(self, prompts, images=None):  # noqa: ANN001, ANN201
        return None

    def prepare_latents(self, batch_size, generator):  # noqa: ANN001, ANN201
        return torch.randn(batch_size, 4, 1, 4, 4, generator=generator) * getattr(
            self.scheduler, "init_noise_sigma", 1.0
        )

    def predict(self, latents, t, cond, step_index):  # noqa: ANN001, ANN201
        x = latents[:, :, 0]
        if hasattr(self.scheduler, "scale_model_input") and not _is_flow(self.scheduler):
            x = self.scheduler.scale_model_input(x, t)
        return self.denoiser(x, t).unsqueeze(2)

    def scheduler_step(self, model_output, t, latents, step_index, generator):  # noqa: ANN001, ANN201
        import inspect

        kw = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        if type(self.scheduler).__name__ == "DDIMScheduler":
            kw["eta"] = 1.0  # stochastic: the guard must cancel the noise
        prev = self.scheduler.step(model_output[:, :, 0], t, latents[:, :, 0], **kw, return_dict=False)[0]
        return prev.unsqueeze(2)

    def decode(self, latents, frames=None, chunk_size=None):  # noqa: ANN001, ANN201
        return torch.sigmoid(latents[:, :3]).permute(0, 2, 1, 3, 4)


def _is_flow(s) -> bool:  # noqa: ANN001
    return "FlowMatch" in type(s).__name__


def _schedulers():
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    base = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    return {
        "ddim-epsilon": lambda: DDIMScheduler(**base, prediction_type="epsilon"),
        "ddim-v": lambda: DDIMScheduler(
            **base, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing"
        ),
        "dpm-multistep": lambda: DPMSolverMultistepScheduler(**base),
        "unipc": lambda: UniPCMultistepScheduler(**base),
        "flow": lambda: FlowMatchEulerDiscreteScheduler(shift=3.0),
    }


SCHEDULERS = list(_schedulers())


def _mini(kind: str, lora_std: float) -> _Mini:
    bb = _Mini(_schedulers()[kind]())
    add_lora(bb.denoiser, 2, 2, 0.0, ["to_q", "to_k"])
    if lora_std:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for n, p in bb.denoiser.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * lora_std)
    return bb


def _sample(bb, guard: KLGuard | None, k: int = 2):  # noqa: ANN001
    video, kept, _ = sample_with_grad(
        guard.backbone if guard is not None else bb,
        None,
        2,
        torch.Generator().manual_seed(0),
        random.Random(0),
        TruncationSection(mode="last", k=k),
        MemorySection(gradient_checkpointing=False, decoded_frames=None),
    )
    return video, kept


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_kl_zero_with_lora_at_zero(kind):
    bb = _mini(kind, 0.0)
    guard = KLGuard(bb, None)
    _sample(bb, guard)
    assert guard.steps == 2
    assert guard.value().shape == (2,)
    assert torch.equal(guard.value(), torch.zeros(2))


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_kl_positive_gradient_only_into_lora_and_trajectory_unchanged(kind):
    bb = _mini(kind, 0.3)
    plain, _ = _sample(bb, None)
    guard = KLGuard(bb, None)
    video, kept = _sample(bb, guard)
    # The guard measures the trajectory without changing it (multistep schedulers advance once).
    torch.testing.assert_close(video, plain, rtol=0, atol=0)
    kl = guard.value()
    assert (kl > 0).all() and guard.steps == len(kept) == 2
    kl.sum().backward()
    lora = lora_parameters(bb.denoiser)
    assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    for n, p in bb.denoiser.named_parameters():
        if "lora_" not in n:
            assert p.grad is None, f"frozen {n} got a gradient"


def test_kl_grows_with_lora_scale():
    from vader_core.lora import set_lora_scale

    bb = _mini("ddim-v", 0.3)
    values = []
    for scale in (0.0, 0.5, 1.0):
        set_lora_scale(bb.denoiser, scale)
        guard = KLGuard(bb, None)
        _sample(bb, guard)
        values.append(float(guard.value().detach().mean()))
    assert values[0] == 0.0 and 0 < values[1] < values[2]


def test_adapters_disabled_is_the_base_model_and_restores_flags():
    bb = _mini("ddim-epsilon", 0.3)
    x, t = torch.randn(1, 4, 4, 4), torch.tensor(500)
    fresh = _Net()
    with torch.no_grad():
        with_lora = bb.denoiser(x, t)
        with adapters_disabled(bb.denoiser):
            base = bb.denoiser(x, t)
        after = bb.denoiser(x, t)
    torch.testing.assert_close(base, fresh(x, t).detach())
    assert not torch.allclose(with_lora, base)
    torch.testing.assert_close(after, with_lora)
    assert all(p.requires_grad == ("lora_" in n) for n, p in bb.denoiser.named_parameters())


@pytest.mark.parametrize("name", ["tiny", "toy"])
def test_kl_on_real_backbones_with_checkpointing(name):
    """tiny (UNet3D, epsilon DDIM) and toy's architecture (UNetMotionModel, v-prediction, zero SNR)."""
    from vader_core import plugins

    cls = plugins.get_backbone(name)
    bb = cls(cls.Options(steps=3, frames=2))
    bb.load_tiny("cpu", torch.float32, seed=0)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    cond = bb.encode_condition(["a red circle moving left on a gray background"], None)

    def run():
        guard = KLGuard(bb, cond)
        sample_with_grad(
            guard.backbone,
            cond,
            1,
            torch.Generator().manual_seed(0),
            random.Random(0),
            TruncationSection(mode="last", k=2),
            MemorySection(gradient_checkpointing=True),
        )
        return guard

    # Zero up to float rounding: the kept call runs its guidance halves one after the other
    # (memory.split_guidance), the base call the doubled batch at once.
    assert float(run().value().detach().sum()) < 1e-10
    for n, p in bb.denoiser.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    guard = run()
    kl = guard.value().sum()
    assert kl > 0
    kl.backward()
    for mname, m in bb.modules().items():
        for n, p in m.named_parameters():
            if "lora_" in n:
                assert p.grad is not None
            else:
                assert p.grad is None, f"frozen {mname}.{n} got a gradient"
    assert any(p.grad.abs().sum() > 0 for p in lora_parameters(bb.denoiser))
