"""LoRA on the denoiser with peft, saved in the layout diffusers' LoRA loaders read.

Saved file: ``pytorch_lora_weights.safetensors`` with keys ``{prefix}.{module path}.lora_A.weight`` /
``lora_B.weight`` (``prefix`` = ``unet`` or ``transformer``) and the adapter configuration in the
safetensors metadata under ``lora_adapter_metadata`` (``{prefix}.r``, ``{prefix}.lora_alpha``,
``{prefix}.target_modules`` ...), the same keys diffusers' ``save_lora_weights`` writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import CheckpointError, ConfigError

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
METADATA_KEY = "lora_adapter_metadata"
ADAPTER = "default"


_LORA_LAYER_TYPES = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def add_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float | None,
    dropout: float,
    target_modules: Iterable[str],
    adapter_name: str = ADAPTER,
) -> Any:
    """Inject a LoRA adapter into ``model`` with peft; returns the ``LoraConfig``.

    Only LoRA parameters are trainable afterwards; they are kept in float32.
    """
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(target_modules)
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ConfigError(f"`lora.target_modules`: no module of the denoiser matches {missing}")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,  # type: ignore[arg-type]  # peft scales by any float
        lora_dropout=dropout,
        target_modules=targets,
        init_lora_weights=True,
    )
    try:
        inject_adapter_in_model(config, model, adapter_name=adapter_name)
    except ValueError as e:
        # peft names the whole offending module (pages of repr); say which target and what is allowed.
        msg = str(e)
        if "is not supported" not in msg:
            raise
        bad = sorted(
            {
                t
                for t in targets
                for n, m in model.named_modules()
                if (n == t or n.endswith("." + t)) and not isinstance(getattr(m, "base_layer", m), _LORA_LAYER_TYPES)
            }
        )
        raise ConfigError(
            f"`lora.target_modules`: {bad or targets} match modules peft cannot adapt (containers such as "
            "nn.Sequential); name Linear or Conv layers, e.g. to_q, to_k, to_v, to_out.0, proj_in, conv_out"
        ) from None
    for name, p in model.named_parameters():
        is_lora = "lora_" in name
        p.requires_grad_(is_lora)
        if is_lora:
            p.data = p.data.float()
    return config


def set_lora_training(model: torch.nn.Module, training: bool) -> None:
    """Frozen layers in eval mode always; only LoRA dropout follows ``training``.

    ``model.train()`` would also switch the frozen model's own dropout layers (p=0 in diffusers'
    video models, yet each still copies its input in train mode: about 5% of a step on CPU).
    """
    model.eval()
    for name, module in model.named_modules():
        if "lora_dropout" in name.split("."):
            module.train(training)


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]


def lora_state_dict(model: torch.nn.Module, prefix: str, adapter_name: str = ADAPTER) -> dict[str, torch.Tensor]:
    """LoRA weights of ``model`` with diffusers key names (``{prefix}.…lora_A.weight``)."""
    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(model, adapter_name=adapter_name)
    return {f"{prefix}.{k}": v.detach().contiguous().cpu() for k, v in sd.items()}


def config_metadata(config: Any, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}.r": config.r,
        f"{prefix}.lora_alpha": config.lora_alpha,
        f"{prefix}.lora_dropout": config.lora_dropout,
        f"{prefix}.target_modules": sorted(config.target_modules),
        f"{prefix}.init_lora_weights": True,
    }


def save_lora(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    save_file(
        state_dict,
        str(path),
        metadata={"format": "pt", METADATA_KEY: json.dumps(metadata, indent=2, sort_keys=True)},
    )


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and adapter metadata of a LoRA file (or directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    if not p.is_file():
        raise CheckpointError(f"no LoRA weights at {p}; pass a checkpoint directory or a .safetensors file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - corrupt file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(
            f"cannot read LoRA weights {p}{_origin(p)}: {first}; the file is corrupt or not safetensors: use "
            "another checkpoint of that run (an earlier checkpoints/step-N), or train again"
        ) from None
    adapter: Any = {}
    if METADATA_KEY in meta:
        try:
            adapter = json.loads(meta[METADATA_KEY])
        except ValueError:
            adapter = None
        if not isinstance(adapter, dict):
            raise CheckpointError(
                f"cannot read LoRA weights {p}{_origin(p)}: its `{METADATA_KEY}` metadata is not a JSON object; the "
                "file is corrupt or was not written by vader or diffusers: use another checkpoint, or train again"
            )
    return sd, adapter


def _origin(p: Path) -> str:
    """`` (step N of run DIR)`` for a file inside ``DIR/checkpoints/step-N/``, else empty."""
    step = p.parent
    if re.fullmatch(r"step-\d+", step.name) and step.parent.name == "checkpoints":
        return f" (step {step.name.split('-')[1]} of run {step.parent.parent})"
    return ""


def trained_backbone(path: str | Path) -> str | None:
    """The backbone a checkpoint's ``state.json`` names (None for a bare LoRA file)."""
    p = Path(path)
    state = (p if p.is_dir() else p.parent) / "state.json"
    try:
        return json.loads(state.read_text()).get("backbone")
    except (OSError, ValueError, AttributeError):
        return None


def _infer_config(sd: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str) -> Any:
    from peft import LoraConfig

    a_keys = [k for k in sd if k.endswith("lora_A.weight")]
    if not a_keys:
        raise CheckpointError("the LoRA file holds no `lora_A` weights")
    rank = int(sd[a_keys[0]].shape[0])
    targets = meta.get(f"{prefix}.target_modules")
    if targets is None:
        targets = sorted({re.sub(r"^.*?\.?((?:to_out\.0)|[^.]+)\.lora_A\.weight$", r"\1", k) for k in a_keys})
    return LoraConfig(
        r=int(meta.get(f"{prefix}.r", rank)),
        lora_alpha=float(meta.get(f"{prefix}.lora_alpha", rank)),  # type: ignore[arg-type]  # peft scales by any float
        target_modules=list(targets),
        lora_dropout=0.0,
    )


def load_lora(
    target: Any, path: str | Path, prefix: str | None = None, adapter_name: str = ADAPTER, backbone: str | None = None
) -> torch.nn.Module:
    """Load a vader LoRA into a diffusers pipeline or a bare denoiser module.

    Works on the stock pipelines whose denoiser diffusers cannot load LoRA into (e.g.
    ``UNet3DConditionModel`` in ``TextToVideoSDPipeline``), using peft directly. Returns the module.

    Example::

        pipe = TextToVideoSDPipeline.from_pretrained("damo-vilab/text-to-video-ms-1.7b")
        from vader_core.lora import load_lora
        load_lora(pipe, "runs/vader/checkpoints/step-500")
        frames = pipe("a dog surfing").frames
    """
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    sd, meta = read_lora(path)
    if prefix is None:
        prefix = next(iter(sd)).split(".", 1)[0]
    module = target
    if not isinstance(target, torch.nn.Module):
        module = getattr(target, prefix, None)
        if module is None:
            raise CheckpointError(f"the pipeline has no `{prefix}` component for this LoRA")
    origin = trained_backbone(path)

    def mismatch(detail: str) -> CheckpointError:
        was = f"; it was trained with backbone `{origin}`" if origin and origin != backbone else ""
        want = f" with --backbone {backbone}" if backbone else " for this model"
        return CheckpointError(
            f"the LoRA {path} does not fit {f'backbone `{backbone}`' if backbone else 'the model'} "
            f"({detail}){was}; give a LoRA trained{want}"
        )

    sub = {k[len(prefix) + 1 :]: v for k, v in sd.items() if k.startswith(prefix + ".")}
    if not sub:
        raise mismatch(f"no `{prefix}.` weights")
    config = _infer_config(sd, meta, prefix)
    try:
        inject_adapter_in_model(config, module, adapter_name=adapter_name)
        result = set_peft_model_state_dict(module, sub, adapter_name=adapter_name)
    except (ValueError, RuntimeError, KeyError) as e:
        text = " ".join(str(e).split())
        m = re.search(r"size mismatch for ([\w.]+)", text)
        raise mismatch(f"shape of {m.group(1)} differs" if m else text[:160]) from None
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise mismatch(f"keys the model lacks: {unexpected[:2]}")
    ref = next(module.parameters())
    module.to(device=ref.device)
    return module


def set_lora_scale(model: torch.nn.Module, scale: float, adapter_name: str = ADAPTER) -> int:
    """Scale the LoRA ``adapter_name`` of ``model`` at inference: ``W + scale * (alpha / r) * B A``.

    0 gives the base model, 1 the trained LoRA; values between interpolate between the two (peft's
    ``LoraLayer.set_scale``, absolute, so calling it twice does not compound). Returns the number of
    layers scaled.
    """
    from peft.tuners.lora import LoraLayer

    n = 0
    for m in model.modules():
        if isinstance(m, LoraLayer) and adapter_name in m.lora_A:
            m.set_scale(adapter_name, scale)
            n += 1
    if n == 0:
        raise CheckpointError(f"the model has no LoRA adapter `{adapter_name}` to scale")
    return n


# ---------------------------------------------------------------------------- other tools' layouts
#: The layouts ``vader export`` writes, each in its own folder: ComfyUI's (``diffusion_model.<name>.lora_A.weight``,
#: ``lora_B``, ``alpha``) and kohya's (``lora_unet_<name with _>.lora_down.weight``, ``lora_up``, ``alpha``).
ORIGINAL_LAYOUTS = ("comfyui", "kohya")
_LORA_KEY = re.compile(r"^(.+)\.(lora_A|lora_B)\.weight$")


def original_layout(
    sd: dict[str, torch.Tensor], alpha: float, rename: Callable[[str], str], style: str = "comfyui"
) -> dict[str, torch.Tensor]:
    """A LoRA in diffusers' module names (``<module>.lora_A.weight`` / ``lora_B``, without the denoiser's prefix) in
    the original model's names, as ComfyUI and kohya-style tools read it.

    Args:
        sd (`dict`): the LoRA tensors.
        alpha (`float`): the adapter's ``lora_alpha``, written per module (loaders scale by ``alpha / rank``).
        rename (`Callable[[str], str]`): diffusers' module name -> the original one; raises
            :class:`~vader_core.errors.CheckpointError` (one line, naming the model) for a module that has none.
        style (`str`): one of :data:`ORIGINAL_LAYOUTS`.
    """
    out = {}
    for key, value in sd.items():
        m = _LORA_KEY.match(key)
        if m is None:
            raise CheckpointError(f"LoRA key `{key}` is not a LoRA weight (`<module>.lora_A.weight` or `lora_B`)")
        name = rename(m.group(1))
        if style == "comfyui":
            base, part = f"diffusion_model.{name}", m.group(2)
        else:
            base, part = "lora_unet_" + name.replace(".", "_"), {"lora_A": "lora_down", "lora_B": "lora_up"}[m.group(2)]
        out[f"{base}.{part}.weight"] = value.contiguous()
        out[f"{base}.alpha"] = torch.tensor(float(alpha))
    return out


def save_original_layouts(
    out: str | Path, files: dict[str, dict[str, torch.Tensor]], alpha: float, rename: Callable[[str], str]
) -> dict[str, Path]:
    """Write each of ``files`` (file name -> LoRA in diffusers' module names) in every layout of
    :data:`ORIGINAL_LAYOUTS` under ``out/<layout>/``; every file is converted before any is written, so a LoRA
    with a module the original model does not name leaves nothing behind. Returns each file by ``layout/name``."""
    layouts = {
        (style, name): original_layout(sd, alpha, rename, style)
        for style in ORIGINAL_LAYOUTS
        for name, sd in files.items()
    }
    written = {}
    for (style, name), tensors in layouts.items():
        d = Path(out) / style
        d.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(d / name), metadata={"format": "pt"})
        written[f"{style}/{name}"] = d / name
    return written
