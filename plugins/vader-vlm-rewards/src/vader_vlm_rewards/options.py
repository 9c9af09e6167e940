"""The options both Qwen2-VL rewards take (memory, pixel budget, the pickle opt-in); light to import."""

from __future__ import annotations

from pydantic import Field

from vader_core.reward import RewardOptions


class VLMRewardOptions(RewardOptions):
    """Base of ``hpsv3``'s and ``video_reward``'s options; each adds its weights and scoring options."""

    min_pixels: int | None = Field(
        None, ge=28 * 28, description="Lower pixel budget of a frame; null: the release's (see the reward's README)."
    )
    max_pixels: int | None = Field(
        None, ge=28 * 28, description="Upper pixel budget of a frame; null: the release's (200704 = 448 x 448)."
    )
    gradient_checkpointing: bool = Field(
        True, description="Recompute the vision blocks and decoder layers in backward instead of storing them."
    )
    offload: bool = Field(
        False,
        description="Keep the model on the CPU between uses: moved to the run's device for each call and back once "
        "its backward has run (saves its weights outside the reward's phase, costs two copies a step).",
    )
    allow_pickle: bool = Field(
        False,
        description="Read a pickled checkpoint (`.pth`/`.pt`, e.g. VideoReward's `model.pth`): its tensors only, "
        "torch.load(weights_only=True).",
    )
