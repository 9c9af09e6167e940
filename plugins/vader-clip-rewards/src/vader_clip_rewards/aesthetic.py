"""``aesthetic``: the LAION improved aesthetic predictor, differentiable.

Score = MLP(normalize(CLIP ViT-L/14 image embedding)), the MLP being LAION's
``sac+logos+ava1-l14-linearMSE.pth`` (github.com/christophschuhmann/improved-aesthetic-predictor),
the same head the VADER, DDPO and AlignProp code use. Raw score, ~1-10. VADER's loss
``0.1 * |s - 10|`` is ``weight: 0.1, objective: {target: 10}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.errors import CheckpointError
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions

from ._common import TINY_CLIP, create_open_clip
from ._weights import hub_file, load_strict, local_file, read_state_dict
from .base import OpenClipReward

if TYPE_CHECKING:  # pragma: no cover
    import torch

MLP_FILE = "sac+logos+ava1-l14-linearMSE.pth"
MLP_GITHUB = "https://github.com/christophschuhmann/improved-aesthetic-predictor"
#: Hub copy of the MLP that TRL's DDPO example downloads (same architecture and key layout).
MLP_HUB_REPO, MLP_HUB_FILE = "trl-lib/ddpo-aesthetic-predictor", "aesthetic-model.pth"


class AestheticOptions(RewardOptions):
    mlp_path: str | None = Field(
        None,
        description=f"Local path of the LAION MLP `{MLP_FILE}` ({MLP_GITHUB}); default: `{MLP_HUB_FILE}` from the "
        f"Hugging Face hub repo `{MLP_HUB_REPO}`.",
    )
    clip_pretrained: str = Field(
        "openai",
        description="CLIP weights: an open_clip pretrained tag of `clip_model` (downloaded from the hub) or a local "
        "open_clip checkpoint file (.safetensors/.bin/.pt) of OpenAI ViT-L/14.",
    )
    clip_model: str = Field(
        "ViT-L-14",
        description="Advanced: open_clip architecture of the CLIP tower (the tests use the tiny `vader-tiny-clip`).",
    )
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        "shortest",
        description="Frame to 224x224: `shortest` side to 224 + centre crop (CLIP's preprocess, the predictor's "
        "reference), `longest` side + black padding, or `squash` (the VADER training code).",
    )
    allow_pickle: bool = Field(
        False,
        description="Unpickle Python objects in the weights file (weights_only=False) when it holds more "
        "than tensors; the released files do not need it. Only for files you trust.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the CLIP vision tower in backward instead of storing its activations."
    )


def tiny_components(seed: int = 0) -> tuple[Any, Any]:
    """The seeded tiny CLIP (QuickGELU, like OpenAI's) and a LAION MLP over its embedding width."""
    from ._mlp import LaionAestheticMLP

    with seeded(seed):
        clip = create_open_clip(TINY_CLIP, quick_gelu=True)
        mlp = LaionAestheticMLP(clip.visual.output_dim)
    return clip, mlp


class Aesthetic(OpenClipReward):
    """LAION aesthetic predictor on each frame: an MLP over the normalised CLIP ViT-L/14 embedding, ~1-10."""

    name = "aesthetic"
    summary = "LAION aesthetic predictor (CLIP ViT-L/14 + MLP), raw score on a ~1-10 scale."
    Options: ClassVar = AestheticOptions
    reads_prompts = False

    def __init__(self, options: AestheticOptions | None = None) -> None:
        super().__init__(options)
        self.mlp: torch.nn.Module | None = None

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load CLIP and the MLP (local paths or the hub, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``."""
        from ._mlp import LaionAestheticMLP

        o = self.options
        where = {"reward": self.name, "what": "LAION aesthetic MLP", "option": "mlp_path"}
        if o.mlp_path:
            mlp_file = local_file(o.mlp_path, filename=MLP_FILE, source=MLP_GITHUB, **where)
        else:
            mlp_file = hub_file(
                MLP_HUB_REPO,
                [MLP_HUB_FILE],
                filename=MLP_FILE,
                **where,
                source=(
                    f"{MLP_GITHUB} (or as `{MLP_HUB_FILE}`, the default download, from the Hugging Face hub repo "
                    f"`{MLP_HUB_REPO}`)"
                ),
            )
        clip_file, tag_cfg = self.clip_weights()
        state = read_state_dict(mlp_file, reward=self.name, what="LAION aesthetic MLP", allow_pickle=o.allow_pickle)
        weight = state.get("layers.0.weight")
        mlp = LaionAestheticMLP(int(weight.shape[1]) if weight is not None and weight.ndim == 2 else 768)
        load_strict(mlp, state, reward=self.name, what="LAION aesthetic MLP (layers.0/2/4/6/7)", path=mlp_file)
        # The MLP was fitted on OpenAI ViT-L/14 embeddings, whose towers use QuickGELU; a local file is
        # taken to hold those weights, a tag says itself.
        clip = self.build_clip(clip_file, tag_cfg, None, local_quick_gelu=True)
        self._setup_head(clip, mlp, device, dtype)
        self._setup(clip, tag_cfg, o.clip_model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random CLIP (real open_clip ``CLIP`` class) and a random LAION MLP, for tests."""
        clip, mlp = tiny_components(seed)
        self._setup_head(clip, mlp, device, dtype)
        self._setup(clip, {}, TINY_CLIP, device, dtype)

    def _setup_head(self, clip: Any, mlp: Any, device: Any, dtype: Any) -> None:
        width = int(clip.visual.output_dim)
        if mlp.layers[0].in_features != width:
            raise CheckpointError(
                f"{self.name}: the MLP takes {mlp.layers[0].in_features}-d embeddings but "
                f"`{self.options.clip_model}` gives {width}-d ones"
            )
        self.mlp = freeze(mlp, device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Aesthetic score of each frame ``(N, 3, H, W)`` in [0, 1]; prompts are ignored. Returns ``(N,)``."""
        return self.mlp(self.image_embeddings(frames))
