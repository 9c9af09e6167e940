"""The trainer: accelerate for devices, precision and processes; peft LoRA on the denoiser.

This module holds the run's lifecycle and its step; what a run does around the steps lives in
:mod:`vader_core.run` (validation, records, loggers, save and resume, the optimiser's update, what
processes exchange).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from .config import VaderConfig
from .data import training_source, validation_prompts
from .errors import ConfigError, InterruptedRun, NonFiniteLossError
from .faults import Preempted, check_inputs, check_output_dir, deferred_signals, preemption_signals
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
from .run import state as run_state
from .run.distributed import derive_seed, make_accelerator, seed_process
from .run.loggers import make_logger, progress
from .run.optim import Update, make_optimizer
from .run.records import RunState, StepTally, append_jsonl, finite_or_none, plot_reward_curve, summary
from .run.state import schedule_change_note, start_fresh
from .run.validation import Validator
from .speed import apply_speed

__all__ = ["RunState", "Trainer", "derive_seed", "resolve_precision", "schedule_change_note"]


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
    8-10. :class:`vader_core.run.optim.Update`: cross-process gradient reduction
       (:func:`vader_core.run.distributed.reduce_gradients`), clip (``accelerator.clip_grad_norm_``,
       ``optim.grad_clip``), optimizer step, then the learning-rate schedule; every process skips it when
       any saw a non-finite value (:func:`vader_core.run.distributed.any_process`).

    Around the steps, :meth:`run` validates (:class:`vader_core.run.validation.Validator`), writes records
    (:mod:`vader_core.run.records`: :class:`~vader_core.run.records.StepTally` turns the micro-steps into the
    step's record) and logs (:mod:`vader_core.run.loggers`), saves checkpoints, resumes or starts afresh
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
        cfg = self.config
        self.precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
        self.accelerator = make_accelerator(cfg.device, self.precision)
        self.device, self.weight_dtype = self.accelerator.device, torch_dtype(self.precision)
        self.is_main = self.accelerator.is_main_process
        acc = self.accelerator
        self.layout = sharding.layout_of(cfg.distributed, acc.num_processes, acc.process_index)
        seed_process(cfg.train.seed, self.layout.rank)

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
        self.method = build_method(cfg.method)  # resolve_config refused a KL guard the method does not apply
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
            share=lambda rec: distributed.from_main(self.accelerator, rec),
        )

    def _prepare_optimizer(self) -> None:
        cfg = self.config
        optimizer, self.lr_scheduler = make_optimizer(self.params, cfg.optim, cfg.train.max_steps)
        self.optimizer = self.accelerator.prepare(optimizer)
        acc, o = self.accelerator, cfg.optim
        self._update = Update(self.params, self.optimizer, self.lr_scheduler, acc, self.layout, o.grad_clip)
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
        """A checkpoint of ``step``: collectives on every process, written by the main one; all wait for it."""
        return run_state.save(
            self.out,
            step,
            self._lora_sd(),
            self._lora_meta(),
            self.optimizer,
            self.lr_scheduler,
            self.state,
            self.config,
            self.accelerator,
            self.layout,
            self.backbone.denoiser,
        )

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
        tally = StepTally()
        for micro in range(cfg.optim.grad_accum):
            # Keyed by the global sample index (the trailing 0 keeps the seeds of one-process runs).
            index = self.layout.sample_index(micro)
            rng = random.Random(derive_seed(cfg.train.seed, "rng", step, index, 0))
            gen = torch.Generator().manual_seed(derive_seed(cfg.train.seed, "noise", step, index, 0))
            batch = self.source.batch(cfg.train.batch_size, rng)
            if self.layout.lockstep:  # the same kept steps (and expert) on every process: run/sharding.py
                rng = random.Random(derive_seed(cfg.train.seed, "shared", step, micro))
            out = self.method.step(self.ctx, batch, gen, rng)
            queries = out.reward_queries
            tally.add(out, self.method.reward_queries_per_step(cfg.train.batch_size) if queries is None else queries)
        skipped, grad_norm = self._update(self._nonfinite_in_step)
        self.state.consecutive_nonfinite = self.state.consecutive_nonfinite + 1 if skipped else 0
        self.state.reward_queries += distributed.total(acc, tally.queries)
        self.ctx.num_reward_queries = self.state.reward_queries  # deprecated; for methods that still read it
        return tally.record(
            acc,
            step,
            lr=float(self.lr_scheduler.get_last_lr()[0]),
            grad_norm=finite_or_none(grad_norm),
            skipped=skipped,
            reward_queries=self.state.reward_queries,
            step_time=time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ the lifecycle
    def close(self) -> None:
        """End a multi-process run's process group (:func:`vader_core.run.distributed.end`); call it when done."""
        distributed.end(getattr(self, "accelerator", None))

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
        if resume:
            run_state.resume(
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
            start_fresh(self.out, self._overwrite, self.is_main, self.log)
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
                    reward = rec["reward"] if rec["reward"] is not None else float("nan")
                    bar.update(task, advance=1, reward=reward, step_time=rec["step_time"])
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
                saved = last_saved is not None and step <= last_saved
                path = self.out / "checkpoints" / f"step-{step}" if saved else self.save(step)
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
        acc, best = self.accelerator, self.guard.summary(str(self.out / "best"))
        run = {"device": str(self.device), "precision": self.precision, "processes": acc.num_processes, **best}
        return summary(self.state, step, self.out, write=self.is_main, **run)
