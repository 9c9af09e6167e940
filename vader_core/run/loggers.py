"""Where step records go besides ``metrics.jsonl``: TensorBoard or wandb, and the progress bar."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import VaderConfig


def make_logger(config: VaderConfig, out: Path, is_main: bool) -> Callable[[dict[str, Any]], None]:
    """A callable taking each step's record, for ``output.logger`` (only the main process logs)."""
    kind = config.output.logger
    if not is_main or kind == "none":
        return lambda rec: None
    if kind == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError("logger `tensorboard` needs `pip install tensorboard`") from None
        tb = SummaryWriter(str(out / "tensorboard"))

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
        raise MissingDependencyError(
            "logger `wandb` needs `pip install wandb` (or `pip install vader[wandb]`)"
        ) from None
    run = wandb.init(project=config.output.wandb_project, config=json.loads(config.model_dump_json()), dir=str(out))

    def log_wandb(rec: dict[str, Any]) -> None:
        run.log(
            {
                **{k: v for k, v in rec.items() if k != "rewards"},
                **{f"reward/{k}": v for k, v in rec["rewards"].items()},
            },
            step=rec["step"],
        )

    return log_wandb


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        return None


def progress(show: bool) -> Any:
    """A rich progress bar of the training steps (reward and seconds per step), or one that shows nothing."""
    if not show:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("reward {task.fields[reward]:.4f}"),
        TextColumn("{task.fields[step_time]:.2f} s/step"),
        TimeRemainingColumn(),
    )
