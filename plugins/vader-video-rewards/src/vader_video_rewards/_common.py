"""Shared pieces of the video rewards: loading a transformers checkpoint of the expected architecture
(hub id or local directory by the rules of :mod:`vader_core.hub`), gradient checkpointing in eval mode,
and the differentiable clip preprocessing. Heavy imports stay inside the functions (or behind
``vader_core.lazy``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_model, resolve_model, unavailable_reason
from vader_core.lazy import F, torch

#: ImageNet normalisation (``IMAGENET_DEFAULT_MEAN`` / ``_STD`` in transformers), used by V-JEPA 2's video
#: processor and by the preprocessor configuration of ``MCG-NJU/videomae-base-finetuned-kinetics``.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizeMode = Literal["squash", "crop"]


def checkpoint_layers(model: Any, layers: Iterable[torch.nn.Module]) -> None:
    """Recompute ``layers`` in backward instead of storing their activations, with every dropout off.

    transformers only checkpoints a ``GradientCheckpointingLayer`` in training mode; the layers alone
    (not their submodules, which hold the dropouts and drop-paths) are flagged as training.
    """
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for layer in layers:
        layer.training = True


def load_pretrained(model_cls: Any, ref: str, *, reward: str, model_type: str, default_repo: str, kind: str) -> Any:
    """``model_cls.from_pretrained(ref)`` for a hub id or a local ``save_pretrained`` directory.

    Args:
        model_cls (`type`): the transformers model class, e.g. ``VJEPA2Model``.
        ref (`str`): the reward option `model`: a hub id or a local directory.
        reward (`str`): reward name, for errors.
        model_type (`str`): the ``model_type`` the checkpoint's config.json must have, e.g. ``"vjepa2"``.
        default_repo (`str`): the default hub repo, named in the error.
        kind (`str`): what the model is, for errors (e.g. ``"V-JEPA 2"``).

    Raises:
        `MissingWeightsError`: the checkpoint is neither local nor downloadable.
        `ConfigError`: the checkpoint is of another architecture.
    """
    from transformers import PreTrainedConfig

    what = f"{kind} model"

    def missing(reason: str) -> MissingWeightsError:
        return missing_model(reward, ref, reason, repo=default_repo, what=what)

    source, local = resolve_model(ref, reward=reward, repo=default_repo, what=what)
    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError as e:
        raise missing(unavailable_reason(e, local)) from None
    found = config.get("model_type")
    if found is None:
        raise missing(f"no config.json with a `model_type` in {source!r}")
    if found != model_type:
        raise ConfigError(
            f"{reward}: `model` {ref!r} is a `{found}` checkpoint, not `{model_type}`; give a {kind} checkpoint "
            f"(e.g. `{default_repo}`)"
        )
    try:
        return model_cls.from_pretrained(source)
    except OSError as e:
        raise missing(unavailable_reason(e, local)) from None


def resample_clip(
    video: torch.Tensor,
    frames: int,
    size: tuple[int, int],
    resize_mode: ResizeMode = "squash",
    crop_ratio: float = 1.0,
) -> torch.Tensor:
    """Resample videos ``(B, F, 3, H, W)`` to ``(B, frames, 3, *size)``, differentiably.

    Time: linear interpolation at ``frames`` evenly spaced positions from the first to the last
    frame (the first and last frames are kept exactly; a single frame is repeated). Space:
    bilinear ``interpolate`` with ``antialias=True``; ``squash`` resizes the whole frame to
    ``size``, ``crop`` resizes the short side to ``int(size * crop_ratio)`` keeping the aspect ratio
    and takes the centre crop of ``size`` at ``excess // 2`` (the transformers processors' geometry:
    ``crop_ratio`` 1 for VideoMAE, 256/224 for V-JEPA 2).

    Args:
        video (`torch.Tensor`): ``(B, F, 3, H, W)`` in [0, 1].
        frames (`int`): the number of output frames.
        size (`tuple[int, int]`): output height and width.
        resize_mode (`str`, *optional*, defaults to `"squash"`): `squash` or `crop`.
        crop_ratio (`float`, *optional*, defaults to 1.0): resize margin of `crop`.
    """
    if frames < video.shape[1]:  # fewer frames to resize: time first (both steps are linear, the order is free)
        return _resize(_resample_time(video, frames), size, resize_mode, crop_ratio)
    return _resample_time(_resize(video, size, resize_mode, crop_ratio), frames)


def _resample_time(video: torch.Tensor, frames: int) -> torch.Tensor:
    n = video.shape[1]
    if n == frames:
        return video
    if n == 1:
        return video.expand(-1, frames, -1, -1, -1)
    pos = torch.linspace(0, n - 1, frames, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=n - 2)
    w = (pos - lo).to(device=video.device, dtype=video.dtype).view(1, frames, 1, 1, 1)
    lo = lo.to(video.device)
    return video[:, lo] * (1 - w) + video[:, lo + 1] * w


def _resize(video: torch.Tensor, size: tuple[int, int], mode: ResizeMode, crop_ratio: float) -> torch.Tensor:
    b, f, c, h, w = video.shape
    th, tw = size
    x = video.reshape(b * f, c, h, w)
    if mode == "squash":
        if (h, w) != (th, tw):
            x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    elif mode == "crop":
        # transformers' `shortest_edge` resize: the short side to int(size * ratio), the long side int() of its share
        short = int(max(th, tw) * crop_ratio)
        rh, rw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        rh, rw = max(rh, th), max(rw, tw)
        if (rh, rw) != (h, w):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (rh - th) // 2, (rw - tw) // 2
        x = x[:, :, top : top + th, left : left + tw]
    else:  # pragma: no cover - the options model rejects other values
        raise ValueError(f"unknown resize mode {mode!r}")
    return x.reshape(b, f, c, th, tw)


def normalize(
    video: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Per-channel ``(x - mean) / std`` of ``(..., 3, H, W)``."""
    m = torch.tensor(mean, device=video.device, dtype=video.dtype).view(3, 1, 1)
    s = torch.tensor(std, device=video.device, dtype=video.dtype).view(3, 1, 1)
    return (video - m) / s


def as_size(value: Any) -> tuple[int, int]:
    """A config's ``image_size`` / ``crop_size`` (int or pair) as ``(height, width)``."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)
