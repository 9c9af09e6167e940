"""Running a loaded Qwen2-VL reward: where the model lives between calls (``offload``), activation
checkpointing, and one scoring call from vision inputs and prompt texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vader_core.lazy import torch
from vader_core.offload import ModuleOffload

from .qwen_vl import IMAGE_PAD, VIDEO_PAD

if TYPE_CHECKING:  # pragma: no cover
    from .qwen_vl import Prompter, RewardModel


class VLMRuntime:
    """A frozen :class:`~vader_vlm_rewards.qwen_vl.RewardModel` with its prompter, run on ``device``.

    Args:
        model (`RewardModel`): the model (on ``device``, or on the CPU when ``offload``).
        prompter (`Prompter`): token ids of the prompts.
        device (`torch.device` or `str`): the run's device.
        checkpointing (`bool`): recompute the vision blocks and decoder layers in backward.
        offload (`bool`): keep the model on the CPU between calls: moved to ``device`` for each call and
            back once the backward has gone through it (:class:`vader_core.offload.ModuleOffload`).
    """

    def __init__(self, model: RewardModel, prompter: Prompter, device: Any, checkpointing: bool, offload: bool) -> None:
        self.model = model
        self.prompter = prompter
        self.device = torch.device(device)
        self.offload = ModuleOffload([model], device) if offload else None
        model.checkpoint(checkpointing)

    def run(self, fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """``fn(inputs on the run's device)``, the model brought in first when it is offloaded (and sent back
        after the backward of the result, or at once without one). Returns float32 on ``inputs``' device."""
        if self.offload is None:
            return fn(inputs.to(self.device)).float().to(inputs.device)
        self.offload.fetch()
        try:
            out = fn(inputs.to(self.device))
        except BaseException:
            self.offload.release()
            raise
        self.offload.release_after_backward(inputs, out)
        return out.float().to(inputs.device)

    def score(
        self, pixel_values: torch.Tensor, grid: torch.Tensor, texts: Sequence[str], kind: str, upto: int
    ) -> torch.Tensor:
        """Head outputs ``(B, upto + 1, out)`` at the first ``upto + 1`` reward tokens of the prompts ``texts``,
        each with its picture (``kind`` ``"image"``) or video (``"video"``); ``grid`` is one row per text."""
        placeholder = IMAGE_PAD if kind == "image" else VIDEO_PAD
        per_item = int(grid[0].prod()) // 4  # 2x2 patches merge into one token
        input_ids, mask = self.prompter.batch(texts, placeholder, per_item, upto, self.device)
        return self.model(
            pixel_values,
            grid,
            input_ids,
            mask,
            self.prompter.ids[placeholder],
            self.prompter.reward_ids[: upto + 1],
        )
