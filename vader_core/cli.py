"""The ``vader`` command line (typer + rich).

Every :class:`~vader_core.errors.VaderError` prints one line and exits with its code (2 or more);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import ConfigError, VaderError

app = typer.Typer(
    name="vader",
    help="Align video diffusion models with reward gradients (VADER). "
    "Train LoRA weights so that generated videos score higher on differentiable rewards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)
_STATE = {"debug": False}


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    _STATE["debug"] = debug


# --------------------------------------------------------------------------- helpers
def _plugin_options_help() -> str:
    """Options of every installed plugin, for ``vader train --help`` (one unwrapped block each)."""
    from . import plugins

    try:
        infos, _ = plugins.list_plugins()
    except Exception:  # noqa: BLE001 - help must always work
        return ""
    blocks = []
    for info in infos:
        if info.cls is None:
            continue
        fields = info.cls.Options.model_fields
        if not fields:
            continue
        lines = ["\b", f"{info.kind} {info.name}:"]
        for fname, f in fields.items():
            default = "null" if f.default is None else f.default
            lines.append(f"  {fname} (default {default}): {f.description or ''}")
        blocks.append("\n".join(lines))
    head = (
        "Plugin options (set with --set backbone.OPTION=V, --set rewards.N.OPTION=V, --set method.OPTION=V, "
        "or in --config); plugins without options are not listed:"
    )
    return "\n\n".join([head, *blocks])


def _config_from_args(config: Path | None, sets: list[str] | None, flags: dict[str, Any]) -> Any:
    from .config import build_config

    return build_config(config, sets or [], flags)


# --------------------------------------------------------------------------- train
@app.command(epilog=None)
def train(
    backbone: str | None = typer.Option(None, "--backbone", "-b", help="Backbone plugin (see `vader plugins`)."),
    reward: list[str] | None = typer.Option(
        None, "--reward", "-r", help="Reward plugin, optionally NAME=WEIGHT; repeat for several rewards."
    ),
    method: str | None = typer.Option(None, "--method", help="Training method plugin (default `vader`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML or TOML configuration file."),
    sets: list[str] | None = typer.Option(
        None, "--set", "-s", help="Override any configuration key, e.g. --set optim.lr=1e-4 --set backbone.frames=8."
    ),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Output directory of the run."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Number of optimiser steps."),
    resume: str | None = typer.Option(None, "--resume", help="`latest` or a checkpoint directory to continue from."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start over in an output directory an earlier run left without a checkpoint (a crashed run): its "
        "records, samples and best/ are removed once the models have loaded. Never deletes checkpoints.",
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1, mps ... (default: accelerate's choice)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the run."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    random_weights: bool = typer.Option(
        False,
        "--random-weights",
        help="Use tiny random models of every plugin instead of pretrained weights "
        "(smoke tests of a setup; the results mean nothing).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train LoRA weights of a backbone to raise one or several rewards.

    Examples:

      vader train --backbone tiny --reward saturation --max-steps 30

      vader train --backbone svd --reward aesthetic=1 --reward hps=0.5 --set train.images=imgs/

      accelerate launch --multi_gpu -m vader_core.cli train --config run.yaml
    """
    from .trainer import Trainer

    flags = {
        "backbone.name": backbone,
        "rewards": reward,
        "method.name": method,
        "output.dir": str(output_dir) if output_dir else None,
        "train.max_steps": max_steps,
        "device": device,
        "train.seed": seed,
        "precision": precision,
    }
    if random_weights:  # smoke-test sizes for what the user did not set
        from .cli_errors import random_weight_sets

        sets = [*random_weight_sets(backbone, config, list(sets or [])), *(sets or [])]
    cfg = _config_from_args(config, sets, flags)
    trainer = Trainer(cfg, progress=not quiet, tiny=random_weights, log=lambda s: err_console.print(s, soft_wrap=True))
    try:
        summary = trainer.run(resume=resume, overwrite=overwrite)
    finally:
        trainer.close()  # several processes: their process group ends before the interpreter does
    if trainer.is_main:
        _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="vader run", show_header=False)
    b, a = summary.get("heldout_reward_before"), summary.get("heldout_reward_after")
    table.add_row("steps", str(summary["steps"]))
    if b is not None and a is not None:
        table.add_row("held-out reward", f"{b:.4f} -> {a:.4f} ({a - b:+.4f})")
    table.add_row("reward queries", str(summary["reward_queries"]))
    table.add_row("LoRA checkpoint", summary["checkpoint"])
    table.add_row("summary", str(Path(summary["output_dir"]) / "summary.json"))
    console.print(table)


# --------------------------------------------------------------------------- plugins
@app.command("plugins")
def plugins_cmd(
    name: str | None = typer.Argument(None, help="Show this plugin's options (type, default, description)."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print a JSON list of objects (name, kind, package, version, summary, status, details, options).",
    ),
) -> None:
    """List installed backbones, rewards, methods and guard metrics, and any broken plugin with its reason.

    With NAME, show that plugin: what it is and every option with its type, default and description.
    """
    from . import plugins

    infos, broken = plugins.list_plugins()
    rows = [i.as_dict() for i in infos] + [
        {
            "name": b.name,
            "kind": "plugin",
            "package": b.package,
            "version": b.version,
            "summary": b.reason,
            "status": "broken",
            "details": {},
            "options": [],
        }
        for b in broken
    ]
    if name is not None:
        rows = [r for r in rows if r["name"] == name or (r["status"] == "broken" and r["package"] == name)]
        if not rows:
            from .cli_errors import suggest

            known = sorted({i.name for i in infos})
            raise ConfigError(
                f"no plugin named `{name}`{suggest(name, known)}; `vader plugins` lists them"
                + plugins.broken_note(name)
            )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if name is not None:
        _print_plugin(rows)
        return
    _print_listing(rows)


def _print_listing(rows: list[dict[str, Any]]) -> None:
    """One line per plugin under its kind, the summary cut to the terminal's width (``pip list``-like); broken
    plugins after, their reasons whole (they say what to do)."""
    ok = [r for r in rows if r["status"] != "broken"]
    pkgs = {id(r): r["package"] for r in ok}  # versions: `vader plugins NAME`, --json
    wn = max((len(r["name"]) for r in ok), default=4)
    wp = max((len(p) for p in pkgs.values()), default=7)
    room = max(console.width - 2 - wn - 2 - wp - 2, 16)
    for kind in ("backbone", "reward", "method", "metric"):
        mine = [r for r in ok if r["kind"] == kind]
        if not mine:
            continue
        console.print(f"[bold]{kind}s[/]")
        for r in mine:
            summary = r["summary"] if len(r["summary"]) <= room else r["summary"][: room - 1] + "…"
            console.print(
                f"  {escape(r['name']).ljust(wn)}  {escape(pkgs[id(r)]).ljust(wp)}  {escape(summary)}",
                soft_wrap=True,
            )
    for r in rows:
        if r["status"] == "broken":
            console.print(
                f"[red]broken[/]: {escape(r['package'])} {escape(r['version'])} (entry point {escape(r['name'])}): "
                f"{escape(r['summary'])}",
                soft_wrap=True,
            )
    console.print("`vader plugins NAME` shows one plugin's options; --json gives everything", style="dim")


def _print_plugin(rows: list[dict[str, Any]]) -> None:
    from rich import box

    for r in rows:
        if r["status"] == "broken":
            console.print(f"[red]broken[/]: {escape(r['package'])} {escape(r['version'])}: {escape(r['summary'])}")
            continue
        console.print(f"[bold]{r['kind']} {escape(r['name'])}[/] ({escape(r['package'])} {escape(r['version'])})")
        if r["summary"]:
            console.print(escape(r["summary"]))
        for k, v in r["details"].items():
            console.print(f"{k}: {escape(str(v))}")
        if not r["options"]:
            console.print("no options")
            continue
        where = {
            "backbone": "backbone.",
            "reward": "rewards.N.",
            "method": "method.",
            "metric": "validation.metrics.N.",
        }
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
        table.title = f"options (--set {where.get(r['kind'], '')}OPTION=VALUE)"
        table.add_column("option", no_wrap=True)
        table.add_column("type")
        table.add_column("default")
        table.add_column("description", ratio=1)
        for o in r["options"]:
            default = json.dumps(o["default"]) if not isinstance(o["default"], str) else o["default"]
            table.add_row(escape(o["name"]), escape(o["type"]), escape(default), escape(o["description"]))
        console.print(table)


# --------------------------------------------------------------------------- generate
@app.command()
def generate(
    backbone: str = typer.Option("tiny", "--backbone", "-b", help="Backbone plugin."),
    prompt: list[str] | None = typer.Option(None, "--prompt", "-p", help="Text prompt (repeat for a batch)."),
    image: Path | None = typer.Option(None, "--image", help="Conditioning image for image-to-video backbones."),
    lora: Path | None = typer.Option(None, "--lora", help="LoRA checkpoint directory or .safetensors file."),
    lora_scale: float = typer.Option(
        1.0,
        "--lora-scale",
        help="Scale of the LoRA update: 0 is the base model, 1 the trained LoRA, between interpolates.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise."),
    out: Path = typer.Option(..., "--out", help="Output file: .mp4, .gif, or .npy (raw float frames (F, H, W, 3))."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Configuration file (its backbone section is used)."
    ),
    sets: list[str] | None = typer.Option(None, "--set", "-s", help="Override keys, e.g. --set backbone.model=DIR."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    fps: int = typer.Option(8, "--fps", help="Frames per second of mp4/gif output."),
) -> None:
    """Generate a video with a backbone, optionally with trained LoRA weights."""
    import torch

    from .media import read_image, write_video
    from .resolve import build_backbone, load_backbone, resolve_config, resolve_device, resolve_precision, torch_dtype
    from .sampling import generate as run_generate

    cfg = resolve_config(
        _config_from_args(config, sets, {"backbone.name": backbone, "device": device, "precision": precision})
    )
    if out.suffix.lower() not in (".mp4", ".gif", ".npy"):
        raise ConfigError(f"--out must end in .mp4, .gif or .npy, got {out.name}")
    from .faults import check_output_file

    check_output_file(out, "--out")
    if image is not None and not image.is_file():
        raise ConfigError(f"--image {image}: no such file; give an image file (.png, .jpg ...)")
    if lora is not None:
        from .lora import read_lora

        read_lora(lora)  # a missing or corrupt file fails here, before the models load
    dev = resolve_device(cfg.device)
    dtype = torch_dtype(resolve_precision(cfg.precision, dev))
    bb = build_backbone(cfg.backbone)
    images = None
    if "image" in bb.conditioning:
        if image is None:
            raise ConfigError(f"backbone `{bb.name}` is image-to-video: pass --image PATH")
        images = [read_image(image)]
    prompts = list(prompt or [])
    if not prompts:
        if bb.conditioning == "text":
            raise ConfigError("pass --prompt TEXT")
        prompts = [""] * len(images or [None])
    if images is not None and len(images) != len(prompts):
        images = images * len(prompts)
    load_backbone(bb, dev, dtype)
    if lora is not None:
        from .lora import load_lora

        load_lora(bb.denoiser, lora, prefix=bb.denoiser_name, backbone=bb.name)
        bb.denoiser.to(device=dev).eval()
        if lora_scale != 1.0:
            from .lora import set_lora_scale

            set_lora_scale(bb.denoiser, lora_scale)
    elif lora_scale != 1.0:
        raise ConfigError("--lora-scale needs --lora DIR")
    gen = torch.Generator().manual_seed(seed)
    video = run_generate(bb, prompts, images, gen, chunk_size=cfg.memory.decode_chunk_size)
    if len(prompts) == 1:
        write_video(out, video[0], fps=fps)
        console.print(f"wrote {out}")
    else:
        for i in range(len(prompts)):
            p = out.with_name(f"{out.stem}-{i}{out.suffix}")
            write_video(p, video[i], fps=fps)
            console.print(f"wrote {p}")


# --------------------------------------------------------------------------- score
@app.command()
def score(
    video: Path = typer.Argument(..., help="Video file (.mp4, .gif, .npy)."),
    reward: str = typer.Option(..., "--reward", "-r", help="Reward plugin."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Prompt, for text-aware rewards."),
    sets: list[str] | None = typer.Option(None, "--set", "-s", help="Reward options, e.g. --set color=red."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ..."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Tiny random reward model (smoke tests)."),
) -> None:
    """Print the reward of a video file."""
    import torch

    from .config import apply_set, check_finite
    from .media import read_video
    from .resolve import instantiate, resolve_device, reward_class

    rcls = reward_class(reward)
    data: dict[str, Any] = {}
    for s in sets or []:
        apply_set(data, s)
    check_finite(data)
    r = instantiate(rcls, data, reward)
    frames = read_video(video)
    dev = resolve_device(device)
    if random_weights:
        r.load_tiny(dev, torch.float32)
    else:
        r.load(dev, torch.float32)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).unsqueeze(0).to(dev)
    with torch.no_grad():
        value = float(r(x, [prompt])[0])
    console.print(f"{reward}: {value:.6f}")


# --------------------------------------------------------------------------- eval
def _eval_images(
    given: list[Path], prompts: list[str], train_images: str | None, backbone: str
) -> tuple[list[str], list[str]]:
    """Images and prompts of `vader eval` on an image-to-video backbone when prompts or images are given:
    --image once for every prompt or once per prompt, else train.images' images (or the built-in ones) in
    turn; --image alone takes each image's name as its prompt."""
    from .data import image_source

    if given:
        paths = [str(p) for p in given]
        if not prompts:
            return paths, [p.stem.replace("_", " ") for p in given]
        if len(paths) == 1:
            return paths * len(prompts), prompts
        if len(paths) != len(prompts):
            raise ConfigError(
                f"{len(paths)} --image for {len(prompts)} prompts: give one image for every prompt, or one per prompt"
            )
        return paths, prompts
    if not train_images:
        from .data import default_images_dir

        train_images = str(default_images_dir())  # the built-in images, as training uses them
    paths = image_source(train_images).images or []
    return [paths[i % len(paths)] for i in range(len(prompts))], prompts


@app.command("eval")
def eval_cmd(
    backbone: str | None = typer.Option(None, "--backbone", "-b", help="Backbone plugin (default: the config's)."),
    lora: list[Path] | None = typer.Option(
        None, "--lora", help="LoRA checkpoint directory or .safetensors file; repeat to compare several."
    ),
    lora_scale: list[float] | None = typer.Option(
        None, "--lora-scale", help="Scale(s) every LoRA is evaluated at; repeat for several (default 1)."
    ),
    no_base: bool = typer.Option(False, "--no-base", help="Leave out the base model (LoRA off)."),
    reward: list[str] | None = typer.Option(
        None,
        "--reward",
        "-r",
        help="Reward to score with, NAME or NAME=WEIGHT (repeat; default: the config's rewards).",
    ),
    metric: list[str] | None = typer.Option(
        None,
        "--metric",
        "-m",
        help="Guard metric (or reward) to score with, added to the config's validation.metrics unless it is "
        "there already (repeat); set its options with --set validation.metrics.N.OPTION=V.",
    ),
    prompt: list[str] | None = typer.Option(
        None, "--prompt", "-p", help="Prompt (repeat; default: the held-out prompts of the config or the backbone)."
    ),
    prompt_file: Path | None = typer.Option(None, "--prompt-file", help="Text file with one prompt per line."),
    image: list[Path] | None = typer.Option(
        None,
        "--image",
        help="Conditioning image for image-to-video "
        "backbones (repeat: one per prompt, or one for every prompt; default: "
        "the images of train.images, or vader's built-in ones, in turn).",
    ),
    max_prompts: int = typer.Option(8, "--max-prompts", help="At most this many default held-out prompts."),
    seed: list[int] | None = typer.Option(
        None, "--seed", help="Seed (repeat; default 0): the same noise for every model."
    ),
    out: Path = typer.Option(
        Path("eval"), "--out", "-o", help="Output directory (eval.json, eval.md, grid.png, grid.mp4)."
    ),
    frames: str | None = typer.Option(
        None, "--frames", help="Frames shown in grid.png, e.g. 0,3,7 (default: 4 spread)."
    ),
    grid_rows: int = typer.Option(4, "--grid-rows", help="Prompt/seed pairs shown in the grid."),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos generated at once."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Configuration file, e.g. a run's config.yaml "
        "(backbone, rewards, validation.metrics and prompts are used).",
    ),
    sets: list[str] | None = typer.Option(None, "--set", "-s", help="Override keys, e.g. --set backbone.steps=10."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Tiny random models (smoke tests)."),
) -> None:
    """Compare the base model and LoRAs (at one or more scales) on fixed prompts and seeds.

    Scores every video with rewards and guard metrics, prints mean and spread per model, and writes
    eval.json, eval.md, grid.png, grid.mp4 and every video as .npy (which `vader score` reads back).

    Examples:

      vader eval --config runs/demo-toy/config.yaml --lora runs/demo-toy/checkpoints/step-30 --lora-scale 0.5 --lora-scale 1 --metric toy_color

      vader eval --backbone tiny --random-weights --reward saturation --prompt "a cat" --seed 0 --seed 1

      vader eval --backbone svd --lora runs/svd/checkpoints/step-100 --image kite.png --image boat.png --reward aesthetic
    """
    from .config import build_config
    from .data import _read_lines, training_source, validation_prompts
    from .evaluate import model_specs, print_table, run_eval
    from .resolve import build_backbone, resolve_config, resolve_device, resolve_precision, torch_dtype

    cfg = build_config(
        config,
        sets or [],
        {"backbone.name": backbone, "rewards": reward, "metrics": metric, "device": device, "precision": precision},
    )
    if batch_size < 1 or grid_rows < 1 or max_prompts < 1:
        raise ConfigError("--batch-size, --grid-rows and --max-prompts must be at least 1")
    cfg.validation.max_prompts = max_prompts
    cfg.validation.seeds = list(seed or [0])  # eval's seeds play the validation seeds' part (metrics across seeds)
    cfg = resolve_config(cfg)
    try:
        chosen = [int(x) for x in frames.split(",")] if frames else None
    except ValueError:
        raise ConfigError(f"--frames takes comma-separated frame indices, e.g. 0,3,7; got {frames!r}") from None
    probe = build_backbone(cfg.backbone)
    images = None
    if image and "image" not in probe.conditioning:
        raise ConfigError(f"backbone `{probe.name}` takes no conditioning image: leave out --image")
    for path in image or []:
        if not path.is_file():
            raise ConfigError(f"--image {path}: no such file; give an image file (.png, .jpg ...)")
    if prompt or prompt_file or image:
        prompts = list(prompt or []) + (_read_lines(str(prompt_file)) if prompt_file else [])
        if "image" in probe.conditioning:
            images, prompts = _eval_images(image or [], prompts, cfg.train.images, probe.name)
    else:
        source = training_source(cfg.train, probe.conditioning, probe)
        prompts, images = validation_prompts(cfg, source, probe)
    specs = model_specs(lora or [], lora_scale or [1.0], base=not no_base)
    from .faults import check_eval_dir
    from .lora import read_lora

    check_eval_dir(out)
    for path in lora or []:  # a mistyped or corrupt LoRA is one line before any model loads
        read_lora(path)
    dev = resolve_device(cfg.device)
    dtype = torch_dtype(resolve_precision(cfg.precision, dev))
    data = run_eval(
        cfg,
        specs,
        prompts,
        images,
        seed or [0],
        out,
        tiny=random_weights,
        device=dev,
        dtype=dtype,
        batch_size=batch_size,
        frames=chosen,
        grid_rows=grid_rows,
        log=lambda s: err_console.print(s),
    )
    print_table(data, console)
    console.print(f"wrote {out / 'eval.json'}, {out / 'eval.md'}, {out / 'grid.png'}, {out / 'grid.mp4'}")


# --------------------------------------------------------------------------- export
@app.command("export")
def export_cmd(
    lora: Path = typer.Argument(..., help="LoRA checkpoint directory (checkpoints/step-N, best) or .safetensors file."),
    backbone: str | None = typer.Option(
        None, "--backbone", "-b", help="The backbone it was trained on (default: the one its run recorded)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where the layouts go (default: beside the LoRA)."),
) -> None:
    """Write a trained LoRA in the layouts ComfyUI and kohya-style trainers read, for backbones whose model they
    run (Wan and SVD: the original checkpoints' module names, one folder per layout). vader's own file loads
    with diffusers' load_lora_weights (SVD: vader_core.lora.load_lora).

    Examples:

      vader export runs/wan/checkpoints/step-500

      vader export runs/svd/best --out comfy-loras/
    """
    from .lora import read_lora, trained_backbone
    from .resolve import backbone_class

    read_lora(lora)  # a missing or corrupt file is one line first
    name = backbone or trained_backbone(lora)
    if name is None:
        raise ConfigError(f"{lora} does not say which backbone it was trained on (no state.json): pass --backbone NAME")
    cls = backbone_class(name)
    where = out if out is not None else (lora if lora.is_dir() else lora.parent)
    written = cls.export_lora(lora, where)
    if not written:
        raise ConfigError(
            f"backbone `{name}` writes no other layout: ComfyUI does not run its model natively, or its plugin "
            "has no export yet; vader's file loads with diffusers' load_lora_weights as it is"
        )
    for key, path in written.items():
        console.print(f"{key}: {path}", soft_wrap=True, markup=False)


# --------------------------------------------------------------------------- new
@app.command("new")
def new_cmd(
    kind: str = typer.Argument(..., help="reward, metric or backbone."),
    name: str = typer.Argument(..., help="The plugin's name, e.g. sharpness_v2 (lower case, digits, underscores)."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where the package folder vader-NAME is written."),
) -> None:
    """Write a separately installable plugin package: pyproject.toml with the entry point, the class, contract
    tests and a README. It installs (`pip install -e vader-NAME`) and passes its tests (`pytest`) as written.

    Examples:

      vader new reward sharpness_v2

      vader new metric flicker --dir plugins/
    """
    from .scaffold import write

    out = write(kind, name, directory)
    console.print(
        f"wrote {out}: `pip install -e {out}` then `vader plugins {name}`; `pytest {out}` runs its tests",
        soft_wrap=True,
        markup=False,
    )


# --------------------------------------------------------------------------- config
@app.command("config")
def config_cmd(
    backbone: str | None = typer.Option(None, "--backbone", "-b", help="Backbone plugin."),
    reward: list[str] | None = typer.Option(None, "--reward", "-r", help="Reward plugin, NAME or NAME=WEIGHT."),
    method: str | None = typer.Option(None, "--method", help="Training method plugin."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Start from this configuration file."),
    sets: list[str] | None = typer.Option(None, "--set", "-s", help="Override keys."),
) -> None:
    """Print the fully resolved configuration (YAML), every plugin's options included."""
    from .resolve import resolve_config

    cfg = resolve_config(
        _config_from_args(config, sets, {"backbone.name": backbone, "rewards": reward, "method.name": method})
    )
    print(cfg.to_yaml(), end="")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vader`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("VADER_DEBUG") == "1"
    from .cli_errors import install_warning_lines

    install_warning_lines()
    import warnings

    # huggingface_hub warns about an argument diffusers' loaders still pass; printed above a missing-weights
    # error it reads like the cause. Not something a vader user can act on.
    warnings.filterwarnings(
        "ignore", message=r"The `local_dir_use_symlinks` argument is deprecated", category=UserWarning
    )
    if "train" in args and ("--help" in args or "-h" in args):
        train_cmd = next(c for c in app.registered_commands if c.callback is train)
        train_cmd.epilog = _plugin_options_help()
    try:
        app(args, standalone_mode=False)
    except VaderError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt as e:
        if debug:
            raise
        signame = getattr(e, "signame", None)
        err_console.print(
            f"[bold red]error:[/] stopped by {signame} outside a training step; the checkpoints saved so far are kept"
            if signame
            else "[bold red]interrupted[/]",
            soft_wrap=True,
        )
        raise SystemExit(getattr(e, "exit_code", 130)) from None
    except SystemExit:
        raise
    except Exception as e:  # usage errors (click's and typer's vendored ones), refused pickles
        from .cli_errors import classify, refused_pickle, usage_line

        kind = classify(e)
        if kind == "exit":
            raise SystemExit(e.exit_code) from None  # type: ignore[attr-defined]
        if kind == "abort":
            raise SystemExit(130) from None
        if kind == "usage" and type(e).__name__ == "NoArgsIsHelpError":
            print(e.format_message())  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        if kind == "usage" and not debug:
            err_console.print(f"[bold red]error:[/] {escape(usage_line(e))}", soft_wrap=True)
            raise SystemExit(2) from None
        line = None if debug else refused_pickle(e)
        if line:
            err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
