"""The trainer: accelerate for devices, precision and processes; peft LoRA on the denoiser.

This module holds the run's lifecycle and its step; what a run does around the steps lives in
:mod:`vader_core.run` (validation, records, loggers, save and resume, what processes exchange).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import clean_temporaries, list_checkpoints
from .config import VaderConfig
from .data import training_source, validation_prompts
from .errors import CheckpointError, ConfigError, InterruptedRun, NonFiniteLossError
from .faults import (
    Preempted,
    check_inputs,
    check_output_dir,
    clear_earlier_run,
    deferred_signals,
    preemption_signals,
)
from .guard import ValidationGuard
from .lora import ADAPTER, add_lora, config_metadata, lora_parameters, lora_state_dict, set_lora_training
from .method import TrainContext
from .offload import offload_encoders
from .resolve import (
    backbone_class,
    build_backbone,
    build_method,
    build_metrics,
    build_objective,
    load_backbone,
    resolve_config,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from .run import distributed, sharding
from .run.loggers import make_logger, progress
from .run.records import RunState, append_jsonl, finite_or_none, plot_reward_curve, summary
from .run.state import resume as resume_run
from .run.state import save as save_run
from .run.state import schedule_change_note
from .run.validation import Validator
from .speed import apply_speed

__all__ = ["RunState", "Trainer", "derive_seed", "resolve_precision", "schedule_change_note"]


def derive_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from ``parts`` (run seed, step, micro-step, process ...)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


class Trainer:
    """Runs a training job from a :class:`VaderConfig`.

    One optimiser step (:meth:`train_step`) is these hops, in order:

    1. draw a batch of prompts (and images): ``Source.batch`` (:mod:`vader_core.data`);
    2. encode the condition: ``backbone.encode_condition``;
    3. sample with truncated backprop: :func:`vader_core.sampling.sample_with_grad` (autograd through the
       kept denoising steps only);
    4. decode the chosen frames with gradient: ``backbone.decode``, inside ``sample_with_grad``;
    5. rewards: the objective (:class:`vader_core.objective.Objective`) scores the frames;
    6. loss: the method's step; for ``vader``, ``vader_plugins/methods.py::VaderMethod.step`` does hops 2-7;
    7. backward: ``TrainContext.backward`` (:meth:`_backward`, scaled for gradient accumulation);
       hops 1-7 run ``optim.grad_accum`` times;
    8. cross-process gradient reduction: :func:`vader_core.run.distributed.reduce_gradients`;
    9. clip: ``accelerator.clip_grad_norm_`` (``optim.grad_clip``);
    10. optimizer step, then the learning-rate schedule; every process skips it when any saw a
        non-finite value (:func:`vader_core.run.distributed.any_process`).

    Around the steps, :meth:`run` validates (:class:`vader_core.run.validation.Validator`), writes records
    (:mod:`vader_core.run.records`) and logs (:mod:`vader_core.run.loggers`), saves checkpoints and resumes
    (:mod:`vader_core.run.state`), and stops cleanly on Ctrl-C, SIGTERM or too many non-finite losses.

    Args:
        config (`VaderConfig`): the configuration; plugin options are resolved here.
        progress (`bool`, *optional*, defaults to `True`): show a rich progress bar.
        tiny (`bool`, *optional*, defaults to `False`): use tiny random components for the backbone and
            rewards (tests of plugins that otherwise need weights).
        log (`Callable[[str], None]`, *optional*): where to print status lines.
    """

    def __init__(
        self, config: VaderConfig, progress: bool = True, tiny: bool = False, log: Callable[[str], None] | None = None
    ) -> None:
        self.config = resolve_config(config)
        self.progress = progress
        self.tiny = tiny
        self.log = log or (lambda s: None)
        self.out = Path(self.config.output.dir)
        self.state = RunState()
        self._signals: list[int] = []
        self._overwrite = False

    # ------------------------------------------------------------------ assembling the run
    def _setup(self) -> None:
        self._prepare_device()
        self._prepare_models()
        self._prepare_optimizer()

    def _prepare_device(self) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        cfg = self.config
        if cfg.device and cfg.device.startswith("cuda:"):
            torch.cuda.set_device(int(cfg.device.split(":", 1)[1]))
        self.precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
        # A second run in one process (notebooks, tests) may change precision; keep the process group.
        AcceleratorState._reset_state(reset_partial_state=False)
        mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.precision]
        self.accelerator = Accelerator(mixed_precision=mixed, cpu=cfg.device == "cpu")
        self.device = self.accelerator.device
        self.weight_dtype = torch_dtype(self.precision)
        self.is_main = self.accelerator.is_main_process
        rank = self.accelerator.process_index
        sharding.check_layout(cfg.distributed, self.accelerator.num_processes)
        self.layout = sharding.Layout(
            cfg.distributed.strategy, self.accelerator.num_processes, rank, cfg.distributed.sequence_parallel
        )
        torch.manual_seed(derive_seed(cfg.train.seed, "init", rank))
        random.seed(derive_seed(cfg.train.seed, "py", rank))
        np.random.seed(derive_seed(cfg.train.seed, "np") % (2**32))

    def _prepare_models(self) -> None:
        cfg, seed = self.config, self.config.train.seed
        self.backbone = load_backbone(
            build_backbone(cfg.backbone), self.device, self.weight_dtype, tiny=self.tiny, seed=seed
        )
        self.encoder_offload = offload_encoders(self.backbone, cfg.memory, self.device)
        denoiser = self.backbone.denoiser
        targets = cfg.lora.target_modules or list(self.backbone.default_lora_targets)
        self.lora_config = add_lora(denoiser, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, targets)
        set_lora_training(denoiser, True)
        if self.layout.sp > 1:
            sharding.enable_sequence_parallel(self.backbone, self.layout, self.device)
        if self.layout.sharded:
            sharding.shard(self.backbone, self.precision, self.device)
        self.params = lora_parameters(denoiser)
        apply_speed(self.backbone, cfg.speed)  # compiled blocks and attention backend, with LoRA in place
        if not self.params:
            raise ConfigError("LoRA added no trainable parameters; check `lora.target_modules`")
        self.objective = build_objective(cfg.rewards)
        self.objective.load(self.device, self.weight_dtype, tiny=self.tiny, seed=seed)
        self.method = build_method(cfg.method)
        if cfg.regularization.kl > 0 and not getattr(type(self.method), "supports_kl_guard", False):
            raise ConfigError(
                f"method `{cfg.method.name}` does not apply the KL guard; set regularization.kl=0 or use --method vader"
            )
        self.guard = ValidationGuard(
            cfg.validation,
            build_metrics(cfg.validation.metrics, self.device, self.weight_dtype, tiny=self.tiny, seed=seed),
        )
        self.source = training_source(cfg.train, self.backbone.conditioning, self.backbone)
        self.val_prompts, self.val_images = validation_prompts(cfg, self.source, self.backbone)
        self.validator = Validator(
            cfg,
            self.backbone,
            self.objective,
            self.guard,
            self.val_prompts,
            self.val_images,
            self.out,
            self._autocast,
            lambda: (self._lora_sd(), self._lora_meta()),
            self.is_main,
            self.log,
        )

    def _prepare_optimizer(self) -> None:
        from diffusers.optimization import get_scheduler

        cfg, o = self.config, self.config.optim
        optimizer = torch.optim.AdamW(self.params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, eps=o.eps)
        self.lr_scheduler = get_scheduler(
            o.schedule,
            optimizer=optimizer,
            num_warmup_steps=o.warmup_steps,
            num_training_steps=max(cfg.train.max_steps, 1),
        )
        self.optimizer = self.accelerator.prepare(optimizer)
        self._nonfinite_in_step = False
        self._stop_requested = False
        self.ctx = TrainContext(
            config=cfg,
            backbone=self.backbone,
            objective=self.objective,
            autocast=self._autocast,
            backward=self._backward,
            trainable=self.params,
            draw_batch=lambda rng: self.source.batch(cfg.train.batch_size, rng),
        )
        self.method.setup(self.ctx)

    def _autocast(self) -> Any:
        return self.accelerator.autocast() if self.precision != "fp32" else nullcontext()

    def _backward(self, loss: torch.Tensor) -> bool:
        if not sharding.agree_finite(loss, self.layout, self.device):
            self._nonfinite_in_step = True
            return False
        self.accelerator.backward(loss * sharding.loss_scale(self.layout) / self.config.optim.grad_accum)
        return True

    def _lora_sd(self) -> dict[str, torch.Tensor]:
        """The LoRA in the diffusers layout (a collective when sharded: every process calls it)."""
        if self.layout.sharded:
            return sharding.lora_state(self.backbone.denoiser, self.backbone.denoiser_name, ADAPTER)
        return lora_state_dict(self.backbone.denoiser, self.backbone.denoiser_name)

    def _lora_meta(self) -> dict[str, Any]:
        return config_metadata(self.lora_config, self.backbone.denoiser_name)

    # ------------------------------------------------------------------ around the steps
    def save(self, step: int) -> Path | None:
        """A checkpoint of ``step`` (written by the main process; every process waits for it)."""
        path = None
        # Collectives first, on every process: the gathered LoRA, optimiser state (sharded) and random states.
        lora, rng = self._lora_sd(), distributed.rng_states(self.accelerator)
        optim: Any = self.optimizer
        if self.layout.sharded:
            optim = sharding.optimizer_state(self.backbone.denoiser, self.optimizer.optimizer)
        if self.is_main:
            path = save_run(
                self.out,
                step,
                lora,
                self._lora_meta(),
                optim,
                self.lr_scheduler,
                self.state,
                self.config,
                rng=rng,
                world=self.accelerator.num_processes,
            )
        self.accelerator.wait_for_everyone()
        return path

    def validate(self, step: int) -> dict[str, Any]:
        rec, stop = self.validator(step, self.state)
        self._stop_requested = self._stop_requested or stop
        return rec

    def plot(self) -> Path | None:
        return plot_reward_curve(self.out, self.state, self.config) if self.is_main else None

    # ------------------------------------------------------------------ the step
    def train_step(self, step: int) -> dict[str, Any]:
        """One optimiser step: the hops of the class docstring; returns the step's record."""
        cfg, acc = self.config, self.accelerator
        t0 = time.perf_counter()
        self._nonfinite_in_step = False
        losses, totals, queries = [], [], 0
        per: dict[str, list[torch.Tensor]] = {}
        extras: dict[str, list[float]] = {}
        for micro in range(cfg.optim.grad_accum):
            # Keyed by the global sample index (the trailing 0 keeps the seeds of one-process runs).
            index = self.layout.sample_index(micro)
            rng = random.Random(derive_seed(cfg.train.seed, "rng", step, index, 0))
            gen = torch.Generator().manual_seed(derive_seed(cfg.train.seed, "noise", step, index, 0))
            batch = self.source.batch(cfg.train.batch_size, rng)
            if self.layout.lockstep:  # the same kept steps (and expert) on every process: run/sharding.py
                rng = random.Random(derive_seed(cfg.train.seed, "shared", step, micro))
            out = self.method.step(self.ctx, batch, gen, rng)
            queries += (
                out.reward_queries
                if out.reward_queries is not None
                else self.method.reward_queries_per_step(cfg.train.batch_size)
            )
            losses.append(out.loss)
            totals.append(out.reward.float().cpu())
            for k, v in out.rewards.items():
                per.setdefault(k, []).append(v.float().cpu())
            for k, x in out.extras.items():
                extras.setdefault(k, []).append(float(x))
        skipped = self._nonfinite_in_step
        grad_norm = float("nan")
        if not skipped:
            if not self.layout.sharded:  # FSDP reduce-scatters the gradients in backward
                distributed.reduce_gradients(self.params, acc.num_processes)
            if cfg.optim.grad_clip is not None:
                gn = sharding.full(acc.clip_grad_norm_(self.params, cfg.optim.grad_clip))
            else:
                gn = sharding.grad_norm(self.params)
            grad_norm = float(gn)
            skipped = not math.isfinite(grad_norm)
        skipped = distributed.any_process(acc, skipped)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.state.consecutive_nonfinite += 1
        else:
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.consecutive_nonfinite = 0
        self.state.reward_queries += distributed.total(acc, queries)
        self.ctx.num_reward_queries = self.state.reward_queries  # deprecated; for methods that still read it

        def mean(values: torch.Tensor) -> float | None:  # over every process's videos
            return finite_or_none(float(distributed.gather(acc, values).float().mean()))

        rec = {
            "step": step,
            "loss": mean(torch.tensor(losses, dtype=torch.float32)),
            "reward": mean(torch.cat(totals)),
            "rewards": {k: mean(torch.cat(v)) for k, v in per.items()},
            "lr": float(self.lr_scheduler.get_last_lr()[0]),
            "grad_norm": finite_or_none(grad_norm),
            "skipped": skipped,
            "reward_queries": self.state.reward_queries,
            "step_time": time.perf_counter() - t0,
        }
        if extras:
            rec["extras"] = {k: finite_or_none(sum(v) / len(v)) for k, v in extras.items()}
        return rec

    # ------------------------------------------------------------------ the lifecycle
    def run(self, resume: str | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Train; returns the summary (also written to ``summary.json``).

        The output directory is checked before any model loads; SIGTERM and SIGUSR1 are handled like
        Ctrl-C (see :mod:`vader_core.faults`)."""
        check_output_dir(self.out, resume, overwrite)
        self._overwrite = overwrite
        check_inputs(self.config, backbone_class(self.config.backbone.name).conditioning)
        # Several processes stop together at a step boundary (see vader_core.faults.preemption_signals).
        with preemption_signals(defer=int(os.environ.get("WORLD_SIZE", "1")) > 1) as self._signals:
            return self._run(resume)

    def _start(self, resume: str | None) -> None:
        """Load everything, then either resume (state, records, best and early stop replayed) or start afresh."""
        self._setup()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.is_main and clean_temporaries(self.out / "checkpoints"):
            self.log("removed temporary checkpoint folders an interrupted save left behind")
        if resume:
            resume_run(
                resume,
                self.out,
                self.backbone,
                self.params,
                self.optimizer,
                self.lr_scheduler,
                self.state,
                self.config,
                self.is_main,
                self.log,
                self.layout,
            )
            self.ctx.num_reward_queries = self.state.reward_queries
        else:
            existing = list_checkpoints(self.out / "checkpoints")
            if existing:
                raise CheckpointError(
                    f"{self.out} already holds checkpoints (up to {existing[-1].name}); continue with "
                    "--resume latest, or pick another --output-dir"
                )
            if self.is_main:
                if self._overwrite:
                    removed = clear_earlier_run(self.out)  # after the models loaded: a bad config deletes nothing
                    if removed:
                        self.log(f"--overwrite: removed the earlier run's {', '.join(removed)} from {self.out}")
                for name in ("metrics.jsonl", "validation.jsonl"):
                    (self.out / name).unlink(missing_ok=True)
        if self.is_main:
            (self.out / "config.yaml").write_text(self.config.to_yaml())
        self._stop_requested = self.validator.replay(self.state.validation)

    def _run(self, resume: str | None) -> dict[str, Any]:
        cfg = self.config
        self._start(resume)
        writer = make_logger(cfg, self.out, self.is_main)
        step = start = self.state.step
        last_saved = start if resume else None
        try:
            # Inside the try: a signal during the step-0 validation still leaves a checkpoint (step-0).
            if not any(v["step"] == 0 for v in self.state.validation) and start == 0:
                self.validate(0)
            with progress(self.progress and self.is_main) as bar:
                task = bar.add_task(
                    "train", total=cfg.train.max_steps, completed=start, reward=float("nan"), step_time=float("nan")
                )
                while step < cfg.train.max_steps and not self._stop_requested:
                    rec = self.train_step(step + 1)
                    step += 1
                    self.state.step = step
                    self.state.history.append(rec)
                    if self.is_main:
                        append_jsonl(self.out / "metrics.jsonl", rec)
                        writer(rec)
                    bar.update(
                        task,
                        advance=1,
                        reward=rec["reward"] if rec["reward"] is not None else float("nan"),
                        step_time=rec["step_time"],
                    )
                    if self.state.consecutive_nonfinite >= cfg.train.non_finite_patience:
                        kept = last_saved if last_saved is not None else "none"
                        raise NonFiniteLossError(
                            f"{self.state.consecutive_nonfinite} non-finite losses in a row (step {step}); stopped. "
                            f"Last good checkpoint: step {kept}. Lower `optim.lr`, use fp32/bf16, or check the rewards"
                        )
                    if cfg.validation.every and step % cfg.validation.every == 0 and step < cfg.train.max_steps:
                        self.validate(step)
                        self.plot()
                    if cfg.output.checkpoint_every and step % cfg.output.checkpoint_every == 0:
                        self.save(step)
                        last_saved = step
                    if distributed.any_process(self.accelerator, bool(self._signals)):
                        raise Preempted(self._signals[0] if self._signals else signal.SIGTERM)
        except KeyboardInterrupt as stop:
            with deferred_signals():
                if step > (last_saved or 0) or last_saved is None:
                    path = self.save(step)
                else:
                    path = self.out / "checkpoints" / f"step-{step}"
                self.plot()
            why = f"stopped by {stop.signame}" if hasattr(stop, "signame") else "interrupted"
            err = InterruptedRun(f"{why} at step {step}; checkpoint saved to {path}; continue with --resume latest")
            err.exit_code = getattr(stop, "exit_code", InterruptedRun.exit_code)
            raise err from None
        if last_saved != step:
            self.save(step)
        if not any(v["step"] == step for v in self.state.validation):
            self.validate(step)
        self.plot()
        self.validator.before_after(step)
        return self._summary(step)

    def _summary(self, step: int) -> dict[str, Any]:
        data = summary(
            self.state,
            step,
            self.out,
            device=str(self.device),
            precision=self.precision,
            processes=self.accelerator.num_processes,
        )
        data.update(self.guard.summary(str(self.out / "best")))
        if self.is_main:
            (self.out / "summary.json").write_text(json.dumps(data, indent=2))
        return data
