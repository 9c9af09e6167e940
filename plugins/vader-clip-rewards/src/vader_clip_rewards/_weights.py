"""Finding weight files: a local path option, else the Hugging Face hub (cache first, honours
``HF_HUB_OFFLINE`` as :func:`vader_core.hub.hub_offline` reads it). Anything missing raises one actionable :class:`MissingWeightsError` line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vader_core.errors import CheckpointError, ConfigError, MissingWeightsError
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


class _Inert:
    """Stands in for every class a pickled model names: takes whatever the pickle gives it, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] or {}), **state[1]}
        if isinstance(state, dict):
            self.__dict__.update(state)


def _inert_pickle_module() -> Any:
    """A ``pickle_module`` for ``torch.load`` whose unpickler rebuilds tensors and replaces every other class
    or function the file names by a fresh subclass of :class:`_Inert`: what a pickled ``nn.Module`` holds
    comes back as plain attribute dictionaries, and nothing the file names is ever called."""
    import _compat_pickle
    import collections
    import pickle
    import types

    import torch

    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
    }
    inert: dict[tuple[str, str], type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # protocol-2 pickles name Python 2 modules (``__builtin__.set``), which pickle's own find_class maps
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if (module, name) in allowed:
                return allowed[(module, name)]
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            return inert.setdefault((module, name), type(name, (_Inert,), {"__module__": module}))

    return types.SimpleNamespace(Unpickler=Unpickler, load=pickle.load, __name__="vader_inert_pickle")


def _module_tensors(obj: Any, prefix: str, out: dict[str, Any], seen: set[int]) -> None:
    import torch

    if id(obj) in seen:
        return
    seen.add(id(obj))
    state = getattr(obj, "__dict__", {})
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if isinstance(v, torch.Tensor) and not (group == "_buffers" and k in skip):
                out[prefix + k] = v.detach()
    for k, child in (state.get("_modules") or {}).items():
        if child is not None:
            _module_tensors(child, f"{prefix}{k}.", out, seen)


def read_pickled_module(path: str, *, reward: str, what: str) -> dict[str, Any]:
    """The state dict (parameters and persistent buffers, ``named_modules`` keys) of a whole model saved
    with ``torch.save(model)``, read without the classes it was saved with and without running anything
    it names (see :func:`_inert_pickle_module`): only for files whose official loader unpickles them
    whole, and only with the user's ``allow_pickle`` opt-in (the caller checks it)."""
    import torch

    try:
        root = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_inert_pickle_module())
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{reward}: cannot read {what} from {path}: {type(e).__name__}: {first}") from None
    out: dict[str, Any] = {}
    if isinstance(root, dict):
        return root
    _module_tensors(root, "", out, set())
    if not out:
        raise CheckpointError(f"{reward}: {path} holds no model of {what} (got {type(root).__name__})")
    return out


def read_state_dict(
    path: str, *, reward: str, what: str, allow_pickle: bool = False, whole_model: bool = False
) -> dict[str, Any]:
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
        whole_model (`bool`, *optional*, defaults to `False`):
            With ``allow_pickle``, read such a file as a whole pickled model with
            :func:`read_pickled_module` (no class of the file is imported or run) instead of unpickling it.
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
                if whole_model:
                    return read_pickled_module(path, reward=reward, what=what)
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


def foreign_model(source: str, *, local: bool, reward: str, kind: str, example: str) -> ConfigError | None:
    """The one-line error for a directory or hub repo that holds another model instead of ``kind``'s files.

    Looks for the ``config.json`` (transformers) or ``model_index.json`` (diffusers) of the directory, or of
    the hub repo in the Hugging Face cache (nothing is downloaded), and names its model type.

    Args:
        source (`str`): the directory or hub id whose reward files were not found.
        local (`bool`): whether ``source`` is a directory.
        reward (`str`): reward name, for the error.
        kind (`str`): the reward model expected, e.g. ``"an ImageReward checkpoint"``.
        example (`str`): what to give instead, e.g. ``"`THUDM/ImageReward`"``.

    Returns:
        `ConfigError` or `None`: `None` when nothing says what ``source`` is.
    """
    import json

    found = None
    for name in ("config.json", "model_index.json"):
        if local:
            p = Path(source).expanduser() / name
            path = str(p) if p.is_file() else None
        else:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source, name)
            path = cached if isinstance(cached, str) else None
        if path:
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                continue
            found = data.get("model_type") or data.get("_class_name") if isinstance(data, dict) else None
            if found:
                break
    if not found:
        return None
    return ConfigError(f"{reward}: `{source}` is a `{found}` model, not {kind}; give {example} or its local copy")
