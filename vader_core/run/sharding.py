"""Sharding the denoiser over the processes of a run (``distributed.strategy: fsdp``).

torch's FSDP2 (:func:`torch.distributed.fsdp.fully_shard`) is applied to the blocks the backbone names
for gradient checkpointing (:meth:`~vader_core.backbone.BackbonePlugin.checkpoint_blocks`), then to each
denoiser as a whole: every process holds ``1/N`` of the frozen base weights and of the LoRA weights, a
block's weights are gathered just before it runs (again when it is recomputed in backward) and freed
after, and the LoRA gradients are reduce-scattered (averaged) as each block's backward ends.

Why ``fully_shard`` itself and not accelerate's FSDP plugin: accelerate (1.16) prepares *a model* for
*its* optimiser and training loop (``accelerator.prepare(model)``), wraps by a policy rather than by
a list of modules, and builds its optimiser mapping through ``fsdp2_switch_optimizer_parameters``;
vader calls its denoiser many times per step without gradient, keeps LoRA in float32 beside bf16
frozen weights and names its shard units itself, and only needs the two lines of ``fully_shard``.
accelerate still runs the processes, devices, autocast and the optimiser wrapper.

What the processes must agree on, because every forward and backward of a sharded block is a
collective: the number of denoiser calls with and without gradient and which expert makes them (the
kept steps are drawn from a generator shared by the processes), whether a micro-step's loss is
finite before any process runs backward (:func:`agree_finite`), and when to stop (a signal is acted
on at a step boundary, once every process knows of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..backbone import BackbonePlugin
    from ..config import DistributedSection


@dataclass
class Layout:
    """Where this process sits: ``world`` processes in ``world // sp`` data-parallel groups of ``sp``
    processes that share one video (sequence parallelism)."""

    strategy: str = "ddp"
    world: int = 1
    rank: int = 0
    sp: int = 1

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.world > 1

    @property
    def lockstep(self) -> bool:
        """Whether every process must make the same denoiser calls (their blocks run collectives)."""
        return self.sharded or (self.sp > 1 and self.world > 1)

    @property
    def dp_world(self) -> int:
        return self.world // self.sp

    @property
    def dp_rank(self) -> int:
        return self.rank // self.sp

    def sample_index(self, micro: int) -> int:
        """The global index of this process's micro-batch ``micro`` of a step: ``N`` processes with
        ``grad_accum`` A draw the prompts and noise that one process with ``N x A`` draws."""
        return micro * self.dp_world + self.dp_rank


def check_layout(cfg: DistributedSection, world: int) -> None:
    """One line for a ``distributed`` section this world size cannot run (before any model loads)."""
    sp = cfg.sequence_parallel
    if world % sp:
        valid = [d for d in range(1, world + 1) if world % d == 0]
        raise ConfigError(
            f"`distributed.sequence_parallel` must divide the number of processes ({world}), got {sp}; "
            f"valid: {', '.join(map(str, valid))}"
        )


def layout_of(cfg: DistributedSection, world: int, rank: int) -> Layout:
    """Process ``rank`` of ``world`` under the ``distributed`` section (checked first: :func:`check_layout`)."""
    check_layout(cfg, world)
    return Layout(cfg.strategy, world, rank, cfg.sequence_parallel)


def shard_units(backbone: BackbonePlugin) -> list[tuple[torch.nn.Module, list[torch.nn.Module]]]:
    """Each denoiser with the blocks of it that the backbone names (the FSDP units); one line if none."""
    blocks = list(backbone.checkpoint_blocks())
    denoisers = list(getattr(backbone, "denoisers", lambda: [backbone.denoiser])())
    units = []
    for model in denoisers:
        inside = {id(m) for m in model.modules()}
        units.append((model, [b for b in blocks if id(b) in inside]))
    if not any(own for _, own in units):
        raise ConfigError(
            f"backbone `{backbone.name}` names no blocks (`checkpoint_blocks()` is empty), so "
            "`distributed.strategy: fsdp` has nothing to shard block by block; use `distributed.strategy: ddp`"
        )
    return units


def shard(backbone: BackbonePlugin, precision: str, device: torch.device) -> None:
    """Apply FSDP2 to the backbone's blocks and then to each denoiser (after LoRA was added)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    # Frozen weights and LoRA gathered in the run's precision; LoRA gradients reduced and kept in float32.
    mp = MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32) if low else MixedPrecisionPolicy()
    for model, blocks in shard_units(backbone):
        for b in blocks:
            fully_shard(b, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)


def check_sequence_parallel(backbone: BackbonePlugin, layout: Layout) -> list[torch.nn.Module]:
    """The denoisers to split; one line where one declares no context-parallel plan or the degree does not
    divide its attention heads (naming the degrees that divide both the heads and the world size)."""
    models = list(getattr(backbone, "denoisers", lambda: [backbone.denoiser])())
    for model in models:
        if getattr(model, "_cp_plan", None) is None:
            raise ConfigError(
                f"`{type(model).__name__}` declares no context-parallel plan in this diffusers, so backbone "
                f"`{backbone.name}` cannot split a video over processes; set `distributed.sequence_parallel: 1`"
            )
        heads = int(getattr(model.config, "num_attention_heads", 0) or 0)
        if heads % layout.sp:
            valid = [d for d in range(1, heads + 1) if heads % d == 0 and layout.world % d == 0]
            raise ConfigError(
                f"`distributed.sequence_parallel` must divide the attention heads ({heads}) and the number of "
                f"processes ({layout.world}), got {layout.sp}; valid: {', '.join(map(str, valid))}"
            )
    return models


def enable_sequence_parallel(backbone: BackbonePlugin, layout: Layout, device: torch.device) -> None:
    """Ulysses sequence parallelism of degree ``layout.sp`` on every denoiser, through diffusers' own
    context-parallel plan (the model's ``_cp_plan``) and hooks.

    diffusers' ``ModelMixin.enable_parallelism`` picks the device as ``rank % torch.accelerator.device_count()``,
    which divides by zero on a machine without an accelerator (diffusers 0.42); its three steps are therefore
    taken here: the ``ParallelConfig`` set up on a ``(dp, ring=1, ulysses=sp)`` mesh, the config handed to
    every attention processor, and :func:`diffusers.hooks.context_parallel.apply_context_parallel`. Ring
    attention is not offered for training: with the native attention backend it cannot run (that backend
    returns no log-sum-exp) and the backend's backward op recomputes attention against the saved local
    key/value chunk only, ignoring the rotated chunks that ring's backward passes it."""
    from diffusers.hooks.context_parallel import apply_context_parallel
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    models = check_sequence_parallel(backbone, layout)
    mesh = init_device_mesh(device.type, (layout.dp_world, 1, layout.sp), mesh_dim_names=("dp", "ring", "ulysses"))
    for model in models:
        plan: Any = model._cp_plan
        cp = ContextParallelConfig(ulysses_degree=layout.sp, mesh=mesh)
        config = ParallelConfig(context_parallel_config=cp)
        config.setup(layout.rank, layout.world, device, mesh=mesh)
        cast(Any, model)._parallel_config = config  # where diffusers' enable_parallelism keeps it
        for m in model.modules():
            proc = getattr(m, "processor", None)
            if proc is not None and hasattr(proc, "_parallel_config"):
                proc._parallel_config = config
        apply_context_parallel(model, cp, plan)


def loss_scale(layout: Layout) -> int:
    """What each process's loss is multiplied by before backward: the sequence-parallel degree. The gradient
    reduction (DDP's all-reduce, FSDP's reduce-scatter) averages over all processes, but the processes of one
    sequence-parallel group hold the gradients of their own tokens of the same video (diffusers' output
    gather hands each only its own slice in backward): those must add up, and only the data-parallel groups
    be averaged. (Scaling the loss rather than FSDP's gradient divide factor: gloo has no pre-multiplied sum.)"""
    return layout.sp


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective: every process calls it), a plain tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def agree_finite(loss: torch.Tensor, layout: Layout, device: torch.device) -> bool:
    """Whether the loss is finite on every process (each must skip backward together, or the
    sharded backward's collectives would wait for a process that never comes)."""
    ok = bool(torch.isfinite(loss.detach()).all())
    if not layout.lockstep:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    torch.distributed.all_reduce(flag)
    return bool(flag.item() == 0)


def lora_state(model: torch.nn.Module, prefix: str, adapter: str) -> dict[str, torch.Tensor]:
    """The whole LoRA of a sharded ``model`` in the diffusers layout a one-process run writes
    (``{prefix}.…lora_A.weight``, float32 on the CPU). A collective; only the LoRA is gathered, never the
    frozen weights."""
    from peft import get_peft_model_state_dict

    own = {k: full(v).detach().cpu() for k, v in model.state_dict().items() if "lora_" in k}
    sd = get_peft_model_state_dict(model, state_dict=own, adapter_name=adapter)
    return {f"{prefix}.{k}": v.contiguous() for k, v in sd.items()}


def load_lora(model: torch.nn.Module, saved: dict[str, torch.Tensor], prefix: str, adapter: str) -> None:
    """Put a saved LoRA (diffusers layout) into the shards of ``model`` (every process reads the file)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    sd: dict[str, Any] = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            sd[name] = saved[f"{prefix}.{name.replace(f'.{adapter}.', '.')}"].to(p.dtype)
    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, strict=False))


def optimizer_state(model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """The whole optimiser state keyed by parameter names (a collective; on the CPU; complete on process 0).
    Keyed by name, not by shard, so a run resumes it at another world size too."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _names(model: torch.nn.Module) -> list[str]:
    """The LoRA parameters' names in the optimiser's order (:func:`vader_core.lora.lora_parameters`)."""
    return [n for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]


def by_name(state: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """An optimiser state dict keyed by parameter index (what one process saves) keyed by name instead."""
    names = _names(model)
    return {
        "state": {names[int(i)]: v for i, v in state.get("state", {}).items()},
        "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in state["param_groups"]],
    }


def by_index(state: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The reverse of :func:`by_name`: a sharded run's optimiser state for an unsharded run."""
    index = {n: i for i, n in enumerate(_names(model))}
    return {
        "state": {index[n]: v for n, v in state.get("state", {}).items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]],
    }


def is_by_name(state: dict[str, Any]) -> bool:
    groups = state.get("param_groups") or [{}]
    return any(isinstance(p, str) for g in groups for p in g.get("params", []))


def load_optimizer_state(model: torch.nn.Module, optimizer: Any, state: dict[str, Any], sharded: bool) -> None:
    """Restore a saved optimiser state whichever way it was saved: by name (a sharded run) or by index (one
    process, DDP), into a sharded or an unsharded run, at any world size (the state is saved whole)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not sharded:
        optimizer.load_state_dict(by_index(state, model) if is_by_name(state) else state)
        return
    named = state if is_by_name(state) else by_name(state, model)
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))


def grad_norm(params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """The global norm of the (possibly sharded) LoRA gradients, as a plain tensor (a collective when sharded)."""
    return full(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
