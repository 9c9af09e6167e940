"""Finding weight files: a local path option, else the Hugging Face hub (cache first, honours
``HF_HUB_OFFLINE`` as :func:`vader_core.hub.hub_offline` reads it). Anything missing raises one actionable :class:`MissingWeightsError` line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.hub import OFFLINE_REASON, hub_offline


def _reason(exc: BaseException) -> str:
    if hub_offline():
        return OFFLINE_REASON
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"download failed ({type(exc).__name__}{': ' + first if first else ''})"


def missing_weights(
    reward: str, what: str, filename: str, source: str, option: str, reason: str
) -> MissingWeightsError:
    """The one-line error for weights that are neither local nor downloadable.

    Args:
        reward (`str`): reward name, e.g. ``"hps"``.
        what (`str`): what the file is, e.g. ``"HPS v2.1 weights"``.
        filename (`str`): the file (or model) name the user must get.
        source (`str`): where to get it, e.g. ``"the Hugging Face hub repo `xswu/HPSv2`"``.
        option (`str`): the option that takes its local path.
        reason (`str`): why it is not available.
    """
    return MissingWeightsError(
        f"{reward}: {what} `{filename}` not available: {reason}. Get it from {source} and give its path with "
        f"the reward option `{option}` (config `{option}: PATH`, `--set rewards.N.{option}=PATH` in `vader train`, "
        f"`--set {option}=PATH` in `vader score`)"
    )


def local_file(value: str, *, reward: str, what: str, filename: str, source: str, option: str) -> str:
    """``value`` as an existing file, or the missing-weights error."""
    p = Path(value).expanduser()
    if p.is_file():
        return str(p)
    reason = f"`{option}` is {value!r}, which is a directory" if p.is_dir() else f"no such file {value!r}"
    raise missing_weights(reward, what, filename, source, option, reason)


def hub_file(
    repo_id: str,
    filenames: Sequence[str],
    *,
    reward: str,
    what: str,
    option: str,
    source: str | None = None,
    filename: str | None = None,
) -> str:
    """Path of the first of ``filenames`` found in the hub repo ``repo_id`` (cache, then download).

    Args:
        repo_id (`str`): Hugging Face hub repository, e.g. ``"xswu/HPSv2"``.
        filenames (`Sequence[str]`): candidate files in order of preference.
        reward, what, option, source: see :func:`missing_weights`.
        filename (`str`, *optional*): the file name shown in the error; defaults to ``filenames``.
    """
    from huggingface_hub import hf_hub_download

    last: BaseException | None = None
    for name in filenames:
        try:
            return hf_hub_download(repo_id, name)
        except Exception as e:  # noqa: BLE001 - offline, no network, no such file: all mean "not available"
            last = e
    shown = filename or " or ".join(f"`{n}`" for n in filenames).strip("`")
    raise missing_weights(
        reward,
        what,
        shown,
        source or f"the Hugging Face hub repo `{repo_id}`",
        option,
        _reason(last) if last is not None else "no candidate file",
    )


def read_state_dict(path: str, *, reward: str, what: str, allow_pickle: bool = False) -> dict[str, Any]:
    """Tensors of a ``.pt``/``.pth``/``.bin``/``.safetensors`` file; a ``{"state_dict": ...}`` wrapper
    and a DistributedDataParallel ``module.`` prefix are removed.

    Args:
        path (`str`): the file.
        reward (`str`): reward name, for errors.
        what (`str`): what the file holds, for errors.
        allow_pickle (`bool`, *optional*, defaults to `False`):
            Pickled files are read with ``weights_only=True``. When that fails because the file holds
            other Python objects, read it again with full unpickling only if this is set: for files
            whose official loader does exactly that (HPSv2's ``torch.load(cp)``).
    """
    import torch

    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                if "weights_only" not in str(e) and "Unpickl" not in type(e).__name__:
                    raise
                if not allow_pickle:
                    raise CheckpointError(
                        f"{reward}: {path} holds Python objects besides tensors, which are not unpickled (a file "
                        f"that is not the released {what}, or a planted one); if you trust it, set the reward "
                        f"option `allow_pickle: true`, or convert the file to safetensors"
                    ) from None
                obj = torch.load(path, map_location="cpu", weights_only=False)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{reward}: cannot read {what} from {path}: {type(e).__name__}: {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{reward}: {path} holds no state dict of {what} (got {type(obj).__name__})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_strict(module: Any, state_dict: dict[str, Any], *, reward: str, what: str, path: str) -> None:
    """``module.load_state_dict(state_dict)``, turning a mismatch into one :class:`CheckpointError` line."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        missing = [k for k in module.state_dict() if k not in state_dict]
        unexpected = [k for k in state_dict if k not in module.state_dict()]
        detail = []
        if missing:
            detail.append(f"missing keys {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            detail.append(f"unexpected keys {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
        if not detail:
            detail.append((str(e).strip().splitlines() or ["shape mismatch"])[-1].strip()[:200])
        raise CheckpointError(f"{reward}: {path} does not fit the {what}: {'; '.join(detail)}") from None
