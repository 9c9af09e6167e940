"""Training checkpoints: LoRA (diffusers layout), optimiser, schedule, RNG and step state.

``checkpoints/step-N/`` holds ``pytorch_lora_weights.safetensors``, ``optimizer.safetensors``,
``scheduler.safetensors``, ``rng.safetensors`` and ``state.json``. Nothing in a checkpoint is a
pickle: each ``NAME.safetensors`` holds the tensors of a nested state (dicts, lists, tuples, numbers,
strings, tensors, numpy arrays) and, in its metadata, the JSON tree that puts them back, so reading a
planted checkpoint can never run code. A checkpoint is written in a temporary sibling directory
(``.step-N-*``) and renamed into place, so a crash, Ctrl-C or ``kill -9`` never leaves a
half-written ``step-N`` and never touches earlier checkpoints; temporary folders a kill left behind
are removed by :func:`clean_temporaries` at the next start.

Checkpoints of earlier versions (``optimizer.pt``, ``scheduler.pt``, ``rng.pt``: torch pickles) are
read with ``weights_only=True`` where that suffices; one whose ``rng.pt`` holds numpy objects is
converted, for a file you trust, with ``python -m vader_core.checkpoint convert DIR``.
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
_PARTS = ("optimizer", "scheduler", "rng")
_FILES = (WEIGHTS_NAME, *(f"{n}.safetensors" for n in _PARTS), STATE_NAME)
_LEGACY_FILES = (WEIGHTS_NAME, *(f"{n}.pt" for n in _PARTS), STATE_NAME)
TREE_KEY = "vader_state_tree"
CONVERT_HINT = "python -m vader_core.checkpoint convert"


# ---------------------------------------------------------------------- pickle-free state files
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON tree for ``obj``; tensors (and numpy arrays) go to ``tensors`` under generated keys."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("numpy object arrays cannot be stored without pickle")
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, tensors) for x in obj]
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} without pickle")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(x, tensors) for x in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__ndarray__" in node:
        return tensors[node["__ndarray__"]].numpy()
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode(x, tensors) for x in node["__tuple__"])
    if "__dict__" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["__dict__"]}
    raise ValueError(f"unknown node {sorted(node)}")


def save_state(path: str | Path, obj: Any) -> None:
    """Write a nested state (optimizer/scheduler/RNG state dict) as one pickle-free safetensors file."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors)
    save_file(tensors, str(path), metadata={TREE_KEY: json.dumps(tree)})


def load_state(path: str | Path) -> Any:
    """Read a file written by :func:`save_state` (no code can run: safetensors and JSON only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if TREE_KEY not in meta:
        raise ValueError(f"no `{TREE_KEY}` metadata")
    return _decode(json.loads(meta[TREE_KEY]), tensors)


def _legacy_load(path: Path) -> Any:
    """An earlier version's ``.pt`` part, read with ``weights_only=True`` (plain tensors and containers)."""
    return torch.load(path, map_location="cpu", weights_only=True)


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
    rng: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/step-{step}`` atomically and return its path.

    ``optimizer`` is the optimiser or its state dict (a sharded run gathers it first); ``rng`` the random
    states to store (default: this process's, :func:`rng_state`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step}-", dir=root))
    try:
        save_lora(tmp / WEIGHTS_NAME, lora_sd, lora_meta)
        save_state(tmp / "optimizer.safetensors", optimizer if isinstance(optimizer, dict) else optimizer.state_dict())
        save_state(tmp / "scheduler.safetensors", _plain_scheduler_state(scheduler.state_dict()))
        save_state(tmp / "rng.safetensors", rng if rng is not None else rng_state())
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


def _plain_scheduler_state(sd: dict[str, Any]) -> dict[str, Any]:
    """A torch LR scheduler's state without callables (LambdaLR keeps ``None`` for plain functions)."""
    return {k: v for k, v in sd.items() if not callable(v)}


def _complete(p: Path) -> bool:
    return all((p / f).is_file() for f in _FILES) or all((p / f).is_file() for f in _LEGACY_FILES)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and _complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def clean_temporaries(root: str | Path) -> list[Path]:
    """Remove the temporary ``.step-*`` / ``.old-step-*`` folders a killed save left under ``root``."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.is_dir() and (p.name.startswith(".step-") or p.name.startswith(".old-step-")):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


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
    if missing and not all((p / f).is_file() for f in _LEGACY_FILES):
        raise CheckpointError(f"--resume: {p} is not a complete checkpoint (missing {', '.join(missing)})")
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read every part of a checkpoint; a corrupt file raises :class:`CheckpointError`."""
    p = Path(path)
    out: dict[str, Any] = {}
    out["lora"], out["lora_meta"] = read_lora(p / WEIGHTS_NAME)
    for name in _PARTS:
        new = p / f"{name}.safetensors"
        if new.is_file():
            try:
                out[name] = load_state(new)
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(
                    f"checkpoint {p} is corrupt: cannot read {new.name} ({type(e).__name__}); resume from an "
                    f"earlier checkpoint (--resume {p.parent}/step-N) or start a new --output-dir"
                ) from None
            continue
        try:
            out[name] = _legacy_load(p / f"{name}.pt")
        except Exception as e:  # noqa: BLE001
            import pickle

            if isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e):
                raise CheckpointError(
                    f"checkpoint {p}: {name}.pt holds Python objects besides tensors (an older vader's format, "
                    f"or a planted file) and is not unpickled; if you wrote it yourself, convert it with "
                    f"`{CONVERT_HINT} {p}`"
                ) from None
            raise CheckpointError(f"checkpoint {p} is corrupt: cannot read {name}.pt ({type(e).__name__})") from None
    try:
        out["state"] = json.loads((p / STATE_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {p} is corrupt: cannot read {STATE_NAME}") from None
    return out


def convert_legacy(path: str | Path) -> Path:
    """Rewrite an earlier version's pickled ``optimizer.pt``/``scheduler.pt``/``rng.pt`` as pickle-free
    ``.safetensors`` parts. This unpickles the old files (``weights_only=False``): only for files you trust."""
    p = Path(path)
    olds = [p / f"{n}.pt" for n in _PARTS]
    if not all(f.is_file() for f in olds):
        raise CheckpointError(f"{p} holds no old-format checkpoint ({', '.join(f.name for f in olds)})")
    for name, f in zip(_PARTS, olds, strict=True):
        obj = torch.load(f, map_location="cpu", weights_only=False)  # the user's explicit opt-in
        if name == "scheduler":
            obj = _plain_scheduler_state(obj)
        save_state(p / f"{name}.safetensors", obj)
    for f in olds:
        f.unlink()
    return p


def _main(argv: list[str] | None = None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "convert":
        print(
            f"usage: {CONVERT_HINT} CHECKPOINT_DIR [...]  (unpickles the old .pt files: only for files you trust)",
            file=sys.stderr,
        )
        return 2
    for d in args[1:]:
        try:
            convert_legacy(d)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"converted {d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
