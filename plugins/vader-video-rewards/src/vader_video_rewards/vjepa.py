"""``vjepa``: minus V-JEPA 2's masked feature-prediction error of the clip, differentiable.

The clip is resampled to the model's clip length and resolution and ImageNet-normalised. For each
of a fixed, seeded set of spatio-temporal block masks (:mod:`.masks`, the two kinds V-JEPA 2 was
pretrained with), the predictor of transformers' ``VJEPA2Model`` predicts the features of the
masked tokens from the encoder's features of the visible ones, and the prediction is compared with
the encoder's features of the full clip: ``mean |prediction - layer_norm(target)|``, the L1 loss of
V-JEPA 2's training (``loss_exp: 1.0``; the targets layer-normed without affine, stop-gradient).
The reward is minus that error averaged over the masks, so it is <= 0 and higher (closer to 0)
means a clip whose hidden parts the model finds easier to predict: a more temporally consistent
video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.errors import ConfigError
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions, RewardPlugin

from ._common import (
    ResizeMode,
    as_size,
    checkpoint_layers,
    load_pretrained,
    normalize,
    resample_clip,
)
from .masks import VJEPA2_MASKS, draw_masks

if TYPE_CHECKING:  # pragma: no cover
    import torch

VJEPA2_REPO = "facebook/vjepa2-vitl-fpc64-256"
#: V-JEPA 2's video processor resizes the short side to ``crop_size * 256 / 224`` before the centre crop.
VJEPA2_CROP_RATIO = 256 / 224


class VJEPAOptions(RewardOptions):
    model: str = Field(
        VJEPA2_REPO,
        description="V-JEPA 2 model (transformers `VJEPA2Model`, encoder + predictor): a Hugging Face hub id, or a "
        "local directory in `save_pretrained` layout.",
    )
    num_frames: int | None = Field(
        None,
        ge=1,
        description="Frames the clip is resampled to (a multiple of the tubelet size, 2); null: the model's "
        "`frames_per_clip` (64 for the fpc64 models). Fewer frames cost proportionally less.",
    )
    mask_draws: int = Field(
        2,
        ge=1,
        description="Draws of V-JEPA 2's two mask kinds (8 short-range + 2 long-range blocks); the reward averages "
        "the prediction error over 2 x mask_draws masks.",
    )
    mask_seed: int = Field(0, description="Seed of the masks; the same seed gives the same masks on every call.")
    context: Literal["visible", "full"] = Field(
        "visible",
        description="`visible`: the encoder sees only the context tokens, as in V-JEPA training; `full`: "
        "`VJEPA2Model.forward` as transformers runs it, the encoder sees the whole clip and the predictor gets the "
        "context tokens' features (cheaper: one encoder pass for all masks, but the context has seen the targets).",
    )
    resize_mode: ResizeMode = Field(
        "squash",
        description="Frame to `crop_size`: `squash` (whole frame, aspect ratio changed) or `crop` (V-JEPA 2's "
        "video processor: short side to crop_size*256/224, centre crop; the borders get no reward).",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the encoder and predictor layers in backward instead of storing activations."
    )


def tiny_config() -> Any:
    """A tiny ``VJEPA2Config``: 32x32 crops of 4 frames, patch 4 and tubelet 2 (2 x 8 x 8 tokens), width 32.

    Its weights are drawn 10x wider than the default (``initializer_range`` 0.2): with 0.02 a random
    predictor's output hardly depends on its context (1e-5), which would hide mistakes in the tests.
    """
    from transformers import VJEPA2Config

    return VJEPA2Config(
        patch_size=4,
        crop_size=32,
        frames_per_clip=4,
        tubelet_size=2,
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        mlp_ratio=2.0,
        num_pooler_layers=1,
        pred_hidden_size=24,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=2,
        pred_num_mask_tokens=2,
        pred_zero_init_mask_tokens=False,
        pred_mlp_ratio=2.0,
        initializer_range=0.2,
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``VJEPA2Model`` used by ``load_tiny``."""
    from transformers import VJEPA2Model

    with seeded(seed):
        return VJEPA2Model(tiny_config())


class VJEPA(RewardPlugin):
    """Minus V-JEPA 2's masked feature-prediction L1 error of the clip (higher: more temporally consistent)."""

    name = "vjepa"
    summary = "Minus V-JEPA 2's masked feature-prediction error of the clip (temporal consistency), <= 0."
    Options: ClassVar = VJEPAOptions
    scores = "clip"
    value_range = (float("-inf"), 0.0)

    def __init__(self, options: VJEPAOptions | None = None) -> None:
        super().__init__(options)
        self.model: torch.nn.Module | None = None
        self.masks: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.frames = 0
        self.size = (0, 0)

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``options.model`` (hub id or local directory, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``."""
        from transformers import VJEPA2Model

        model = load_pretrained(
            VJEPA2Model,
            self.options.model,
            reward=self.name,
            model_type="vjepa2",
            default_repo=VJEPA2_REPO,
            kind="V-JEPA 2",
        )
        self._setup(model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random ``VJEPA2Model`` of the real classes, for tests."""
        self._setup(tiny_model(seed), device, dtype)

    def _setup(self, model: Any, device: Any, dtype: Any) -> None:
        cfg = model.config
        tubelet, patch = int(cfg.tubelet_size), as_size(cfg.patch_size)
        frames = int(self.options.num_frames or cfg.frames_per_clip)
        if frames % tubelet:
            raise ConfigError(
                f"{self.name}: `num_frames` must be a multiple of the model's tubelet size {tubelet}, got {frames}"
            )
        self.frames, self.size = frames, as_size(cfg.crop_size)
        grid = (frames // tubelet, self.size[0] // patch[0], self.size[1] // patch[1])
        self.masks = draw_masks(grid, VJEPA2_MASKS, self.options.mask_draws, self.options.mask_seed)
        self.model = freeze(model, device, dtype)
        if self.options.gradient_checkpointing:
            checkpoint_layers(self.model, [*self.model.encoder.layer, *self.model.predictor.layer])
        super().load(device, dtype)

    def score_clip(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Minus the mean L1 feature-prediction error of each video ``(B, F, 3, H, W)`` in [0, 1]. Returns ``(B,)``."""
        import torch
        import torch.nn.functional as F

        x = resample_clip(video.float(), self.frames, self.size, self.options.resize_mode, VJEPA2_CROP_RATIO)
        x = normalize(x).to(device=self.device, dtype=self.dtype)
        b, m = x.shape[0], self.model
        full = None
        if self.options.context == "full":
            full = m.get_vision_features(x)  # with gradient: it is the context too
            targets = full.detach()
        else:
            with torch.no_grad():
                targets = m.get_vision_features(x)
        targets = F.layer_norm(targets, targets.shape[-1:])
        errors = []
        for context, target in self.masks:
            cm = context.to(x.device).expand(b, -1)
            tm = target.to(x.device).expand(b, -1)
            encoded = full if full is not None else self._encode_visible(x, cm, targets.shape[1])
            pred = m.predictor(encoder_hidden_states=encoded, context_mask=[cm], target_mask=[tm]).last_hidden_state
            truth = torch.gather(targets, 1, tm.unsqueeze(-1).expand(-1, -1, targets.shape[-1]))
            errors.append((pred.float() - truth.float()).abs().mean(dim=(1, 2)))
        return -torch.stack(errors).mean(dim=0)

    def _encode_visible(self, x: torch.Tensor, context: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """The encoder on the context tokens only (V-JEPA's context encoder), laid out at their positions.

        The patch embedding runs on the whole clip (it is per tubelet), the context tokens are kept, and
        the encoder layers run on them with their grid positions for the 3D RoPE (the ``position_mask``
        the layers take, as the predictor uses it). The result is scattered into a ``(B, N, D)`` tensor
        (zeros elsewhere) because ``VJEPA2Predictor`` gathers the context from full-length encoder states.
        """
        import torch

        enc = self.model.encoder
        tokens = enc.embeddings(x)
        idx = context.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        h = torch.gather(tokens, 1, idx)
        for layer in enc.layer:
            h = layer(h, context)[0]
        h = enc.layernorm(h)
        return h.new_zeros(h.shape[0], num_tokens, h.shape[-1]).scatter(1, idx, h)
