"""``modelscope``: ModelScope text-to-video (``damo-vilab/text-to-video-ms-1.7b``) as a vader backbone.

The components of diffusers' ``TextToVideoSDPipeline``: ``UNet3DConditionModel``, the Stable Diffusion
``AutoencoderKL``, a CLIP text encoder and tokenizer, and a scheduler built from the checkpoint's
scheduler configuration: DPM-Solver multistep by default (the sampler of the VADER paper's
ModelScope runs), DDIM with ``scheduler=ddim``. Loading, the denoising steps and decoding are those of
:class:`vader_core.unet_t2v.UNetT2VBackbone`, which reproduce the stock pipeline: with the same seed
and options ``vader generate`` gives the stock pipeline's frames.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from vader_core.backbone import BackboneOptions
from vader_core.unet_t2v import UNetT2VBackbone, UNetT2VOptions

HUB_ID = "damo-vilab/text-to-video-ms-1.7b"


class ModelScopeOptions(UNetT2VOptions):
    model: str | None = Field(HUB_ID, description=f"Hub id or local diffusers directory of the weights (`{HUB_ID}`).")
    height: int = Field(384, ge=8, description="Frame height in pixels (multiple of 8).")
    width: int = Field(384, ge=8, description="Frame width in pixels (multiple of 8).")
    frames: int = Field(16, ge=1, description="Number of frames generated.")
    steps: int = Field(25, ge=1, description="Denoising steps.")
    guidance: float = Field(9.0, ge=0.0, description="Classifier-free guidance scale; 1 disables it.")
    scheduler: Literal["ddim", "dpmsolver"] = Field(
        "dpmsolver",
        description="Sampler: `dpmsolver` (DPM-Solver++ multistep, the paper's) or `ddim`.",
    )


class ModelScopeBackbone(UNetT2VBackbone):
    """ModelScope text-to-video 1.7B (UNet3D, SD VAE, CLIP text encoder) with diffusers components."""

    name = "modelscope"
    summary = "ModelScope text-to-video 1.7B (damo-vilab/text-to-video-ms-1.7b; 384x384, 16 frames, DPM-Solver)."
    Options: ClassVar[type[BackboneOptions]] = ModelScopeOptions
    default_model: ClassVar[str | None] = HUB_ID
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        """Tiny random components of the real architecture, with the sampler chosen by ``options.scheduler``."""
        from .tiny import tiny_components

        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler(scheduler_config())
        self.setup(comps, device, dtype)


def scheduler_config() -> dict[str, Any]:
    """The scheduler configuration shipped with ``damo-vilab/text-to-video-ms-1.7b`` (a DDIM config; the
    DPM-Solver sampler is built from it, as ``DPMSolverMultistepScheduler.from_config`` does)."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "prediction_type": "epsilon",
        "skip_prk_steps": True,
        "trained_betas": None,
    }
