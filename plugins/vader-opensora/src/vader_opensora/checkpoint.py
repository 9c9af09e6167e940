"""Finding and reading the released weights, with one strict key check.

| option | default | files |
| --- | --- | --- |
| ``backbone.model`` | ``hpcai-tech/OpenSora-STDiT-v3`` | ``model.safetensors`` (+ ``config.json``): :class:`~vader_opensora.stdit3.STDiT3` keys as they are |
| ``backbone.vae`` | ``hpcai-tech/OpenSora-VAE-v1.2`` | ``model.safetensors``: ``spatial_vae.module.*``, ``temporal_vae.*``, ``scale``, ``shift`` |
| ``backbone.text_encoder`` | ``DeepFloyd/t5-v1_1-xxl`` | a transformers ``T5EncoderModel`` + tokenizer directory |

Each may be a hub id, a local directory holding the files, or (model and VAE) a ``.safetensors`` file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.hub import missing_weights

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].split(". ")[0].rstrip(".")[:160] if text else type(e).__name__


def resolve_file(
    source: str, filename: str, option: str, revision: str | None = None, required: bool = True
) -> Path | None:
    """The local path of ``filename`` for ``source`` (file, directory or hub id), downloading it if needed."""
    local = Path(source).expanduser()
    if local.is_file():
        return (
            local
            if filename == WEIGHTS_FILE
            else (local.parent / filename if (local.parent / filename).is_file() else None)
        )
    if local.is_dir():
        if (local / filename).is_file():
            return local / filename
        if not required:
            return None
        raise MissingWeightsError(f"{local} has no {filename}; point `{option}` at the released weights")
    if source.startswith((".", "/", "~")) or source.endswith(".safetensors"):
        raise MissingWeightsError(f"no weights at {local}; point `{option}` at a local {filename} or a hub id")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source, filename, revision=revision))
    except Exception as e:  # noqa: BLE001 - offline, missing file, bad id, network: all need the same action
        if not required:
            return None
        raise missing_weights(source, e, option=option, filename=filename, local="a local directory") from None


def read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - corrupt or truncated file
        raise CheckpointError(f"cannot read {path}: {_first_line(e)}; the file is corrupt") from None


def read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {_first_line(e)}") from None


def check_state_dict(sd: Mapping[str, Any], expected: Mapping[str, Any], what: str, source: str, option: str) -> None:
    """Raise one :class:`CheckpointError` listing the missing, unexpected and misshapen tensors, if any."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshapen = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(expected[k])}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or misshapen):
        return

    def few(items: list[str]) -> str:
        return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")

    problems = [
        f"{len(xs)} {name} ({few(xs)})"
        for name, xs in (("missing", missing), ("unexpected", unexpected), ("with another shape", misshapen))
        if xs
    ]
    raise CheckpointError(
        f"{source} does not match {what}: {'; '.join(problems)} tensors; "
        f"point `{option}` at the released {what} weights"
    )
