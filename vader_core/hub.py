"""Where a plugin's weights come from: a Hugging Face hub id or a local directory, with one-line errors.

Plugins take a model option that is either a hub id (``owner/name``, read through the Hugging Face
cache, honouring ``HF_HUB_OFFLINE``) or a directory written by ``save_pretrained``. These helpers keep
the rules and the wording the same in every plugin::

    from vader_core.hub import resolve_model, unavailable_reason, missing_model

    source, local = resolve_model(ref, reward="pickscore", repo="yuvalkirstain/PickScore_v1")
    try:
        model = CLIPModel.from_pretrained(source)
    except OSError as e:
        raise missing_model("pickscore", ref, unavailable_reason(e, local),
                            repo="yuvalkirstain/PickScore_v1") from None

Nothing here imports torch, transformers or huggingface_hub at import time.
"""

from __future__ import annotations

import os
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


def missing_model(
    reward: str, ref: str, reason: str, *, repo: str, what: str = "model", files: str = MODEL_FILES,
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
        f"`huggingface-cli download {repo}`) and give the hub id or its local directory with the reward option "
        f"`{option}` (config `{option}: DIR`, `--set rewards.N.{option}=DIR` in `vader train`, "
        f"`--set {option}=DIR` in `vader score`)"
    )


def resolve_model(
    ref: str, *, reward: str, repo: str, what: str = "model", files: str = MODEL_FILES, option: str = "model",
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
        raise missing_model(reward, ref, f"no such directory {ref!r}", repo=repo, what=what, files=files,
                            option=option)
    return str(path), True
