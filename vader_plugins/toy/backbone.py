"""``toy``: a small text-to-video model trained from scratch on procedural clips, bundled in the package.

The components of a real text-to-video model, only small: diffusers' ``UNetMotionModel`` (AnimateDiff's
layout: spatial blocks with cross-attention to the text and temporal attention with frame positions) in
the latent space of an ``AutoencoderKL``, a CLIP text encoder and DDIM over a zero-terminal-SNR,
v-prediction schedule; 32x32 pixels, 8 frames, 8x8x4 latents. The training script can also build
ModelScope's ``UNet3DConditionModel``, which loads through the same code. It was trained by
:mod:`vader_plugins.toy.train` on :mod:`vader_plugins.toy.data`, so it follows prompts like
``"a red circle moving left on a gray background"`` (colour and direction), and vader's reward training
visibly changes its videos in minutes on a CPU. ``backbone.model`` may point at another directory
written the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from vader_core.errors import MissingWeightsError
from vader_core.lazy import torch
from vader_core.unet_t2v import UNetT2VBackbone, UNetT2VOptions

#: The bundled weights (diffusers layout: unet/, vae/, text_encoder/, tokenizer/, scheduler/).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Architecture sizes. ``full`` is what the bundled weights use; ``tiny`` is for contract tests and the
#: training script's smoke test. ``toy_components(unet="motion")`` builds AnimateDiff's UNetMotionModel (the
#: bundled model's), ``unet="3d"`` ModelScope's UNet3DConditionModel.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "vae_channels": (16, 32, 64),
        "vae_groups": 8,
        "unet_channels": (32, 64),
        "unet_heads": 4,
        "unet_groups": 8,
        "text_hidden": 64,
        "text_layers": 2,
        "text_heads": 4,
        "max_length": 16,
    },
    "tiny": {
        "vae_channels": (16, 16, 16),
        "vae_groups": 8,
        "unet_channels": (32, 32),
        "unet_heads": 4,
        "unet_groups": 8,
        "text_hidden": 32,
        "text_layers": 1,
        "text_heads": 4,
        "max_length": 16,
    },
}

_SD_BETAS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
}

#: Noise schedules the training script can use (``--schedule``); the one used is written to scheduler/ and
#: read back by ``load``. ``sd`` is Stable Diffusion's and ModelScope's: epsilon prediction, and at the last
#: step the clip still weighs 0.068 of the input, enough for a trained UNet to read which way the object
#: moves out of the initial noise instead of the caption. ``zero-snr`` rescales the same betas to zero
#: terminal SNR, predicts v and samples from the last timestep ("trailing"), as Lin et al. (2024, "Common
#: Diffusion Noise Schedules and Sample Steps are Flawed") prescribe; diffusers implements all three.
SCHEDULES: dict[str, dict[str, Any]] = {
    "sd": {**_SD_BETAS, "steps_offset": 1, "prediction_type": "epsilon"},
    "zero-snr": {
        **_SD_BETAS,
        "rescale_betas_zero_snr": True,
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
    },
}

#: The schedule of the bundled weights (also what tiny test components are sampled with).
SCHEDULER_CONFIG: dict[str, Any] = SCHEDULES["zero-snr"]


#: The denoisers ``toy_components`` can build.
UNET_KINDS: tuple[str, ...] = ("3d", "motion")


def toy_components(size: str = "full", seed: int = 0, unet: str = "3d") -> dict[str, Any]:
    """Freshly initialised toy components (the starting point of training, or tiny test weights).

    Args:
        size (`str`, *optional*, defaults to `"full"`): a key of :data:`SIZES`.
        seed (`int`, *optional*, defaults to 0): seed of the initialisation.
        unet (`str`, *optional*, defaults to `"3d"`): ``"3d"`` for ModelScope's ``UNet3DConditionModel`` (the
            first training stages of the bundled model), ``"motion"`` for AnimateDiff's ``UNetMotionModel``
            (the bundled model's).

    Returns:
        `dict[str, Any]`: ``unet``, ``vae``, ``text_encoder`` and ``tokenizer`` (no scheduler).
    """
    from diffusers import AutoencoderKL, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    s = SIZES[size]
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(s["vae_channels"]),
        up_block_types=("UpDecoderBlock2D",) * len(s["vae_channels"]),
        block_out_channels=s["vae_channels"],
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=s["vae_groups"],
        sample_size=32,
    )
    if unet not in UNET_KINDS:
        raise ValueError(f"`unet` must be one of {UNET_KINDS}, got {unet!r}")
    n = len(s["unet_channels"])
    if unet == "motion":
        denoiser = UNetMotionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockMotion",) * n,
            up_block_types=("CrossAttnUpBlockMotion",) * n,
            block_out_channels=s["unet_channels"],
            layers_per_block=1,
            cross_attention_dim=s["text_hidden"],
            num_attention_heads=s["unet_heads"],
            motion_num_attention_heads=s["unet_heads"],
            norm_num_groups=s["unet_groups"],
            motion_max_seq_length=16,
            use_motion_mid_block=True,
        )
    else:
        denoiser = UNet3DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock3D",) * n,
            up_block_types=("CrossAttnUpBlock3D",) * n,
            block_out_channels=s["unet_channels"],
            layers_per_block=1,
            cross_attention_dim=s["text_hidden"],
            attention_head_dim=s["unet_heads"],
            norm_num_groups=s["unet_groups"],
        )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=s["text_hidden"],
            intermediate_size=4 * s["text_hidden"],
            num_attention_heads=s["text_heads"],
            num_hidden_layers=s["text_layers"],
            max_position_embeddings=s["max_length"],
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=s["text_hidden"],
        )
    )
    return {"unet": denoiser, "vae": vae, "text_encoder": text_encoder, "tokenizer": clip_tokenizer(s["max_length"])}


class ToyOptions(UNetT2VOptions):
    height: int = Field(32, ge=8, description="Frame height in pixels (the model was trained at 32).")
    width: int = Field(32, ge=8, description="Frame width in pixels (the model was trained at 32).")
    frames: int = Field(8, ge=1, description="Number of frames (the model was trained on 8).")
    steps: int = Field(20, ge=1, description="Denoising steps.")
    guidance: float = Field(3.0, ge=0.0, description="Classifier-free guidance scale; 1 disables it.")


class ToyBackbone(UNetT2VBackbone):
    """The bundled toy text-to-video model: coloured shapes moving on plain backgrounds, 32x32, 8 frames."""

    name = "toy"
    summary = "Small pre-trained text-to-video model of moving coloured shapes (bundled, 32x32, runs on CPU)."
    Options: ClassVar = ToyOptions
    size_multiple: ClassVar[int] = 4  # two VAE downsamplings (8x8 latents at 32x32)
    default_model: ClassVar[str | None] = str(WEIGHTS_DIR)

    def load(self, device: Any, dtype: Any) -> None:
        if not self.options.model and not (WEIGHTS_DIR / "unet").is_dir():
            raise MissingWeightsError(
                f"the bundled toy weights are missing from {WEIGHTS_DIR}; rebuild them with "
                f"`python -m vader_plugins.toy.train --out {WEIGHTS_DIR}` or set `backbone.model` to a copy"
            )
        super().load(device, dtype)

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        comps = toy_components("tiny", seed, unet="motion")  # the bundled model's kind of UNet
        comps["scheduler"] = self.make_scheduler(SCHEDULER_CONFIG)
        self.setup(comps, device, dtype)

    def default_scheduler_config(self) -> dict[str, Any]:
        return dict(SCHEDULER_CONFIG)

    def default_prompts(self) -> tuple[list[str], list[str]]:
        from .data import HELDOUT_CAPTIONS, TRAIN_CAPTIONS

        return list(TRAIN_CAPTIONS), list(HELDOUT_CAPTIONS)
