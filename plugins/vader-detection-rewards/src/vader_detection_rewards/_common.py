"""Shared pieces of the detection rewards: the processor configuration, gradient checkpointing in eval
mode, the spread initialisation of tiny detectors. Seeding and freezing are :mod:`vader_core.modules`, the
hub / local-directory rules :mod:`vader_core.hub`. Heavy imports stay inside the functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vader_core.lazy import torch


def processor_config(ref: str) -> dict[str, Any]:
    """``preprocessor_config.json`` of a local directory or hub repo (cache first, honours
    ``HF_HUB_OFFLINE``); empty when there is none: the callers then use the published defaults."""
    p = Path(ref).expanduser()
    path: str | None = None
    if p.is_dir():
        f = p / "preprocessor_config.json"
        path = str(f) if f.is_file() else None
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(ref, "preprocessor_config.json")
        except Exception:  # noqa: BLE001 - no processor file is not an error: defaults apply
            path = None
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def mean_std(cfg: dict[str, Any], mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[tuple, tuple] | None:
    """The processor's normalisation (``image_mean``/``image_std``), ``mean``/``std`` when absent, or
    ``None`` when the processor does not normalise (``do_normalize: false``)."""
    if cfg.get("do_normalize") is False:
        return None
    m, s = cfg.get("image_mean", mean), cfg.get("image_std", std)
    m = tuple(float(v) for v in m) if isinstance(m, (list, tuple)) else (float(m),) * 3
    s = tuple(float(v) for v in s) if isinstance(s, (list, tuple)) else (float(s),) * 3
    return m, s


def flag_for_checkpointing(encoder: torch.nn.Module, layers: torch.nn.ModuleList) -> None:
    """transformers only checkpoints layers in training mode; flag the encoder and its layers alone
    (not their submodules), so checkpointing runs while every dropout stays off."""
    encoder.training = True
    for layer in layers:
        layer.training = True


def spread_init(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Re-initialise a freshly built tiny model so that its outputs depend on its inputs.

    transformers' initialisation (weights of std 0.02, zero detection tokens) makes a tiny random
    detector give the same near-uniform class probabilities in every query slot, for every image; tests
    of a reward built on it would measure nothing. PyTorch's default initialisation of every layer, and
    normal(0, ``std``) tokens and position embeddings, give slots and images that differ.
    """
    owned: set[int] = set()
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
            owned |= {id(p) for p in m.parameters(recurse=False)}
    with torch.no_grad():
        for p in model.parameters():
            if id(p) not in owned and p.ndim > 0:
                torch.nn.init.normal_(p, std=std)
    return model
