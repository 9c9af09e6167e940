"""``video_reward``: VideoAlign's VideoReward (Kling/Kuaishou, arXiv 2501.13918) of whole clips, differentiable.

Qwen2-VL-2B-Instruct fine-tuned (LoRA rank 64, alpha 128 on the language model; vision tower and
merger trained fully) with a linear reward head read at three special tokens of the authors'
"detailed" instruction, in this order: ``<|VQ_reward|>`` (visual quality), ``<|MQ_reward|>`` (motion
quality), ``<|TA_reward|>`` (text alignment). Each raw value is normalised with the mean and standard
deviation of the release's ``model_config.json`` (``inference_config``); the authors' ``Overall`` is
the sum of the three normalised values. The reward is a weighted sum of the chosen dimensions
(``dimensions``), unbounded.

The clip goes in as one Qwen2-VL video: frames sampled as the release samples them (``fps`` 2 of the
clip's duration at ``video_fps``, an even number, at least 4), each resized to the release's pixel
budget (``max_frame_pixels`` 448 x 448, at least 128 x 28 x 28), consecutive pairs making temporal
patches; all differentiable (:mod:`vader_vlm_rewards.preprocess`). A Wan 2.1 clip (81 frames at 16
fps, 480x832) becomes 10 frames of 336x588: 5 x 24 x 42 patches, 1260 video tokens.

Weights: the hub repo ``KwaiVGI/VideoReward`` (``model_config.json``, ``checkpoint-*/model.pth`` with
the un-merged LoRA in PEFT key names, ``checkpoint-*/tokenizer/``), on the configuration of
``Qwen/Qwen2-VL-2B-Instruct``. ``model.pth`` is a pickle: it is read only with ``allow_pickle: true``
(tensors only), or after ``vader-vlm-convert videoreward`` wrote it as safetensors.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.errors import CheckpointError, ConfigError
from vader_core.reward import RewardPlugin

from .options import VLMRewardOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .runtime import VLMRuntime

VIDEOREWARD_REPO = "KwaiVGI/VideoReward"
VIDEOREWARD_BASE = "Qwen/Qwen2-VL-2B-Instruct"
#: The reward tokens, in the order the template places them.
REWARD_TOKENS = ("<|VQ_reward|>", "<|MQ_reward|>", "<|TA_reward|>")
DIMENSIONS = ("vq", "mq", "ta")
#: What the release's ``model_config.json`` says, for a checkpoint whose file lacks an entry (and the
#: tiny test model): sampling of the training videos and the normalisation of the three outputs.
RELEASE_DATA = {"fps": 2.0, "max_frame_pixels": 200704, "num_frames": None}
RELEASE_NORM = {
    "VQ_mean": 3.6757,
    "VQ_std": 2.2476,
    "MQ_mean": 1.1646,
    "MQ_std": 1.3811,
    "TA_mean": 2.8105,
    "TA_std": 2.5121,
}
#: qwen-vl-utils' lower pixel budget of a video frame (``VIDEO_MIN_PIXELS``), not in the release's config.
VIDEO_MIN_PIXELS = 128 * 28 * 28
#: The tiny test model's budget: 56x56 .. 56x84 frames (4 to 6 tokens a temporal patch).
TINY_PIXELS = (56 * 56, 56 * 84)
#: A sampling rate this far from the training rate (relative) is reported once.
FPS_TOLERANCE = 0.25
#: Files read from the hub: the release's, a converted copy's, and a base's configuration.
CHECKPOINT_FILES = (
    "model_config.json",
    "config.json",
    "checkpoint-*/model.pth",
    "checkpoint-*/model.safetensors",
    "checkpoint-*/tokenizer/*",
)
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "*.jinja")


def template() -> str:
    """The authors' ``DETAILED_PROMPT_WITH_SPECIAL_TOKEN`` (``prompt_template.py``), byte-exact, with
    ``{text_prompt}``."""
    return resources.files(__package__).joinpath("templates/videoreward.txt").read_text(encoding="utf-8")


class VideoRewardOptions(VLMRewardOptions):
    model: str = Field(
        VIDEOREWARD_REPO,
        description="VideoReward checkpoint: hub id or local directory holding `model_config.json` and "
        "`checkpoint-*/` (`model.pth`, or `model.safetensors` from `vader-vlm-convert videoreward`).",
    )
    base: str | None = Field(
        None,
        description="Qwen2-VL base whose config.json the checkpoint fits (hub id or local directory; its weights "
        "are not read); null: `model_name_or_path` of the checkpoint's model_config.json "
        f"(`{VIDEOREWARD_BASE}`).",
    )
    dimensions: Literal["overall", "vq", "mq", "ta"] | dict[Literal["overall", "vq", "mq", "ta"], float] = Field(
        "overall",
        description="What is rewarded: `vq` (visual quality), `mq` (motion quality), `ta` (text alignment), "
        "`overall` (their sum, the authors' Overall), or weights of several, e.g. {vq: 1.0, mq: 0.5}.",
    )
    normalize: bool = Field(
        True, description="Normalise each dimension with the checkpoint's mean and std (the authors' use_norm)."
    )
    video_fps: float = Field(
        16.0,
        gt=0,
        description="Frame rate of the scored videos (the clip's duration is frames / video_fps): 16 for Wan 2.1; "
        "set your backbone's.",
    )
    sample_fps: float | None = Field(
        None, gt=0, description="Frames sampled per second of video; null: the checkpoint's training rate (2)."
    )
    num_frames: int | None = Field(
        None, ge=2, description="Sample this many frames (rounded to even) instead of `sample_fps`."
    )

    @field_validator("dimensions")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if isinstance(v, dict) and not any(w != 0 for w in v.values()):
            raise ValueError("give at least one dimension with a non-zero weight")
        return v


def _num_frames_fixed(n: int, total: int) -> int:
    # qwen-vl-utils' `nframes`: rounded to even, at most the video's frames
    return min(round(n / 2) * 2, total)


class VideoReward(RewardPlugin):
    """VideoAlign's VideoReward of whole clips: visual quality, motion quality, text alignment (normalised)."""

    name = "video_reward"
    summary = "VideoAlign VideoReward (Qwen2-VL-2B): visual/motion quality and text alignment of the clip, normalised."
    Options: ClassVar = VideoRewardOptions
    scores = "clip"

    def __init__(self, options: VideoRewardOptions | None = None) -> None:
        super().__init__(options)
        self.runtime: VLMRuntime | None = None
        self.output_dim = 1
        self.norm = dict(RELEASE_NORM)
        self.train_fps = RELEASE_DATA["fps"]
        self.train_pixels = RELEASE_DATA["max_frame_pixels"]
        self.pixels = (VIDEO_MIN_PIXELS, RELEASE_DATA["max_frame_pixels"])
        self._reported: set[tuple[Any, ...]] = set()

    @property
    def weights(self) -> dict[str, float]:
        """Weight of each of ``vq``, ``mq``, ``ta`` in the reward (``overall`` adds its weight to all three)."""
        d = self.options.dimensions
        chosen = {d: 1.0} if isinstance(d, str) else dict(d)
        w = dict.fromkeys(DIMENSIONS, 0.0)
        for k, v in chosen.items():
            for dim in DIMENSIONS if k == "overall" else (k,):
                w[dim] += float(v)
        return w

    # -- loading ---------------------------------------------------------------------------------

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the checkpoint (hub id or local directory, ``HF_HUB_OFFLINE`` honoured), merge its LoRA, and
        build transformers' ``Qwen2VLModel`` on the base's configuration; frozen, in ``dtype``."""
        from transformers import AutoTokenizer

        from ._files import missing_file, read_tensors, snapshot
        from .qwen_vl import RewardModel, build_model, merge_lora, qwen2vl_config, qwen2vl_keys

        o = self.options
        root, _ = snapshot(
            o.model,
            CHECKPOINT_FILES,
            reward=self.name,
            what="VideoReward checkpoint",
            files="model_config.json + checkpoint-*/model.pth",
            option="model",
            repo=VIDEOREWARD_REPO,
        )
        meta = self._model_config(root)
        step = _latest_checkpoint(root)
        if step is None:
            raise missing_file(
                self.name,
                o.model,
                "checkpoint-*/",
                root,
                what="VideoReward checkpoint",
                option="model",
                repo=VIDEOREWARD_REPO,
            )
        weights = step / "model.safetensors"
        if not weights.is_file():
            weights = step / "model.pth"
        if not weights.is_file():
            raise missing_file(
                self.name,
                o.model,
                f"{step.name}/model.pth",
                root,
                what="VideoReward checkpoint",
                option="model",
                repo=VIDEOREWARD_REPO,
            )
        state = read_tensors(
            weights,
            reward=self.name,
            what="VideoReward weights",
            allow_pickle=o.allow_pickle,
            convert_hint=f", or convert it once: `vader-vlm-convert videoreward {o.model} DIR --allow-pickle`",
        )
        state = {k.removeprefix("base_model.model."): v for k, v in state.items()}
        peft = meta.get("peft_lora_config") or {}
        if any(".lora_A." in k for k in state):
            r, alpha = float(peft.get("lora_r", 64)), float(peft.get("lora_alpha", 128))
            state = merge_lora(state, alpha / (r**0.5) if peft.get("use_rslora") else alpha / r)
        head_weight = state.pop("rm_head.weight", None)
        if head_weight is None:
            raise ConfigError(
                f"{self.name}: {weights} holds no reward head (`rm_head.weight`): not a VideoReward checkpoint"
            )
        base_ref = o.base or (meta.get("model_config") or {}).get("model_name_or_path") or VIDEOREWARD_BASE
        base, _ = snapshot(
            base_ref,
            BASE_FILES,
            reward=self.name,
            what="Qwen2-VL base (config)",
            files="config.json",
            option="base",
            repo=VIDEOREWARD_BASE,
        )
        if not (base / "config.json").is_file():
            raise missing_file(
                self.name, base_ref, "config.json", base, what="Qwen2-VL base", option="base", repo=base_ref
            )
        config = qwen2vl_config(str(base), reward=self.name, what="`base`")
        tokenizer = AutoTokenizer.from_pretrained(str(step / "tokenizer" if (step / "tokenizer").is_dir() else base))
        model_state = qwen2vl_keys(state)
        embed = model_state.get("language_model.embed_tokens.weight")
        if embed is not None:  # the authors resized the embeddings for the three reward tokens
            config.text_config.vocab_size = int(embed.shape[0])
        model = build_model(config, model_state, reward=self.name, source=str(weights))
        import torch

        head = torch.nn.Linear(head_weight.shape[1], head_weight.shape[0], bias=False)
        head.weight.data = head_weight
        self._setup(RewardModel(model, head), tokenizer, meta, device, dtype)

    def _model_config(self, root: Path) -> dict[str, Any]:
        path = root / "model_config.json"
        if not path.is_file():
            if (root / "config.json").is_file() or any(root.glob("*.safetensors")):
                raise ConfigError(
                    f"{self.name}: `model` {self.options.model!r} has no model_config.json: it is a plain model "
                    f"(e.g. Qwen2-VL without the reward head), not a VideoReward checkpoint; give `{VIDEOREWARD_REPO}`"
                )
            from ._files import missing_file

            raise missing_file(
                self.name,
                self.options.model,
                "model_config.json",
                root,
                what="VideoReward checkpoint",
                option="model",
                repo=VIDEOREWARD_REPO,
            )
        meta = json.loads(path.read_text())
        data = meta.get("data_config") or {}
        if (
            data.get("prompt_template_type", "detailed_special") != "detailed_special"
            or [str(d).upper() for d in data.get("eval_dim", ["VQ", "MQ", "TA"])] != ["VQ", "MQ", "TA"]
            or data.get("sample_type", "uniform") != "uniform"
        ):
            raise ConfigError(
                f"{self.name}: {path} was trained with prompt template {data.get('prompt_template_type')!r}, dimensions "
                f"{data.get('eval_dim')!r} and sampling {data.get('sample_type')!r}; this reward implements the "
                f"release's ('detailed_special', VQ/MQ/TA, 'uniform')"
            )
        return meta

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """A tiny random Qwen2-VL with VideoReward's head and a small BPE tokenizer; the release's
        normalisation and sampling, a pixel budget of 56x56 to 56x84."""
        from .qwen_vl import RewardModel

        model, head, tokenizer = tiny_parts(seed)
        meta = {
            "data_config": {**RELEASE_DATA, "max_frame_pixels": TINY_PIXELS[1]},
            "inference_config": RELEASE_NORM,
            "min_pixels": TINY_PIXELS[0],
        }
        self._setup(RewardModel(model, head), tokenizer, meta, device, dtype)

    def _setup(self, model: Any, tokenizer: Any, meta: dict[str, Any], device: Any, dtype: Any) -> None:
        from .qwen_vl import Prompter, finish
        from .runtime import VLMRuntime

        o = self.options
        data = {**RELEASE_DATA, **(meta.get("data_config") or {})}
        self.train_fps = float(data["fps"])
        self.train_pixels = int(data["max_frame_pixels"])
        self.train_frames = data.get("num_frames")
        self.norm = dict(meta.get("inference_config") or {})
        self.output_dim = int(model.head.weight.shape[0])
        self.pixels = (o.min_pixels or meta.get("min_pixels", VIDEO_MIN_PIXELS), o.max_pixels or self.train_pixels)
        if self.pixels[0] > self.pixels[1]:
            raise ConfigError(f"{self.name}: `min_pixels` {self.pixels[0]} is above `max_pixels` {self.pixels[1]}")
        if (
            o.normalize
            and self.norm
            and not all(f"{d}_{s}" in self.norm for d in ("VQ", "MQ", "TA") for s in ("mean", "std"))
        ):
            raise CheckpointError(f"{self.name}: the checkpoint's inference_config lacks a mean or std of VQ/MQ/TA")
        model = finish(model, "cpu" if o.offload else device, dtype)
        prompter = Prompter(tokenizer, REWARD_TOKENS, model.model.language_model.embed_tokens.num_embeddings, self.name)
        self.runtime = VLMRuntime(model, prompter, device, o.gradient_checkpointing, o.offload)
        self.model = model
        self._reported = set()
        super().load(device, dtype)

    # -- scoring ---------------------------------------------------------------------------------

    def sampled_frames(self, total: int) -> list[int]:
        """Indices of the frames scored out of ``total``: the release's sampling (``fps``, uniform)."""
        from .preprocess import num_sampled_frames, sample_frames

        o = self.options
        fixed = o.num_frames if o.num_frames is not None else self.train_frames
        if fixed is not None:
            n = _num_frames_fixed(int(fixed), total)
            if n < 2:
                raise ConfigError(f"{self.name}: a video of {total} frame(s) is too short: at least 2 are needed")
        else:
            n = num_sampled_frames(total, o.video_fps, o.sample_fps or self.train_fps)
        self._report(total, n)
        return sample_frames(total, n)

    def _report(self, total: int, n: int) -> None:
        """One line, once per clip length, when the frames differ from the training sampling."""
        o = self.options
        key = (total, n)
        if key in self._reported:
            return
        self._reported.add(key)
        seconds = total / o.video_fps
        rate = n / seconds
        if abs(rate - self.train_fps) > FPS_TOLERANCE * self.train_fps:
            warnings.warn(
                f"{self.name}: scores {n} of the {total} frames of a {seconds:.2f} s clip (video_fps {o.video_fps:g}): "
                f"{rate:.2f} frames per second, while VideoReward was trained on {self.train_fps:g} per second; its "
                f"scores grow with the number of frames, so they are not comparable with those of clips sampled at "
                f"{self.train_fps:g} per second",
                UserWarning,
                stacklevel=3,
            )
        if self.pixels[1] != self.train_pixels:
            warnings.warn(
                f"{self.name}: frames are resized to at most {self.pixels[1]} pixels, but VideoReward was trained "
                f"on at most {self.train_pixels}",
                UserWarning,
                stacklevel=3,
            )

    def dimension_scores(self, video: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The (normalised, when ``normalize``) values of the dimensions read, each ``(B,)``: ``vq``, ``mq``,
        ``ta`` up to the last one with a non-zero weight (the prompt is cut after its token)."""
        from .preprocess import check_frame_size, video_inputs

        assert self.runtime is not None
        b, f, _, h, w = video.shape
        check_frame_size(h, w, self.name)
        idx = self.sampled_frames(f)
        weights = self.weights
        upto = max(i for i, d in enumerate(DIMENSIONS) if weights[d] != 0.0) if any(weights.values()) else 2
        text = template()
        texts = [text.format(text_prompt=p) for p in prompts]

        def read(clip: torch.Tensor) -> torch.Tensor:
            pixel_values, grid = video_inputs(clip[:, idx], *self.pixels)
            out = self.runtime.score(pixel_values, grid, texts, "video", upto=upto)  # (B, k, output_dim)
            return out.diagonal(dim1=1, dim2=2) if self.output_dim == len(DIMENSIONS) else out[..., 0]

        raw = self.runtime.run(read, video)
        dims = {}
        for i, d in enumerate(DIMENSIONS[: upto + 1]):
            v = raw[:, i]
            if self.options.normalize and self.norm:
                v = (v - self.norm[f"{d.upper()}_mean"]) / self.norm[f"{d.upper()}_std"]
            dims[d] = v
        return dims

    def score_clip(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Weighted sum of the chosen dimensions for videos ``(B, F, 3, H, W)`` in [0, 1]. Returns ``(B,)``."""
        dims = self.dimension_scores(video, prompts)
        weights = self.weights
        return sum(weights[d] * v for d, v in dims.items() if weights[d] != 0.0)  # type: ignore[return-value]


def _latest_checkpoint(root: Path) -> Path | None:
    """The ``checkpoint-N`` directory of the highest step (the authors' default), or ``root`` itself when
    it holds the weights directly."""
    steps = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    if steps:
        return max(steps, key=lambda p: int(p.name.split("-")[-1]))
    if (root / "model.pth").is_file() or (root / "model.safetensors").is_file():
        return root
    return None


def tiny_parts(seed: int = 0) -> tuple[Any, Any, Any]:
    """The seeded tiny ``Qwen2VLModel``, VideoReward head (``Linear(64, 1, bias=False)``) and tokenizer of
    :meth:`VideoReward.load_tiny`."""
    import torch

    from vader_core.modules import seeded

    from .qwen_vl import tiny_config, tiny_qwen2vl, tiny_tokenizer

    tokenizer = tiny_tokenizer([template()], list(REWARD_TOKENS))
    config = tiny_config(tokenizer)
    with seeded(seed):
        model = tiny_qwen2vl(config)
        head = torch.nn.Linear(config.text_config.hidden_size, 1, bias=False)
    return model, head, tokenizer
