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
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, ConfigError

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


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective: every process calls it), a plain tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def agree_finite(loss: torch.Tensor, layout: Layout, device: torch.device) -> bool:
    """Whether the loss is finite on every process (each must skip backward together, or the
    sharded backward's collectives would wait for a process that never comes)."""
    ok = bool(torch.isfinite(loss.detach()).all())
    if not layout.sharded and layout.sp == 1:
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


def load_optimizer_state(model: torch.nn.Module, optimizer: Any, state: dict[str, Any], path: Any) -> None:
    """Restore what :func:`optimizer_state` saved; one line for a checkpoint of an unsharded run."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if any(isinstance(k, int) for k in state.get("state", {})):
        raise CheckpointError(
            f"checkpoint {path} was written by an unsharded run (`distributed.strategy: ddp` or one process); "
            "resume it with the strategy it was written with"
        )
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def grad_norm(params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """The global norm of the (possibly sharded) LoRA gradients, as a plain tensor (a collective when sharded)."""
    return full(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
