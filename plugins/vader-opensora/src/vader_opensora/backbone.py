"""``opensora``: Open-Sora 1.2 text-to-video (STDiT3-XL/2, the 1.2 VAE, T5 v1.1 XXL) as a vader backbone.

Components: :class:`~vader_opensora.stdit3.STDiT3` (``transformer``), :class:`~vader_opensora.vae.OpenSoraVAE`
(``vae``), transformers' ``T5EncoderModel`` and its tokenizer, each read from the released weights with
no renaming (:mod:`vader_opensora.checkpoint`), and the official rectified-flow sampler:

* timesteps ``(1 - i / steps) * 1000`` for ``i < steps`` (continuous), each mapped by the official
  ``timestep_transform`` (``use_timestep_transform=True`` in the VADER and Open-Sora configs):
  ``t' = r t / (1 + (r - 1) t)`` with ``t`` in [0, 1] and
  ``r = sqrt(H W / 512^2) * sqrt(F // 17 * 5)`` (``F`` pixel frames, ``F // 17 * 5`` standing for the
  latent frames; ``r`` uses 1 frame for images). That is diffusers' ``FlowMatchEulerDiscreteScheduler``
  shift with ``shift = r`` on the sigmas ``1 - i / steps``, which this backbone keeps as its ``scheduler``
  (it holds the chain; the step below is computed from its sigmas by step index);
* guidance ``v = v_null + g (v_text - v_null)``, the null branch being the model's learned caption
  ``y_embedder.y_embedding`` with the *prompt's* token mask (the official ``encode_text`` repeats the mask);
* Euler step ``z + v * (t_i - t_{i+1}) / 1000`` (to 0 after the last step); the velocity is the first
  4 of STDiT3's 8 output channels; the frame rate, pixel height and width enter the model as tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from vader_core.backbone import BackboneOptions, BackbonePlugin
from vader_core.checkpointing import reject_folded_options, run_guided
from vader_core.errors import CheckpointError, ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

MODEL_ID = "hpcai-tech/OpenSora-STDiT-v3"
VAE_ID = "hpcai-tech/OpenSora-VAE-v1.2"
TEXT_ID = "DeepFloyd/t5-v1_1-xxl"
NUM_TIMESTEPS = 1000

#: ``ASPECT_RATIO_*`` of ``opensora/datasets/aspect.py`` at the aspect ratios VADER uses, ``(height, width)``.
IMAGE_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "144p": {"9:16": (144, 256), "3:4": (166, 221), "1:1": (192, 192), "4:3": (221, 165), "16:9": (256, 144)},
    "240p": {"9:16": (240, 426), "3:4": (276, 368), "1:1": (320, 320), "4:3": (370, 278), "16:9": (426, 240)},
    "360p": {"9:16": (360, 640), "3:4": (416, 554), "1:1": (480, 480), "4:3": (554, 416), "16:9": (640, 360)},
    "480p": {"9:16": (480, 854), "3:4": (554, 738), "1:1": (640, 640), "4:3": (740, 555), "16:9": (854, 480)},
    "720p": {"9:16": (720, 1280), "3:4": (832, 1110), "1:1": (960, 960), "4:3": (1108, 832), "16:9": (1280, 720)},
}
#: ``NUM_FRAMES_MAP``: durations at 24 fps as frame counts.
NUM_FRAMES: dict[str, int] = {"2s": 51, "4s": 102, "8s": 204, "16s": 408, "1x": 51, "2x": 102, "4x": 204}


def image_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """``get_image_size``: pixel ``(height, width)`` of an official resolution and aspect ratio."""
    try:
        return IMAGE_SIZES[resolution][aspect_ratio]
    except KeyError:
        raise ConfigError(
            f"no official size for resolution `{resolution}` and aspect ratio `{aspect_ratio}`; "
            f"resolutions {sorted(IMAGE_SIZES)}, aspect ratios {sorted(IMAGE_SIZES['240p'])}"
        ) from None


def num_frames(value: str | int) -> int:
    """``get_num_frames``: ``"2s"`` (51), ``"4s"`` (102), ... or a count."""
    if isinstance(value, int):
        return value
    if value in NUM_FRAMES:
        return NUM_FRAMES[value]
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"`backbone.num_frames`: `{value}` is neither a count nor one of {sorted(NUM_FRAMES)}"
        ) from None


def shift_ratio(height: int, width: int, frames: int, base_resolution: int = 512 * 512, scale: float = 1.0) -> float:
    """The official ``timestep_transform`` ratio for a pixel size and frame count."""
    latent_like = 1 if frames == 1 else frames // 17 * 5
    return (height * width / base_resolution) ** 0.5 * latent_like**0.5 * scale


def timestep_transform(
    t: torch.Tensor, height: int, width: int, frames: int, num_timesteps: int = NUM_TIMESTEPS
) -> torch.Tensor:
    """The official transform of timesteps in [0, ``num_timesteps``] (float32 arithmetic, as the official)."""
    r = torch.tensor(height * width / (512 * 512), dtype=torch.float32).sqrt()
    r = r * torch.tensor(float(1 if frames == 1 else frames // 17 * 5)).sqrt()
    u = t / num_timesteps
    return r * u / (1 + (r - 1) * u) * num_timesteps


class OpenSoraOptions(BackboneOptions):
    model: str | None = Field(
        MODEL_ID,
        description="STDiT3: hub id, directory or .safetensors file (released "
        "`model.safetensors`, `config.json` read when present).",
    )
    vae: str = Field(VAE_ID, description="Open-Sora 1.2 VAE: hub id, directory or .safetensors file.")
    text_encoder: str = Field(
        TEXT_ID, description="T5 v1.1 XXL: hub id or local transformers directory (model and tokenizer)."
    )
    revision: str | None = Field(None, description="Hub revision of the STDiT3 weights.")
    resolution: str | None = Field(
        None,
        description="Official resolution (144p, 240p, 360p, 480p, 720p): sets "
        "height and width with `aspect_ratio` (the defaults are 240p 3:4's 276x368).",
    )
    aspect_ratio: str = Field(
        "3:4", description="Official aspect ratio used with `resolution` (9:16, 3:4, 1:1, 4:3, 16:9)."
    )
    num_frames: str | None = Field(
        None, description="Official length: `2s` (51 frames, the default), `4s` (102), ... or a count; sets `frames`."
    )
    height: int = Field(276, ge=16, description="Frame height in pixels (set from `resolution` unless it is null).")
    width: int = Field(368, ge=16, description="Frame width in pixels (set from `resolution` unless it is null).")
    frames: int = Field(51, ge=1, description="Number of frames (set from `num_frames` unless it is null).")
    steps: int = Field(30, ge=1, description="Rectified-flow sampling steps.")
    guidance: float = Field(
        7.0,
        ge=0.0,
        description="Classifier-free guidance scale g: `v_null + g (v_text - v_null)`, both branches computed for "
        "every g, as the official sampler does (g = 1 gives the text branch).",
    )
    eta: float = Field(0.0, ge=0.0, le=0.0, description="Unused: the rectified-flow sampler is deterministic.")
    fps: int = Field(24, ge=1, description="Frame rate fed to STDiT3's fps embedding.")
    timestep_transform: bool = Field(True, description="The official resolution- and length-dependent shift.")
    aesthetic_score: float | None = Field(
        6.5,
        description="Appended to every prompt as ` aesthetic score: 6.5.` "
        "(the recipe's `aes`, as the official append_score_to_prompts); null: not.",
    )
    prompt_preprocessing: bool = Field(
        True,
        description="Lower-case the prompt and collapse its white space, which is "
        "what the official T5 text_preprocessing does to plain prompts.",
    )
    token_length: int = Field(300, ge=1, description="T5 token length (the official model_max_length).")

    @model_validator(mode="before")
    @classmethod
    def _folded(cls, data: Any) -> Any:
        # Block recomputation is the core's `memory.gradient_checkpointing` now, as for every backbone.
        return reject_folded_options(data, ("block_checkpointing",))

    @model_validator(mode="after")
    def _official_sizes(self) -> OpenSoraOptions:
        try:
            if self.resolution is not None:
                self.height, self.width = image_size(self.resolution, self.aspect_ratio)
            if self.num_frames is not None:
                self.frames = num_frames(self.num_frames)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        if self.timestep_transform and 1 < self.frames < 17:
            raise ValueError(
                f"{self.frames} frames: the official timestep transform needs 1 or at least 17 frames "
                "(it counts latent frames as frames // 17 * 5); use more frames or "
                "timestep_transform=false"
            )
        return self


class OpenSoraBackbone(BackbonePlugin):
    """Open-Sora 1.2 (STDiT3-XL/2 + Open-Sora VAE 1.2 + T5 v1.1 XXL) with the official rectified-flow sampler."""

    name = "opensora"
    #: The official aspect tables hold sizes such as 276x368 and 370x278 (not multiples of 8): the VAE and
    #: STDiT3 take any even size, as the official pipeline does.
    size_multiple: ClassVar[int] = 2
    summary = "Open-Sora 1.2 text-to-video (STDiT3-XL/2, VAE 1.2, T5-XXL; 240p 3:4, 51 frames, rflow 30 steps)."
    Options: ClassVar[type[BackboneOptions]] = OpenSoraOptions
    conditioning = "text"
    denoiser_name = "transformer"
    default_lora_targets = ("qkv", "q_linear", "kv_linear")  # the VADER Open-Sora code's peft targets
    #: Architectures the weights are read into (empty: the released ones). Tests point them at the tiny ones.
    architecture: ClassVar[dict[str, Any]] = {}

    # -------------------------------------------------------------- loading
    def load(self, device: Any, dtype: Any) -> None:
        from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, check_state_dict, read_config, read_safetensors, resolve_file
        from .stdit3 import STDiT3, STDiT3Config
        from .vae import OpenSoraVAE

        o = self.options
        model_src = o.model or MODEL_ID
        weights = resolve_file(model_src, WEIGHTS_FILE, "backbone.model", o.revision)
        config = read_config(resolve_file(model_src, CONFIG_FILE, "backbone.model", o.revision, required=False))
        arch = self.architecture
        stdit_config = STDiT3Config.from_dict({**config, **arch.get("stdit3", {})})
        vae_weights = resolve_file(o.vae, WEIGHTS_FILE, "backbone.vae")
        text, tokenizer = self._load_text(o.text_encoder, dtype)
        with torch.device("meta"):
            transformer = STDiT3(stdit_config)
            vae = OpenSoraVAE(arch.get("spatial_vae"), arch.get("temporal_vae"))
        for module, path, what, option in (
            (transformer, weights, "STDiT3", "backbone.model"),
            (vae, vae_weights, "the Open-Sora 1.2 VAE", "backbone.vae"),
        ):
            sd = read_safetensors(path)
            persistent = module.state_dict()
            check_state_dict(sd, {k: v.shape for k, v in persistent.items()}, what, str(path), option)
            module.load_state_dict(sd, strict=True, assign=True)
        # rebuilt, not saved (non-persistent in the official module too): nothing on the meta device
        if stdit_config.caption_channels != text.config.d_model:
            raise CheckpointError(
                f"{o.text_encoder} gives {text.config.d_model}-channel states, STDiT3 expects "
                f"{stdit_config.caption_channels}; point `backbone.text_encoder` at {TEXT_ID}"
            )
        self.setup(
            {
                "transformer": transformer,
                "vae": vae,
                "text_encoder": text,
                "tokenizer": tokenizer,
                "scheduler": self.make_scheduler(),
            },
            device,
            dtype,
        )

    def _load_text(self, source: str, dtype: Any) -> tuple[Any, Any]:
        from transformers import AutoTokenizer, T5EncoderModel

        local = Path(source).expanduser()
        if source.startswith((".", "/", "~")) and not local.is_dir():
            raise MissingWeightsError(
                f"no T5 directory at {local}; set `backbone.text_encoder` to {TEXT_ID} or a local copy of it"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(local) if local.is_dir() else source)
            text = T5EncoderModel.from_pretrained(str(local) if local.is_dir() else source, torch_dtype=dtype)
        except OSError as e:
            raise missing_weights(
                source, e, option="backbone.text_encoder", what="the text encoder", local="a local directory"
            ) from None
        return text, tokenizer

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        """Tiny random components of the real architectures (STDiT3, both VAEs, T5) for tests."""
        from .tiny import tiny_components

        self.setup({**tiny_components(seed), "scheduler": self.make_scheduler()}, device, dtype)

    def setup(self, components: dict[str, Any], device: Any, dtype: Any) -> None:
        for m in components.values():  # cast here: diffusers' own .to() warns about casting
            if isinstance(m, torch.nn.Module):
                torch.nn.Module.to(m, dtype=dtype)
        self.install_components(components, device, dtype)
        self.native_gradient_checkpointing(False)  # the core switches it on for the kept calls

    def make_scheduler(self) -> Any:
        """diffusers' ``FlowMatchEulerDiscreteScheduler`` with the official shift for this size and length."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        o = self.options
        shift = shift_ratio(o.height, o.width, o.frames) if o.timestep_transform else 1.0
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TIMESTEPS, shift=shift)

    # The block-checkpointing interface agreed for the core (issue 17): here the model checkpoints itself.
    def checkpoint_blocks(self) -> list[Any]:
        """STDiT3's spatial and temporal blocks: the ones its own switch recomputes (the contract tests check it)."""
        return list(self.components["transformer"].blocks())

    def native_gradient_checkpointing(self, enabled: bool) -> bool:
        """STDiT3 recomputes block by block itself (the official ``grad_checkpoint``): the core turns it on at
        ``memory.gradient_checkpointing: true`` (block level) and off otherwise."""
        tr = self.components.get("transformer")
        if tr is None:
            return False
        tr.enable_gradient_checkpointing() if enabled else tr.disable_gradient_checkpointing()
        return True

    def condition_encoders(self) -> dict[str, Any]:
        """T5 v1.1 XXL (three quarters of the weights) waits off the GPU between encodings with
        ``memory.offload_encoders``."""
        return {"text_encoder": self.components["text_encoder"]}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components in the released layout (``stdit3/``, ``vae/``, ``t5/``)."""
        from .tiny import save_official_layout

        save_official_layout(self.components, directory)

    # -------------------------------------------------------------- steps
    @property
    def do_cfg(self) -> bool:
        """Always: the official sampler computes both branches and ``v_null + g (v_text - v_null)`` for every ``g``
        (between 0 and 1 too, where dropping the null branch would change the latents)."""
        return True

    @property
    def token_length(self) -> int:
        return int(self.components["transformer"].config.model_max_length)

    def prompt_text(self, prompt: str) -> str:
        """The text T5 encodes: the official ``append_score_to_prompts`` (``aes``) then, for plain prompts, what
        ``text_preprocessing`` gives (its ``clean_caption`` also strips URLs, HTML, brackets and special symbols,
        which this does not)."""
        o = self.options
        if o.aesthetic_score is not None and "aesthetic score:" not in prompt:
            prompt = f"{prompt} aesthetic score: {o.aesthetic_score:.1f}."
        if o.prompt_preprocessing:
            prompt = " ".join(prompt.lower().split())
        return prompt

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> dict[str, Any]:
        tok = self.components["tokenizer"]
        enc = tok(
            [self.prompt_text(p) for p in prompts],
            max_length=min(self.options.token_length, self.token_length),
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        with torch.no_grad():
            y = self.components["text_encoder"](input_ids=ids, attention_mask=mask).last_hidden_state
            if y.shape[1] < self.token_length:  # a shorter token_length: pad the states, mask the padding
                pad = self.token_length - y.shape[1]
                y = torch.nn.functional.pad(y, (0, 0, 0, pad))
                mask = torch.nn.functional.pad(mask, (0, pad))
            if self.do_cfg:
                null = self.components["transformer"].y_embedder.y_embedding.to(y.dtype)
                y = torch.cat([y, null[None].expand(len(prompts), -1, -1)])
                mask = torch.cat([mask, mask])
        return {"y": y, "mask": mask}

    def set_timesteps(self, steps: int) -> Sequence[Any]:
        """The official chain: ``(1 - i / steps) * 1000``, shifted; returns one timestep tensor per step."""
        sigmas = [1.0 - i / steps for i in range(steps)]
        self.scheduler.set_timesteps(sigmas=sigmas, device=self.device)
        o = self.options
        ts = torch.tensor([s * NUM_TIMESTEPS for s in sigmas], dtype=torch.float32)
        if o.timestep_transform:
            ts = timestep_transform(ts, o.height, o.width, o.frames)
        self._timesteps = torch.cat([ts, torch.zeros(1)]).to(self.device)
        return [t for t in self._timesteps[:-1]]

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        vae, o = self.components["vae"], self.options
        f = vae.spatial_factor
        return (batch_size, vae.out_channels, vae.latent_frames(o.frames), o.height // f, o.width // f)

    def prepare_latents(self, batch_size: int, generator: Any, cond: Any = None) -> Any:
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(self.latent_shape(batch_size), generator=generator, device=self.device, dtype=self.dtype)

    def _model_args(self, n: int) -> dict[str, Any]:
        o = self.options
        full = lambda v: torch.full((n,), float(v), device=self.device, dtype=self.dtype)  # noqa: E731
        return {"fps": full(o.fps if o.frames > 1 else 120), "height": full(o.height), "width": full(o.width)}

    def predict(self, latents: Any, t: Any, cond: dict[str, Any], step_index: int) -> Any:
        x = torch.cat([latents, latents]) if self.do_cfg else latents
        ts = t.reshape(-1).expand(x.shape[0]).to(self.device)

        def call(x: Any, ts: Any, y: Any, mask: Any) -> Any:
            return self.denoiser(x, ts, y, mask=mask, **self._model_args(x.shape[0]))

        # the text and null halves one after the other at a kept step (memory.split_guidance)
        out = run_guided(call, x, ts, cond["y"], cond["mask"]) if self.do_cfg else call(x, ts, cond["y"], cond["mask"])
        v = out[:, : latents.shape[1]]
        if self.do_cfg:
            text, null = v.chunk(2)
            v = null + self.options.guidance * (text - null)
        return v

    def scheduler_step(self, model_output: Any, t: Any, latents: Any, step_index: int, generator: Any) -> Any:
        ts = self._timesteps
        dt = (ts[step_index] - ts[step_index + 1]) / NUM_TIMESTEPS
        # float32, as the official loop's latents become after its first step (bf16 z + float32 v * dt)
        return latents.float() + model_output.float() * dt

    def step_log_prob(self, model_output: Any, t: Any, latents: Any, prev_latents: Any, step_index: int) -> Any:
        """None: the official rectified-flow sampler is a deterministic ODE, so a policy-gradient method has no
        step density to work with."""
        raise ConfigError(
            "backbone `opensora` samples with the deterministic rectified-flow ODE (no stochastic "
            "step log-probability): `--method ddpo` cannot train it; use `--method vader`"
        )

    def num_latent_frames(self, latents: Any) -> int:
        """Frame subsampling picks *pixel* frames: :meth:`decode` runs the temporal decoder on the chunks that
        hold them and the spatial decoder on them alone."""
        return self.options.frames

    def decode(
        self, latents: Any, frames: Sequence[int] | None = None, chunk_size: int | None = None, cond: Any = None
    ) -> Any:
        vae = self.components["vae"]
        video = vae.decode(latents.to(self.dtype), self.options.frames, frames, chunk_size=chunk_size or 4)
        return (video.float().permute(0, 2, 1, 3, 4) / 2 + 0.5).clamp(0, 1)
