"""The backbone contract on tiny random ModelScope components."""

import torch
from vader_modelscope import HUB_ID, ModelScopeBackbone, ModelScopeOptions

from vader_core.testing import BackboneContractTests, PluginPackageContractTests


class TestModelScope(BackboneContractTests):
    """The default sampler: DPM-Solver multistep, with guidance."""

    backbone_cls = ModelScopeBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}


class TestModelScopeDDIM(BackboneContractTests):
    """DDIM (the paper's baselines), without guidance."""

    backbone_cls = ModelScopeBackbone
    options = {"height": 32, "width": 32, "frames": 2, "steps": 2, "scheduler": "ddim", "guidance": 1.0}


class TestPackage(PluginPackageContractTests):
    package = "vader_modelscope"
    distribution = "vader-modelscope"
    plugin_classes = [ModelScopeBackbone]


def test_defaults_are_the_paper_s():
    o = ModelScopeOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.scheduler) == (
        HUB_ID,
        384,
        384,
        16,
        25,
        9.0,
        "dpmsolver",
    )
    assert ModelScopeBackbone.default_lora_targets == ("to_q", "to_k", "to_v", "to_out.0")
    assert ModelScopeBackbone.conditioning == "text"


def test_tiny_uses_the_chosen_sampler():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    for name, cls in (("dpmsolver", DPMSolverMultistepScheduler), ("ddim", DDIMScheduler)):
        bb = ModelScopeBackbone(ModelScopeOptions(scheduler=name, height=32, width=32, frames=2, steps=2))
        bb.load_tiny("cpu", torch.float32)
        assert type(bb.scheduler) is cls
        assert bb.scheduler.config.beta_schedule == "scaled_linear" and bb.scheduler.config.steps_offset == 1


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("modelscope") is ModelScopeBackbone
