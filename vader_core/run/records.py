"""What a run writes as it goes: its state, the jsonl records, ``summary.json`` and the reward curve."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .distributed import gather

if TYPE_CHECKING:  # pragma: no cover
    from ..config import VaderConfig
    from ..method import StepOutput


@dataclass
class RunState:
    """Where a run stands: what a checkpoint saves and the records a resumed run replays.

    Attributes:
        step (`int`): optimiser steps done.
        consecutive_nonfinite (`int`): steps skipped in a row for a non-finite loss or gradient.
        reward_queries (`int`): videos scored by the rewards so far, over every process.
        history (`list[dict]`): one record per step (``metrics.jsonl``).
        validation (`list[dict]`): one record per validation (``validation.jsonl``).
    """

    step: int = 0
    consecutive_nonfinite: int = 0
    reward_queries: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)


class StepTally:
    """What the micro-steps of one optimiser step report (loss, rewards, extras, reward queries), turned into
    the step's record with every value averaged over the videos of every process."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.totals: list[torch.Tensor] = []
        self.per: dict[str, list[torch.Tensor]] = {}
        self.extras: dict[str, list[float]] = {}
        self.queries = 0

    def add(self, out: StepOutput, queries: int) -> None:
        """One micro-step's output; ``queries`` the videos its rewards scored."""
        self.queries += queries
        self.losses.append(float(out.loss))
        self.totals.append(out.reward.float().cpu())
        for k, v in out.rewards.items():
            self.per.setdefault(k, []).append(v.float().cpu())
        for k, x in out.extras.items():
            self.extras.setdefault(k, []).append(float(x))

    def record(self, accelerator: Any, step: int, **fields: Any) -> dict[str, Any]:
        """The step's ``metrics.jsonl`` record (a collective: every process calls it); ``fields`` go in after
        ``rewards`` (``lr``, ``grad_norm``, ``skipped``, ``reward_queries``, ``step_time``)."""

        def mean(values: torch.Tensor) -> float | None:
            return finite_or_none(float(gather(accelerator, values).float().mean()))

        rec = {
            "step": step,
            "loss": mean(torch.tensor(self.losses, dtype=torch.float32)),
            "reward": mean(torch.cat(self.totals)),
            "rewards": {k: mean(torch.cat(v)) for k, v in self.per.items()},
            **fields,
        }
        if self.extras:
            rec["extras"] = {k: finite_or_none(sum(v) / len(v)) for k, v in self.extras.items()}
        return rec


def finite_or_none(x: float) -> float | None:
    """``x``, or ``None`` (JSON ``null``) when it is NaN or infinite."""
    return x if math.isfinite(x) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a jsonl file, up to a torn last line (a crash mid-write); none if there is no file."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` by ``rows`` at once (written aside, then renamed): a process reading it meanwhile, or a
    crash, sees the old records or the new ones, never a truncated file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def summary(state: RunState, step: int, out: Path, write: bool = False, **run: Any) -> dict[str, Any]:
    """What ``summary.json`` holds (written to ``out`` when ``write``): held-out rewards (and guard metrics)
    before and after, the first and last training reward, reward queries, the last checkpoint; ``run`` adds
    what the run reports beside (``device``, ``precision``, ``processes``, the guard's ``best``), in order."""
    val = {v["step"]: v for v in state.validation}
    first, last = val.get(0), val.get(step)
    hist = [r["reward"] for r in state.history if r.get("reward") is not None]
    data = {
        "steps": step,
        "heldout_reward_before": first["reward"] if first else None,
        "heldout_reward_after": last["reward"] if last else None,
        "heldout_rewards_before": first["rewards"] if first else None,
        "heldout_rewards_after": last["rewards"] if last else None,
        "train_reward_first": hist[0] if hist else None,
        "train_reward_last": hist[-1] if hist else None,
        "reward_queries": state.reward_queries,
        "checkpoint": str(out / "checkpoints" / f"step-{step}"),
        "output_dir": str(out),
        **run,
    }
    if state.validation and state.validation[-1].get("metrics"):
        data["heldout_metrics_before"] = first.get("metrics") if first else None
        data["heldout_metrics_after"] = last.get("metrics") if last else None
    if write:
        (out / "summary.json").write_text(json.dumps(data, indent=2))
    return data


def plot_reward_curve(out: Path, state: RunState, config: VaderConfig) -> Path | None:
    """``reward_curve.png``: the training reward (and its running mean), the held-out reward and the guard
    metrics (right axis) over the steps; nothing before the first step."""
    if not state.history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    xs = [r["step"] for r in state.history if r.get("reward") is not None]
    ys = [r["reward"] for r in state.history if r.get("reward") is not None]
    ax.plot(xs, ys, lw=1, alpha=0.5, label="training reward")
    if len(ys) >= 5:
        w = max(2, len(ys) // 10)
        smooth = np.convolve(ys, np.ones(w) / w, mode="valid")
        ax.plot(xs[w - 1 :], smooth, lw=2, label=f"training (mean of {w})")
    if state.validation:
        ax.plot(
            [r["step"] for r in state.validation],
            [r["reward"] for r in state.validation],
            "o-",
            lw=2,
            label="held-out validation reward",
        )
    guarded = [r for r in state.validation if r.get("metrics")]
    if guarded:
        ax2 = ax.twinx()
        for name in guarded[0]["metrics"]:
            pts = [(r["step"], r["metrics"][name]) for r in guarded if name in r["metrics"]]
            ax2.plot(*zip(*pts, strict=True), "s--", lw=1.5, color=None, label=f"guard: {name} (right axis)")
        ax2.set_ylabel("guard metric (held-out)")
        ax2.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("weighted reward")
    ax.set_title(f"{config.backbone.name}: " + " + ".join(r.name for r in config.rewards))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "reward_curve.png"
    fig.savefig(path)
    plt.close(fig)
    return path
