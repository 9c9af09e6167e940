"""Validation of a run: the held-out videos and their rewards, guard metrics, ``best/``, samples, before/after."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import sampling
from ..errors import PluginContractError
from ..faults import deferred_signals
from ..lora import WEIGHTS_NAME, save_lora, set_lora_training
from ..media import read_video, side_by_side, slug, write_video
from ..reward import plugin_label
from .records import RunState, append_jsonl

if TYPE_CHECKING:  # pragma: no cover
    from ..backbone import BackbonePlugin
    from ..config import VaderConfig
    from ..guard import ValidationGuard
    from ..objective import Objective


class Validator:
    """Generates the held-out prompts from fixed seeds (LoRA dropout off), scores them and keeps the records.

    Args:
        config (`VaderConfig`): the resolved configuration (``validation``, ``memory.decode_chunk_size``).
        backbone (`BackbonePlugin`), objective (`Objective`), guard (`ValidationGuard`): what generates,
            scores, and decides best and early stop.
        prompts (`list[str]`), images (`list | None`): the held-out prompts (and images).
        out (`Path`): the run's directory.
        autocast (`Callable[[], ContextManager]`): the run's mixed-precision context.
        lora (`Callable[[], tuple[dict, dict]]`): the LoRA state dict and metadata now, for ``best/``.
        is_main (`bool`): whether this process writes files.
        log (`Callable[[str], None]`): where status lines go.
        share (`Callable[[dict], dict]`, *optional*): the main process's record on every process (a
            collective in a run of several processes), so that every process takes the same best and
            early-stop decisions and enters the same collectives (``best/`` gathers a sharded LoRA).
    """

    def __init__(
        self,
        config: VaderConfig,
        backbone: BackbonePlugin,
        objective: Objective,
        guard: ValidationGuard,
        prompts: list[str],
        images: list[Any] | None,
        out: Path,
        autocast: Callable[[], AbstractContextManager[Any]],
        lora: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
        is_main: bool,
        log: Callable[[str], None],
        share: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.config, self.backbone, self.objective, self.guard = config, backbone, objective, guard
        self.prompts, self.images, self.out = prompts, images, out
        self.autocast, self.lora, self.is_main, self.log = autocast, lora, is_main, log
        self.share = share or (lambda rec: rec)

    def __call__(self, step: int, state: RunState) -> tuple[dict[str, Any], bool]:
        """Validate at ``step``: the record (also appended to ``state`` and ``validation.jsonl``) and whether
        the run should stop early."""
        den = self.backbone.denoiser
        set_lora_training(den, False)
        totals: list[torch.Tensor] = []
        per: dict[str, list[torch.Tensor]] = {t.name: [] for t in self.objective.terms}
        videos = []
        seeds = self.config.validation.seeds
        for i, seed in enumerate(seeds):
            if step == 0:  # the first thing a run does; on a large model it takes minutes
                self.log(
                    f"validation before training: seed {seed} ({i + 1}/{len(seeds)}), {len(self.prompts)} prompt(s)"
                )
            gen = torch.Generator().manual_seed(seed)
            video = sampling.generate(
                self.backbone,
                self.prompts,
                self.images,
                gen,
                autocast=self.autocast,
                chunk_size=self.config.memory.decode_chunk_size,
            )
            with torch.no_grad(), self.autocast():
                total, scores = self.objective(video, self.prompts)
            if step == 0:
                self.check_finite(scores, seed)
            totals.append(total.float().cpu())
            for k, v in scores.items():
                per[k].append(v.float().cpu())
            videos.append((seed, video.cpu()))
        set_lora_training(den, True)
        rec: dict[str, Any] = {
            "step": step,
            "reward": float(torch.cat(totals).mean()),
            "rewards": {k: float(torch.cat(v).mean()) for k, v in per.items()},
        }
        # Guard metrics: scored on these held-out videos only, never on training samples (no loss).
        if self.guard.metrics:
            rec["metrics"] = self.guard.score([v for _, v in videos], self.prompts)
            bad = {k: v for k, v in rec["metrics"].items() if not math.isfinite(v)}
            if step == 0 and bad:
                k, v = next(iter(bad.items()))
                fn = self.guard.metrics[k]
                raise PluginContractError(
                    f"{plugin_label(getattr(fn, 'reward', fn))} (a guard metric) scored the validation videos {v} "
                    "before any training; every score must be finite: check it for a division by zero or a log of 0"
                )
        rec = self.share(rec)
        parts = ", ".join(f"{k} {v:.4f}" for k, v in rec["rewards"].items())
        guards = "".join(f"; {k} {v:.4f}" for k, v in rec.get("metrics", {}).items())
        self.log(f"step {step}: held-out reward {rec['reward']:.4f} ({parts}{guards})")
        improved, stop = self.guard.update(rec)
        # Every process keeps the record (the end of a run validates only a step without one); the file first:
        # a resumed run replays it, so best/ never holds a step the records do not name.
        state.validation.append(rec)
        if self.is_main:
            append_jsonl(self.out / "validation.jsonl", rec)
        if improved:
            self.save_best(step)
        if stop:
            s = self.guard.stopper
            assert s is not None  # only an early stopper stops
            self.log(
                f"step {step}: early stop, `{s.metric}` fell from {s.start:.4f} to {s.last:.4f} (margin {s.margin})"
            )
        if self.is_main and self.config.validation.save_videos:
            self.save_samples(step, videos)
        return rec, stop

    def check_finite(self, scores: dict[str, torch.Tensor], seed: int) -> None:
        """At the step-0 validation (the untrained model, before anything is saved): every reward's scores are
        finite, or one line naming the reward. A reward that is NaN from the start would skip every step."""
        for t in self.objective.terms:
            v = scores[t.name]
            if not bool(torch.isfinite(v).all()):
                shown = ", ".join(f"{x:g}" for x in v.float().cpu().tolist()[:4])
                raise PluginContractError(
                    f"{plugin_label(t.reward)} returned [{shown}] for the validation videos of seed {seed} before any "
                    "training; every score must be finite: check it for a division by zero or a log of 0"
                )

    def replay(self, records: Sequence[dict[str, Any]]) -> bool:
        """A resumed run's best and early-stop state from its validation records; whether it had stopped early
        (resuming does not train past its own stop)."""
        stopped = False
        for v in records:
            if self.guard.update(v)[1]:
                s = self.guard.stopper
                assert s is not None  # only an early stopper stops
                self.log(
                    f"this run stopped early at step {v['step']} (`{s.metric}` fell by more than {s.margin}); "
                    "not training further: raise validation.early_stop.margin in a new run to go on"
                )
                stopped = True
        return stopped

    def save_best(self, step: int) -> None:
        """The LoRA of the best validation so far to ``best/`` (written aside, then renamed into place)."""
        lora = self.lora()  # on every process: a sharded run gathers the LoRA collectively
        if not self.is_main:
            return
        d, tmp = self.out / "best", self.out / ".best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_lora(tmp / WEIGHTS_NAME, *lora)
        (tmp / "best.json").write_text(
            json.dumps({"step": step, "value": self.guard.best.value, "select": self.guard.best.weights}, indent=2)
        )
        old = self.out / ".best.old"
        with deferred_signals():  # never a moment without best/ once there was one
            shutil.rmtree(old, ignore_errors=True)
            if d.exists():
                d.rename(old)
            tmp.rename(d)
            shutil.rmtree(old, ignore_errors=True)

    def _stem(self, seed: int, i: int, prompt: str) -> str:
        return f"seed{seed}-{i}-{slug(prompt, lower=True, max_len=40, fallback='video')}"

    def save_samples(self, step: int, videos: Sequence[tuple[int, torch.Tensor]]) -> None:
        """Every validation video of ``step`` as mp4 and gif under ``samples/step-N/``."""
        d = self.out / "samples" / f"step-{step:06d}"
        for seed, video in videos:
            for i, prompt in enumerate(self.prompts):
                stem = self._stem(seed, i, prompt)
                write_video(d / f"{stem}.mp4", video[i])
                write_video(d / f"{stem}.gif", video[i])

    def before_after(self, step: int) -> Path | None:
        """Step-0 and final validation videos side by side (same prompts and seeds) under ``samples/before_after``."""
        if not (self.is_main and self.config.validation.save_videos) or step == 0:
            return None
        first, last = self.out / "samples" / "step-000000", self.out / "samples" / f"step-{step:06d}"
        d = self.out / "samples" / "before_after"
        for seed in self.config.validation.seeds:
            for i, prompt in enumerate(self.prompts):
                stem = self._stem(seed, i, prompt)
                if not (first / f"{stem}.gif").is_file() or not (last / f"{stem}.gif").is_file():
                    continue
                pair = side_by_side([read_video(first / f"{stem}.gif"), read_video(last / f"{stem}.gif")])
                write_video(d / f"{stem}.gif", pair)
                write_video(d / f"{stem}.mp4", pair)
        return d
