"""``mps``: Multi-dimensional Preference Score (Kolors, CVPR 2024), overall model, differentiable.

MPS is a CLIP ViT-H-14 (transformers ``CLIPModel``, the ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
architecture, fine-tuned whole) and a 4-layer cross-attention module in which the image tokens attend
to the prompt's tokens. Which prompt tokens they may attend to is set by a *condition*, a fixed list
of preference words: a prompt token is kept when its largest similarity to a condition token is above
``threshold`` times the prompt's largest such similarity. The score is
``logit_scale.exp() * cos(prompt EOS embedding, cross-attended image CLS token)``, as the authors'
``infer_one_sample`` computes it (about 100 times a cosine; no published range).

The authors normalise the similarities by their maximum over the whole batch tensor
(``s / s.max()``), so a score would depend on the other prompts of its batch; their own scoring runs
one image and one prompt at a time. Here each prompt is normalised by its own maximum: exactly the
official batch-of-one number, and the same number in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.errors import MissingWeightsError
from vader_core.hub import looks_local
from vader_core.lazy import torch
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions

from ._common import checkpoint_encoder_layers, unique_prompts
from ._weights import foreign_model, hub_file, load_strict, missing_weights, read_state_dict
from .base import ClipReward, unit
from .preprocess import ImageSpec, check_frame_size, preprocess

if TYPE_CHECKING:  # pragma: no cover
    from ._mps_model import CrossModel

#: The condition of the released "overall" model, as the authors' README and evaluation scripts give it
#: (DiffSynth's re-implementation drops the final period).
MPS_CONDITION = (
    "light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, hands, limbs, structure, "
    "instance, texture, quantity, attributes, position, number, location, word, things."
)
#: The released files: the authors' pickled whole model (Google Drive) and DiffSynth-Studio's safetensors
#: re-pack of its state dict (ModelScope ``DiffSynth-Studio/QualityMetric_reward_pretrained``).
MPS_PICKLE = "MPS_overall_checkpoint.pth"
MPS_SAFETENSORS = "MPS_overall_checkpoint_diffsynth.safetensors"
MPS_FILES = (MPS_SAFETENSORS, f"MPS_overall_checkpoint/{MPS_SAFETENSORS}", MPS_PICKLE)
MPS_SOURCE = (
    "the MPS README (https://github.com/Kwai-Kolors/MPS, Google Drive link: `MPS_overall_checkpoint.pth`, "
    "a pickle, needs `allow_pickle: true`) or DiffSynth-Studio's safetensors copy (`modelscope download --model "
    f"DiffSynth-Studio/QualityMetric_reward_pretrained MPS_overall_checkpoint/{MPS_SAFETENSORS}`)"
)


class MPSOptions(RewardOptions):
    checkpoint: str | None = Field(
        None,
        description=f"The MPS weights: a local `{MPS_SAFETENSORS}` (DiffSynth-Studio's re-pack) or `{MPS_PICKLE}` "
        "(the authors' pickled model, with `allow_pickle`), a directory holding one, or a Hugging Face hub id of a "
        "repo holding one. No hub copy is known: download it once (see the README).",
    )
    allow_pickle: bool = Field(
        False,
        description=f"Read a pickled whole model (`{MPS_PICKLE}`): its tensors are rebuilt and no class or "
        "function named in the file is imported or run. Only for files you trust.",
    )
    condition: str = Field(
        MPS_CONDITION, description="The preference condition the prompt tokens are matched against (overall)."
    )
    threshold: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="Prompt tokens whose normalised similarity to the condition is at most this are masked out "
        "of the cross-attention (0.3 in the authors' scoring; their training used 0.01).",
    )
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        "shortest",
        description="Frame to 224x224: `shortest` side + centre crop (the CLIPImageProcessor MPS uses), `longest` "
        "side + black padding, or `squash`.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the vision encoder layers in backward instead of storing their activations."
    )
    architecture: Literal["ViT-H-14", "tiny"] = Field(
        "ViT-H-14", description="Advanced: the architecture the checkpoint fits (the tests use the tiny one)."
    )


# ---------------------------------------------------------------------------------------------- the model
def clip_h_config() -> Any:
    """transformers ``CLIPConfig`` of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (the MPS backbone)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 24,
            "max_position_embeddings": 77,
            "hidden_act": "gelu",
            "eos_token_id": 49407,
        },
        vision_config={
            "image_size": 224,
            "patch_size": 14,
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_attention_heads": 16,
            "num_hidden_layers": 32,
            "hidden_act": "gelu",
        },
        projection_dim=1024,
    )


def tiny_config() -> Any:
    """A tiny ``CLIPConfig`` of the same shape rules (224x224 input, 77 text positions, the CLIP vocabulary):
    ``pickscore``'s, another CLIP-H reward."""
    from .pickscore import tiny_config as clip_tiny_config

    return clip_tiny_config()


#: The cross-attention module of the released model (``Cross_model(dim=1024, layer_num=4, heads=16)``) and
#: of the tiny test model (its width is the CLIP projection width).
CROSS_H = {"layers": 4, "heads": 16, "dim_head": 64, "ff_mult": 4}
CROSS_TINY = {"layers": 2, "heads": 2, "dim_head": 16, "ff_mult": 4}


def tiny_model(seed: int = 0) -> tuple[Any, CrossModel]:
    """The seeded tiny random ``CLIPModel`` and cross-attention module used by ``load_tiny``."""
    from transformers import CLIPModel

    from ._mps_model import CrossModel

    with seeded(seed):
        clip = CLIPModel(tiny_config())
        return clip, CrossModel(clip.config.projection_dim, **CROSS_TINY)


# ---------------------------------------------------------------------------------------------- the reward
class MPS(ClipReward):
    """MPS (overall) of each frame and its prompt: CLIP-H image tokens cross-attending to the prompt tokens the
    condition selects, ``logit_scale.exp() * cos(prompt, image)``."""

    name = "mps"
    summary = "MPS (Kolors' multi-dimensional preference score, overall; CLIP-H + condition cross-attention), ~100*cos."
    Options: ClassVar = MPSOptions

    def __init__(self, options: MPSOptions | None = None) -> None:
        super().__init__(options)
        self.cross: CrossModel | None = None
        self._condition: torch.Tensor | None = None

    # -------------------------------------------------------------------------------------------- loading
    def _weights_file(self) -> str:
        o = self.options
        where = {"reward": self.name, "what": "MPS weights", "option": "checkpoint"}
        if not o.checkpoint:
            raise missing_weights(
                filename=f"{MPS_SAFETENSORS}` or `{MPS_PICKLE}",
                source=MPS_SOURCE,
                reason="no `checkpoint` given",
                **where,
            )
        ref = o.checkpoint
        path = Path(ref).expanduser()
        if path.is_file():
            return str(path)
        if looks_local(ref):
            for name in MPS_FILES:
                if (path / name).is_file():
                    return str(path / name)
            foreign = foreign_model(ref, local=True, reward=self.name, kind="MPS", example="an MPS checkpoint file")
            if path.is_dir() and foreign is not None:
                raise foreign
            reason = f"no such file or directory {ref!r}" if not path.exists() else f"{ref!r} holds none of {MPS_FILES}"
            raise missing_weights(
                filename=f"{MPS_SAFETENSORS}` or `{MPS_PICKLE}", source=MPS_SOURCE, reason=reason, **where
            )
        try:
            return hub_file(ref, MPS_FILES, source=MPS_SOURCE, **where)
        except MissingWeightsError:
            foreign = foreign_model(ref, local=False, reward=self.name, kind="MPS", example="an MPS checkpoint file")
            if foreign is not None:
                raise foreign from None
            raise

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the MPS weights (``checkpoint``: a file, a directory or a hub id), frozen, in ``dtype``."""
        from transformers import CLIPModel

        path = self._weights_file()
        state = read_state_dict(
            path, reward=self.name, what="MPS weights", allow_pickle=self.options.allow_pickle, whole_model=True
        )
        clip_state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        cross_state = {k[len("cross_model.") :]: v for k, v in state.items() if k.startswith("cross_model.")}
        # transformers < 4.31 saved the position ids of the embeddings as persistent buffers
        clip_state = {k: v for k, v in clip_state.items() if not k.endswith("position_ids")}
        from ._mps_model import CrossModel

        tiny = self.options.architecture == "tiny"
        clip = CLIPModel(tiny_config() if tiny else clip_h_config())
        load_strict(clip, clip_state, reward=self.name, what=f"MPS CLIP {self.options.architecture}", path=path)
        cross = CrossModel(clip.config.projection_dim, **(CROSS_TINY if tiny else CROSS_H))
        load_strict(cross, cross_state, reward=self.name, what="MPS cross-attention module", path=path)
        self._setup(clip, cross, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random transformers ``CLIPModel`` and cross-attention module of the same classes, for tests."""
        self._setup(*tiny_model(seed), device, dtype)

    def _setup(self, clip: Any, cross: CrossModel, device: Any, dtype: Any) -> None:
        from vader_core.tokenizers import clip_tokenizer

        size = int(clip.config.vision_config.image_size)
        mode = self.options.resize_mode
        # CLIPImageProcessor of laion/CLIP-ViT-H-14-laion2B-s32B-b79K: shortest side, bicubic, crop at excess // 2
        self.spec = ImageSpec(
            size=(size, size),
            resize_mode=mode,
            crop_offset="floor",
            interpolation="bilinear" if mode == "squash" else "bicubic",
        )
        # The laion tokenizer is CLIP's BPE padded with <|endoftext|>, built offline.
        self.tokenizer = clip_tokenizer(int(clip.config.text_config.max_position_embeddings))
        self.model = freeze(clip, device, dtype)
        self.cross = freeze(cross, device, dtype)
        if self.options.gradient_checkpointing:
            checkpoint_encoder_layers(self.model, self.model.vision_model.encoder)
        super().load(device, dtype)
        with torch.no_grad():
            self._condition = self._text_tokens([self.options.condition])[0][0]

    # -------------------------------------------------------------------------------------------- scoring
    def _text_tokens(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text tokens ``(P, 77, D)`` (after the final LayerNorm) and EOS embeddings ``(P, D)``.

        As in MPS, the prompt is padded to 77 tokens with <|endoftext|> and encoded without an attention mask.
        """
        ids = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )["input_ids"].to(self.device)
        out = self.model.text_model(input_ids=ids)
        proj = self.model.text_projection
        return proj(out.last_hidden_state), proj(out.pooler_output)

    def prompt_context(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each distinct prompt, without gradient: its tokens ``(P, 77, D)``, EOS embedding ``(P, D)`` and the
        additive condition mask ``(P, 77)`` (0 for a kept token, -inf for a masked one)."""
        with torch.no_grad():
            tokens, eos = self._text_tokens(prompts)
            sim = torch.einsum("pid,jd->pij", tokens.float(), self._condition.float()).amax(dim=-1)  # (P, 77)
            # each prompt by its own maximum: the authors divide by the maximum of the whole batch tensor
            sim = sim / sim.amax(dim=-1, keepdim=True)
            mask = torch.zeros_like(sim).masked_fill(sim <= self.options.threshold, -math.inf)
        return tokens, eos, mask.to(tokens.dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """MPS of each frame ``(N, 3, H, W)`` in [0, 1] with its prompt. Returns ``(N,)``."""
        check_frame_size(frames, self.name)
        return self.score_pixels(preprocess(frames, self.spec), prompts)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """MPS of normalised model input ``(N, 3, 224, 224)`` (what the CLIP processor returns) with its prompt."""
        distinct, index = unique_prompts(prompts)
        tokens, eos, mask = self.prompt_context(distinct)
        idx = torch.as_tensor(index, device=tokens.device)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        # every image token, projected, without the post-LayerNorm HF CLIP applies to the pooled token only
        image = self.model.visual_projection(self.model.vision_model(pixel_values=pixels).last_hidden_state)
        image = self.cross(image, tokens[idx], mask[idx])[:, 0]
        return self.model.logit_scale.exp() * (unit(image) * unit(eos[idx])).sum(dim=-1)
