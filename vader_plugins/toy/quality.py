"""Does the toy model follow its prompts? A deterministic check on generated clips.

For each clip, the background is the per-channel median over all pixels of all frames (the object
covers a small part of the frame and the background is static). Object pixels are those farther
than ``threshold`` from it. The clip's colour is the palette colour nearest to the mean object
pixel; its direction is the one most aligned with the displacement of the object's centroid from
the first to the last frame (a displacement under ``min_travel`` pixels counts as no motion).

Run it from the command line::

    python -m vader_plugins.toy.quality                       # bundled weights, held-out prompts
    python -m vader_plugins.toy.quality --lora runs/demo-toy/checkpoints/step-60
    python -m vader_plugins.toy.quality --run runs/demo-toy      # before vs after the run's newest LoRA
    python -m vader_plugins.toy.quality --direction-control      # does the word or the noise set the motion?
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vader_core.lazy import torch

from .data import COLORS, DIRECTIONS, HELDOUT_CAPTIONS, parse_caption


def analyze_clip(video: torch.Tensor, threshold: float = 0.3, min_travel: float = 2.0) -> dict[str, Any]:
    """Colour and direction of the moving object of one clip.

    Args:
        video (`torch.Tensor`): ``(F, 3, H, W)`` in [0, 1].
        threshold (`float`, *optional*, defaults to 0.3): RGB distance from the background above which a
            pixel belongs to the object.
        min_travel (`float`, *optional*, defaults to 2.0): centroid displacement, in pixels, below which
            the object counts as not moving.

    Returns:
        `dict`: ``color`` (palette name or ``None`` when no object is found), ``direction`` (name or
        ``None``), ``travel`` (``[dx, dy]`` pixels) and ``object_fraction`` (share of object pixels).
    """
    v = video.detach().float().cpu()
    f, _, h, w = v.shape
    bg = v.permute(1, 0, 2, 3).reshape(3, -1).median(dim=1).values.view(1, 3, 1, 1)
    mask = (v - bg).norm(dim=1) > threshold  # (F, H, W)
    frac = float(mask.float().mean())
    out: dict[str, Any] = {"color": None, "direction": None, "travel": [0.0, 0.0], "object_fraction": frac}
    if mask.sum() == 0:
        return out
    mean = v.permute(1, 0, 2, 3)[:, mask].mean(dim=1)
    names = list(COLORS)
    palette = torch.tensor([COLORS[n] for n in names])
    out["color"] = names[int((palette - mean).norm(dim=1).argmin())]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    present = [t for t in range(f) if mask[t].any()]
    if len(present) < 2:
        return out

    def centroid(t: int) -> torch.Tensor:
        m = mask[t].float()
        return torch.stack([(xs * m).sum() / m.sum(), (ys * m).sum() / m.sum()])

    d = centroid(present[-1]) - centroid(present[0])
    out["travel"] = [round(float(d[0]), 2), round(float(d[1]), 2)]
    if float(d.norm()) >= min_travel:
        dirs = list(DIRECTIONS)
        units = torch.tensor([DIRECTIONS[n] for n in dirs], dtype=torch.float32)
        out["direction"] = dirs[int((units @ d).argmax())]
    return out


def score(videos: torch.Tensor, prompts: Sequence[str]) -> dict[str, Any]:
    """Prompt following of ``videos`` ``(B, F, 3, H, W)`` generated for toy ``prompts``.

    Returns:
        `dict`: ``color_accuracy``, ``direction_accuracy``, ``both_accuracy`` (shares in [0, 1]),
        ``n`` and ``clips`` (per-clip analysis with the expected colour and direction).
    """
    clips = []
    for video, prompt in zip(videos, prompts, strict=True):
        spec = parse_caption(prompt)
        a = analyze_clip(video)
        clips.append(
            {
                "prompt": prompt,
                **a,
                "color_ok": a["color"] == spec.color,
                "direction_ok": a["direction"] == spec.direction,
            }
        )
    n = max(len(clips), 1)
    return {
        "n": len(clips),
        "color_accuracy": sum(c["color_ok"] for c in clips) / n,
        "direction_accuracy": sum(c["direction_ok"] for c in clips) / n,
        "both_accuracy": sum(c["color_ok"] and c["direction_ok"] for c in clips) / n,
        "clips": clips,
    }


def evaluate(
    backbone: Any, prompts: Sequence[str] = HELDOUT_CAPTIONS, seeds: Sequence[int] = (0,), batch_size: int = 48
) -> dict[str, Any]:
    """Generate one clip per prompt and seed with a loaded toy backbone and :func:`score` them.

    Args:
        backbone (`ToyBackbone`): loaded backbone (LoRA may be attached to its denoiser).
        prompts (`Sequence[str]`, *optional*): toy captions; defaults to every held-out caption.
        seeds (`Sequence[int]`, *optional*, defaults to `(0,)`): generator seeds; each batch of prompts
            is sampled from ``torch.Generator().manual_seed(seed)``.
        batch_size (`int`, *optional*, defaults to 48): prompts per generation call.
    """
    from vader_core.sampling import generate

    videos, used = [], []
    for seed in seeds:
        for i in range(0, len(prompts), batch_size):
            chunk = list(prompts[i : i + batch_size])
            g = torch.Generator().manual_seed(seed * 1000 + i)
            videos.append(generate(backbone, chunk, None, g))
            used += chunk
    return score(torch.cat(videos), used)


def direction_control(
    backbone: Any,
    prompts: Sequence[str] = HELDOUT_CAPTIONS[:12],
    seeds: Sequence[int] = (0,),
) -> dict[str, Any]:
    """Does the caption or the initial noise decide which way the object moves?

    Each prompt is generated four times from the same seed (so from the same initial noise), once with
    each direction word. A model that follows the word moves the object four different ways; a model
    whose layout is read out of the noise moves it the same way four times.

    Returns:
        `dict`: ``n`` (prompt-seed pairs), ``same_direction`` (share of pairs whose four clips all move the
        same way, the noise deciding), ``distinct_directions`` (mean number of different directions among
        the four, 1 to 4) and ``direction_accuracy`` (share of the ``4 n`` clips that move as their word says).
    """
    from vader_core.sampling import generate

    same, distinct, correct, n = 0, 0, 0, 0
    for prompt in prompts:
        spec = parse_caption(prompt)
        for seed in seeds:
            got = []
            for d in DIRECTIONS:
                caption = prompt.replace(f"moving {spec.direction} ", f"moving {d} ")
                video = generate(backbone, [caption], None, torch.Generator().manual_seed(seed))
                got.append(analyze_clip(video[0])["direction"])
                correct += got[-1] == d
            same += len(set(got)) == 1
            distinct += len(set(got))
            n += 1
    return {
        "n": n,
        "same_direction": same / n,
        "distinct_directions": distinct / n,
        "direction_accuracy": correct / (4 * n),
    }


def _load(model: str | None, steps: int | None, guidance: float | None, lora: str | None) -> Any:
    from .backbone import ToyBackbone, ToyOptions

    opts = {k: v for k, v in {"model": model, "steps": steps, "guidance": guidance}.items() if v is not None}
    bb = ToyBackbone(ToyOptions(**opts))
    bb.load("cpu", torch.float32)
    if lora:
        from vader_core.lora import load_lora

        load_lora(bb.denoiser, lora, prefix="unet")
        bb.denoiser.eval()
    return bb


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "clips"}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="weights directory (default: the bundled weights)")
    p.add_argument("--lora", default=None, help="a vader LoRA checkpoint directory to apply to the UNet")
    p.add_argument(
        "--run",
        default=None,
        help="a `vader train` output directory on `toy`: compare the model before and after its newest "
        "LoRA checkpoint, with the run's sampling settings, and write prompt_following.json there",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--prompts", type=int, default=None, help="use only the first N held-out prompts (default: all)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the backbone's)")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--clips", action="store_true", help="print the per-clip analysis too")
    p.add_argument(
        "--direction-control",
        action="store_true",
        help="instead: generate each prompt with all four direction words from the same noise and report "
        "whether the word or the noise decides the motion (first 12 prompts unless --prompts)",
    )
    a = p.parse_args(argv)
    prompts = HELDOUT_CAPTIONS[: a.prompts] if a.prompts else HELDOUT_CAPTIONS
    if a.run:
        import yaml

        from vader_core.checkpoint import find_resume

        run = Path(a.run)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        if cfg["backbone"]["name"] != "toy":
            raise SystemExit(f"{run} is a run on `{cfg['backbone']['name']}`; the prompt-following check is for `toy`")
        ckpt = find_resume("latest", run)
        steps, guidance = cfg["backbone"].get("steps"), cfg["backbone"].get("guidance")
        model = cfg["backbone"].get("model")
        out: dict[str, Any] = {"checkpoint": str(ckpt), "steps": steps, "guidance": guidance, "seeds": a.seeds}
        for name, lora in (("before", None), ("after", str(ckpt))):
            out[name] = _summary(evaluate(_load(model, steps, guidance, lora), prompts, seeds=a.seeds))
        (run / "prompt_following.json").write_text(json.dumps(out, indent=2))
        print(f"prompt following on {out['before']['n']} held-out clips (colour / direction of the moving object):")
        for name in ("before", "after"):
            r = out[name]
            print(
                f"  {name:6s} colour {r['color_accuracy']:.0%}  direction {r['direction_accuracy']:.0%}  "
                f"both {r['both_accuracy']:.0%}"
            )
        print(f"written to {run / 'prompt_following.json'}")
        return out
    if a.direction_control:
        res = direction_control(_load(a.model, a.steps, a.guidance, a.lora), prompts[: a.prompts or 12], a.seeds)
        print(json.dumps(res, indent=2))
        return res
    res = evaluate(_load(a.model, a.steps, a.guidance, a.lora), prompts, seeds=a.seeds)
    print(json.dumps(res if a.clips else _summary(res), indent=2))
    return res


if __name__ == "__main__":
    main()
