"""GPU benchmark: one K=1 bf16 training step of each real-size backbone, measured next to its estimate.

    python -m benchmarks.gpu                     # every installed backbone (make bench-gpu)
    python -m benchmarks.gpu --only modelscope,svd --steps 25

Real-size architectures with random weights (memory and time do not depend on the values; nothing is
downloaded): ModelScope T2V 384x384x16, VideoCrafter2 320x512x12, Stable Video Diffusion img2vid
576x1024x14 (decode chunk 2) and, when the ``vader_wan`` plugin imports, Wan 2.1 1.3B 480x832x81. Each
model takes one warm-up step (2 denoising steps: the same kept-step shapes) and one timed training step
through vader's own code (LoRA rank 16, the default memory settings: block checkpointing, guidance
halves one after the other, encoders offloaded, one decoded frame), printing the peak of
``torch.cuda.max_memory_allocated`` over that step, seconds per step and the plugin's estimate
(``scripts/estimate_memory.py``, meta device) side by side, and writes them into
``docs/benchmarks.json`` under ``gpu``. Then the same step with the speed levers on (``vader_core.speed``:
each model's ``levers``, e.g. guidance interval, Wan's first-block cache and compiled blocks; warmed up
first, so compilation is not in the time), and the model FLOPs utilisation of the step without them:
the step's FLOPs (benchmarks B8's count on the meta device: every denoiser call forward, the kept one
backward, decoding one frame forward and backward; no recomputation) / seconds / the device's bf16
dense peak (``--peak-tflops``, or the table ``PEAK_TFLOPS`` by device name). Needs a CUDA GPU; on a CPU
it refuses with one line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


@dataclass
class Model:
    """One row of the benchmark: which backbone, at which size, built how, estimated how."""

    name: str
    package: str
    backbone: str
    options: dict[str, Any]
    setting: str
    build: Callable[[Any, Any, Any], None]  # (backbone, device, dtype): install real-size random components
    estimate: Callable[[], float | None]
    memory: dict[str, Any]
    images: bool = False
    #: ``sampling`` and ``speed`` options of the step with the levers on
    levers: dict[str, dict[str, Any]] | None = None


def _script(package: str) -> Any:
    """The plugin's ``scripts/estimate_memory.py`` as a module (``None`` if the plugin has none)."""
    mod = importlib.import_module(package)
    path = Path(mod.__file__).resolve().parents[2] / "scripts" / "estimate_memory.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"{package}_estimate_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _build_modelscope(bb: Any, device: Any, dtype: Any) -> None:
    import torch
    from vader_modelscope.backbone import scheduler_config

    from vader_core.tokenizers import clip_tokenizer

    with torch.device(device):  # the released architecture, as the plugin's estimate builds it
        components = _script("vader_modelscope").released_components()
    bb.setup(
        {**components, "tokenizer": clip_tokenizer(), "scheduler": bb.make_scheduler(scheduler_config())},
        device,
        dtype,
    )


def _build_videocrafter(bb: Any, device: Any, dtype: Any) -> None:
    import open_clip
    import torch
    from diffusers import AutoencoderKL
    from vader_videocrafter.backbone import VAE_CONFIG
    from vader_videocrafter.text_encoder import ARCH, OpenCLIPTextEncoder, build_openclip_text_model, tokenizer
    from vader_videocrafter.unet import LVDMUNet3DModel

    with torch.device(device):
        unet = LVDMUNet3DModel()
        vae = AutoencoderKL(**VAE_CONFIG)
    text = OpenCLIPTextEncoder(build_openclip_text_model(open_clip.get_model_config(ARCH), str(device)))
    bb.setup(
        {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer(), "scheduler": bb.make_scheduler()},
        device,
        dtype,
    )


def _build_svd(bb: Any, device: Any, dtype: Any) -> None:
    import torch
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPImageProcessor
    from vader_svd.tiny import scheduler_config

    with torch.device(device):  # the released architecture, as the plugin's estimate builds it
        components = _script("vader_svd").released_components()
    bb.setup(
        {
            **components,
            "feature_extractor": CLIPImageProcessor(crop_size=224, size=224),
            "scheduler": EulerDiscreteScheduler(**scheduler_config()),
        },
        device,
        dtype,
    )


def _build_wan(bb: Any, device: Any, dtype: Any) -> None:
    """Wan 2.1 T2V 1.3B: the plugin's tiny components for tokenizer and scheduler, then the real-size
    transformer and VAE of diffusers' ``WanPipeline`` and a 2-layer UMT5 of the real width (4096) as text
    encoder (offloaded during the step; its size changes neither the step's peak nor much of its time).
    A plugin that knows better provides ``build_real_size(backbone, device, dtype)`` in its package."""
    import torch

    plugin = importlib.import_module("vader_wan")
    if hasattr(plugin, "build_real_size"):
        plugin.build_real_size(bb, device, dtype)
        return
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    bb.load_tiny("cpu", dtype)
    comps = dict(bb.components)
    with torch.device(device):
        comps["transformer"] = WanTransformer3DModel(
            num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30
        )
        comps["vae"] = AutoencoderKLWan()
    comps["text_encoder"] = UMT5EncoderModel(
        UMT5Config(d_model=4096, d_ff=10240, num_layers=2, num_heads=64, d_kv=64, vocab_size=256384)
    )
    (bb.setup if hasattr(bb, "setup") else bb.install_components)(comps, device, dtype)


def _estimate(package: str, **kwargs: Any) -> Callable[[], float | None]:
    def run() -> float | None:
        module = _script(package)
        if module is None or not hasattr(module, "estimate"):
            return None
        return float(module.estimate(**kwargs)["peak"])

    return run


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "modelscope",
            "vader_modelscope",
            "modelscope",
            {"height": 384, "width": 384, "frames": 16, "steps": 25},
            "384x384, 16 frames, K=1, 1 decoded frame",
            _build_modelscope,
            _estimate("vader_modelscope", size=384, frames=16),
            {},
            levers={"sampling": {"guidance_interval": [0.0, 0.5]}},
        ),
        Model(
            "videocrafter2",
            "vader_videocrafter",
            "videocrafter2",
            {"height": 320, "width": 512, "frames": 12, "steps": 25},
            "320x512, 12 frames, K=1, 1 decoded frame",
            _build_videocrafter,
            _estimate("vader_videocrafter", height=320, width=512, frames=12),
            {},
        ),
        Model(
            "svd",
            "vader_svd",
            "svd",
            {"height": 576, "width": 1024, "frames": 14, "steps": 25},
            "img2vid 576x1024, 14 frames, K=1, decode chunk 2",
            _build_svd,
            _estimate("vader_svd", height=576, width=1024, frames=14, chunk=2),
            {"decode_chunk_size": 2},
            images=True,
        ),
        # Wan 2.1 1.3B (the `vader-wan` plugin's backbone `wan`); its estimate is the plugin's
        # scripts/estimate_memory.py `estimate(...)["peak"]` if it has one.
        Model(
            "wan",
            "vader_wan",
            "wan",
            {"height": 480, "width": 832, "frames": 81, "steps": 25},
            "T2V 1.3B 480x832, 81 frames, K=1, 1 decoded frame",
            _build_wan,
            _estimate("vader_wan", height=480, width=832, frames=81),
            {},
            levers={
                "sampling": {"guidance_interval": [0.0, 0.5]},
                "speed": {"cache": "first_block", "cache_options": {"threshold": 0.1}, "compile": True},
            },
        ),
    )
}


def installed(names: list[str]) -> list[str]:
    """The names whose plugin package imports."""
    out = []
    for n in names:
        try:
            importlib.import_module(MODELS[n].package)
        except ImportError:
            continue
        out.append(n)
    return out


#: bf16 dense peak TFLOP/s by a part of the device name (vendors' data sheets; SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The device's bf16 dense peak: ``override`` if given, else the first table entry the name contains."""
    if override:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)


def mfu(flops: float | None, seconds: float | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation: ``flops / seconds / (peak TFLOP/s)``; ``None`` when a figure is missing."""
    if not flops or not seconds or not peak:
        return None
    return flops / seconds / (peak * 1e12)


def step_flops(name: str, steps: int) -> float | None:
    """Model FLOPs of ``name``'s timed step (B8's count on the meta device); ``None`` for a model B8 does not count."""
    from benchmarks import b8

    if name not in ("modelscope", "wan"):
        return None
    f = b8.flops([name], steps, log=lambda s: None).get(name, {})
    return f.get("model_without_reward")


def step(model: Model, denoise_steps: int, device: Any) -> dict[str, Any]:
    """Build ``model`` on ``device`` and time one training step, with the levers off, then on; returns the
    measured figures."""
    import torch

    from vader_core.config import BackboneSection, MemorySection, SamplingSection, SpeedSection, TruncationSection
    from vader_core.lora import add_lora, lora_parameters
    from vader_core.offload import offload_encoders
    from vader_core.resolve import build_backbone
    from vader_core.sampling import sample_with_grad
    from vader_core.speed import apply_speed

    dtype = torch.bfloat16
    torch.manual_seed(0)
    bb = build_backbone(BackboneSection(name=model.backbone, **{**model.options, "steps": denoise_steps}))
    t0 = time.perf_counter()
    model.build(bb, device, dtype)
    memory = MemorySection(**model.memory)
    offload_encoders(bb, memory, device)
    add_lora(bb.denoiser, 16, 16, 0.0, bb.default_lora_targets)
    params = lora_parameters(bb.denoiser)
    opt = torch.optim.AdamW(params, lr=1e-5)
    build_s = time.perf_counter() - t0
    autocast = lambda: torch.autocast("cuda", dtype=dtype)  # noqa: E731
    o = bb.options
    images = [torch.rand(3, o.height, o.width)] if model.images else None

    def train_step(steps: int, seed: int, sampling: Any = None, speed: Any = None) -> None:
        bb.options.steps = steps
        with torch.no_grad(), autocast():
            cond = bb.encode_condition(["a panda riding a bike"], images)
        video, _, _ = sample_with_grad(
            bb,
            cond,
            1,
            torch.Generator().manual_seed(seed),
            random.Random(seed),
            TruncationSection(mode="last", k=1),
            memory,
            autocast=autocast,
            sampling=sampling,
            speed=speed,
        )
        f = video.float()
        (-(f.amax(dim=2) - f.amin(dim=2)).mean()).backward()  # saturation: no reward model in the peak
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step(2, 0)  # warm-up: the same kept-step shapes, kernels chosen
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated() / GIB
    t0 = time.perf_counter()
    train_step(denoise_steps, 1)
    torch.cuda.synchronize()
    out: dict[str, Any] = {
        "peak_gib": torch.cuda.max_memory_allocated() / GIB,
        "resident_gib": resident,
        "step_s": time.perf_counter() - t0,
        "build_s": build_s,
        "denoise_steps": denoise_steps,
    }
    if model.levers:
        sampling = SamplingSection(**model.levers.get("sampling", {}))
        speed = SpeedSection(**model.levers.get("speed", {}))
        apply_speed(bb, speed)
        t0 = time.perf_counter()
        train_step(denoise_steps, 0, sampling, speed)  # warm-up: compilation, the cache's shapes
        torch.cuda.synchronize()
        out["levers_warmup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_step(denoise_steps, 1, sampling, speed)
        torch.cuda.synchronize()
        out["step_s_levers"] = time.perf_counter() - t0
        out["levers"] = model.levers
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of measured rows (also printed)."""
    lines = [
        "| model | setting | peak allocated (GiB) | estimate (GiB) | measured / estimate | s/step "
        "| s/step, levers on | speed-up | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['setting']} | failed: {r['error']} | | | | | | |")
            continue
        est = r.get("estimate_gib")
        ratio = f"{r['peak_gib'] / est:.2f}" if est else "n/a"
        on = r.get("step_s_levers")
        speedup = f"{r['step_s'] / on:.2f}x" if on else "n/a"
        util = r.get("mfu")
        lines.append(
            f"| {r['model']} | {r['setting']} | {r['peak_gib']:.1f} | "
            f"{'n/a' if est is None else f'{est:.1f}'} | {ratio} | {r['step_s']:.1f} | "
            f"{'n/a' if on is None else f'{on:.1f}'} | {speedup} | {'n/a' if util is None else f'{util:.1%}'} |"
        )
    return "\n".join(lines)


def write(out: Path, result: dict[str, Any]) -> None:
    """Put ``result`` under ``gpu`` in ``out/benchmarks.json`` (the CPU benchmarks' figures are kept)."""
    path = out / "benchmarks.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["gpu"] = result
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--steps", type=int, default=25, help="denoising steps of the timed training step")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="directory of benchmarks.json")
    ap.add_argument("--no-estimate", action="store_true", help="skip the meta-device estimates")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 dense peak (TFLOP/s) for MFU")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise SystemExit(f"error: --only takes names from {', '.join(MODELS)}; got {', '.join(bad) or 'none'}")
    if args.steps < 2:
        raise SystemExit(f"error: --steps must be at least 2, got {args.steps}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    if not torch.cuda.is_available():
        print(
            "error: benchmarks.gpu needs a CUDA GPU and torch sees none; run it on a GPU machine "
            "(the CPU benchmarks are `python -m benchmarks.run`)",
            file=sys.stderr,
        )
        return 2
    from benchmarks.run import machine

    device = torch.device("cuda")
    names = installed(args.names)
    t0 = time.perf_counter()
    rows = []
    for n in names:
        m = MODELS[n]
        row: dict[str, Any] = {"model": n, "setting": m.setting}
        try:
            row.update(step(m, args.steps, device))
        except Exception as e:  # noqa: BLE001 - one model failing must not lose the others' rows
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        torch.cuda.empty_cache()
        try:
            row["step_flops"] = step_flops(n, args.steps)
        except Exception as e:  # noqa: BLE001 - the step's own figures stand without it
            row["flops_error"] = f"{type(e).__name__}: {str(e)[:200]}"
        row["mfu"] = mfu(
            row.get("step_flops"), row.get("step_s"), peak_tflops(torch.cuda.get_device_name(0), args.peak_tflops)
        )
        if not args.no_estimate:
            try:
                row["estimate_gib"] = m.estimate()
            except Exception as e:  # noqa: BLE001
                row["estimate_error"] = f"{type(e).__name__}: {str(e)[:200]}"
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    result = {
        "device": torch.cuda.get_device_name(0),
        "machine": machine(),
        "rows": rows,
        "skipped": [n for n in args.names if n not in names],
        "wall_s": time.perf_counter() - t0,
    }
    write(Path(args.out), result)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
