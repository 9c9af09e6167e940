"""Where the reward checkpoints come from (a hub id, read through the Hugging Face cache with
``HF_HUB_OFFLINE`` honoured, or a local path) and how their tensors are read: safetensors as they are,
a pickle (``.pth``/``.pt``/``.bin``) only with the user's ``allow_pickle`` and then only its tensors
(``torch.load(weights_only=True)``). Every failure is one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.hub import download_command, first_line, hub_offline, looks_local, missing_model, unavailable_reason

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def snapshot(
    ref: str,
    patterns: Sequence[str],
    *,
    reward: str,
    what: str,
    files: str,
    option: str,
    repo: str,
) -> tuple[Path, bool]:
    """A directory holding ``ref``'s files: ``ref`` itself when it is a local path, else the hub
    snapshot of the files matching ``patterns`` (from the cache when offline).

    Returns:
        `tuple[Path, bool]`: the directory, and whether ``ref`` was local.

    Raises:
        `MissingWeightsError`: no such local directory, or the hub repository is out of reach.
    """
    if looks_local(ref):
        path = Path(ref).expanduser()
        if not path.exists():
            raise missing_model(reward, ref, f"no such path {ref!r}", repo=repo, what=what, files=files, option=option)
        return path, True
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, allow_patterns=list(patterns))), False
    except Exception as e:  # noqa: BLE001 - offline, no network, no such repo, gated: all mean "not available"
        raise missing_model(
            reward, ref, unavailable_reason(e, False), repo=ref, what=what, files=files, option=option
        ) from None


def missing_file(
    reward: str, ref: str, name: str, where: Path, *, what: str, option: str, repo: str
) -> MissingWeightsError:
    """One line for a file that the checkpoint directory (or the cached snapshot) lacks."""
    reason = f"{name} is not in {where}"
    if not looks_local(ref) and hub_offline():
        reason += " (HF_HUB_OFFLINE is set: only cached files are read)"
    return MissingWeightsError(
        f"{reward}: {what} `{ref}` is incomplete: {reason}; download it with `{download_command(repo)}` or give a "
        f"complete local copy with the reward option `{option}`"
    )


def read_tensors(path: Path, *, reward: str, what: str, allow_pickle: bool, convert_hint: str = "") -> dict[str, Any]:
    """The tensors of a weights file.

    ``.safetensors`` is read as it is. Any other file is a pickle: refused without ``allow_pickle``
    (the error says how to opt in, or how to convert it once); with it, read by ``torch.load(...,
    weights_only=True)``, which unpickles tensors and containers only (a file holding other objects
    stays refused).
    """
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{reward}: cannot read {what} from {path}: {first_line(e)}") from None
    if not allow_pickle:
        raise CheckpointError(
            f"{reward}: {path} is a pickle ({path.suffix}), which vader reads only when you opt in: set the reward "
            f"option `allow_pickle: true` (tensors only, torch.load(weights_only=True)){convert_hint}"
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - a planted object, a truncated file, not a zip archive
        raise CheckpointError(
            f"{reward}: {path} does not hold only tensors, so it is not read even with `allow_pickle` "
            f"({type(e).__name__}: {first_line(e, 120)}); it is not the released {what}"
        ) from None
    for wrapper in ("state_dict", "model"):  # trainers' wrappers (HPSv3's loader unwraps "model")
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{reward}: {path} holds no state dict of tensors, so it is not the released {what}")
    return state
