"""The command line with the videocrafter2 backbone: training on tiny random weights, generation from a
model.ckpt with a LoRA, missing weights in one line."""

import pytest
from vader_videocrafter import VideoCrafterBackbone

from vader_core.testing import BackboneCLIContractTests


class TestVideoCrafterCommands(BackboneCLIContractTests):
    backbone_cls = VideoCrafterBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}
    lora_keys = ("unet.init_attn.0.transformer_blocks.0.attn1.to_q.lora_A.weight",)

    @pytest.fixture
    def saved_weights(self, tiny_architecture, tiny_ckpt):
        return {"model": tiny_ckpt}
