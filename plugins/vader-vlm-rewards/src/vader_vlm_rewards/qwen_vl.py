"""A Qwen2-VL reward model on transformers' own classes, shared by ``hpsv3`` and ``video_reward``.

Both released models are ``Qwen2VLForConditionalGeneration`` subclasses (transformers 4.45) with a
reward head ``rm_head`` read at special reward tokens of the prompt. Their ``forward`` embeds the
tokens, puts the vision tower's merged patch features at the ``<|image_pad|>`` / ``<|video_pad|>``
positions, runs the language model **without position ids** and applies the head to the last
hidden state at each reward token. Without position ids the language model numbers the tokens
0, 1, 2, ... on all three mRoPE axes, as a text-only model does: the 3-D positions that
``Qwen2VLForConditionalGeneration.forward`` computes for vision tokens (``get_rope_index``) are never
used by these reward models, so :class:`RewardModel` does not use them either. Everything here is a
transformers ``Qwen2VLModel`` (vision tower + language model, no ``lm_head``) plus the head.

The language model is causal, so the hidden state at a reward token depends only on the tokens up to
it: the prompt is cut after the last reward token that is read (exact, and the tokens after it cost
nothing).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vader_core.errors import ConfigError
from vader_core.lazy import torch

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

#: The Qwen2-VL-Instruct chat template rendered for one user turn holding a picture (or video) then
#: text, with ``add_generation_prompt=True``: the default system turn comes first.
CHAT_PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
CHAT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
#: Qwen2-VL-Instruct's chat template (its processor's ``chat_template.json``): what :data:`CHAT_PREFIX` and
#: :data:`CHAT_SUFFIX` render for one user turn (a test checks it through ``Qwen2VLProcessor``).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
#: The special tokens of Qwen2-VL's tokenizer that the prompt uses (and the tiny tokenizer defines).
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", VISION_END, IMAGE_PAD, VIDEO_PAD)
#: Qwen2's pre-tokenizer pattern (byte-level BPE; single digits, contractions, punctuation runs).
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


class Prompter:
    """Token ids of the chat prompts, with the picture's placeholder expanded and the text cut after the
    last reward token read.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the model's tokenizer; its reward tokens are added as
            special tokens when missing (``add_special_tokens``, as the authors' code does).
        reward_tokens (`Sequence[str]`): the reward tokens of the template, e.g. ``["<|Reward|>"]``.
        vocab_rows (`int`): rows of the model's embedding table; every id must be below it.
        reward (`str`): reward name, for errors.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, reward_tokens: Sequence[str], vocab_rows: int, reward: str
    ) -> None:
        missing = [t for t in reward_tokens if t not in tokenizer.get_vocab()]
        if missing:
            from tokenizers import AddedToken

            tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
        self.tokenizer = tokenizer
        self.reward = reward
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*QWEN_SPECIAL, *reward_tokens)}
        bad = {t: i for t, i in ids.items() if i is None or i == tokenizer.unk_token_id or i >= vocab_rows}
        if bad:
            raise ConfigError(
                f"{reward}: the tokenizer's ids of {sorted(bad)} are not rows of the model's embedding table "
                f"({vocab_rows} rows): the checkpoint is not a {reward} reward model of this tokenizer"
            )
        self.ids = ids
        self.reward_ids = [ids[t] for t in reward_tokens]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids["<|endoftext|>"]
        self._cache: dict[tuple[str, str, int], list[int]] = {}

    def text_ids(self, text: str, placeholder: str, upto: int) -> list[int]:
        """The ids of the whole prompt with one ``placeholder`` token, cut after reward token ``upto``."""
        key = (text, placeholder, upto)
        if key not in self._cache:
            full = CHAT_PREFIX + placeholder + VISION_END + text + CHAT_SUFFIX
            ids = list(self.tokenizer(full)["input_ids"])
            reward_id = self.reward_ids[upto]
            if ids.count(reward_id) != 1 or any(ids.count(i) != 1 for i in self.reward_ids[:upto]):
                raise ConfigError(
                    f"{self.reward}: the prompt must hold each reward token once; a prompt containing "
                    f"{self.tokenizer.convert_ids_to_tokens(reward_id)} is not supported"
                )
            self._cache[key] = ids[: ids.index(reward_id) + 1]
        return self._cache[key]

    def batch(
        self, texts: Sequence[str], placeholder: str, count: int, upto: int, device: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``input_ids`` ``(B, L)`` with ``placeholder`` repeated ``count`` times, padded on the right, and
        the attention mask (``None`` when no row is padded)."""
        pid = self.ids[placeholder]
        rows = []
        for t in texts:
            ids = self.text_ids(t, placeholder, upto)
            at = ids.index(pid)
            rows.append(ids[:at] + [pid] * count + ids[at + 1 :])
        longest = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        if bool(mask.all()):
            return input_ids.to(device), None
        return input_ids.to(device), mask.to(device)


class RewardModel(torch.nn.Module):
    """transformers' ``Qwen2VLModel`` and a reward head, scored at reward tokens.

    Args:
        model (`Qwen2VLModel`): vision tower (``model.visual``) and language model (``model.language_model``).
        head (`torch.nn.Module`): the reward head, applied to the last hidden state at each reward token.
        head_dtype (`torch.dtype`, *optional*): run the head in this dtype (HPSv3 keeps its head in
            float32 and feeds it float32 hidden states); default: the model's dtype.
    """

    def __init__(self, model: Any, head: torch.nn.Module, head_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.head_dtype = head_dtype

    def forward(
        self,
        pixel_values: torch.Tensor,
        grid_thw: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        placeholder_id: int,
        reward_ids: Sequence[int],
    ) -> torch.Tensor:
        """Head outputs ``(B, len(reward_ids), out)`` at the reward tokens of each row of ``input_ids``."""
        visual, lm = self.model.visual, self.model.language_model
        embeds = lm.embed_tokens(input_ids)
        features = visual(pixel_values.to(visual.dtype), grid_thw=grid_thw).pooler_output
        where = input_ids == placeholder_id
        if int(where.sum()) != features.shape[0]:  # pragma: no cover - the prompt is built for the grid
            raise RuntimeError(f"{int(where.sum())} placeholder tokens for {features.shape[0]} vision features")
        embeds = embeds.masked_scatter(where.unsqueeze(-1).expand_as(embeds), features.to(embeds.dtype))
        hidden = lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state
        at = torch.isin(input_ids, torch.tensor(list(reward_ids), device=input_ids.device))
        pooled = hidden[at].view(input_ids.shape[0], len(reward_ids), -1)
        if self.head_dtype is None:
            return self.head(pooled)
        with torch.autocast(pooled.device.type, enabled=False):
            return self.head(pooled.to(self.head_dtype))

    def layers(self) -> list[torch.nn.Module]:
        """The vision blocks and decoder layers (transformers' ``GradientCheckpointingLayer``s)."""
        return [*self.model.visual.blocks, *self.model.language_model.layers]

    def checkpoint(self, enabled: bool) -> None:
        """Recompute each vision block and decoder layer in backward instead of storing its activations.

        transformers checkpoints a layer only while it is in training mode; only the layers themselves
        (not their submodules, which would switch dropout on) are flagged as training.
        """
        # transformers >= 5 names it activation checkpointing (the gradient_ names are deprecated aliases)
        enable = getattr(self.model, "activation_checkpointing_enable", None)
        if enabled and enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        elif enabled:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            getattr(self.model, "activation_checkpointing_disable", self.model.gradient_checkpointing_disable)()
        for layer in self.layers():
            layer.training = enabled


# --- checkpoints ------------------------------------------------------------------------------------


def qwen2vl_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of a ``Qwen2VLForConditionalGeneration`` state dict as ``Qwen2VLModel`` names them.

    transformers 4.45 (the released reward checkpoints): ``visual.*`` and ``model.*`` (the language
    model); transformers 5: ``model.visual.*`` and ``model.language_model.*``. ``lm_head.*`` is dropped
    (a reward model never reads the next-token logits); so is everything else outside the model
    (the caller takes the head out first).
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        for old, new in (
            ("model.visual.", "visual."),
            ("model.language_model.", "language_model."),
            ("visual.", "visual."),
            ("model.", "language_model."),
        ):
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
    return out


_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<adapter>[^.]+)\.weight$")


def merge_lora(state: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """A PEFT ``LoraModel`` state dict with the adapters merged into the base weights.

    ``m.base_layer.weight`` + ``m.lora_A.<adapter>.weight`` + ``m.lora_B.<adapter>.weight`` become
    ``m.weight = W + scale * B @ A``, ``m.base_layer.bias`` becomes ``m.bias``: the module a
    ``merge_and_unload()`` leaves. Other keys stay as they are. The merged weights stay in float32: a
    release in bf16 rounded to bf16 again after the merge would differ from the un-merged model run in
    float32 (by about 1e-2 of VideoReward's score spread); the model's dtype is set once, after loading.
    """
    lora: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for key, value in state.items():
        m = _LORA.match(key)
        if m:
            lora.setdefault(m["module"], {})[m["ab"]] = value
        elif ".base_layer." in key:
            out[key.replace(".base_layer.", ".")] = value
        else:
            out[key] = value
    for module, ab in lora.items():
        if set(ab) != {"A", "B"} or f"{module}.weight" not in out:
            raise ConfigError(f"LoRA of `{module}` is incomplete in the checkpoint (needs lora_A, lora_B, base_layer)")
        out[f"{module}.weight"] = out[f"{module}.weight"].float() + scale * (ab["B"].float() @ ab["A"].float())
    return out


def build_model(config: Any, state: Mapping[str, Any], *, reward: str, source: str) -> Any:
    """A transformers ``Qwen2VLModel`` of ``config`` holding ``state`` (its own key names, see
    :func:`qwen2vl_keys`): the parameters are created empty and take the tensors of ``state``, so a 7B
    model is never initialised at random first.

    Raises:
        `CheckpointError`: ``state`` does not fit the architecture (one line: missing/unexpected keys, or
            the first shape mismatch).
    """
    from accelerate import init_empty_weights
    from transformers import Qwen2VLModel

    from vader_core.errors import CheckpointError

    with init_empty_weights(include_buffers=False):
        model = Qwen2VLModel(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{reward}: {source} does not fit the Qwen2-VL architecture: {'; '.join(parts)}")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{reward}: {source} does not fit the Qwen2-VL architecture of its config: `{key}` has shape "
                f"{tuple(state[key].shape)}, the config makes {tuple(value.shape)}"
            )
    model.load_state_dict(dict(state), strict=True, assign=True)
    return model


def qwen2vl_config(source: str, *, reward: str, what: str) -> Any:
    """``Qwen2VLConfig`` of a local directory holding ``config.json``; another architecture is one line."""
    from transformers import AutoConfig, Qwen2VLConfig

    config = AutoConfig.from_pretrained(source)
    if not isinstance(config, Qwen2VLConfig):
        raise ConfigError(
            f"{reward}: {what} `{source}` is a `{config.model_type}` model, not Qwen2-VL (`qwen2_vl`); give "
            f"the Qwen2-VL base of the reward (its config.json and tokenizer)"
        )
    return config


def finish(model: RewardModel, device: Any, dtype: Any, head_dtype: Any = None) -> RewardModel:
    """``model`` frozen in eval mode on ``device``: everything in ``dtype`` (buffers too, as the authors'
    ``model.to(torch.bfloat16)``), the head in ``head_dtype`` when given; no KV cache."""
    model.requires_grad_(False)
    model.eval()
    model.to(device=device, dtype=dtype)
    if head_dtype is not None:
        model.head.to(dtype=head_dtype)
    model.model.config.use_cache = False
    model.model.language_model.config.use_cache = False
    return model


# --- tiny models for tests ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _trained_bpe(corpus: tuple[str, ...], special: tuple[str, ...], vocab_size: int) -> str:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(corpus), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return tok.to_str()


def tiny_tokenizer(corpus: Iterable[str], reward_tokens: Sequence[str], vocab_size: int = 700) -> Any:
    """A small byte-level BPE of Qwen2's kind, trained on ``corpus`` (deterministic; trained once per
    process), with Qwen2-VL's special tokens and ``reward_tokens``: a template tokenizes to a few hundred
    ids, as with the real vocabulary, and the ids stay small."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_trained_bpe(tuple(corpus), (*QWEN_SPECIAL, *reward_tokens), vocab_size))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>", unk_token=None, padding_side="right"
    )


def tiny_config(tokenizer: Any, initializer_range: float = 0.2) -> Any:
    """A ``Qwen2VLConfig`` of the real architecture at toy size (2 vision blocks of width 32, 2 decoder
    layers of width 64, mRoPE sections 2/3/3), its special token ids those of ``tokenizer``.

    The weights are drawn with ``initializer_range`` 0.2 (10x the real one) so that a random model's
    score depends measurably on the pixels and the prompt.
    """
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    return Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "initializer_range": initializer_range,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "initializer_range": initializer_range,
        },
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids[VISION_END],
    )


def tiny_qwen2vl(config: Any) -> Any:
    """A randomly initialised ``Qwen2VLModel`` of ``config`` (call inside :func:`vader_core.modules.seeded`)."""
    from transformers import Qwen2VLModel

    return Qwen2VLModel(config)
