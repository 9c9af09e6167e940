"""One training step of one memory configuration, in a fresh process (``python -m benchmarks.worker JSON``;
a JSON list: each configuration in turn, one JSON list printed).

Prints one JSON line: peak resident memory of the process, the part of it the step added over the
loaded model, torch's own peak on CUDA, and the step time. The step is the computation of
``vader_core``'s ``vader`` method (same functions), with full fine-tuning when LoRA is off.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from contextlib import nullcontext


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _hwm_mb() -> float:
    """This process's resident high-water mark. ``VmHWM`` where Linux gives it: ``ru_maxrss`` keeps the RSS of the
    process that forked this one, so a worker started by a grown parent would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(cfg: dict) -> dict:
    import torch

    from benchmarks.arch import (
        register_random_cogvideox,
        register_random_hunyuanvideo,
        register_random_ltx,
        register_random_modelscope,
        register_random_opensora,
        register_random_svd,
        register_random_videocrafter,
        register_random_wan,
    )
    from vader_core.config import MemorySection, TruncationSection
    from vader_core.lora import add_lora, lora_parameters
    from vader_core.sampling import sample_with_grad

    torch.set_num_threads(cfg.get("threads", 2))
    device = torch.device(cfg.get("device", "cpu"))
    bf16 = cfg["precision"] == "bf16"
    size = {"height": cfg["size"], "width": cfg["size"], "frames": cfg["frames"], "steps": cfg["steps"]}
    kind = cfg.get("backbone", "modelscope")
    # each architecture / width at its released defaults (guidance, shift, tiles); CogVideoX lays its positions
    # out for the size; SVD is conditioned on an image (below)
    w, video = cfg["width"], (cfg["size"], cfg["size"], cfg["frames"])
    registers = {
        "wan": lambda: register_random_wan(w),
        "cogvideox": lambda: register_random_cogvideox(w, video),
        "ltx": lambda: register_random_ltx(w),
        "videocrafter": lambda: register_random_videocrafter(w),
        "hunyuanvideo": lambda: register_random_hunyuanvideo(w),
        "opensora": lambda: register_random_opensora(w),
        "svd": lambda: register_random_svd(w),
    }
    if kind in registers:
        cls = registers[kind]()
        bb = cls(cls.Options(**size))
    else:
        cls = register_random_modelscope(cfg["width"], cfg.get("text_layers", 2))
        bb = cls(cls.Options(**size, guidance=cfg.get("guidance", 9.0)))
    bb.load(device, torch.bfloat16 if bf16 else torch.float32)
    # image-to-video backbones are conditioned on a first frame (its values change nothing measured here)
    images = (
        [torch.rand(3, cfg["size"], cfg["size"], generator=torch.Generator().manual_seed(0))] if kind == "svd" else None
    )
    if cfg.get("probe") == "decode":  # what decoding the chain's latents without gradient adds (B8's estimator check)
        from vader_core.sampling import decode, prepare_latents

        with torch.no_grad():
            cond = bb.encode_condition(["a panda riding a bike"], images)
            latents = prepare_latents(bb, 1, torch.Generator().manual_seed(0), cond)
            base = _rss_mb()
            decode(bb, latents, [bb.num_latent_frames(latents) - 1], cond=cond)
        return {"peak_rss_mb": _hwm_mb(), "model_rss_mb": base, "step_added_mb": _hwm_mb() - base}
    if cfg["lora"]:
        add_lora(bb.denoiser, 16, 16, 0.0, bb.default_lora_targets)
        params = lora_parameters(bb.denoiser)
    else:  # full fine-tuning of the denoiser, fp32 master weights
        bb.denoiser.float().requires_grad_(True)
        params = list(bb.denoiser.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    k = cfg["steps"] if cfg["k"] == "all" else cfg["k"]
    trunc = TruncationSection(mode="last", k=k)
    mem = MemorySection(
        gradient_checkpointing=cfg["checkpointing"],
        decoded_frames=cfg["decoded_frames"],
        decode_chunk_size=cfg.get("decode_chunk"),
        split_guidance=cfg.get("split_guidance", True),
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    times = []
    for rep in range(cfg.get("repeats", 1)):
        t0 = time.perf_counter()
        with torch.no_grad(), autocast():
            cond = bb.encode_condition(["a panda riding a bike"], images)
        video, _, decoded = sample_with_grad(
            bb, cond, 1, torch.Generator().manual_seed(rep), random.Random(rep), trunc, mem, autocast=autocast
        )
        with autocast():
            f = video.float()
            reward = (f.amax(dim=2) - f.amin(dim=2)).mean()  # saturation
        (-reward).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {
        "peak_rss_mb": _hwm_mb(),
        "model_rss_mb": base,
        "step_added_mb": _hwm_mb() - base,
        "step_time_s": min(times),
        "trainable_params": sum(p.numel() for p in params),
        "decoded_latent_frames": decoded,
    }
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _each(cfgs: list[dict]) -> list[dict]:
    """Configurations in turn (``benchmarks.run`` sends one per process, or all of a benchmark with ``--quick``):
    a failed one gives its error line."""
    out = []
    for cfg in cfgs:
        try:
            out.append(run(cfg))
        except Exception as e:  # noqa: BLE001 - reported in its row, as a failed process is
            out.append({"error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]})  # one line
    return out


if __name__ == "__main__":
    arg = json.loads(sys.argv[1])
    print(json.dumps(_each(arg) if isinstance(arg, list) else run(arg)))
