"""Tiny seeded random components with the real Stable Video Diffusion architecture (for tests).

The same classes as ``stabilityai/stable-video-diffusion-img2vid``: a spatio-temporal UNet with 8 input
channels (noisy latents + image latents) and added time ids, the VAE with the temporal decoder, a
CLIP vision encoder with projection, the CLIP image processor and the EDM Euler scheduler. Only the
widths and depths are small, so every code path runs on a CPU in seconds. The CLIP encoder keeps the
real 224x224 input (with 32-pixel patches) because the pipeline resizes the image to 224x224.
"""

from __future__ import annotations

from typing import Any

from vader_core.lazy import torch


def scheduler_config() -> dict[str, Any]:
    """The EDM Euler configuration of the released SVD checkpoints (v-prediction, Karras sigmas
    from 700 to 0.002, continuous timesteps ``0.25 * log(sigma)``)."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "v_prediction",
        "interpolation_type": "linear",
        "use_karras_sigmas": True,
        "sigma_min": 0.002,
        "sigma_max": 700.0,
        "timestep_spacing": "leading",
        "timestep_type": "continuous",
        "steps_offset": 1,
    }


def tiny_components(seed: int = 0, num_frames: int = 25) -> dict[str, Any]:
    """Tiny random SVD components, keyed as in ``StableVideoDiffusionPipeline``.

    Args:
        seed (`int`, *optional*, defaults to `0`): seed of the random initialisation.
        num_frames (`int`, *optional*, defaults to `25`): ``unet.config.num_frames`` (the stock
            pipeline's default frame count).

    Returns:
        `dict[str, Any]`: ``unet``, ``vae``, ``image_encoder``, ``feature_extractor``, ``scheduler``.
    """
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        num_frames=num_frames,
    )
    vae = AutoencoderKLTemporalDecoder(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        sample_size=32,
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
        )
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    scheduler = EulerDiscreteScheduler(**scheduler_config())
    for m in (unet, vae, image_encoder):
        m.eval()  # as from_pretrained returns them; in train mode the CPU kernels round differently
    return {
        "unet": unet,
        "vae": vae,
        "image_encoder": image_encoder,
        "feature_extractor": feature_extractor,
        "scheduler": scheduler,
    }
