"""Activation memory of a model call, counted without a GPU (for the backbones' memory estimates).

Build the real architecture on the ``meta`` device (no weights allocated, no arithmetic) and run one
call under :func:`saved_gib`: autograd still records every tensor it would keep for backward, and
summing their bytes gives the activation memory that call holds until backward.

What is counted, so that the figure is what a GPU would hold:

* attention (``torch.nn.functional.scaled_dot_product_attention``) as the flash and memory-efficient
  kernels of GPUs keep it (query, key, value, output and the float32 log-sum-exp per query), not as the
  math kernel the meta device traces, which keeps the attention matrix;
* weights, and views of them (transposes, broadcasts) that autograd saves, are left out: they are
  counted once, with the weights;
* a storage saved by several operations (or through several views) is counted once.

The CUDA allocator, kernel workspaces and fragmentation add to these figures: they are estimates, not
measurements.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .lazy import torch

GIB = 2**30

_IN_SDPA = [False]
#: Called with each attention output under :func:`flash_attention_accounting` (:class:`LiveTensors` counts it).
_SDPA_OUTPUT_HOOKS: list[Callable[[Any], None]] = []


class SavedTensors:
    """Bytes of the tensors autograd saves while installed as a saved-tensor hook (see :meth:`counting`)."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: dict[int, Any] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base
        if not _IN_SDPA[0] and not isinstance(base, torch.nn.Parameter) and id(base) not in self._seen:
            self._seen[id(base)] = base  # kept alive so that its id is not reused
            self.total += base.untyped_storage().nbytes()
        return t

    @contextlib.contextmanager
    def counting(self) -> Iterator[SavedTensors]:
        """Count what autograd saves inside the block, with attention counted as flash kernels keep it."""
        with flash_attention_accounting(), torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            yield self


def _keep_like_flash() -> type[torch.autograd.Function]:
    class KeepLikeFlash(torch.autograd.Function):
        """Identity that saves what a flash / memory-efficient attention kernel saves, through whichever
        saved-tensor hooks are active (inside a checkpointed block, the checkpoint's own: then nothing
        is counted, as on a GPU)."""

        @staticmethod
        def forward(ctx: Any, out: Any, q: Any, k: Any, v: Any) -> Any:
            lse = torch.empty(out.shape[:-1], dtype=torch.float32, device=out.device)
            ctx.save_for_backward(q, k, v, out, lse)
            return out.view_as(out)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad, None, None, None

    return KeepLikeFlash


@contextlib.contextmanager
def flash_attention_accounting() -> Iterator[None]:
    """Within the block, ``scaled_dot_product_attention`` saves for backward what GPUs' flash kernels save."""
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention
    keep = _keep_like_flash()

    def flash_like(*args: Any, **kwargs: Any) -> Any:
        _IN_SDPA[0] = True
        try:
            out = sdpa(*args, **kwargs)
        finally:
            _IN_SDPA[0] = False
        for hook in _SDPA_OUTPUT_HOOKS:
            hook(out)
        # Query, key and value come positionally or by name (diffusers' attention dispatcher names them).
        qkv = list(args[:3]) + [kwargs[n] for n in ("query", "key", "value")[len(args[:3]) :]]
        return keep.apply(out, *qkv) if torch.is_grad_enabled() else out

    F.scaled_dot_product_attention = flash_like
    try:
        yield
    finally:
        F.scaled_dot_product_attention = sdpa


def _live_tensors_mode() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveTensors(TorchDispatchMode):
        """Bytes of the tensors alive at once (``current``, ``peak``) among those that operations create while the
        mode is on: outputs, the activations autograd saves, transients such as a causal VAE's feature cache,
        gradients in backward. Views and in-place results of existing storages (weights, inputs) are not new;
        attention counts its output only, as flash kernels allocate it (not the math kernel's attention matrix)."""

        def __init__(self) -> None:
            super().__init__()
            self.current = self.peak = 0
            self._alive: dict[int, Any] = {}

        def _freed(self, key: int, nbytes: int) -> None:
            self.current -= nbytes
            self._alive.pop(key, None)

        def add(self, t: Any, existing: set[int] = frozenset()) -> None:  # type: ignore[assignment]
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._alive or key in existing:
                return
            nbytes = storage.nbytes()
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            self._alive[key] = weakref.finalize(storage, self._freed, key, nbytes)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if not _IN_SDPA[0]:
                inputs = {
                    a.untyped_storage()._cdata for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)
                }
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor):
                        self.add(t, inputs)
            return out

    return LiveTensors


def live_peak_gib(fn: Callable[[], object]) -> float:
    """The most GiB of tensors alive at once while ``fn`` runs, counting only what ``fn`` creates.

    Where :func:`saved_gib` counts what autograd keeps for backward, this counts everything alive at the
    worst moment: the saved activations plus the transients beside them (a causal VAE's feature cache, the
    layer running, gradients in flight when ``fn`` runs backward too). Attention is counted as flash kernels
    allocate it. Runs on any device, the ``meta`` device included.
    """
    live = _live_tensors_mode()()

    def hook(out: Any) -> None:
        live.add(out)

    _SDPA_OUTPUT_HOOKS.append(hook)
    try:
        with flash_attention_accounting(), live:
            fn()
    finally:
        _SDPA_OUTPUT_HOOKS.remove(hook)
    return live.peak / GIB


def saved_gib(fn: Callable[[], object], layers: Sequence[torch.nn.Module] = ()) -> tuple[float, float]:
    """GiB autograd saves while ``fn`` runs, and the most that any single one of ``layers`` saves.

    The second figure is what recomputing one checkpointed block in backward needs on top of the
    stored inputs of all blocks.

    Args:
        fn (`Callable[[], object]`): the call to measure, e.g. ``lambda: unet(x, t, emb).sample``.
        layers (`Sequence[torch.nn.Module]`, *optional*): modules to measure one by one (forward hooks).

    Returns:
        `tuple[float, float]`: ``(total, largest layer)`` in GiB.
    """
    saved, largest, start = SavedTensors(), [0], {}

    def pre(module: Any, args: Any) -> None:
        start[id(module)] = saved.total

    def post(module: Any, args: Any, out: Any) -> None:
        largest[0] = max(largest[0], saved.total - start[id(module)])

    handles = [h for m in layers for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with saved.counting():
            fn()
    finally:
        for h in handles:
            h.remove()
    return saved.total / GIB, largest[0] / GIB


def saved_gib_checkpointed(fn: Callable[[], object], blocks: Sequence[torch.nn.Module]) -> float:
    """GiB a call keeps for backward while each of ``blocks`` is checkpointed by the core
    (:func:`vader_core.checkpointing.checkpointed_modules`): what autograd saves outside the blocks plus the
    inputs each block's checkpoint holds for its recomputation (each storage once)."""
    from .checkpointing import INPUT_OBSERVERS, checkpointed_modules

    saved = SavedTensors()
    INPUT_OBSERVERS.append(saved.pack)
    try:
        with checkpointed_modules(list(blocks)), saved.counting():
            fn()
    finally:
        INPUT_OBSERVERS.remove(saved.pack)
    return saved.total / GIB


def kept_call_gib(
    call: Callable[[int], object], blocks: Sequence[torch.nn.Module], batch: int = 2, split_guidance: bool = True
) -> dict[str, float]:
    """Activation memory in GiB of one kept denoiser call at each level of ``memory.gradient_checkpointing``.

    Args:
        call (`Callable[[int], object]`): runs the denoiser on a batch of the given size (``batch`` is the
            guidance-doubled batch; ``batch // 2`` one half of it).
        blocks (`Sequence[torch.nn.Module]`): the backbone's :meth:`checkpoint_blocks`.
        batch (`int`, *optional*, defaults to 2): the batch of a guided call.
        split_guidance (`bool`, *optional*, defaults to `True`): ``memory.split_guidance``.

    Returns:
        `dict[str, float]`: ``off`` (everything stored), ``call`` (one call, or with the split one half,
        recomputed whole), ``block`` (one call's block boundaries plus the largest block recomputed, with the
        split one half of it), and the parts ``boundaries`` and ``largest_block``.
    """
    split = split_guidance and batch % 2 == 0 and batch > 1
    full, largest = saved_gib(lambda: call(batch), blocks)
    boundaries = saved_gib_checkpointed(lambda: call(batch), blocks)
    if split:
        half, largest = saved_gib(lambda: call(batch // 2), blocks)
    else:
        half = full
    return {
        "off": full,
        "call": half,
        "block": boundaries + largest,
        "boundaries": boundaries,
        "largest_block": largest,
    }


def blocks_gib(fn: Callable[[], object], blocks: Sequence[torch.nn.Module]) -> dict[str, float]:
    """Activation GiB of ``fn`` stored whole (``off``) and with ``blocks`` checkpointed (``block``: the
    boundaries kept plus the largest block recomputed), e.g. for a VAE decoder's blocks."""
    full, largest = saved_gib(fn, blocks)
    boundaries = saved_gib_checkpointed(fn, blocks) if blocks else full
    return {
        "off": full,
        "block": boundaries + (largest if blocks else 0.0),
        "boundaries": boundaries,
        "largest_block": largest,
    }


def step_peak(weights: float, denoiser: dict[str, float], decoder: dict[str, float], level: str, k: int = 1) -> float:
    """Peak GiB of a training step at ``level`` (``off``/``call``/``block``) from :func:`kept_call_gib` and
    :func:`blocks_gib` figures: without checkpointing all K kept calls and the decoder are stored at once;
    with it the decoder's activations are freed before the kept calls are recomputed one at a time (their
    inputs, kept meanwhile, are small), and only the ``block`` level checkpoints the decoder's blocks."""
    if level == "off":
        return weights + k * denoiser["off"] + decoder["off"]
    dec = decoder["block"] if level == "block" else decoder["off"]
    return weights + max(denoiser[level], dec)


def peak_with_reward(
    weights: float, denoise: float, decode: float, reward_weights: float, reward: float, offload: bool = False
) -> float:
    """Peak GiB of a step whose reward model runs in the backward path (a large one: a vision-language reward).

    The reward runs after decoding, with the decoder's activations still stored; its backward, recomputing
    its checkpointed layers one at a time, comes before the decoder's and the denoiser's. So the step needs
    the larger of (decoding + the reward's activations, with its weights on the device) and (the denoiser's
    recomputation, with the reward's weights too unless they wait off the device, ``offload``).

    Args:
        weights (`float`): the backbone's weights on the device.
        denoise (`float`): the denoiser's kept calls plus one recomputed block (the backbone's own peak term).
        decode (`float`): the decoder's stored activations for the decoded frames.
        reward_weights (`float`): the reward model's weights.
        reward (`float`): the reward call's activations (:func:`blocks_gib`'s ``block`` with checkpointing,
            ``off`` without).
        offload (`bool`, *optional*, defaults to `False`): the reward model waits on the CPU between calls.
    """
    return weights + max(decode + reward_weights + reward, denoise + (0.0 if offload else reward_weights))


def per_gpu_peak(
    *,
    denoiser_weights: float,
    largest_unit: float,
    root_weights: float,
    other_weights: float,
    kept: float,
    recompute: float,
    decode: float,
    world: int = 1,
    sequence_parallel: int = 1,
    strategy: str = "fsdp",
) -> float:
    """Peak GiB on each GPU of a step spread over ``world`` processes (``distributed`` section).

    Under ``fsdp`` a process holds ``1/world`` of the denoisers' weights, plus, while they run, the gathered
    weights of the denoiser's own (root) unit and of two blocks (the one running and the one FSDP prefetches);
    under ``ddp`` (or one process) all of them. ``other_weights`` (the VAE; the encoders unless offloaded) sit
    whole on every GPU. Sequence parallelism of degree ``sp`` splits a video's tokens, so each process keeps
    ``1/sp`` of the kept calls' block inputs and of a recomputed block (Ulysses attention holds the whole
    sequence for ``1/sp`` of the heads: the same share). Decoding is not split: every process of a
    sequence-parallel group decodes the chosen frames of its video.

    Args:
        denoiser_weights (`float`): all denoisers' weights (both experts of Wan 2.2 A14B).
        largest_unit (`float`): the weights of the largest block (an FSDP unit).
        root_weights (`float`): the weights outside the blocks (embeddings, output projection).
        other_weights (`float`): weights every GPU holds whole.
        kept (`float`): the kept calls' stored activations (at ``memory.gradient_checkpointing``'s level).
        recompute (`float`): the most one recomputed block adds in backward.
        decode (`float`): the decoder's activations for the decoded frames.
        world (`int`, *optional*, defaults to 1): processes (GPUs).
        sequence_parallel (`int`, *optional*, defaults to 1): ``distributed.sequence_parallel``.
        strategy (`str`, *optional*, defaults to `"fsdp"`): ``distributed.strategy``.
    """
    if strategy == "fsdp" and world > 1:
        weights = denoiser_weights / world + root_weights + 2 * largest_unit
    else:
        weights = denoiser_weights
    return weights + other_weights + max(decode, (kept + recompute) / sequence_parallel)
