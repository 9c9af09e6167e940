"""The flow-matching DiT base (:mod:`vader_core.dit_t2v`): the sampler a checkpoint ships, the timestep hook,
dynamic shifting, and the blocks found as diffusers names them."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from vader_core.dit_t2v import DiTT2VBackbone, FlowMatchOptions, repeated_blocks
from vader_core.errors import ConfigError

EULER_DYNAMIC = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}
UNIPC = {
    "_class_name": "UniPCMultistepScheduler",
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 3.0,
}


class Flow(DiTT2VBackbone):
    name = "flow-test"

    def __init__(self, mu=None, **options):
        super().__init__(FlowMatchOptions(**options))
        self.mu = mu

    def timestep_kwargs(self, steps):
        return {} if self.mu is None else {"mu": self.mu}

    def with_scheduler(self, config):
        self.components, self.device = {"scheduler": self.make_scheduler(config)}, torch.device("cpu")
        return self


@pytest.mark.parametrize(
    ("config", "chosen", "expected"),
    [
        (UNIPC, "auto", UniPCMultistepScheduler),
        (EULER_DYNAMIC, "auto", FlowMatchEulerDiscreteScheduler),
        (None, "auto", UniPCMultistepScheduler),
        (EULER_DYNAMIC, "unipc", UniPCMultistepScheduler),
        (UNIPC, "euler", FlowMatchEulerDiscreteScheduler),
    ],
)
def test_scheduler_defaults_to_what_the_checkpoint_ships(config, chosen, expected):
    sched = Flow(scheduler=chosen).make_scheduler(config)
    assert type(sched) is expected
    if config is not None and config["_class_name"] == expected.__name__:
        for k, v in config.items():
            if not k.startswith("_"):
                assert sched.config[k] == v, k


def test_timestep_hook_feeds_dynamic_shifting_and_the_sde_step_reads_public_sigmas():
    """The hook's ``mu`` reaches ``set_timesteps``: the chain is the stock scheduler's for that ``mu``; the base
    records its public sigmas for the stochastic step."""
    bb = Flow(mu=1.3, eta=0.5).with_scheduler(EULER_DYNAMIC)
    timesteps = bb.set_timesteps(4)
    ref = FlowMatchEulerDiscreteScheduler.from_config(EULER_DYNAMIC)
    ref.set_timesteps(4, mu=1.3)
    torch.testing.assert_close(torch.stack(list(timesteps)), ref.timesteps)
    assert bb.chain_sigmas == pytest.approx(ref.sigmas.double().tolist())
    other = Flow(mu=0.2).with_scheduler(EULER_DYNAMIC)
    other.set_timesteps(4)
    assert abs(other.sigma(1) - bb.sigma(1)) > 1e-3  # mu shifts the chain
    x, v = torch.randn(1, 2, 3, 4, 4), torch.randn(1, 2, 3, 4, 4)
    mean, std = bb.sde_step_mean_std(v, x, 1)
    assert std > 0 and torch.isfinite(mean).all()


def test_dynamic_shifting_without_mu_is_one_line_and_flow_shift_replaces_it():
    with pytest.raises(ConfigError, match="timestep_kwargs"):
        Flow().with_scheduler(EULER_DYNAMIC).set_timesteps(4)
    fixed = Flow(flow_shift=3.0).with_scheduler(EULER_DYNAMIC)
    assert fixed.scheduler.config.use_dynamic_shifting is False
    fixed.set_timesteps(4)
    ref = FlowMatchEulerDiscreteScheduler.from_config({**EULER_DYNAMIC, "use_dynamic_shifting": False, "shift": 3.0})
    ref.set_timesteps(4)
    assert fixed.chain_sigmas == pytest.approx(ref.sigmas.double().tolist())


def test_repeated_blocks_as_diffusers_names_them():
    from diffusers import CogVideoXTransformer3DModel, WanTransformer3DModel

    wan = WanTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=16,
        ffn_dim=16,
        num_layers=2,
        rope_max_seq_len=32,
    )
    assert type(wan)._repeated_blocks and repeated_blocks(wan) == list(wan.blocks)  # by class name
    cog = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        text_embed_dim=16,
        time_embed_dim=8,
        sample_width=8,
        sample_height=8,
        sample_frames=5,
    )
    assert repeated_blocks(cog) == list(cog.transformer_blocks)  # `_repeated_blocks` empty: the attribute

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    assert len(repeated_blocks(Plain())) == 1
    with pytest.raises(ConfigError, match="override checkpoint_blocks"):
        repeated_blocks(torch.nn.Linear(2, 2))
