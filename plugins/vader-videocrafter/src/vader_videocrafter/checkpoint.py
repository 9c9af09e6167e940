"""Reading VideoCrafter2's ``model.ckpt`` (the LVDM ``LatentDiffusion`` state dict) into our components.

One checkpoint holds all three models, told apart by prefix:

| checkpoint keys | component | mapping |
| --- | --- | --- |
| ``model.diffusion_model.*`` | :class:`~vader_videocrafter.unet.LVDMUNet3DModel` | none: same names |
| ``first_stage_model.*`` | diffusers ``AutoencoderKL`` | diffusers' ``convert_ldm_vae_checkpoint`` (LDM VAE -> diffusers names; 1x1 attention convolutions become linear weights) |
| ``cond_stage_model.*`` | :class:`~vader_videocrafter.text_encoder.OpenCLIPTextEncoder` | none: ``cond_stage_model.model.X`` is ``model.X`` |
| ``betas``, ``alphas_cumprod``, ... ``scale_arr`` | none | ignored: the DDPM schedule buffers, recomputed from the schedule configuration (``alphas_cumprod`` and ``scale_arr`` are checked against it) |

Every other tensor is an error, as is every parameter the checkpoint does not fill and every shape
that differs: one :class:`~vader_core.errors.CheckpointError` counts them and names a few.
The file may be a torch pickle (``weights_only=True`` unless allowed otherwise) or safetensors, with
the state dict at the top level, under ``"state_dict"`` (Lightning) or under ``"module"`` with the
``_forward_module.`` prefix (DeepSpeed), the three layouts the official loader accepts.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vader_core.errors import CheckpointError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
#: Buffers of the official ``DDPM.register_schedule`` (and ``LatentDiffusion``'s ``scale_arr``).
SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "scale_arr",
)
#: Tensors a checkpoint may hold that no component uses, with the reason they are skipped.
IGNORED_PREFIXES = {
    "cond_stage_model.model.visual.": "the OpenCLIP image tower: VideoCrafter2 conditions on text only",
    "cond_stage_model.model.attn_mask": "the causal mask of the text tower, a constant rebuilt at run time",
}


def read_state_dict(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The flat state dict of a checkpoint file (torch pickle or safetensors; plain, Lightning or DeepSpeed).

    Args:
        path (`str` or `Path`): the file.
        allow_pickle (`bool`, *optional*, defaults to `False`): unpickle arbitrary Python objects
            (``weights_only=False``); only for files you trust.
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as e:  # noqa: BLE001 - corrupt or truncated file
            raise CheckpointError(f"cannot read {p}: {str(e).splitlines()[0][:160]}; the file is corrupt") from None
    try:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=not allow_pickle, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(str(p), map_location="cpu", weights_only=not allow_pickle)  # legacy, non-zip format
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{p} holds Python objects besides tensors ({str(e).splitlines()[0][:120]}); if you trust the file, "
            "set `backbone.allow_pickle=true`, or convert it to safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"cannot read {p}: {str(e).splitlines()[0][:160]}; the file is corrupt") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and isinstance(obj.get("module"), Mapping):
        obj = {k.removeprefix("_forward_module."): v for k, v in obj["module"].items()}
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p} is not a state dict (expected tensors, at the top level or under 'state_dict')")
    return dict(obj)


def _ignored(key: str) -> bool:
    return key in SCHEDULE_BUFFERS or any(key.startswith(p) for p in IGNORED_PREFIXES)


def convert_vae(
    ldm: Mapping[str, torch.Tensor], vae_config: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], list[str], dict[str, str]]:
    """LDM ``first_stage_model.*`` tensors -> diffusers ``AutoencoderKL`` keys, with diffusers' own converter.

    Returns the converted state dict, the LDM keys the conversion did not use, and for each converted
    key the LDM key it came from.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(dict(ldm), dict(vae_config))
    # The converter copies (or reshapes, which keeps the storage) the tensors it maps and drops the
    # rest silently: a tensor whose memory no output shares was not used.
    by_ptr = {v.data_ptr(): k for k, v in ldm.items()}
    origin = {k: by_ptr.get(v.data_ptr(), f"AutoencoderKL {k}") for k, v in converted.items()}
    used = set(origin.values())
    return converted, [k for k in ldm if k not in used], origin


def split_and_check(
    sd: Mapping[str, torch.Tensor],
    expected: Mapping[str, Mapping[str, torch.Size]],
    vae_config: Mapping[str, Any],
    source: str,
) -> dict[str, dict[str, torch.Tensor]]:
    """Split a VideoCrafter2 state dict into per-component state dicts, or raise one error listing every problem.

    Args:
        sd (`Mapping[str, torch.Tensor]`): the checkpoint's flat state dict.
        expected (`Mapping[str, Mapping[str, torch.Size]]`): ``{"unet"|"vae"|"text_encoder": {key: shape}}``
            of the components to fill.
        vae_config (`Mapping`): the ``AutoencoderKL`` configuration (for the key conversion).
        source (`str`): the checkpoint's name, for the error message.

    Returns:
        `dict[str, dict[str, torch.Tensor]]`: ``{"unet": ..., "vae": ..., "text_encoder": ...}``.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    ldm_vae: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for k, v in sd.items():
        if k.startswith(UNET_PREFIX):
            parts["unet"][k[len(UNET_PREFIX) :]] = v
        elif k.startswith(VAE_PREFIX):
            ldm_vae[k] = v
        elif k.startswith(TEXT_PREFIX) and not _ignored(k):
            parts["text_encoder"][k[len(TEXT_PREFIX) :]] = v
        elif not _ignored(k):
            unexpected.append(k)
    origin: dict[str, str] = {}
    if ldm_vae:
        parts["vae"], unused, origin = convert_vae(ldm_vae, vae_config)
        unexpected += unused
    prefixes = {"unet": UNET_PREFIX, "vae": "AutoencoderKL ", "text_encoder": TEXT_PREFIX}

    def name_of(part: str, key: str) -> str:  # the checkpoint's own name where there is one
        return origin.get(key, prefixes[part] + key) if part == "vae" else prefixes[part] + key

    missing: list[str] = []
    mismatched: list[str] = []
    for name, shapes in expected.items():
        got = parts[name]
        for k, shape in shapes.items():
            if k not in got:
                missing.append(prefixes[name] + k)
            elif tuple(got[k].shape) != tuple(shape):
                mismatched.append(f"{name_of(name, k)} {tuple(got[k].shape)} vs model {tuple(shape)}")
        unexpected += [name_of(name, k) for k in got if k not in shapes]
    if missing or unexpected or mismatched:

        def few(items: list[str]) -> str:
            return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")

        problems = [
            f"{len(xs)} {what} ({few(xs)})"
            for what, xs in (("missing", missing), ("unexpected", unexpected), ("with another shape", mismatched))
            if xs
        ]
        raise CheckpointError(
            f"{source} does not match VideoCrafter2 512 (configs/inference_t2v_512_v2.0.yaml): "
            f"{'; '.join(problems)} tensors; point `backbone.model` at VideoCrafter/VideoCrafter2's model.ckpt"
        )
    return parts


def check_schedule(
    sd: Mapping[str, torch.Tensor], alphas_cumprod: torch.Tensor, scale_arr: torch.Tensor | None, source: str
) -> None:
    """The checkpoint's own schedule buffers, when present, must be the schedule we sample with."""
    for key, ours in (("alphas_cumprod", alphas_cumprod), ("scale_arr", scale_arr)):
        theirs = sd.get(key)
        if theirs is None or ours is None:
            continue
        if theirs.shape != ours.shape or not torch.allclose(theirs.float(), ours.float(), rtol=1e-4, atol=1e-6):
            raise CheckpointError(
                f"{source}: its `{key}` differs from the VideoCrafter2 schedule (linear_start 0.00085, "
                "linear_end 0.012, 1000 steps, scale_b 0.7); it was trained with another noise schedule"
            )
