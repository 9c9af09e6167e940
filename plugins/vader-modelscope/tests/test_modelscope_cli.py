"""The command line with the modelscope backbone: the CLI contract (training, generation, missing weights in
one line), and loading a local directory."""

import pytest
import torch
from vader_modelscope import ModelScopeBackbone, ModelScopeOptions

from vader_core.testing import BackboneCLIContractTests


class TestModelScopeCommands(BackboneCLIContractTests):
    backbone_cls = ModelScopeBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


def test_local_directory_loads(tiny_dir):
    bb = ModelScopeBackbone(ModelScopeOptions(model=str(tiny_dir), height=32, width=32, frames=2, steps=2))
    bb.load("cpu", torch.float32)
    from diffusers import DPMSolverMultistepScheduler

    assert isinstance(bb.scheduler, DPMSolverMultistepScheduler)
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
