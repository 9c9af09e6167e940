"""The backbone contract: a video diffusion model split into the small steps the core's loop calls.

A backbone supplies components (denoiser, VAE, condition encoders, a diffusers scheduler) and five
steps. It never owns a training loop: :mod:`vader_core.sampling` runs the denoising chain, decides
which steps keep autograd, checkpoints the denoiser call (block by block, with the blocks the backbone
names: :mod:`vader_core.checkpointing`) and picks which frames to decode, for every backbone alike. Nothing here assumes a UNet, epsilon prediction or DDPM: ``predict`` returns
whatever the backbone's scheduler consumes (noise, velocity, flow), and ``scheduler_step`` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from .options import StrictNumbers

if TYPE_CHECKING:  # pragma: no cover
    import torch


class BackboneOptions(StrictNumbers):
    """Options every backbone accepts; subclasses change defaults and add their own fields."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(
        None, description="Hub id or local directory of the pretrained weights (diffusers layout)."
    )
    height: int = Field(320, ge=8, description="Frame height in pixels.")
    width: int = Field(512, ge=8, description="Frame width in pixels.")
    frames: int = Field(16, ge=1, description="Number of frames generated.")
    steps: int = Field(25, ge=1, description="Denoising steps.")
    guidance: float = Field(7.5, ge=0.0, description="Classifier-free guidance scale; 1 disables it.")
    eta: float = Field(
        0.0,
        ge=0.0,
        description="Stochasticity of the sampler (0 = deterministic): DDIM's eta, or the "
        "noise level of a flow-matching SDE step.",
    )


class BackbonePlugin:
    """Base class of backbone plugins.

    Class attributes:
        name (`str`): registry name, e.g. ``"modelscope"``.
        summary (`str`): one line shown by ``vader plugins``.
        Options (`type[BackboneOptions]`): the pydantic options model.
        conditioning (`str`): ``"text"``, ``"image"`` or ``"text+image"``: what ``encode_condition`` needs.
        denoiser_name (`str`): key of the denoiser in :attr:`components`; also the prefix of the LoRA
            keys in saved weights (``unet`` or ``transformer``, as diffusers' loaders expect).
        default_lora_targets (`tuple[str, ...]`): module name suffixes that receive LoRA by default.
        size_multiple (`int`): frame height and width must be multiples of it (8: the VAE factor of the
            diffusers pipelines); checked when the configuration is resolved, before weights load.

    Instance attributes set by :meth:`load` / :meth:`load_tiny`:
        components (`dict[str, Any]`): every module, tokenizer and the scheduler.
        device (`torch.device`), dtype (`torch.dtype`): where the frozen weights live.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[BackboneOptions]] = BackboneOptions
    conditioning: ClassVar[Literal["text", "image", "text+image"]] = "text"
    denoiser_name: ClassVar[str] = "unet"
    default_lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")
    #: ``height`` and ``width`` must be multiples of this (checked when the configuration is resolved).
    size_multiple: ClassVar[int] = 8

    def __init__(self, options: BackboneOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.components: dict[str, Any] = {}
        self.device: Any = None
        self.dtype: Any = None

    # ------------------------------------------------------------------ loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the pretrained components named by ``options.model`` onto ``device`` in ``dtype``.

        Must honour ``HF_HUB_OFFLINE`` and raise :class:`~vader_core.errors.MissingWeightsError`
        naming the hub id and the option to point at a local copy when weights are unavailable.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Build tiny randomly initialised components of the real architecture (for tests)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_tiny()")

    @classmethod
    def export_lora(cls, lora: Path, out: Path) -> dict[str, Path]:
        """Optional: write a trained LoRA (checkpoint directory or file) in the layouts other tools read, e.g.
        ComfyUI's and kohya's, under ``out``; returns each file written by name. ``vader export`` calls it.
        The default writes nothing (``{}``): vader's own files already load with diffusers' ``load_lora_weights``.
        """
        return {}

    def default_prompts(self) -> tuple[list[str], list[str]] | None:
        """Training and held-out prompts suited to this model, used when the config names none
        (a model trained on a narrow domain, like the bundled ``toy``, overrides this)."""
        return None

    def install_components(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install ``components``: modules moved to ``device``, cast to ``dtype`` (only when needed, which
        spares diffusers' cast warning), frozen and in eval mode."""
        import torch

        for v in components.values():
            if isinstance(v, torch.nn.Module):
                first = next(v.parameters(), None)
                if first is not None and first.dtype != dtype:
                    v.to(dtype=dtype)
                v.to(device=device).requires_grad_(False).eval()
        self.components = components
        self.device, self.dtype = torch.device(device), dtype

    @property
    def denoiser(self) -> torch.nn.Module:
        """The module that receives LoRA."""
        return self.components[self.denoiser_name]

    @property
    def scheduler(self) -> Any:
        return self.components["scheduler"]

    def modules(self) -> dict[str, torch.nn.Module]:
        """All torch modules among the components (frozen by the trainer, moved, cast)."""
        import torch

        return {k: v for k, v in self.components.items() if isinstance(v, torch.nn.Module)}

    # ------------------------------------------------------------------ memory
    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The denoiser's blocks that the core recomputes one by one in backward at a kept step
        (``memory.gradient_checkpointing: block``; see :mod:`vader_core.checkpointing`).

        Modules inside the denoiser, none inside another, each small enough that recomputing one is
        cheap in memory: the layers of a UNet's down, mid and up blocks
        (:func:`vader_core.checkpointing.layers_of`), the transformer blocks of a DiT. Default: ``[]``,
        no block list: the core recomputes the whole call.
        """
        return []

    def native_gradient_checkpointing(self, enabled: bool) -> bool:
        """Switch the denoiser library's own per-block checkpointing on or off; return whether it has one.

        Only for a library switch that truly checkpoints every block (diffusers' DiT video models such
        as ``WanTransformer3DModel``: ``enable_gradient_checkpointing()`` /
        ``disable_gradient_checkpointing()``); the core then does not wrap blocks itself. Default:
        ``False`` (the core uses :meth:`checkpoint_blocks`).
        """
        return False

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The VAE decoder's blocks the core recomputes in backward while frames are decoded with
        gradient (block level), e.g. the resnets and upsamplers of its up blocks. Default: ``[]``."""
        return []

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """The frozen condition encoders (text, image) used only by :meth:`encode_condition`: with
        ``memory.offload_encoders`` the core keeps them off the accelerator between encodings.
        Default: none."""
        return {}

    # ------------------------------------------------------------------ steps
    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> Any:
        """Encode prompts and/or conditioning images (PIL images or ``(3, H, W)`` tensors in [0, 1]).

        Returns an opaque object passed back to :meth:`predict`; it includes whatever classifier-free
        guidance needs (e.g. negative embeddings).
        """
        raise NotImplementedError

    def set_timesteps(self, steps: int) -> Sequence[torch.Tensor]:
        """Reset the scheduler for a new chain of ``steps`` steps and return its timesteps."""
        self.scheduler.set_timesteps(steps, device=self.device)
        return list(self.scheduler.timesteps)

    def prepare_latents(self, batch_size: int, generator: torch.Generator | None, cond: Any = None) -> torch.Tensor:
        """Initial latents for ``batch_size`` videos, drawn from ``generator`` and scaled for the scheduler.

        Called after :meth:`set_timesteps`. ``cond`` is what :meth:`encode_condition` returned for this
        batch (the core always passes it; ``None`` when called on its own), so that conditioning that needs
        noise from the generator before the latents (Stable Video Diffusion's noise-augmented image) can
        draw it here and complete ``cond``. Whatever belongs to the batch goes into ``cond``, never onto the
        backbone: the next batch, or a validation run between two steps, must not see it.
        """
        raise NotImplementedError

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: Any, step_index: int) -> torch.Tensor:
        """One denoiser evaluation with classifier-free guidance; returns what the scheduler consumes.

        Must be a pure function of its arguments and the frozen components: with gradient
        checkpointing the core calls it again during backward, after the scheduler has moved on, so
        read per-step scheduler values (sigmas) by ``step_index``, not from the scheduler's counter.
        A denoiser call on a batch doubled for guidance goes through
        :func:`vader_core.checkpointing.run_guided`, so that under checkpointing the core can run its
        two halves one after the other.
        """
        raise NotImplementedError

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Advance the latents one step with the backbone's diffusers scheduler (differentiable)."""
        raise NotImplementedError

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """Log-density, per video ``(B,)`` (mean over latent elements), of ``prev_latents`` under the
        scheduler's stochastic step from ``latents``. Needed only by policy-gradient methods such as
        ``ddpo``; backbones whose sampler is deterministic leave it unimplemented."""
        raise NotImplementedError(f"backbone `{self.name}` has no stochastic step log-probability")

    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Number of frames ``decode(latents, None)`` returns: the unit of frame subsampling, which the
        ``frames`` of :meth:`decode` index (``(B, C, F, h, w)`` layout by default: one frame per latent frame).

        A VAE that compresses time (Wan, CogVideoX, LTX-Video: one latent frame decodes to several pixel frames)
        counts *pixel* frames: ``decode(latents, [i])`` returns the one frame ``i`` of the full decode, whatever
        latent frames that takes. The contract tests check ``decode(latents).shape[1] == num_latent_frames(latents)
        == options.frames`` and that a subset equals the same frames of the full decode.
        """
        return int(latents.shape[2])

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode the frames ``frames`` (all if ``None``; indices in the unit of :meth:`num_latent_frames`) to pixels.

        Returns ``(B, len(frames), 3, H, W)`` float32 in ``[0, 1]``, differentiable in ``latents``.
        ``chunk_size`` bounds how many frames the VAE decodes at once: memory, and the same result for a
        per-frame VAE; a temporal decoder (SVD) mixes the frames of a chunk, so there it changes the frames.
        ``cond`` is the condition the latents were sampled with (the core always passes it; ``None`` when
        called on its own), for a backbone whose decoding depends on it (Wan 2.2 TI2V puts the image's
        latents back into the first frame). ``generator`` is the generator the chain was sampled with, after the
        chain's draws (``None`` when called on its own), for a decoder that draws noise (LTX-Video 0.9.1's
        timestep-conditioned decoder), drawn as its stock pipeline draws from its generator. Both are opt-in: the
        core passes ``generator`` only to a ``decode`` that declares it.
        """
        raise NotImplementedError
