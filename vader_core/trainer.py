"""The trainer: accelerate for devices, precision and processes; peft LoRA on the denoiser.

Gradients are averaged across processes by one all-reduce of the LoRA gradients per optimiser step
(no DDP wrapper: a backbone calls its denoiser several times per step, with truncation and
checkpointing, which DDP's per-forward hooks do not suit; LoRA gradients are small).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import (clean_temporaries, find_resume, list_checkpoints, load_checkpoint, save_checkpoint,
                         set_rng_state)
from .config import VaderConfig
from .data import training_source, validation_prompts
from .errors import CheckpointError, ConfigError, InterruptedRun, MissingDependencyError, NonFiniteLossError
from .lora import add_lora, config_metadata, lora_parameters, lora_state_dict, set_lora_training
from .method import TrainContext
from .resolve import (backbone_class, build_backbone, build_method, build_metrics, build_objective, load_backbone,
                      resolve_config, resolve_device, resolve_precision, torch_dtype)


def derive_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from ``parts`` (run seed, step, micro-step, process ...)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


@dataclass
class RunState:
    step: int = 0
    consecutive_nonfinite: int = 0
    reward_queries: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Runs a training job from a :class:`VaderConfig`.

    Args:
        config (`VaderConfig`): the configuration; plugin options are resolved here.
        progress (`bool`, *optional*, defaults to `True`): show a rich progress bar.
        tiny (`bool`, *optional*, defaults to `False`): use tiny random components for the backbone and
            rewards (tests of plugins that otherwise need weights).
        log (`Callable[[str], None]`, *optional*): where to print status lines.
    """

    def __init__(self, config: VaderConfig, progress: bool = True, tiny: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.config = resolve_config(config)
        self.progress = progress
        self.tiny = tiny
        self.log = log or (lambda s: None)
        self.out = Path(self.config.output.dir)
        self.state = RunState()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        from accelerate import Accelerator

        cfg = self.config
        device = cfg.device
        if device and device.startswith("cuda:"):
            torch.cuda.set_device(int(device.split(":", 1)[1]))
        self.precision = resolve_precision(cfg.precision, resolve_device(device))
        mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.precision]
        from accelerate.state import AcceleratorState

        # A second run in one process (notebooks, tests) may change precision; keep the process group.
        AcceleratorState._reset_state(reset_partial_state=False)
        self.accelerator = Accelerator(mixed_precision=mp, cpu=device == "cpu")
        acc = self.accelerator
        self.device = acc.device
        self.weight_dtype = torch_dtype(self.precision)
        self.is_main = acc.is_main_process

        torch.manual_seed(derive_seed(cfg.train.seed, "init", acc.process_index))
        random.seed(derive_seed(cfg.train.seed, "py", acc.process_index))
        np.random.seed(derive_seed(cfg.train.seed, "np") % (2**32))

        self.backbone = load_backbone(build_backbone(cfg.backbone), self.device, self.weight_dtype, tiny=self.tiny,
                                      seed=cfg.train.seed)
        from .offload import offload_encoders

        self.encoder_offload = offload_encoders(self.backbone, cfg.memory, self.device)
        denoiser = self.backbone.denoiser
        targets = cfg.lora.target_modules or list(self.backbone.default_lora_targets)
        self.lora_config = add_lora(denoiser, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, targets)
        set_lora_training(denoiser, True)
        self.params = lora_parameters(denoiser)
        if not self.params:
            raise ConfigError("LoRA added no trainable parameters; check `lora.target_modules`")

        self.objective = build_objective(cfg.rewards)
        self.objective.load(self.device, self.weight_dtype, tiny=self.tiny, seed=cfg.train.seed)
        self.method = build_method(cfg.method)
        if cfg.regularization.kl > 0 and not getattr(type(self.method), "supports_kl_guard", False):
            raise ConfigError(f"method `{cfg.method.name}` does not apply the KL guard; set regularization.kl=0 "
                              "or use --method vader")
        from .guard import ValidationGuard

        self.guard = ValidationGuard(cfg.validation, build_metrics(
            cfg.validation.metrics, self.device, self.weight_dtype, tiny=self.tiny, seed=cfg.train.seed))
        self._stop_requested = False
        self.source = training_source(cfg.train, self.backbone.conditioning, self.backbone)
        self.val_prompts, self.val_images = validation_prompts(cfg, self.source, self.backbone)

        o = cfg.optim
        optimizer = torch.optim.AdamW(self.params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, eps=o.eps)
        from diffusers.optimization import get_scheduler

        self.lr_scheduler = get_scheduler(
            o.schedule, optimizer=optimizer, num_warmup_steps=o.warmup_steps,
            num_training_steps=max(cfg.train.max_steps, 1),
        )
        self.optimizer = acc.prepare(optimizer)
        self._nonfinite_in_step = False
        self.ctx = TrainContext(
            config=cfg, backbone=self.backbone, objective=self.objective, autocast=self._autocast,
            backward=self._backward, trainable=self.params,
            draw_batch=lambda rng: self.source.batch(cfg.train.batch_size, rng),
        )
        self.method.setup(self.ctx)

    def _autocast(self) -> Any:
        return self.accelerator.autocast() if self.precision != "fp32" else nullcontext()

    def _backward(self, loss: torch.Tensor) -> bool:
        if not torch.isfinite(loss.detach()).all():
            self._nonfinite_in_step = True
            return False
        self.accelerator.backward(loss / self.config.optim.grad_accum)
        return True

    # ------------------------------------------------------------------ helpers
    def _reduce_grads(self) -> None:
        n = self.accelerator.num_processes
        if n == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.flatten() for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= n
        offset = 0
        for p in self.params:
            k = p.numel()
            p.grad = flat[offset:offset + k].view_as(p).clone()
            offset += k

    def _gather_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return values
        return self.accelerator.gather(values.to(self.device).contiguous())

    def _lora_sd(self) -> dict[str, torch.Tensor]:
        return lora_state_dict(self.backbone.denoiser, self.backbone.denoiser_name)

    def _lora_meta(self) -> dict[str, Any]:
        return config_metadata(self.lora_config, self.backbone.denoiser_name)

    def save(self, step: int) -> Path | None:
        path = None
        if self.is_main:
            path = save_checkpoint(
                self.out / "checkpoints", step, self._lora_sd(), self._lora_meta(), self.optimizer,
                self.lr_scheduler,
                {"consecutive_nonfinite": self.state.consecutive_nonfinite,
                 "reward_queries": self.state.reward_queries,
                 "backbone": self.config.backbone.name, "rewards": [r.name for r in self.config.rewards],
                 "max_steps": self.config.train.max_steps},
                keep=self.config.output.keep_checkpoints,
            )
        self.accelerator.wait_for_everyone()
        return path

    def _resume(self, spec: str) -> None:
        from peft import set_peft_model_state_dict

        path = find_resume(spec, self.out)
        ck = load_checkpoint(path)
        prefix = self.backbone.denoiser_name + "."
        sd = {k[len(prefix):]: v for k, v in ck["lora"].items() if k.startswith(prefix)}
        own = self._lora_sd()
        if set(own) != set(ck["lora"]) or any(own[k].shape != v.shape for k, v in ck["lora"].items()):
            raise ConfigError(
                f"checkpoint {path} does not match this run's LoRA (backbone or `lora` settings differ)"
            )
        set_peft_model_state_dict(self.backbone.denoiser, sd)
        for p in self.params:
            p.data = p.data.float()
        self.optimizer.load_state_dict(ck["optimizer"])
        self.lr_scheduler.load_state_dict(ck["scheduler"])
        set_rng_state(ck["rng"])
        st = ck["state"]
        self.state.step = int(st["step"])
        self.state.consecutive_nonfinite = int(st.get("consecutive_nonfinite", 0))
        self.state.reward_queries = int(st.get("reward_queries", 0))
        self.ctx.num_reward_queries = self.state.reward_queries
        self.state.history = [r for r in _read_jsonl(self.out / "metrics.jsonl") if r["step"] <= self.state.step]
        self.state.validation = [r for r in _read_jsonl(self.out / "validation.jsonl") if r["step"] <= self.state.step]
        if self.is_main:
            _write_jsonl(self.out / "metrics.jsonl", self.state.history)
            _write_jsonl(self.out / "validation.jsonl", self.state.validation)
        self.log(f"resumed from {path} at step {self.state.step}")
        note = schedule_change_note(st, self.config)
        if note:
            self.log(note)

    # ------------------------------------------------------------------ validation
    def validate(self, step: int) -> dict[str, Any]:
        from .sampling import generate

        den = self.backbone.denoiser
        set_lora_training(den, False)
        totals: list[torch.Tensor] = []
        per: dict[str, list[torch.Tensor]] = {t.name: [] for t in self.objective.terms}
        videos = []
        seeds = self.config.validation.seeds
        for i, seed in enumerate(seeds):
            if step == 0:  # the first thing a run does; on a large model it takes minutes
                self.log(f"validation before training: seed {seed} ({i + 1}/{len(seeds)}), "
                         f"{len(self.val_prompts)} prompt(s)")
            gen = torch.Generator().manual_seed(seed)
            video = generate(self.backbone, self.val_prompts, self.val_images, gen, autocast=self._autocast,
                             chunk_size=self.config.memory.decode_chunk_size)
            with torch.no_grad(), self._autocast():
                total, scores = self.objective(video, self.val_prompts)
            totals.append(total.float().cpu())
            for k, v in scores.items():
                per[k].append(v.float().cpu())
            videos.append((seed, video.cpu()))
        set_lora_training(den, True)
        rec = {
            "step": step,
            "reward": float(torch.cat(totals).mean()),
            "rewards": {k: float(torch.cat(v).mean()) for k, v in per.items()},
        }
        # Guard metrics: scored on these held-out videos only, never on training samples (no loss).
        if self.guard.metrics:
            rec["metrics"] = self.guard.score([v for _, v in videos], self.val_prompts)
        parts = ", ".join(f"{k} {v:.4f}" for k, v in rec["rewards"].items())
        guards = "".join(f"; {k} {v:.4f}" for k, v in rec.get("metrics", {}).items())
        self.log(f"step {step}: held-out reward {rec['reward']:.4f} ({parts}{guards})")
        improved, stop = self.guard.update(rec)
        if self.is_main:
            # The record first: a resumed run replays it, so best/ never holds a step the records do not name.
            self.state.validation.append(rec)
            _append_jsonl(self.out / "validation.jsonl", rec)
        if improved:
            self._save_best(step)
        if stop:
            s = self.guard.stopper
            self.log(f"step {step}: early stop, `{s.metric}` fell from {s.start:.4f} to {s.last:.4f} "
                     f"(margin {s.margin})")
            self._stop_requested = True
        if self.is_main and self.config.validation.save_videos:
            self._save_samples(step, videos)
        return rec

    def _save_best(self, step: int) -> None:
        """The LoRA of the best validation so far to ``best/`` (written aside, then renamed into place)."""
        import shutil

        from .lora import WEIGHTS_NAME, save_lora

        if not self.is_main:
            return
        d, tmp = self.out / "best", self.out / ".best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_lora(tmp / WEIGHTS_NAME, self._lora_sd(), self._lora_meta())
        (tmp / "best.json").write_text(json.dumps(
            {"step": step, "value": self.guard.best.value, "select": self.guard.best.weights}, indent=2))
        from .faults import deferred_signals

        old = self.out / ".best.old"
        with deferred_signals():  # never a moment without best/ once there was one
            shutil.rmtree(old, ignore_errors=True)
            if d.exists():
                d.rename(old)
            tmp.rename(d)
            shutil.rmtree(old, ignore_errors=True)

    def _save_samples(self, step: int, videos: list[tuple[int, torch.Tensor]]) -> None:
        from .media import slug, write_video

        d = self.out / "samples" / f"step-{step:06d}"
        for seed, video in videos:
            for i, prompt in enumerate(self.val_prompts):
                stem = f"seed{seed}-{i}-{slug(prompt, lower=True, max_len=40)}"
                write_video(d / f"{stem}.mp4", video[i])
                write_video(d / f"{stem}.gif", video[i])

    def _before_after(self, step: int) -> Path | None:
        """Step-0 and final validation videos side by side (same prompts and seeds)."""
        from .media import read_video, side_by_side, slug, write_video

        if not (self.is_main and self.config.validation.save_videos) or step == 0:
            return None
        first, last = self.out / "samples" / "step-000000", self.out / "samples" / f"step-{step:06d}"
        d = self.out / "samples" / "before_after"
        for seed in self.config.validation.seeds:
            for i, prompt in enumerate(self.val_prompts):
                stem = f"seed{seed}-{i}-{slug(prompt, lower=True, max_len=40)}"
                if not (first / f"{stem}.gif").is_file() or not (last / f"{stem}.gif").is_file():
                    continue
                pair = side_by_side([read_video(first / f"{stem}.gif"), read_video(last / f"{stem}.gif")])
                write_video(d / f"{stem}.gif", pair)
                write_video(d / f"{stem}.mp4", pair)
        return d

    def plot(self) -> Path | None:
        if not self.is_main or not self.state.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
        xs = [r["step"] for r in self.state.history if r.get("reward") is not None]
        ys = [r["reward"] for r in self.state.history if r.get("reward") is not None]
        ax.plot(xs, ys, lw=1, alpha=0.5, label="training reward")
        if len(ys) >= 5:
            w = max(2, len(ys) // 10)
            smooth = np.convolve(ys, np.ones(w) / w, mode="valid")
            ax.plot(xs[w - 1:], smooth, lw=2, label=f"training (mean of {w})")
        if self.state.validation:
            ax.plot([r["step"] for r in self.state.validation], [r["reward"] for r in self.state.validation],
                    "o-", lw=2, label="held-out validation reward")
        guarded = [r for r in self.state.validation if r.get("metrics")]
        if guarded:
            ax2 = ax.twinx()
            for name in guarded[0]["metrics"]:
                pts = [(r["step"], r["metrics"][name]) for r in guarded if name in r["metrics"]]
                ax2.plot(*zip(*pts), "s--", lw=1.5, color=None, label=f"guard: {name} (right axis)")
            ax2.set_ylabel("guard metric (held-out)")
            ax2.legend(fontsize=8, loc="lower right")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("weighted reward")
        ax.set_title(f"{self.config.backbone.name}: " + " + ".join(r.name for r in self.config.rewards))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.out / "reward_curve.png"
        fig.savefig(path)
        plt.close(fig)
        return path

    # ------------------------------------------------------------------ main loop
    def train_step(self, step: int) -> dict[str, Any]:
        cfg = self.config
        acc = self.accelerator
        t0 = time.perf_counter()
        self._nonfinite_in_step = False
        losses, totals = [], []
        per: dict[str, list[torch.Tensor]] = {}
        extras: dict[str, list[float]] = {}
        for micro in range(cfg.optim.grad_accum):
            rank = acc.process_index
            rng = random.Random(derive_seed(cfg.train.seed, "rng", step, micro, rank))
            gen = torch.Generator().manual_seed(derive_seed(cfg.train.seed, "noise", step, micro, rank))
            batch = self.source.batch(cfg.train.batch_size, rng)
            out = self.method.step(self.ctx, batch, gen, rng)
            losses.append(out.loss)
            totals.append(out.reward.float().cpu())
            for k, v in out.rewards.items():
                per.setdefault(k, []).append(v.float().cpu())
            for k, x in out.extras.items():
                extras.setdefault(k, []).append(float(x))
        skipped = self._nonfinite_in_step
        grad_norm = float("nan")
        if not skipped:
            self._reduce_grads()
            if cfg.optim.grad_clip is not None:
                gn = acc.clip_grad_norm_(self.params, cfg.optim.grad_clip)
            else:
                gn = torch.norm(torch.stack([p.grad.norm() for p in self.params if p.grad is not None]))
            grad_norm = float(gn)
            if not math.isfinite(grad_norm):
                skipped = True
        # Every process decides alike: skip if any process saw a non-finite value.
        if acc.num_processes > 1:
            flag = torch.tensor([1.0 if skipped else 0.0], device=self.device)
            skipped = bool(acc.reduce(flag, reduction="sum").item() > 0)
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
            self.state.consecutive_nonfinite += 1
        else:
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.consecutive_nonfinite = 0
        self.state.reward_queries = self.ctx.num_reward_queries * acc.num_processes
        total = self._gather_mean(torch.cat(totals)).float().mean()
        loss_t = self._gather_mean(torch.tensor(losses, dtype=torch.float32)).mean()
        rec = {
            "step": step,
            "loss": _finite_or_none(float(loss_t)),
            "reward": _finite_or_none(float(total)),
            "rewards": {k: _finite_or_none(float(self._gather_mean(torch.cat(v)).mean())) for k, v in per.items()},
            "lr": float(self.lr_scheduler.get_last_lr()[0]),
            "grad_norm": _finite_or_none(grad_norm),
            "skipped": skipped,
            "reward_queries": self.state.reward_queries,
            "step_time": time.perf_counter() - t0,
        }
        if extras:
            rec["extras"] = {k: _finite_or_none(sum(v) / len(v)) for k, v in extras.items()}
        return rec

    def run(self, resume: str | None = None) -> dict[str, Any]:
        """Train; returns the summary (also written to ``summary.json``).

        The output directory is checked before any model loads; SIGTERM and SIGUSR1 are handled like
        Ctrl-C (see :mod:`vader_core.faults`)."""
        from .faults import check_output_dir, preemption_signals

        check_output_dir(self.out, resume)
        from .faults import check_inputs

        check_inputs(self.config, backbone_class(self.config.backbone.name).conditioning)
        with preemption_signals():
            return self._run(resume)

    def _run(self, resume: str | None) -> dict[str, Any]:
        cfg = self.config
        self._setup()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.is_main and clean_temporaries(self.out / "checkpoints"):
            self.log("removed temporary checkpoint folders an interrupted save left behind")
        if resume:
            self._resume(resume)
        else:
            existing = list_checkpoints(self.out / "checkpoints")
            if existing:
                raise CheckpointError(
                    f"{self.out} already holds checkpoints (up to {existing[-1].name}); continue with "
                    "--resume latest, or pick another --output-dir"
                )
        if not resume and self.is_main:
            for name in ("metrics.jsonl", "validation.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        if self.is_main:
            (self.out / "config.yaml").write_text(cfg.to_yaml())
        writer = self._make_logger()
        start = self.state.step
        self._stop_requested = False
        for v in self.state.validation:  # a resumed run's best and early-stop state
            _, stopped = self.guard.update(v)
            if stopped:  # it stopped early before: resuming does not train past its own stop
                s = self.guard.stopper
                self.log(f"this run stopped early at step {v['step']} (`{s.metric}` fell by more than {s.margin}); "
                         "not training further: raise validation.early_stop.margin in a new run to go on")
                self._stop_requested = True
        progress = self._progress(start)
        step = start
        last_saved = start if resume else None
        try:
            # Inside the try: a signal during the step-0 validation still leaves a checkpoint (step-0).
            if not any(v["step"] == 0 for v in self.state.validation) and start == 0:
                self.validate(0)
            with progress as bar:
                task = bar.add_task("train", total=cfg.train.max_steps, completed=start, reward=float("nan"),
                                    step_time=float("nan"))
                while step < cfg.train.max_steps and not self._stop_requested:
                    rec = self.train_step(step + 1)
                    step += 1
                    self.state.step = step
                    self.state.history.append(rec)
                    if self.is_main:
                        _append_jsonl(self.out / "metrics.jsonl", rec)
                        writer(rec)
                    bar.update(task, advance=1, reward=rec["reward"] if rec["reward"] is not None else float("nan"),
                               step_time=rec["step_time"])
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
                    if self._stop_requested:
                        break
        except KeyboardInterrupt as stop:
            from .faults import deferred_signals

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
        self._before_after(step)
        return self._summary(step)

    def _summary(self, step: int) -> dict[str, Any]:
        val = {v["step"]: v for v in self.state.validation}
        first = val.get(0)
        last = val.get(step)
        hist = [r["reward"] for r in self.state.history if r.get("reward") is not None]
        summary = {
            "steps": step,
            "heldout_reward_before": first["reward"] if first else None,
            "heldout_reward_after": last["reward"] if last else None,
            "heldout_rewards_before": first["rewards"] if first else None,
            "heldout_rewards_after": last["rewards"] if last else None,
            "train_reward_first": hist[0] if hist else None,
            "train_reward_last": hist[-1] if hist else None,
            "reward_queries": self.state.reward_queries,
            "checkpoint": str(self.out / "checkpoints" / f"step-{step}"),
            "output_dir": str(self.out),
            "device": str(self.device),
            "precision": self.precision,
            "processes": self.accelerator.num_processes,
        }
        if self.state.validation and self.state.validation[-1].get("metrics"):
            summary["heldout_metrics_before"] = first.get("metrics") if first else None
            summary["heldout_metrics_after"] = last.get("metrics") if last else None
        summary.update(self.guard.summary(str(self.out / "best")))
        if self.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _make_logger(self) -> Callable[[dict[str, Any]], None]:
        kind = self.config.output.logger
        if not self.is_main or kind == "none":
            return lambda rec: None
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MissingDependencyError("logger `tensorboard` needs `pip install tensorboard`") from None
            tb = SummaryWriter(str(self.out / "tensorboard"))

            def log_tb(rec: dict[str, Any]) -> None:
                for k in ("loss", "reward", "lr", "grad_norm", "step_time"):
                    if rec.get(k) is not None:
                        tb.add_scalar(f"train/{k}", rec[k], rec["step"])
                for k, v in rec["rewards"].items():
                    if v is not None:
                        tb.add_scalar(f"reward/{k}", v, rec["step"])
                for k, v in rec.get("extras", {}).items():
                    if v is not None:
                        tb.add_scalar(f"extras/{k}", v, rec["step"])
                tb.flush()

            return log_tb
        try:
            import wandb
        except ImportError:
            raise MissingDependencyError("logger `wandb` needs `pip install wandb` (or `pip install vader[wandb]`)") from None
        run = wandb.init(project=self.config.output.wandb_project, config=json.loads(self.config.model_dump_json()),
                         dir=str(self.out))

        def log_wandb(rec: dict[str, Any]) -> None:
            run.log({**{k: v for k, v in rec.items() if k != "rewards"},
                     **{f"reward/{k}": v for k, v in rec["rewards"].items()}}, step=rec["step"])

        return log_wandb

    def _progress(self, start: int) -> Any:
        if not (self.progress and self.is_main):
            return _NoProgress()
        return _rich_progress()


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        return None


def _rich_progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
        TextColumn("reward {task.fields[reward]:.4f}"),
        TextColumn("{task.fields[step_time]:.2f} s/step"), TimeRemainingColumn(),
    )


def schedule_change_note(state: dict[str, Any], config: VaderConfig) -> str | None:
    """The one line said when a resumed run's ``train.max_steps`` differs from the checkpoint's and the
    learning-rate schedule depends on it (``linear``, ``cosine``): the schedule follows the new length."""
    before = state.get("max_steps")
    now = config.train.max_steps
    if before is None or int(before) == now or config.optim.schedule not in ("linear", "cosine"):
        return None
    return (f"note: resuming with train.max_steps {now} (the run started with {before}): the "
            f"`{config.optim.schedule}` learning-rate schedule now spans {now} steps from step {state['step']} on")


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line after a crash
    return out


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
