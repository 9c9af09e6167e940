"""``image_reward``: ImageReward v1.0 (THUDM, NeurIPS 2023), differentiable.

BLIP's ViT-L/16 image encoder at 224x224 and its BERT-base text encoder, whose every layer also
cross-attends to the image tokens, both as transformers classes (``BlipVisionModel``,
``BlipTextModel``), then an MLP 768-1024-128-64-16-1 without activations on the text encoder's first
(``[CLS]``) token. The score is the MLP output standardised with the authors' constants,
``(r - 0.16717) / 1.03334``: roughly zero-mean and unit-variance over their test set (the README's
examples score between -2.0 and 0.6).

The released ``ImageReward.pt`` (hub repo ``THUDM/ImageReward``) is a state dict in the authors'
module names; it is read with ``weights_only=True`` and renamed to the transformers modules here. The
prompt is tokenised by BERT's uncased WordPiece (``bert-base-uncased``, with BLIP's ``[DEC]`` and
``[ENC]`` tokens added), padded or truncated to 35 tokens as the authors' ``score`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.errors import MissingWeightsError
from vader_core.hub import looks_local, missing_model, resolve_model, unavailable_reason
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions, RewardPlugin

from ._common import checkpoint_encoder_layers, unique_prompts
from ._weights import foreign_model, hub_file, load_strict, missing_weights, read_state_dict
from .preprocess import ImageSpec, check_frame_size, preprocess

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMAGE_REWARD_REPO = "THUDM/ImageReward"
IMAGE_REWARD_FILES = ("ImageReward.pt", "ImageReward.safetensors", "ImageReward/ImageReward.safetensors")
TOKENIZER_REPO = "google-bert/bert-base-uncased"
#: The authors' standardisation of the MLP output, and their prompt length.
MEAN, STD = 0.16717362830052426, 1.0333394966054072
MAX_TOKENS = 35


class ImageRewardOptions(RewardOptions):
    model: str = Field(
        IMAGE_REWARD_REPO,
        description="ImageReward weights: a Hugging Face hub id of a repo holding `ImageReward.pt`, a local "
        "directory holding it (or DiffSynth-Studio's `ImageReward.safetensors`), or the file itself.",
    )
    tokenizer: str = Field(
        TOKENIZER_REPO,
        description="BERT uncased WordPiece tokenizer (the authors' `bert-base-uncased`): a hub id or a local "
        "directory.",
    )
    allow_pickle: bool = Field(
        False,
        description="Unpickle Python objects in the weights file (weights_only=False) when it holds more than "
        "tensors; the released `ImageReward.pt` is a plain state dict. Only for files you trust.",
    )
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        "shortest",
        description="Frame to 224x224: `shortest` side + centre crop (the authors' Resize(224) + CenterCrop(224)), "
        "`longest` side + black padding, or `squash`.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the vision encoder layers in backward instead of storing their activations."
    )
    architecture: Literal["ViT-L", "tiny"] = Field(
        "ViT-L", description="Advanced: the architecture the checkpoint fits (the tests use the tiny one)."
    )


def vision_config(tiny: bool = False) -> Any:
    """``BlipVisionConfig`` of BLIP's ViT-L/16 at 224 (LayerNorm eps 1e-6, as BLIP's ViT), or a tiny one."""
    from transformers import BlipVisionConfig

    # the tiny model's wider initialisation lets the image move the score noticeably
    size: dict[str, Any] = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "initializer_range": 0.1,
    }
    if not tiny:
        size = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16}
    return BlipVisionConfig(image_size=224, patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu", **size)


def text_config(vision_width: int, vocab_size: int = 30524, tiny: bool = False) -> Any:
    """``BlipTextConfig`` of BLIP's BERT-base "MED" encoder (``med_config.json``), or a tiny one.

    ``is_decoder`` only makes transformers build the cross-attention layers: the reward calls the model
    bidirectionally (``is_decoder=False``), as BLIP's text encoder runs in its ``multimodal`` mode.
    """
    from transformers import BlipTextConfig

    size: dict[str, Any] = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    }
    if tiny:
        size = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "initializer_range": 0.1,
        }
    return BlipTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=512,
        encoder_hidden_size=vision_width,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        is_decoder=True,
        pad_token_id=0,
        bos_token_id=min(30522, vocab_size - 2),
        sep_token_id=min(102, vocab_size - 1),
        **size,
    )


#: A few words of BERT's uncased vocabulary, the tiny test tokenizer's (with BERT's special tokens first).
TINY_WORDS = (
    "a cat dog playing chess surfing wave on the beach at sunset red car painting of an ocean with clouds and "
    "birds day time low depth field effect photo corgi running"
).split()


def tiny_tokenizer() -> Any:
    """A BERT WordPiece tokenizer over :data:`TINY_WORDS` and the letters, with BLIP's added tokens."""
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    tokens += [c for c in "abcdefghijklmnopqrstuvwxyz0123456789,.!?'-" if c not in tokens]
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    return _with_blip_tokens(BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}))


def _with_blip_tokens(tokenizer: Any) -> Any:
    # BLIP's init_tokenizer: [DEC] as the BOS token and [ENC] as an additional special token (30522, 30523)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def tiny_model(seed: int = 0) -> tuple[Any, Any, Any]:
    """The seeded tiny random ``BlipVisionModel``, ``BlipTextModel`` and MLP used by ``load_tiny``."""
    import torch
    from transformers import BlipTextModel, BlipVisionModel

    from ._mlp import LaionAestheticMLP

    vocab = len(tiny_tokenizer())
    with seeded(seed):
        vision = BlipVisionModel(vision_config(tiny=True))
        text = BlipTextModel(text_config(32, vocab_size=vocab, tiny=True), add_pooling_layer=False)
        mlp = LaionAestheticMLP(text.config.hidden_size)
        # unit-gain layers: five default-initialised linear maps in a row shrink the score to ~1e-3
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5)
        return vision, text, mlp


def split_state_dict(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The authors' ``ImageReward`` state dict as the state dicts of ``BlipVisionModel``, ``BlipTextModel``
    and the MLP. Keys of parts the score does not use (``blip.vision_proj``, ``blip.text_proj``, the
    position-id buffers, anything else under ``blip.``) are dropped, as the authors' non-strict load ignores
    what it does not hold."""
    vision_names = {
        "cls_token": "embeddings.class_embedding",
        "pos_embed": "embeddings.position_embedding",
        "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
        "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
        "norm.weight": "post_layernorm.weight",
        "norm.bias": "post_layernorm.bias",
    }
    block_names = {
        "norm1": "layer_norm1",
        "norm2": "layer_norm2",
        "attn.qkv": "self_attn.qkv",
        "attn.proj": "self_attn.projection",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    vision: dict[str, Any] = {}
    text: dict[str, Any] = {}
    mlp: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith("mlp."):
            mlp[key[len("mlp.") :]] = value
        elif key.startswith("blip.text_encoder.") and not key.endswith("position_ids"):
            text[key[len("blip.text_encoder.") :]] = value
        elif key.startswith("blip.visual_encoder."):
            k = key[len("blip.visual_encoder.") :]
            if k in vision_names:
                vision[vision_names[k]] = value
            elif k.startswith("blocks."):
                _, n, rest = k.split(".", 2)
                module, param = rest.rsplit(".", 1)
                vision[f"encoder.layers.{n}.{block_names.get(module, module)}.{param}"] = value
            else:
                vision[k] = value  # reported as unexpected by the strict load
    return vision, text, mlp


def official_state_dict(vision: Any, text: Any, mlp: Any) -> dict[str, Any]:
    """The inverse of :func:`split_state_dict`: the modules' weights under the authors' names, as
    ``ImageReward.pt`` holds them (for tests and the reference script)."""
    vision_names = {
        "embeddings.class_embedding": "cls_token",
        "embeddings.position_embedding": "pos_embed",
        "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
        "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
        "post_layernorm.weight": "norm.weight",
        "post_layernorm.bias": "norm.bias",
    }
    block_names = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.qkv": "attn.qkv"}
    block_names |= {"self_attn.projection": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    out: dict[str, Any] = {}
    for k, v in vision.state_dict().items():
        if k in vision_names:
            out[f"blip.visual_encoder.{vision_names[k]}"] = v
        else:
            _, _, n, rest = k.split(".", 3)
            module, param = rest.rsplit(".", 1)
            out[f"blip.visual_encoder.blocks.{n}.{block_names[module]}.{param}"] = v
    out |= {f"blip.text_encoder.{k}": v for k, v in text.state_dict().items()}
    out |= {f"mlp.{k}": v for k, v in mlp.state_dict().items()}
    return out


class ImageReward(RewardPlugin):
    """ImageReward of each frame and its prompt: BLIP image-text encoder, MLP head, standardised."""

    name = "image_reward"
    summary = "ImageReward v1.0 (BLIP ViT-L + BERT cross-attention, MLP head), standardised score (~N(0, 1))."
    Options: ClassVar = ImageRewardOptions
    scores = "frames"

    def __init__(self, options: ImageRewardOptions | None = None) -> None:
        super().__init__(options)
        self.vision: torch.nn.Module | None = None
        self.text: torch.nn.Module | None = None
        self.mlp: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self.spec = ImageSpec()

    # -------------------------------------------------------------------------------------------- loading
    def _weights_file(self) -> str:
        ref = self.options.model
        where = {"reward": self.name, "what": "ImageReward weights", "option": "model"}
        source = f"the Hugging Face hub repo `{IMAGE_REWARD_REPO}`"
        path = Path(ref).expanduser()
        if path.is_file():
            return str(path)
        kind, example = "an ImageReward checkpoint", f"`{IMAGE_REWARD_REPO}`"
        if looks_local(ref):
            for name in IMAGE_REWARD_FILES:
                if (path / name).is_file():
                    return str(path / name)
            foreign = foreign_model(ref, local=True, reward=self.name, kind=kind, example=example)
            if path.is_dir() and foreign is not None:
                raise foreign
            reason = f"no such file or directory {ref!r}" if not path.exists() else f"{ref!r} holds no ImageReward.pt"
            raise missing_weights(filename="ImageReward.pt", source=source, reason=reason, **where)
        try:
            return hub_file(ref, IMAGE_REWARD_FILES, filename="ImageReward.pt", **where)
        except MissingWeightsError:
            foreign = foreign_model(ref, local=False, reward=self.name, kind=kind, example=example)
            if foreign is not None:
                raise foreign from None
            raise

    def _tokenizer(self) -> Any:
        from transformers import BertTokenizer

        ref = self.options.tokenizer
        what, files = "BERT tokenizer", "vocab.txt or tokenizer.json"
        source, local = resolve_model(
            ref, reward=self.name, repo=TOKENIZER_REPO, what=what, files=files, option="tokenizer"
        )
        # transformers 5 builds an empty tokenizer from a folder without vocabulary: look for one first
        if local:
            found = any((Path(source) / f).is_file() for f in ("vocab.txt", "tokenizer.json"))
            reason = f"{ref!r} holds no vocab.txt or tokenizer.json"
        else:
            try:
                hub_file(ref, ("tokenizer.json", "vocab.txt"), reward=self.name, what=what, option="tokenizer")
                found, reason = True, ""
            except MissingWeightsError as e:
                found, reason = False, str(e).split(" not available: ", 1)[-1].split(". Get it", 1)[0]
        try:
            if not found:
                raise OSError(reason)
            return _with_blip_tokens(BertTokenizer.from_pretrained(source))
        except (OSError, ValueError) as e:
            raise missing_model(
                self.name,
                ref,
                reason or unavailable_reason(e, local),
                repo=TOKENIZER_REPO,
                what=what,
                files=files,
                option="tokenizer",
            ) from None

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``ImageReward.pt`` (``model``: hub id, directory or file) and the tokenizer, frozen, in ``dtype``."""
        from transformers import BlipTextModel, BlipVisionModel

        from ._mlp import LaionAestheticMLP

        path = self._weights_file()
        tokenizer = self._tokenizer()
        state = read_state_dict(
            path, reward=self.name, what="ImageReward weights", allow_pickle=self.options.allow_pickle
        )
        vision_sd, text_sd, mlp_sd = split_state_dict(state)
        tiny = self.options.architecture == "tiny"
        vision = BlipVisionModel(vision_config(tiny=tiny))
        text = BlipTextModel(
            text_config(vision.config.hidden_size, vocab_size=len(tokenizer) if tiny else 30524, tiny=tiny),
            add_pooling_layer=False,
        )
        mlp = LaionAestheticMLP(text.config.hidden_size)
        for module, sd, what in (
            (vision, vision_sd, "BLIP ViT-L/16"),
            (text, text_sd, "BLIP text encoder"),
            (mlp, mlp_sd, "ImageReward MLP"),
        ):
            load_strict(module, sd, reward=self.name, what=what, path=path)
        if len(tokenizer) != text.config.vocab_size:
            from vader_core.errors import ConfigError

            raise ConfigError(
                f"{self.name}: tokenizer `{self.options.tokenizer}` has {len(tokenizer)} tokens with BLIP's [DEC] and "
                f"[ENC], the text encoder {text.config.vocab_size}; give `{TOKENIZER_REPO}` (BERT uncased)"
            )
        self._setup(vision, text, mlp, tokenizer, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random transformers BLIP encoders and MLP of the same classes, and a tiny WordPiece vocabulary."""
        self._setup(*tiny_model(seed), tiny_tokenizer(), device, dtype)

    def _setup(self, vision: Any, text: Any, mlp: Any, tokenizer: Any, device: Any, dtype: Any) -> None:
        mode = self.options.resize_mode
        size = int(vision.config.image_size)
        # torchvision Resize(224, BICUBIC) + CenterCrop(224) on a PIL image: antialiased, crop at round(excess / 2)
        self.spec = ImageSpec(
            size=(size, size),
            resize_mode=mode,
            crop_offset="round",
            interpolation="bilinear" if mode == "squash" else "bicubic",
        )
        self.tokenizer = tokenizer
        self.vision = freeze(vision, device, dtype)
        self.text = freeze(text, device, dtype)
        self.mlp = freeze(mlp, device, dtype)
        if self.options.gradient_checkpointing:
            checkpoint_encoder_layers(self.vision, self.vision.encoder)
        super().load(device, dtype)

    # -------------------------------------------------------------------------------------------- scoring
    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """ImageReward of each frame ``(N, 3, H, W)`` in [0, 1] with its prompt. Returns ``(N,)``."""
        check_frame_size(frames, self.name)
        return self.score_pixels(preprocess(frames, self.spec), prompts)

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """ImageReward of normalised model input ``(N, 3, 224, 224)`` (the authors' ``preprocess`` output)."""
        import torch

        distinct, index = unique_prompts(prompts)
        tok = self.tokenizer(
            distinct, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        idx = torch.as_tensor(index)
        ids, attention = tok["input_ids"][idx].to(self.device), tok["attention_mask"][idx].to(self.device)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        image = self.vision(pixel_values=pixels).last_hidden_state  # post-LayerNorm included, as BLIP's `norm`
        out = self.text(input_ids=ids, attention_mask=attention, encoder_hidden_states=image, is_decoder=False)
        return (self.mlp(out.last_hidden_state[:, 0]) - MEAN) / STD
