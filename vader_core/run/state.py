"""Saving a run's checkpoint and resuming from one (LoRA, optimiser, schedule, random states, run state), or
starting a fresh run in its output directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checkpoint import (
    clean_temporaries,
    find_resume,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from ..errors import CheckpointError, ConfigError
from ..faults import clear_earlier_run
from ..lora import ADAPTER, lora_state_dict
from . import sharding
from .distributed import own_rng_state
from .records import RunState, read_jsonl, write_jsonl
from .sharding import Layout

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..backbone import BackbonePlugin
    from ..config import VaderConfig


def save(
    out: Path,
    step: int,
    lora: dict[str, torch.Tensor],
    lora_meta: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    state: RunState,
    config: VaderConfig,
    accelerator: Any,
    layout: Layout,
    denoiser: torch.nn.Module,
) -> Path | None:
    """Write ``checkpoints/step-N`` (and prune to ``output.keep_checkpoints``) in a run of any number of
    processes. Every process calls it with the whole ``lora`` (a collective when sharded:
    :func:`vader_core.run.sharding.lora_state`): the optimiser state (gathered when sharded) and every
    process's random states (:func:`vader_core.run.distributed.rng_states`) are collected first, then the
    main process writes; every process waits for it. Returns the checkpoint's path on the main process."""
    from .distributed import rng_states

    rng = rng_states(accelerator)
    optim = sharding.optimizer_state(denoiser, optimizer.optimizer) if layout.sharded else optimizer
    world, path = accelerator.num_processes, None
    if accelerator.is_main_process:
        run = {
            "consecutive_nonfinite": state.consecutive_nonfinite,
            "reward_queries": state.reward_queries,
            "backbone": config.backbone.name,
            "rewards": [r.name for r in config.rewards],
            "max_steps": config.train.max_steps,
            "strategy": config.distributed.strategy if world > 1 else "single",
            "world_size": world,
            "sequence_parallel": config.distributed.sequence_parallel,
        }
        keep = config.output.keep_checkpoints
        path = save_checkpoint(out / "checkpoints", step, lora, lora_meta, optim, scheduler, run, keep=keep, rng=rng)
    accelerator.wait_for_everyone()
    return path


def resume(
    spec: str,
    out: Path,
    backbone: BackbonePlugin,
    params: Sequence[torch.nn.Parameter],
    optimizer: Any,
    scheduler: Any,
    state: RunState,
    config: VaderConfig,
    is_main: bool,
    log: Callable[[str], None],
    layout: Layout | None = None,
) -> None:
    """Continue from the checkpoint ``spec`` names (``latest`` or a directory; the temporary folders of an
    interrupted save are removed first): its LoRA weights, optimiser, schedule and random states, and
    ``state`` with the records up to its step (the main process rewrites
    ``metrics.jsonl`` and ``validation.jsonl`` without later lines). ``layout``: this process's place in a
    multi-process run; a sharded run loads the LoRA and optimiser into its shards. The LoRA and the optimiser
    state are saved whole (the optimiser's keyed by parameter name when sharded), so a checkpoint resumes at
    another world size and strategy too; bit-exact only at the same world size (each process's random
    states are restored where the number of processes is the same)."""
    from peft import set_peft_model_state_dict

    _clean(out, is_main, log)
    layout = layout or Layout()
    path = find_resume(spec, out)
    ck = load_checkpoint(path)
    prefix = backbone.denoiser_name + "."
    sd = {k[len(prefix) :]: v for k, v in ck["lora"].items() if k.startswith(prefix)}
    own = (
        sharding.lora_state(backbone.denoiser, backbone.denoiser_name, ADAPTER)
        if layout.sharded
        else lora_state_dict(backbone.denoiser, backbone.denoiser_name)
    )
    if set(own) != set(ck["lora"]) or any(own[k].shape != v.shape for k, v in ck["lora"].items()):
        raise ConfigError(f"checkpoint {path} does not match this run's LoRA (backbone or `lora` settings differ)")
    if layout.sharded:
        sharding.load_lora(backbone.denoiser, ck["lora"], backbone.denoiser_name, ADAPTER)
    else:
        set_peft_model_state_dict(backbone.denoiser, sd)
        for p in params:
            p.data = p.data.float()
    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
    sharding.load_optimizer_state(backbone.denoiser, opt, ck["optimizer"], layout.sharded)
    scheduler.load_state_dict(ck["scheduler"])
    set_rng_state(own_rng_state(ck["rng"], layout.rank, layout.world))
    st = ck["state"]
    state.step = int(st["step"])
    state.consecutive_nonfinite = int(st.get("consecutive_nonfinite", 0))
    state.reward_queries = int(st.get("reward_queries", 0))
    state.history = [r for r in read_jsonl(out / "metrics.jsonl") if r["step"] <= state.step]
    state.validation = [r for r in read_jsonl(out / "validation.jsonl") if r["step"] <= state.step]
    if is_main:
        write_jsonl(out / "metrics.jsonl", state.history)
        write_jsonl(out / "validation.jsonl", state.validation)
    log(f"resumed from {path} at step {state.step}")
    note = schedule_change_note(st, config)
    if note:
        log(note)


def _clean(out: Path, is_main: bool, log: Callable[[str], None]) -> None:
    if is_main and clean_temporaries(out / "checkpoints"):
        log("removed temporary checkpoint folders an interrupted save left behind")


def start_fresh(out: Path, overwrite: bool, is_main: bool, log: Callable[[str], None]) -> None:
    """Begin a new run in ``out``: remove the temporary folders of an interrupted save, refuse a folder
    holding checkpoints (resume instead); with ``overwrite``, remove an earlier run's records, samples and
    best LoRA (called after the models loaded, so a bad configuration deletes nothing); start the jsonl
    records empty."""
    _clean(out, is_main, log)
    existing = list_checkpoints(out / "checkpoints")
    if existing:
        raise CheckpointError(
            f"{out} already holds checkpoints (up to {existing[-1].name}); continue with "
            "--resume latest, or pick another --output-dir"
        )
    if not is_main:
        return
    if overwrite:
        removed = clear_earlier_run(out)
        if removed:
            log(f"--overwrite: removed the earlier run's {', '.join(removed)} from {out}")
    for name in ("metrics.jsonl", "validation.jsonl"):
        (out / name).unlink(missing_ok=True)


def schedule_change_note(state: dict[str, Any], config: VaderConfig) -> str | None:
    """The one line said when a resumed run's ``train.max_steps`` differs from the checkpoint's and the
    learning-rate schedule depends on it (``linear``, ``cosine``): the schedule follows the new length."""
    before = state.get("max_steps")
    now = config.train.max_steps
    if before is None or int(before) == now or config.optim.schedule not in ("linear", "cosine"):
        return None
    return (
        f"note: resuming with train.max_steps {now} (the run started with {before}): the "
        f"`{config.optim.schedule}` learning-rate schedule now spans {now} steps from step {state['step']} on"
    )
