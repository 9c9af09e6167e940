"""``vader eval``: the base model and LoRAs (each at one or more scales) side by side on fixed prompts and seeds.

Every model generates the same prompts from the same seeds (the same initial noise), every video is
scored by the rewards and guard metrics asked for, and the run writes, under the output directory:

- ``eval.json``: settings, per model the mean and standard deviation of every score, and per video its
  prompt, seed, file and scores;
- ``eval.md``: the same table for a person (and a README);
- ``grid.png``: chosen frames of the first prompt/seed pairs, one column per model; ``grid.mp4``: the
  same rows and columns as a video;
- ``videos/<model>/seed<S>-<i>.npy``: every video as raw float frames, which ``vader score`` reads back
  to the very same numbers.

The LoRAs are loaded once each, as separate peft adapters of the one denoiser; the base model is the
denoiser with every adapter switched off.
"""

from __future__ import annotations

import json
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .metric import MetricPlugin


@dataclass
class ModelSpec:
    """One column of the comparison: the base model (``lora`` None) or a LoRA at ``scale``."""

    label: str
    lora: Path | None = None
    scale: float = 1.0
    adapter: str | None = None


def model_specs(loras: Sequence[Path], scales: Sequence[float], base: bool = True) -> list[ModelSpec]:
    """The base model (if ``base``) and every LoRA at every scale, labelled ``NAME@SCALE``."""
    specs = [ModelSpec("base")] if base else []
    names: dict[str, int] = {}
    for i, p in enumerate(loras):
        p = Path(p)
        d = p.parent if p.suffix == ".safetensors" else p
        # runs/demo-toy/checkpoints/step-30 -> demo-toy/step-30; runs/demo-toy/best -> demo-toy/best
        name = "/".join([x for x in d.parts if x != "checkpoints"][-2:])
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:
            name = f"{name}#{names[name]}"
        for s in scales:
            specs.append(ModelSpec(f"{name}@{s:g}", p, float(s), f"eval{i}"))
    if not specs:
        raise ConfigError("nothing to evaluate: pass --lora DIR, or leave out --no-base")
    return specs


def activate(denoiser: torch.nn.Module, spec: ModelSpec) -> None:
    """Make ``spec`` the model: its adapter alone, at its scale, or no adapter for the base model."""
    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer

    for m in denoiser.modules():
        if not isinstance(m, BaseTunerLayer):
            continue
        if spec.adapter is None:
            m.enable_adapters(False)
            continue
        m.enable_adapters(True)
        m.set_adapter(spec.adapter)
        if isinstance(m, LoraLayer):
            m.set_scale(spec.adapter, spec.scale)
    for p in denoiser.parameters():
        p.requires_grad_(False)


def _scorers(
    rewards: Sequence[Any], metrics: Sequence[Any], device: Any, dtype: Any, tiny: bool, seed: int
) -> dict[str, Callable[[torch.Tensor, list[str]], torch.Tensor]]:
    from .resolve import build_metrics, build_objective

    out: dict[str, Callable[..., torch.Tensor]] = {}
    objective = None
    if rewards:
        objective = build_objective(rewards)
        objective.load(device, dtype, tiny=tiny, seed=seed)
        for term in objective.terms:
            out[term.name] = (lambda r: lambda v, p: r(v, p).detach().float().cpu())(term.reward)
        if len(objective.terms) > 1 or objective.terms[0].target is not None or objective.terms[0].weight != 1.0:
            out["objective"] = lambda v, p: objective(v, p)[0].detach().float().cpu()
    for name, fn in build_metrics(metrics, device, dtype, tiny=tiny, seed=seed).items():
        if name in out:
            name = f"metric:{name}"
        out[name] = fn
    if not out:
        raise ConfigError("nothing to score with: pass --reward NAME or --metric NAME")
    return out


def run_eval(
    config: Any,
    specs: Sequence[ModelSpec],
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    seeds: Sequence[int],
    out_dir: Path,
    *,
    tiny: bool = False,
    device: Any = "cpu",
    dtype: torch.dtype = torch.float32,
    batch_size: int = 8,
    frames: Sequence[int] | None = None,
    grid_rows: int = 4,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Generate, score and write everything; returns what ``eval.json`` holds.

    Args:
        config (`VaderConfig`): resolved; its ``backbone`` and ``memory.decode_chunk_size`` are used.
        specs (`Sequence[ModelSpec]`): the models, from :func:`model_specs`.
        prompts, images: the prompt set (and conditioning images for image-to-video backbones).
        seeds (`Sequence[int]`): every prompt is generated once per seed; the chunk of prompts starting at
            index ``i`` is drawn from ``torch.Generator().manual_seed(seed * 1000 + i)``, for every model alike.
        out_dir (`Path`): where the files go.
        frames (`Sequence[int]`, *optional*): frames shown in ``grid.png`` (default: four evenly spaced).
        grid_rows (`int`): prompt/seed pairs shown in the grid.
    """
    from .lora import load_lora
    from .media import slug, write_video
    from .resolve import build_backbone, load_backbone
    from .sampling import generate

    bb = load_backbone(build_backbone(config.backbone), device, dtype, tiny=tiny, seed=config.train.seed)
    loaded: set[str] = set()
    for s in specs:
        if s.lora is not None and s.adapter is not None and s.adapter not in loaded:
            with warnings.catch_warnings():  # several adapters in one model is what eval means to do
                warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                load_lora(bb.denoiser, s.lora, prefix=bb.denoiser_name, adapter_name=s.adapter, backbone=bb.name)
            loaded.add(s.adapter)
    bb.denoiser.eval()
    from .offload import offload_encoders

    # As in training: frozen text / image encoders wait on the CPU between encodings (memory.offload_encoders).
    offload_encoders(bb, config.memory, device)
    scorers = _scorers(
        config.rewards if config.rewards else [], config.validation.metrics, device, dtype, tiny, config.train.seed
    )
    across = {name for name, fn in scorers.items() if getattr(fn, "scores", "video") == "seeds"}
    if across and len(set(seeds)) < 2:
        raise ConfigError(
            f"metrics {sorted(across)} compare each prompt's videos across seeds: pass --seed at least twice"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    grid_videos: dict[str, list[torch.Tensor]] = {}
    for spec in specs:
        activate(bb.denoiser, spec)
        folder = out_dir / "videos" / slug(spec.label, keep="._@-", fallback="model")
        rows: list[dict[str, Any]] = []
        keep: list[torch.Tensor] = []
        # metrics of a prompt's videos across seeds (diversity): features per prompt index, scored after all seeds
        features: dict[str, dict[int, list[torch.Tensor]]] = {n: {} for n in across}
        for seed in seeds:
            for i in range(0, len(prompts), batch_size):
                chunk = list(prompts[i : i + batch_size])
                imgs = list(images[i : i + batch_size]) if images is not None else None
                gen = torch.Generator().manual_seed(seed * 1000 + i)
                video = generate(bb, chunk, imgs, gen, chunk_size=config.memory.decode_chunk_size).cpu()
                scores = {name: fn(video, chunk) for name, fn in scorers.items() if name not in across}
                for name in across:
                    for j, f in enumerate(cast("MetricPlugin", scorers[name]).video_features(video, chunk)):
                        features[name].setdefault(i + j, []).append(f)
                for j, prompt in enumerate(chunk):
                    path = folder / f"seed{seed}-{i + j:03d}.npy"
                    write_video(path, video[j])
                    rows.append(
                        {
                            "prompt": prompt,
                            "seed": seed,
                            "index": i + j,
                            "file": str(path.relative_to(out_dir)),
                            "scores": {k: float(v[j]) for k, v in scores.items()},
                        }
                    )
                    if len(keep) < grid_rows:
                        keep.append(video[j])
        for name in across:  # each prompt's score, given to each of its videos (every prompt has one per seed)
            order = sorted(features[name])
            stacked = torch.stack([torch.stack(features[name][k]) for k in order])
            values = cast("MetricPlugin", scorers[name]).score_seeds(stacked, [prompts[k] for k in order]).tolist()
            per_prompt = dict(zip(order, values, strict=True))
            for row in rows:
                row["scores"][name] = per_prompt[row["index"]]
        summary = {}
        for name in scorers:
            vals = [r["scores"][name] for r in rows]
            summary[name] = {
                "mean": statistics.fmean(vals),
                "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
        results.append(
            {
                "model": spec.label,
                "lora": str(spec.lora) if spec.lora else None,
                "scale": spec.scale,
                "scores": summary,
                "videos": rows,
            }
        )
        grid_videos[spec.label] = keep
        log(f"{spec.label}: " + ", ".join(f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in summary.items()))
    activate(bb.denoiser, ModelSpec("base"))
    pairs = [(r["prompt"], r["seed"]) for r in results[0]["videos"][:grid_rows]]
    data = {
        "backbone": config.backbone.name,
        "backbone_options": config.backbone.options,
        "prompts": list(prompts),
        **({"images": [str(x) for x in images]} if images is not None else {}),
        "seeds": list(seeds),
        "batch_size": batch_size,
        "rewards": [r.model_dump(mode="json") for r in config.rewards],
        "metrics": [m.model_dump(mode="json") for m in config.validation.metrics],
        "models": results,
    }
    (out_dir / "eval.json").write_text(json.dumps(data, indent=2))
    (out_dir / "eval.md").write_text(markdown(data))
    write_grid(out_dir, grid_videos, pairs, frames)
    return data


def table_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table: model, then ``mean ± std`` of every score."""
    names = list(data["models"][0]["scores"]) if data["models"] else []
    rows = []
    for m in data["models"]:
        rows.append([m["model"], *(f"{m['scores'][n]['mean']:.4f} ± {m['scores'][n]['std']:.4f}" for n in names)])
    return ["model", *names], rows


def markdown(data: dict[str, Any]) -> str:
    head, rows = table_rows(data)
    n = data["models"][0]["scores"][head[1]]["n"] if data["models"] and len(head) > 1 else 0
    lines = [
        f"# vader eval: `{data['backbone']}`",
        "",
        f"{len(data['prompts'])} prompts x seeds {data['seeds']} = {n} videos per model, the same initial noise for "
        "every model; mean ± standard deviation over the videos.",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        "![grid](grid.png)",
        "",
    ]
    return "\n".join(lines)


def _frames(f: int, chosen: Sequence[int] | None) -> list[int]:
    if chosen:
        bad = [i for i in chosen if not 0 <= i < f]
        if bad:
            raise ConfigError(f"--frames {bad} outside the video's {f} frames (0 to {f - 1})")
        return list(chosen)
    n = min(4, f)
    return sorted({round(i * (f - 1) / max(n - 1, 1)) for i in range(n)})


def write_grid(
    out_dir: Path, videos: dict[str, list[torch.Tensor]], pairs: Sequence[tuple[str, int]], frames: Sequence[int] | None
) -> None:
    """``grid.png`` (chosen frames; a row per prompt/seed, a column per model) and ``grid.mp4``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .media import side_by_side, write_video

    labels = list(videos)
    rows = min(len(v) for v in videos.values())
    if rows == 0:
        return
    f = videos[labels[0]][0].shape[0]
    idx = _frames(f, frames)
    fig, axes = plt.subplots(
        rows, len(labels), figsize=(1.3 * len(idx) * len(labels) + 0.5, 1.45 * rows + 0.6), dpi=110, squeeze=False
    )
    for c, label in enumerate(labels):
        for r in range(rows):
            v = videos[label][r]
            strip = np.concatenate([v[i].permute(1, 2, 0).numpy() for i in idx], axis=1)
            ax = axes[r][c]
            ax.imshow(np.clip(strip, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
            if c == 0:
                prompt, seed = pairs[r]
                ax.set_ylabel(f"{prompt[:28]}\nseed {seed}", fontsize=6)
    fig.suptitle(f"frames {idx}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "grid.png")
    plt.close(fig)
    lines = [side_by_side([videos[label][r] for label in labels], gap=2) for r in range(rows)]
    width = lines[0].shape[2]
    gap = np.ones((lines[0].shape[0], 2, width, 3), dtype=np.float32)
    stacked = np.concatenate([x for r, line in enumerate(lines) for x in ((gap, line) if r else (line,))], axis=1)
    write_video(out_dir / "grid.mp4", stacked)


def print_table(data: dict[str, Any], console: Any) -> None:
    """The comparison table: one row per model when it fits the terminal, else one row per model and score
    (never a number wrapped over two lines)."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table

    head, rows = table_rows(data)
    title = f"vader eval: {data['backbone']} ({len(data['prompts'])} prompts x seeds {data['seeds']})"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for h in head:
        table.add_column(h, justify="left" if h == "model" else "right", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    if Measurement.get(console, console.options.update(width=10**4), table).maximum <= console.width:
        console.print(table)
        return
    long = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    long.add_column("model")
    long.add_column("score", no_wrap=True)
    long.add_column("mean ± std", justify="right", no_wrap=True)
    for r in rows:
        for i, (name, cell) in enumerate(zip(head[1:], r[1:], strict=True)):
            long.add_row(r[0] if i == 0 else "", name, cell, end_section=i == len(head) - 2)
    console.print(long)
