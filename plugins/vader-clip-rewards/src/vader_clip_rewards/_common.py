"""Shared pieces of the CLIP rewards: building open_clip models, the tiny test architecture, tokenizers.
Seeding and freezing are :mod:`vader_core.modules`. Heavy imports stay inside the functions."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import hub_offline
from vader_core.lazy import torch

from ._weights import hub_file, missing_weights
from .preprocess import CLIP_MEAN, CLIP_STD, ImageSpec

#: Name of the tiny random open_clip architecture used by ``load_tiny`` and the tests: the real
#: ``CLIP`` class (ViT image tower, causal text transformer, CLIP BPE vocabulary) at toy width.
TINY_CLIP = "vader-tiny-clip"
_CONFIG_DIR = Path(__file__).parent / "model_configs"


def register_tiny_config() -> None:
    """Make :data:`TINY_CLIP` a known open_clip model name (idempotent)."""
    import open_clip

    if TINY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR / f"{TINY_CLIP}.json")


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    # open_clip warns on the root logger whenever a model is created without weights; here the
    # weights always come right after (or the model is a seeded tiny one), so the warning is noise.
    flt = _DropRandomInitWarning()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _check_architecture(model_name: str, reward: str) -> None:
    import difflib

    import open_clip

    if model_name == TINY_CLIP:
        register_tiny_config()
    known = open_clip.list_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=3)
        raise ConfigError(
            f"{reward}: unknown open_clip architecture `{model_name}`"
            + (f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else "")
            + " (`open_clip.list_models()` lists them)"
        )


def create_open_clip(model_name: str, quick_gelu: bool, reward: str = "clip") -> torch.nn.Module:
    """An open_clip model of architecture ``model_name`` with random weights (fp32, CPU)."""
    import open_clip

    _check_architecture(model_name, reward)
    with _quiet_open_clip():
        return open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)


def open_clip_weights(model_name: str, pretrained: str, *, reward: str, option: str) -> tuple[str, dict[str, Any]]:
    """Resolve ``pretrained`` (an open_clip tag of ``model_name`` or a local file) to a weights file.

    Returns:
        `tuple[str, dict]`: the file, and open_clip's pretrained configuration of the tag (empty for a
        local file): normalisation, interpolation, resize mode, ``quick_gelu``.
    """
    import open_clip

    _check_architecture(model_name, reward)
    p = Path(pretrained).expanduser()
    if p.is_file():
        return str(p), {}
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        looks_like_path = any(s in pretrained for s in ("/", "\\", "~")) or p.suffix in (
            ".bin",
            ".pt",
            ".pth",
            ".safetensors",
            ".npz",
        )
        if looks_like_path:
            raise MissingWeightsError(
                f"{reward}: `{option}` is {pretrained!r}, but there is no such file; give an existing open_clip "
                f"checkpoint of `{model_name}` or one of its open_clip tags ({tags})"
            )
        raise ConfigError(
            f"{reward}: `{option}` {pretrained!r} is neither a file nor an open_clip pretrained tag of "
            f"`{model_name}`; tags: {tags}"
        )
    what = f"open_clip `{model_name}` / `{pretrained}` weights"
    if cfg.get("hf_hub"):
        repo_id, filename = cfg["hf_hub"].rstrip("/"), ""
        if not cfg["hf_hub"].endswith("/"):
            repo_id, filename = cfg["hf_hub"].rsplit("/", 1)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return hub_file(repo_id, names, reward=reward, what=what, option=option), cfg
    if cfg.get("url"):
        name = cfg["url"].rsplit("/", 1)[-1]
        if hub_offline():
            raise missing_weights(reward, what, name, cfg["url"], option, "HF_HUB_OFFLINE=1 forbids downloading it")
        try:
            return open_clip.download_pretrained(cfg, prefer_hf_hub=False), cfg
        except Exception as e:  # noqa: BLE001
            raise missing_weights(
                reward, what, name, cfg["url"], option, f"download failed ({type(e).__name__})"
            ) from None
    raise MissingWeightsError(
        f"{reward}: open_clip knows no download for `{model_name}` / `{pretrained}`; give a local file with `{option}`"
    )


def load_open_clip_file(model: torch.nn.Module, path: str, *, reward: str, option: str) -> None:
    """Load an open_clip checkpoint file (``.safetensors``, ``.bin``, ``.pt``, big_vision ``.npz``) with
    open_clip's own loader, which also converts third-party layouts."""
    import open_clip

    from vader_core.errors import CheckpointError

    try:
        open_clip.load_checkpoint(model, path, strict=True)
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{reward}: `{option}` file {path} does not load into the model: {type(e).__name__}: {first}"
        ) from None


def open_clip_spec(
    model: torch.nn.Module, pretrained_cfg: dict[str, Any], resize_mode: str | None, *, clamp: bool = True
) -> ImageSpec:
    """The :class:`ImageSpec` open_clip's ``preprocess`` would use for this model and tag.

    Args:
        model (`torch.nn.Module`): the open_clip model (its ``visual.image_size`` is the input size).
        pretrained_cfg (`dict`): open_clip's configuration of the pretrained tag (may be empty).
        resize_mode (`str`, *optional*): overrides the tag's resize mode when given.
        clamp (`bool`, *optional*, defaults to `True`): see :class:`ImageSpec`.
    """
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), pretrained_cfg)
    size = getattr(model.visual, "image_size", 224)
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    mean, std = cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD)
    mean = tuple(mean) if isinstance(mean, (tuple, list)) else (float(mean),) * 3
    std = tuple(std) if isinstance(std, (tuple, list)) else (float(std),) * 3
    interpolation = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
    mode = resize_mode or cfg.get("resize_mode", "shortest")
    if mode == "squash":  # the VADER training code: torchvision's Resize((224, 224)), bilinear, antialiased
        interpolation = "bilinear"
    return ImageSpec(
        size=size,
        mean=mean,
        std=std,
        resize_mode=mode,
        interpolation=interpolation,
        crop_offset="round",
        clamp=clamp,
        fill=0.0,
    )


def open_clip_tokenizer(model_name: str, *, reward: str) -> Callable[[Sequence[str]], torch.Tensor]:
    """open_clip's tokenizer for ``model_name`` (the offline CLIP BPE for the CLIP models), built once."""
    try:
        return _open_clip_tokenizer(model_name)
    except Exception as e:  # noqa: BLE001
        raise MissingWeightsError(
            f"{reward}: the tokenizer of `{model_name}` is not available "
            f"({type(e).__name__}); run once with network access to cache it"
        ) from None


@functools.lru_cache(maxsize=8)
def _open_clip_tokenizer(model_name: str) -> Callable[[Sequence[str]], torch.Tensor]:
    import open_clip

    if model_name == TINY_CLIP:
        register_tiny_config()
    return open_clip.get_tokenizer(model_name)


def unique_prompts(prompts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Distinct prompts in first-seen order and, for each input prompt, its index among them.

    Frame rewards get each prompt once per frame; the text tower runs once per distinct prompt.
    """
    order: dict[str, int] = {}
    index = [order.setdefault(p, len(order)) for p in prompts]
    return list(order), index


def checkpoint_encoder_layers(model: Any, encoder: Any) -> None:
    """Recompute the layers of a transformers ``encoder`` of ``model`` in backward instead of storing their
    activations, with every dropout off.

    transformers only checkpoints layers in training mode; the encoder and its layers alone (not their
    submodules, which hold the dropouts) are flagged as training.
    """
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    encoder.training = True
    for layer in getattr(encoder, "layers", None) or encoder.layer:
        layer.training = True
