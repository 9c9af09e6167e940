"""Training checkpoints: LoRA (diffusers layout), optimiser, schedule, RNG and step state.

``checkpoints/step-N/`` holds ``pytorch_lora_weights.safetensors``, ``optimizer.pt``,
``scheduler.pt``, ``rng.pt`` and ``state.json``. A checkpoint is written in a temporary sibling
directory and renamed into place, so a crash or Ctrl-C never leaves a half-written ``step-N`` and
never touches earlier checkpoints.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError
from .lora import WEIGHTS_NAME, read_lora, save_lora

STATE_NAME = "state.json"
_STEP_RE = re.compile(r"^step-(\d+)$")
_FILES = (WEIGHTS_NAME, "optimizer.pt", "scheduler.pt", "rng.pt", STATE_NAME)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: str | Path,
    step: int,
    lora_sd: dict[str, torch.Tensor],
    lora_meta: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Write ``root/step-{step}`` atomically and return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step}-", dir=root))
    try:
        save_lora(tmp / WEIGHTS_NAME, lora_sd, lora_meta)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / STATE_NAME).write_text(json.dumps({"step": step, **state}, indent=2))
        if final.exists():
            old = root / f".old-step-{step}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and all((p / f).is_file() for f in _FILES):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def find_resume(spec: str, output_dir: str | Path) -> Path:
    """``latest`` (newest complete checkpoint of the run) or an explicit checkpoint directory."""
    if spec == "latest":
        ckpts = list_checkpoints(Path(output_dir) / "checkpoints")
        if not ckpts:
            raise CheckpointError(f"--resume latest: no checkpoint under {Path(output_dir) / 'checkpoints'}")
        return ckpts[-1]
    p = Path(spec)
    if not p.is_dir():
        raise CheckpointError(f"--resume: checkpoint directory not found: {p}")
    missing = [f for f in _FILES if not (p / f).is_file()]
    if missing:
        raise CheckpointError(f"--resume: {p} is not a complete checkpoint (missing {', '.join(missing)})")
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read every part of a checkpoint; a corrupt file raises :class:`CheckpointError`."""
    p = Path(path)
    out: dict[str, Any] = {}
    out["lora"], out["lora_meta"] = read_lora(p / WEIGHTS_NAME)
    for name in ("optimizer", "scheduler", "rng"):
        try:
            out[name] = torch.load(p / f"{name}.pt", map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"checkpoint {p} is corrupt: cannot read {name}.pt ({type(e).__name__})") from None
    try:
        out["state"] = json.loads((p / STATE_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {p} is corrupt: cannot read {STATE_NAME}") from None
    return out
