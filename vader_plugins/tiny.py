"""``tiny``: the real diffusers text-to-video components with a tiny seeded random configuration.

Every code path of the core runs on a CPU in seconds with it. Its "weights" are a seeded random
initialisation (option ``seed``), or a directory written by ``save_pretrained`` (option ``model``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from vader_core.lazy import torch
from vader_core.unet_t2v import UNetT2VBackbone, UNetT2VOptions


class TinyOptions(UNetT2VOptions):
    height: int = Field(32, ge=8, description="Frame height in pixels (multiple of 2).")
    width: int = Field(32, ge=8, description="Frame width in pixels (multiple of 2).")
    frames: int = Field(4, ge=1, description="Number of frames.")
    steps: int = Field(4, ge=1, description="Denoising steps.")
    guidance: float = Field(2.0, ge=0.0, description="Classifier-free guidance scale; 1 disables it.")
    seed: int = Field(0, description="Seed of the random initialisation.")


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """Tiny random UNet3DConditionModel, AutoencoderKL and CLIP text encoder, plus the offline tokenizer."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=32,
        )
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": clip_tokenizer()}


class TinyBackbone(UNetT2VBackbone):
    """Tiny random text-to-video model (diffusers UNet3D, VAE, CLIP text) for tests and debugging."""

    name = "tiny"
    summary = "Tiny random text-to-video model (real diffusers architecture) for tests and debugging."
    Options: ClassVar = TinyOptions
    size_multiple: ClassVar[int] = 2  # one VAE downsampling

    def load(self, device: Any, dtype: Any) -> None:
        if self.options.model:
            return super().load(device, dtype)
        self.load_tiny(device, dtype, seed=self.options.seed)

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler()
        self.setup(comps, device, dtype)
