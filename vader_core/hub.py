"""Where a plugin's weights come from: a Hugging Face hub id or a local directory, with one-line errors.

Plugins take a model option that is either a hub id (``owner/name``, read through the Hugging Face
cache, honouring ``HF_HUB_OFFLINE``) or a directory written by ``save_pretrained``. These helpers keep
the rules and the wording the same in every plugin. A reward::

    from vader_core.hub import resolve_model, unavailable_reason, missing_model

    source, local = resolve_model(ref, reward="pickscore", repo="yuvalkirstain/PickScore_v1")
    try:
        model = CLIPModel.from_pretrained(source)
    except OSError as e:
        raise missing_model("pickscore", ref, unavailable_reason(e, local),
                            repo="yuvalkirstain/PickScore_v1") from None

A backbone::

    from vader_core.hub import missing_weights

    try:
        unet = UNet3DConditionModel.from_pretrained(source, subfolder="unet")
    except OSError as e:
        raise missing_weights(source, e, option="backbone.model") from None

Nothing here imports torch, transformers or huggingface_hub at import time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import MissingWeightsError

#: Why a hub model is not available when downloads are switched off.
OFFLINE_REASON = "HF_HUB_OFFLINE=1 and it is not in the Hugging Face cache"
#: The files a transformers checkpoint directory holds, as named in errors.
MODEL_FILES = "config.json + model.safetensors"


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set, in the environment now or in ``huggingface_hub.constants``
    (read at each call, so a test or a shell can flip it)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # noqa: BLE001 - no huggingface_hub: nothing else can be offline
        return False


def looks_local(ref: str) -> bool:
    """Whether ``ref`` names a local directory rather than a hub id (``owner/name``).

    It does when the path exists, starts with ``.``, ``/`` or ``~``, holds a backslash, or has more than
    one ``/`` (a hub id has exactly one).
    """
    return Path(ref).expanduser().exists() or ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") > 1


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (its type name when empty), at most ``limit`` characters."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def unavailable_reason(exc: BaseException, local: bool) -> str:
    """Why loading failed, for :func:`missing_model`: :data:`OFFLINE_REASON` for a hub id while
    ``HF_HUB_OFFLINE`` is set, else the first line of ``exc``."""
    if hub_offline() and not local:
        return OFFLINE_REASON
    return first_line(exc)


def download_command(repo: str, files: Sequence[str] = ()) -> str:
    """The command that puts ``repo`` (or only ``files`` of it) in the Hugging Face cache, as errors print it:
    ``hf download REPO [FILE ...]`` (the ``hf`` CLI of ``huggingface_hub``)."""
    return " ".join(["hf download", repo, *files])


def _first_sentence(exc: BaseException, limit: int = 160) -> str:
    # Hub and diffusers errors run on over several sentences of generic advice; the first says what failed.
    return first_line(exc, limit=10_000).split(". ")[0].rstrip(".")[:limit]


def missing_weights(
    source: str,
    error: BaseException,
    *,
    option: str,
    what: str | None = None,
    filename: str | None = None,
    files: Sequence[str] = (),
    local: str = "a local diffusers directory",
) -> MissingWeightsError:
    """The one-line error of a backbone whose weights do not load from a hub id: what failed, why (the
    first sentence of ``error``, and whether ``HF_HUB_OFFLINE`` is set), the ``hf download`` command that
    gets them, and the option that takes a local copy instead.

    Args:
        source (`str`): the hub id that did not load.
        error (`BaseException`): what the loader raised.
        option (`str`): the configuration key of the weights, e.g. ``"backbone.model"``.
        what (`str`, *optional*): what the weights are, e.g. ``"Wan weights"``; named before ``source``.
        filename (`str`, *optional*): the file of ``source`` that did not load, when the loader reads one.
        files (`Sequence[str]`, *optional*): the files to download; default: the whole repository.
        local (`str`, *optional*, defaults to `"a local diffusers directory"`): what ``option`` takes
            instead, e.g. ``"a local model.ckpt"``.

    Example:
        ``cannot load Wan weights `Wan-AI/Wan2.1-T2V-1.3B-Diffusers` (HF_HUB_OFFLINE is set): ...; download
        it with `hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers` or set `backbone.model` to a local diffusers
        directory (--set backbone.model=/path/to/Wan2.1-T2V-1.3B-Diffusers)``
    """
    name = f"{what} `{source}`" if what else f"`{source}`"
    if filename:
        name += f" file `{filename}`"
    offline = " (HF_HUB_OFFLINE is set)" if hub_offline() else ""
    example = files[0] if len(files) == 1 else source.rstrip("/").split("/")[-1]
    return MissingWeightsError(
        f"cannot load {name}{offline}: {_first_sentence(error)}; download it with `{download_command(source, files)}` "
        f"or set `{option}` to {local} (--set {option}=/path/to/{example})"
    )


def missing_model(
    reward: str,
    ref: str,
    reason: str,
    *,
    repo: str,
    what: str = "model",
    files: str = MODEL_FILES,
    option: str = "model",
) -> MissingWeightsError:
    """The one-line error for a reward model that is neither a local directory nor in reach on the hub.

    Args:
        reward (`str`): reward name, e.g. ``"pickscore"``.
        ref (`str`): the value of the option (hub id or directory).
        reason (`str`): why it is not available (see :func:`unavailable_reason`).
        repo (`str`): a hub repo to download, named in the error.
        what (`str`, *optional*, defaults to `"model"`): what the model is, e.g. ``"V-JEPA 2 model"``.
        files (`str`, *optional*, defaults to :data:`MODEL_FILES`): the files the directory must hold.
        option (`str`, *optional*, defaults to `"model"`): the reward option that takes it.
    """
    return MissingWeightsError(
        f"{reward}: {what} `{ref}` ({files}) not available: {reason}. Get it from the Hugging Face hub (e.g. "
        f"`{download_command(repo)}`) and give the hub id or its local directory with the reward option "
        f"`{option}` (config `{option}: DIR`, `--set rewards.N.{option}=DIR` in `vader train`, "
        f"`--set {option}=DIR` in `vader score`)"
    )


def resolve_model(
    ref: str,
    *,
    reward: str,
    repo: str,
    what: str = "model",
    files: str = MODEL_FILES,
    option: str = "model",
) -> tuple[str, bool]:
    """What to give ``from_pretrained`` for ``ref``, and whether it is a local directory.

    Returns:
        `tuple[str, bool]`: the expanded directory and `True` when ``ref`` looks local (see
        :func:`looks_local`), else ``ref`` itself (a hub id) and `False`.

    Raises:
        `MissingWeightsError`: ``ref`` looks local but is no directory (the arguments after ``ref`` are
        those of :func:`missing_model`).
    """
    if not looks_local(ref):
        return ref, False
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise missing_model(reward, ref, f"no such directory {ref!r}", repo=repo, what=what, files=files, option=option)
    return str(path), True
