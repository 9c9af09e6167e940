"""Gradient checkpointing of the kept denoiser calls, owned by the core for every backbone.

Three levels (``memory.gradient_checkpointing``):

* ``off`` (``false``): every kept call stores its activations until backward.
* ``call``: each kept call stores only its inputs and is recomputed whole during backward, so the
  peak holds one call's activations however many steps are kept.
* ``block`` (``true``, the default: least memory): as ``call``, and inside that recomputation every
  block the backbone names (:meth:`~vader_core.backbone.BackbonePlugin.checkpoint_blocks`: the
  resnets, attentions and temporal layers of a UNet's down, mid and up blocks, the transformer blocks
  of a DiT) is checkpointed again, so the peak holds one call's block boundaries plus the internals
  of one block. A backbone whose library switch truly checkpoints per block uses that instead
  (:meth:`~vader_core.backbone.BackbonePlugin.native_gradient_checkpointing`). The VAE decoder's
  blocks (:meth:`~vader_core.backbone.BackbonePlugin.decoder_checkpoint_blocks`) are recomputed the
  same way while frames are decoded with gradient.

Where classifier-free guidance doubles the batch of a kept call, a backbone routes that call through
:func:`run_guided`; under checkpointing the core then runs the unconditional and the conditional half
one after the other, each recomputed on its own in backward, which halves the largest recomputed unit
(the result is the same up to float rounding: the halves see the same weights and inputs).

Checkpointing a block means replacing the ``forward`` of that module instance, for the duration of
one kept call, by :func:`torch.utils.checkpoint.checkpoint` (non-reentrant, RNG state preserved, so
LoRA dropout is replayed exactly) around the original ``forward``; nothing of the library is modified.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .lazy import torch

if TYPE_CHECKING:  # pragma: no cover
    from .backbone import BackbonePlugin

Level = Literal["off", "call", "block"]
LEVELS: tuple[str, ...] = ("off", "call", "block")

#: Observers of the inputs a block checkpoint keeps (the memory estimators count them: they are held by
#: the checkpoint's recomputation closure, not saved through autograd's saved-tensor hooks).
INPUT_OBSERVERS: list[Callable[[torch.Tensor], object]] = []

_MARK = "_vader_checkpointed"


def checkpoint(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """:func:`torch.utils.checkpoint.checkpoint`, non-reentrant (imported on first use: plugins import this
    module at start-up)."""
    from torch.utils.checkpoint import checkpoint as _checkpoint

    kwargs.setdefault("use_reentrant", False)
    return _checkpoint(fn, *args, **kwargs)


def level_of(value: bool | str | None) -> Level:
    """The level named by ``memory.gradient_checkpointing``: ``True``/``"block"``/``"on"`` -> ``block``,
    ``False``/``None``/``"off"`` -> ``off``, ``"call"`` -> ``call``."""
    if value is True or value == "block" or value == "on":
        return "block"
    if value is False or value is None or value == "off":
        return "off"
    if value == "call":
        return "call"
    raise ValueError(f"gradient checkpointing level must be one of off, call, block (or true/false), got {value!r}")


def _observe(args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    for a in (*args, *kwargs.values()):
        for t in a if isinstance(a, list) else (a,):
            if isinstance(t, torch.Tensor):
                for fn in INPUT_OBSERVERS:
                    fn(t)


def _checkpointed(original: Callable[..., Any]) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return original(*args, **kwargs)
        if INPUT_OBSERVERS:
            _observe(args, kwargs)
        if not any(isinstance(a, list) for a in (*args, *kwargs.values())):
            return checkpoint(original, *args, use_reentrant=False, **kwargs)
        return _checkpoint_with_lists(original, args, kwargs)

    return forward


def _checkpoint_with_lists(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Checkpoint a forward that updates list arguments in place (a causal VAE's feature cache and its index,
    as ``AutoencoderKLWan``'s blocks take them). Replaying it in backward on the same lists would read what
    the first run wrote there, so each run gets fresh copies of the lists as they were at the call; the
    first run's updates are then written back to the caller's lists. Tensors it writes there keep their
    autograd history, so a later block that reads them propagates gradient back through them."""
    snapshot = {i: list(a) for i, a in enumerate(args) if isinstance(a, list)}
    snapshot_kw = {k: list(v) for k, v in kwargs.items() if isinstance(v, list)}

    def run(*a: Any, **kw: Any) -> tuple[Any, dict[Any, list[Any]]]:
        fresh = {i: list(v) for i, v in snapshot.items()}
        fresh_kw = {k: list(v) for k, v in snapshot_kw.items()}
        a = tuple(fresh.get(i, x) for i, x in enumerate(a))
        out = original(*a, **{**kw, **fresh_kw})
        return out, {**fresh, **fresh_kw}

    out, updated = checkpoint(run, *args, use_reentrant=False, **kwargs)
    for key, values in updated.items():
        target = args[key] if isinstance(key, int) else kwargs[key]
        target[:] = values
    return out


@contextlib.contextmanager
def checkpointed_modules(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Within the block, each of ``modules`` is recomputed in backward instead of storing its activations.

    Acts only while autograd records (under ``torch.no_grad`` the modules run as usual). A module
    already checkpointed by an enclosing block is left as it is; ``modules`` should not contain one
    another (an inner checkpoint inside an outer one is correct but recomputes twice).
    """
    patched: list[tuple[torch.nn.Module, Any]] = []
    try:
        for m in modules:
            if getattr(m, _MARK, False):
                continue
            own = m.__dict__.get("forward")  # an instance-level forward (hooks of other libraries), if any
            m.forward = _checkpointed(m.forward)
            setattr(m, _MARK, True)
            patched.append((m, own))
        yield
    finally:
        for m, own in reversed(patched):
            del m.forward
            if own is not None:
                m.forward = own
            delattr(m, _MARK)


# ---------------------------------------------------------------------- guidance halves
@dataclass
class _Split:
    checkpoint_halves: bool


_SPLIT: ContextVar[_Split | None] = ContextVar("vader_guidance_split", default=None)
_COND_ONLY: ContextVar[bool] = ContextVar("vader_conditional_only", default=False)


def guidance_skipped() -> bool:
    """Whether the core asks the current denoiser call to skip its unconditional half
    (``sampling.guidance_interval``): a backbone that evaluates the two halves itself, instead of through
    :func:`run_guided`, then evaluates the conditional one only and uses it as the guided prediction."""
    return _COND_ONLY.get()


@contextlib.contextmanager
def conditional_only(active: bool = True) -> Iterator[None]:
    """Within the block, guided calls evaluate only their conditional half (see :func:`guidance_skipped`)."""
    token = _COND_ONLY.set(active)
    try:
        yield
    finally:
        _COND_ONLY.reset(token)


def run_guided(fn: Callable[..., torch.Tensor], *batched: torch.Tensor) -> torch.Tensor:
    """``fn(*batched)``: one denoiser call on a batch that classifier-free guidance doubled.

    ``batched`` are the tensors whose first dimension holds the unconditional half and then the
    conditional half (in the same order in every one of them); ``fn`` returns one tensor with the same
    layout. Outside a kept step this is just ``fn(*batched)``. At a kept step under gradient
    checkpointing the core runs ``fn`` on the first halves and then on the second halves and
    concatenates the results: the same output, with half the activations recomputed at a time.
    Where the core skips the unconditional half (:func:`guidance_skipped`) only the conditional half runs,
    and its output stands in for both halves, so that the guided combination equals it.
    """
    if _COND_ONLY.get() and not any(b.shape[0] % 2 for b in batched):
        out = fn(*(b.chunk(2)[1] for b in batched))
        return torch.cat([out, out])
    split = _SPLIT.get()
    if split is None or not torch.is_grad_enabled() or any(b.shape[0] % 2 for b in batched):
        return fn(*batched)
    halves = [tuple(b.chunk(2)[i] for b in batched) for i in range(2)]
    if split.checkpoint_halves:
        outs = [checkpoint(fn, *h, use_reentrant=False) for h in halves]
    else:
        outs = [fn(*h) for h in halves]
    return torch.cat(outs)


# ---------------------------------------------------------------------- the plan of a kept call
@dataclass
class CheckpointPlan:
    """How the kept denoiser calls of one sampled batch are recomputed (see the module docstring)."""

    level: Level = "off"
    blocks: list[torch.nn.Module] = field(default_factory=list)
    split_guidance: bool = True

    @classmethod
    def for_backbone(
        cls, backbone: BackbonePlugin, level: bool | str | None, split_guidance: bool = True
    ) -> CheckpointPlan:
        """The plan for ``backbone`` at ``level``; switches the backbone's native checkpointing on or off."""
        lv = level_of(level)
        native = backbone.native_gradient_checkpointing(lv == "block")
        blocks = [] if native or lv != "block" else list(backbone.checkpoint_blocks())
        return cls(level=lv, blocks=blocks, split_guidance=split_guidance)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Installs the block checkpoints and the guidance split for one kept call."""
        token = None
        if self.split_guidance and self.level != "off":
            # With block checkpoints the halves are recomputed block by block anyway; at ``call`` level
            # each half is its own checkpoint inside the call's.
            token = _SPLIT.set(_Split(checkpoint_halves=self.level == "call"))
        try:
            with checkpointed_modules(self.blocks):
                yield
        finally:
            if token is not None:
                _SPLIT.reset(token)

    def call(self, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        """Evaluate one kept call ``fn(*args)`` under this plan (autograd must be recording)."""
        if self.level == "off":
            with self.active():
                return fn(*args)

        def run(*a: Any) -> torch.Tensor:
            # Installed inside the checkpointed function, so the recomputation in backward sees it too.
            with self.active():
                return fn(*a)

        return checkpoint(run, *args, use_reentrant=False)


def decoder_checkpointing(
    backbone: BackbonePlugin, level: bool | str | None
) -> contextlib.AbstractContextManager[None]:
    """Context in which the backbone's VAE decoder blocks are recomputed in backward (``block`` level only)."""
    if level_of(level) != "block":
        return contextlib.nullcontext()
    return checkpointed_modules(list(backbone.decoder_checkpoint_blocks()))


@contextlib.contextmanager
def gradient_only_in_calls(module: torch.nn.Module, keep: set[int], period: int) -> Iterator[None]:
    """Within the block, ``module``'s calls record autograd only at the positions in ``keep``, counted modulo
    ``period``; the others run without it, so what they pass on enters the kept calls as constants.

    For a causal VAE that calls its decoder once per chunk of latent frames, in order (and, when it tiles,
    once per chunk for each tile in turn): with ``period`` the number of chunks and ``keep`` the chunks that
    hold the frames a reward scores, only those chunks are decoded with gradient, without re-implementing
    the VAE's decode loop. The calls are counted by the module's call hooks, which a recomputation in
    backward does not run, so it composes with :func:`checkpointed_modules` in either order.
    """
    calls = [0]
    modes: list[bool] = []

    def before(_module: torch.nn.Module, _args: Any) -> None:
        modes.append(torch.is_grad_enabled())
        torch.set_grad_enabled(modes[-1] and calls[0] % period in keep)
        calls[0] += 1

    def after(_module: torch.nn.Module, _args: Any, _output: Any) -> None:
        torch.set_grad_enabled(modes.pop())

    entered = torch.is_grad_enabled()
    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        if modes:  # a call that raised: its mode was not restored
            torch.set_grad_enabled(entered)


def reject_folded_options(data: Any, names: Sequence[str]) -> Any:
    """For a backbone's ``Options`` (``model_validator(mode="before")``): a one-line error for options that
    switched the backbone's own checkpointing, now ``memory.gradient_checkpointing`` of the core."""
    if isinstance(data, dict):
        old = [n for n in names if n in data]
        if old:
            raise ValueError(
                f"`{'`, `'.join(old)}` is gone: the core checkpoints every backbone block by block; remove it and "
                "set `memory.gradient_checkpointing` (true/block: least memory, call: whole calls, false: off)"
            )
    return data


def layers_of(*blocks: torch.nn.Module | None) -> list[torch.nn.Module]:
    """The layers of diffusers-style blocks: the members of each block's ``ModuleList`` children
    (``resnets``, ``attentions``, ``temp_convs``, ``temp_attentions``, ``motion_modules``,
    ``downsamplers``, ``upsamplers``), in order; a block without such lists counts as one layer.

    The unit a UNet backbone hands to :meth:`~vader_core.backbone.BackbonePlugin.checkpoint_blocks`:
    a whole full-resolution up block holds a third of a call's activations by itself (4.7 of 14.7 GiB
    for ModelScope at 384x384x16), its layers a few percent each.
    """
    out: list[torch.nn.Module] = []
    for block in blocks:
        if block is None:
            continue
        lists = [c for c in block.children() if isinstance(c, torch.nn.ModuleList)]
        if lists:
            out.extend(m for lst in lists for m in lst)
        else:
            out.append(block)
    return out
