"""``hpsv3``: Human Preference Score v3 (MizzenAI, ICCV 2025) of each frame, differentiable.

Qwen2-VL-7B-Instruct fine-tuned with a reward head (``rm_head``: Linear 3584->1024, ReLU, Dropout,
Linear 1024->16, ReLU, Linear 16->2, in float32) read at the special token ``<|Reward|>`` that ends
the authors' instruction. The head gives ``(mu, log sigma)`` of a Bradley-Terry/uncertainty model;
the score is ``mu``, unbounded (generated images score about -1 to 11 in the authors' benchmark).

Each frame is one image: resized to the authors' pixel budget (``min_pixels = max_pixels = 256 * 28 *
28``, so a 480x832 frame becomes 336x588, 252 image tokens), normalised and patchified
differentiably (:mod:`vader_vlm_rewards.preprocess`). The reward of a video is the mean over the
frames vader decodes (``scores = "frames"``).

Weights: ``HPSv3.safetensors`` of the hub repo ``MizzenAI/HPSv3`` (every tensor of the model, in
transformers 4.45 key names), with the configuration and tokenizer of ``Qwen/Qwen2-VL-7B-Instruct``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from vader_core.errors import ConfigError
from vader_core.reward import RewardPlugin

from .options import VLMRewardOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .runtime import VLMRuntime

HPSV3_REPO = "MizzenAI/HPSv3"
HPSV3_FILE = "HPSv3.safetensors"
HPSV3_BASE = "Qwen/Qwen2-VL-7B-Instruct"
REWARD_TOKEN = "<|Reward|>"
#: The authors' pixel budget (256 merged tokens of 28 x 28 pixels), minimum and maximum alike.
PIXELS = 256 * 28 * 28
#: The pixel budget of the tiny test model (4 image tokens).
TINY_PIXELS = 56 * 56
#: Files of the base repository that are read: configuration and tokenizer, never its weights.
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "*.jinja")


def template() -> str:
    """The authors' instruction with ``{text_prompt}``, then ``<|Reward|>`` (byte-exact, trailing spaces
    included: ``INSTRUCTION + prompt_with_special_token`` of ``hpsv3/dataset/data_collator_qwen.py``)."""
    return resources.files(__package__).joinpath("templates/hpsv3.txt").read_text(encoding="utf-8")


def hpsv3_head(hidden: int) -> torch.nn.Module:
    """HPSv3's ``rm_head`` (``ranknet`` with no head arguments); keys ``0.*``, ``3.*``, ``5.*``."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(hidden, 1024),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.05),
        torch.nn.Linear(1024, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 2),
    )


class HPSv3Options(VLMRewardOptions):
    checkpoint: str = Field(
        HPSV3_REPO,
        description=f"HPSv3 weights: a hub repo holding `{HPSV3_FILE}` (default `{HPSV3_REPO}`), or a local "
        f"`.safetensors` file or a directory holding `{HPSV3_FILE}`.",
    )
    base: str = Field(
        HPSV3_BASE,
        description="Qwen2-VL base whose config.json and tokenizer the checkpoint belongs to: hub id or local "
        "directory (its weights are not read).",
    )


class HPSv3(RewardPlugin):
    """HPSv3's ``mu`` of each frame with its prompt, through transformers' Qwen2-VL."""

    name = "hpsv3"
    summary = "Human Preference Score v3 (Qwen2-VL-7B + reward head) of each frame: the head's mu, unbounded."
    Options: ClassVar = HPSv3Options
    scores = "frames"

    def __init__(self, options: HPSv3Options | None = None) -> None:
        super().__init__(options)
        self.runtime: VLMRuntime | None = None
        self.pixels = (PIXELS, PIXELS)

    # -- loading ---------------------------------------------------------------------------------

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the checkpoint into transformers' ``Qwen2VLModel`` (hub id or local path, ``HF_HUB_OFFLINE``
        honoured) with the base's configuration and tokenizer; frozen, in ``dtype``, head in float32."""
        import torch
        from transformers import AutoTokenizer

        from ._files import missing_file, read_tensors, snapshot
        from .qwen_vl import RewardModel, build_model, qwen2vl_config, qwen2vl_keys

        o = self.options
        base_dir, _ = snapshot(
            o.base,
            BASE_FILES,
            reward=self.name,
            what="Qwen2-VL base (config and tokenizer)",
            files="config.json + tokenizer files",
            option="base",
            repo=HPSV3_BASE,
        )
        if not (base_dir / "config.json").is_file():
            raise missing_file(
                self.name, o.base, "config.json", base_dir, what="Qwen2-VL base", option="base", repo=o.base
            )
        config = qwen2vl_config(str(base_dir), reward=self.name, what="`base`")
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        path = self._checkpoint_file()
        state = read_tensors(path, reward=self.name, what="HPSv3 weights", allow_pickle=o.allow_pickle)
        head_state = {k[len("rm_head.") :]: v for k, v in state.items() if k.startswith("rm_head.")}
        if not head_state:
            raise ConfigError(
                f"{self.name}: `checkpoint` {o.checkpoint!r} holds no reward head (`rm_head.*`): it is not an HPSv3 "
                f"checkpoint (a plain Qwen2-VL?); give `{HPSV3_REPO}` or its `{HPSV3_FILE}`"
            )
        model_state = qwen2vl_keys({k: v for k, v in state.items() if not k.startswith("rm_head.")})
        embed = model_state.get("language_model.embed_tokens.weight")
        if embed is not None:  # the authors resized the embeddings for <|Reward|>
            config.text_config.vocab_size = int(embed.shape[0])
        model = build_model(config, model_state, reward=self.name, source=str(path))
        head = hpsv3_head(config.text_config.hidden_size)
        try:
            head.load_state_dict(head_state, strict=True)
        except RuntimeError:
            raise ConfigError(
                f"{self.name}: the reward head of {path} is not HPSv3's (Linear {config.text_config.hidden_size}->1024"
                f"->16->2 at keys rm_head.0/3/5): got {sorted(head_state)}"
            ) from None
        self._setup(RewardModel(model, head, head_dtype=torch.float32), tokenizer, (PIXELS, PIXELS), device, dtype)

    def _checkpoint_file(self) -> Path:
        from ._files import missing_file, snapshot

        o = self.options
        ref = o.checkpoint
        where, local = snapshot(
            ref,
            [HPSV3_FILE, "model.safetensors", "config.json"],
            reward=self.name,
            what="HPSv3 checkpoint",
            files=HPSV3_FILE,
            option="checkpoint",
            repo=HPSV3_REPO,
        )
        if where.is_file():
            return where
        for name in (HPSV3_FILE, "model.safetensors"):
            if (where / name).is_file():
                return where / name
        if (where / "config.json").is_file() or any(where.glob("*.safetensors.index.json")):
            raise ConfigError(
                f"{self.name}: `checkpoint` {ref!r} is a Qwen2-VL model without HPSv3's reward head ({HPSV3_FILE} is "
                f"not there); give `{HPSV3_REPO}` or a local `{HPSV3_FILE}`"
            )
        raise missing_file(
            self.name, ref, HPSV3_FILE, where, what="HPSv3 checkpoint", option="checkpoint", repo=HPSV3_REPO
        )

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """A tiny random Qwen2-VL with HPSv3's head and a small BPE tokenizer, pixel budget 56x56 (4 tokens)."""
        import torch

        from .qwen_vl import RewardModel

        model, head, tokenizer = tiny_parts(seed)
        self._setup(
            RewardModel(model, head, head_dtype=torch.float32), tokenizer, (TINY_PIXELS, TINY_PIXELS), device, dtype
        )

    def _setup(self, model: Any, tokenizer: Any, pixels: tuple[int, int], device: Any, dtype: Any) -> None:
        import torch

        from .qwen_vl import Prompter, finish
        from .runtime import VLMRuntime

        o = self.options
        self.pixels = (o.min_pixels or pixels[0], o.max_pixels or pixels[1])
        if self.pixels[0] > self.pixels[1]:
            raise ConfigError(f"{self.name}: `min_pixels` {self.pixels[0]} is above `max_pixels` {self.pixels[1]}")
        model = finish(model, "cpu" if o.offload else device, dtype, head_dtype=torch.float32)
        prompter = Prompter(
            tokenizer, [REWARD_TOKEN], model.model.language_model.embed_tokens.num_embeddings, self.name
        )
        self.runtime = VLMRuntime(model, prompter, device, o.gradient_checkpointing, o.offload)
        self.model = model
        super().load(device, dtype)

    # -- scoring ---------------------------------------------------------------------------------

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """HPSv3 ``mu`` of each frame ``(N, 3, H, W)`` in [0, 1] with its prompt. Returns ``(N,)``."""
        from .preprocess import check_frame_size, image_inputs

        assert self.runtime is not None
        check_frame_size(frames.shape[-2], frames.shape[-1], self.name)
        text = template()
        texts = [text.format(text_prompt=p) for p in prompts]

        def mu(x: torch.Tensor) -> torch.Tensor:
            pixel_values, grid = image_inputs(x, *self.pixels)
            return self.runtime.score(pixel_values, grid, texts, "image", upto=0)[:, 0, 0]

        return self.runtime.run(mu, frames)


def tiny_parts(seed: int = 0) -> tuple[Any, Any, Any]:
    """The seeded tiny ``Qwen2VLModel``, HPSv3 head and tokenizer of :meth:`HPSv3.load_tiny` (also what the
    tests save as a checkpoint)."""
    from vader_core.modules import seeded

    from .qwen_vl import tiny_config, tiny_qwen2vl, tiny_tokenizer

    tokenizer = tiny_tokenizer([template()], [REWARD_TOKEN])
    config = tiny_config(tokenizer)
    with seeded(seed):
        model = tiny_qwen2vl(config)
        head = hpsv3_head(config.text_config.hidden_size)
    return model, head, tokenizer
