"""Run vader's benchmarks side by side and write ``docs/benchmarks.md``, ``docs/benchmarks.json``
and plots (``docs/img/bench-*.png``).

    python -m benchmarks.run            # full suite on this machine (CPU: well under 30 minutes)
    python -m benchmarks.run --quick    # a few minutes; used by the test suite (well-formed output only)

B1 memory ablation, B3 scaling and B5 (whole-call against block checkpointing) run each configuration
in a fresh process (peak memory is a per-process high-water mark). B2 times the trainer against a
hand-written loop in one process, interleaved. B4 compares reward queries of ``vader`` and ``ddpo`` on
the same model and reward (an lr sweep for each, DDPO with 30x vader's budget). B6
measures the KL guard and LoRA scaling against over-optimisation on ``toy`` (``--only b6 --merge``; each
finished run is cached in ``runs/bench-b6/results.jsonl``, so an interrupted sweep continues). B7 measures
two processes of DDP, FSDP and FSDP with sequence parallelism on a Wan-shaped model (``--only b7 --merge``;
needs the vader-wan plugin).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Torch threads per measurement: OMP_NUM_THREADS if set (the test suite sets 1 per worker), else every core.
THREADS = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def machine() -> dict[str, Any]:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "device": "cpu",
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


def _worker(cfgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These configurations in one fresh process, in turn: their results, each with ``error`` where it failed
    (all of them where the process did)."""
    cfgs = [{"threads": THREADS, **c} for c in cfgs]
    env = {**os.environ, "VADER_PLUGINS": "", "OMP_NUM_THREADS": str(cfgs[0]["threads"])}
    if cfgs[0].get("precise_rss"):
        # Allocations above 64 KiB get their own pages, returned to the system when freed: the process's
        # resident high-water mark then follows the live tensors instead of the C allocator's caches.
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(cfgs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=3600,
    )
    if res.returncode != 0:
        return [{"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]}] * len(cfgs)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _workers(cfgs: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """Each configuration in a fresh process, so that its peak memory is its own; with ``quick`` all in one
    process (a format check: the import of torch and diffusers, most of a tiny row's time, paid once, and the
    peak memory of a row then that of the rows so far)."""
    groups = ([cfgs] if cfgs else []) if quick else [[c] for c in cfgs]
    return [r for group in groups for r in _worker(group)]


# ---------------------------------------------------------------------------- B1
ABLATION = [
    (
        "full backprop, all steps, fp32 (full fine-tuning)",
        {"lora": False, "precision": "fp32", "decoded_frames": None, "k": "all", "checkpointing": False},
    ),
    ("+ LoRA", {"lora": True}),
    ("+ mixed precision (bf16)", {"precision": "bf16"}),
    ("+ frame subsampling (1 frame decoded)", {"decoded_frames": 1}),
    ("+ truncated backprop (K=1)", {"k": 1}),
    ("+ gradient checkpointing (whole call)", {"checkpointing": "call", "split_guidance": False}),
    (
        "+ block checkpointing, guidance halves one after the other (default)",
        {"checkpointing": True, "split_guidance": True},
    ),
]


def b1(quick: bool, keep: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The memory ablation; ``keep``: rows of an earlier run with the same settings, used for the first rows."""
    base = (
        {"width": 32, "size": 32, "frames": 2, "steps": 2}
        if quick
        else {"width": 8, "size": 64, "frames": 16, "steps": 25}
    )
    rows, cfg, todo = list(keep[: len(ABLATION)]), dict(base), []
    for i, (label, change) in enumerate(ABLATION):
        cfg.update(change)
        if i >= len(keep):  # --b1-from: the first rows are an earlier run's, same settings
            todo.append((label, dict(cfg)))
    for (label, _), r in zip(todo, _workers([c for _, c in todo], quick), strict=True):
        rows.append({"config": label, **r})
        print(f"B1 {label}: {r}", flush=True)
    ok = [r for r in rows if "error" not in r]
    ratio = rows[0]["peak_rss_mb"] / rows[-1]["peak_rss_mb"] if len(ok) == len(rows) else None
    step_ratio = rows[0]["step_added_mb"] / max(rows[-1]["step_added_mb"], 1e-9) if len(ok) == len(rows) else None
    return {"settings": base, "rows": rows, "memory_reduction_ratio": ratio, "step_memory_reduction_ratio": step_ratio}


# ---------------------------------------------------------------------------- B5
B5_ROWS = [
    ("whole call recomputed", {"checkpointing": "call", "split_guidance": False}),
    ("whole call, guidance halves one after the other", {"checkpointing": "call", "split_guidance": True}),
    ("block by block", {"checkpointing": True, "split_guidance": False}),
    ("block by block, guidance halves one after the other (default)", {"checkpointing": True, "split_guidance": True}),
    ("no checkpointing (reference)", {"checkpointing": False, "split_guidance": False}),
]


def b5(quick: bool) -> dict[str, Any]:
    """Step memory of whole-call against block checkpointing, side by side, at a size where the kept call's
    activations are most of what a step adds."""
    base = (
        {"width": 32, "size": 32, "frames": 2, "steps": 2}
        if quick
        else {"width": 8, "size": 128, "frames": 16, "steps": 2}
    )
    base = {**base, "lora": True, "precision": "fp32", "k": 1, "decoded_frames": 1, "precise_rss": True}
    rows = []
    for (label, change), r in zip(B5_ROWS, _workers([{**base, **c} for _, c in B5_ROWS], quick), strict=True):
        rows.append({"config": label, **change, **r})
        print(f"B5 {label}: {r}", flush=True)
    by = {r["config"]: r for r in rows}

    def ratio(a: str, b: str) -> float | None:
        ra, rb = by[a], by[b]
        if "error" in ra or "error" in rb:
            return None
        return ra["step_added_mb"] / max(rb["step_added_mb"], 1e-9)

    return {
        "settings": base,
        "rows": rows,
        "call_over_block": ratio(B5_ROWS[0][0], B5_ROWS[2][0]),
        "call_over_block_split": ratio(B5_ROWS[1][0], B5_ROWS[3][0]),
        "old_default_over_new": ratio(B5_ROWS[0][0], B5_ROWS[3][0]),
    }


# ---------------------------------------------------------------------------- B3
def b3(quick: bool) -> dict[str, Any]:
    base = {
        "width": 32,
        "size": 32,
        "frames": 2,
        "steps": 2,
        "lora": True,
        "precision": "fp32",
        "k": 1,
        "decoded_frames": 1,
        "checkpointing": True,
    }
    if not quick:
        base = {**base, "width": 8, "size": 64, "frames": 8, "steps": 10}
    axes = {
        "frames": [2, 4] if quick else [4, 8, 16, 24],
        "k": [1, 2] if quick else [1, 2, 5, "all"],
        "decoded_frames": [1, 2] if quick else [1, 2, 4, 8],
        "size": [32] if quick else [32, 64, 96, 128],
    }
    out: dict[str, list[dict[str, Any]]] = {axis: [] for axis in axes}
    points = [(axis, v) for axis, values in axes.items() for v in values]
    for (axis, v), r in zip(points, _workers([{**base, a: v} for a, v in points], quick), strict=True):
        out[axis].append({"value": v, **r})
        print(f"B3 {axis}={v}: {r}", flush=True)
    return {"settings": base, "axes": out}


# ---------------------------------------------------------------------------- B2
def _hand_loop(width: int, size: int, frames: int, steps: int, k: int, seed: int):
    """A minimal PyTorch + diffusers + peft step, written without vader, doing the same computation."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    from benchmarks.arch import modelscope_components

    c = modelscope_components(width, 2, seed)
    unet, vae, text, tok, sched = c["unet"], c["vae"], c["text_encoder"], c["tokenizer"], c["scheduler"]
    for m in (unet, vae, text):
        m.requires_grad_(False).eval()
    inject_adapter_in_model(LoraConfig(r=16, lora_alpha=16, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), unet)
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=2e-4)
    guidance = 9.0

    def step(i: int) -> float:
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            ids = tok(["a panda riding a bike", ""], padding="max_length", max_length=77, return_tensors="pt").input_ids
            emb = text(ids)[0]
            emb = torch.cat([emb[1:], emb[:1]])
        lat = torch.randn((1, 4, frames, size // 8, size // 8), generator=g)
        sched.set_timesteps(steps)
        for j, t in enumerate(sched.timesteps):
            grad = j >= steps - k
            with torch.set_grad_enabled(grad):
                x = torch.cat([lat] * 2)
                if grad:
                    out = torch.utils.checkpoint.checkpoint(
                        lambda x_, t_: unet(x_, t_, encoder_hidden_states=emb).sample, x, t, use_reentrant=False
                    )
                else:
                    out = unet(x, t, encoder_hidden_states=emb).sample
                u, c_ = out.chunk(2)
                eps = u + guidance * (c_ - u)
                b, ch, f, h, w = lat.shape
                lat = sched.step(
                    eps.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w),
                    t,
                    lat.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w),
                    eta=0.0,
                ).prev_sample
                lat = lat.reshape(b, f, ch, h, w).permute(0, 2, 1, 3, 4)
        z = lat[:, :, [frames // 2]].permute(0, 2, 1, 3, 4).reshape(1, 4, size // 8, size // 8)
        img = (vae.decode(z / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        reward = (img.amax(dim=1) - img.amin(dim=1)).mean()
        (-reward).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(reward.detach())

    return step


def b2(quick: bool) -> dict[str, Any]:
    import tempfile

    import torch

    from benchmarks.arch import register_random_modelscope
    from vader_core.config import build_config
    from vader_core.trainer import Trainer

    width, size, frames, steps, k = (32, 32, 2, 2, 1) if quick else (8, 64, 8, 10, 1)
    rounds = 3 if quick else 7
    torch.set_num_threads(THREADS)
    register_random_modelscope(width)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config(
            None,
            [
                f"output.dir={tmp}",
                "output.logger=none",
                "optim.grad_accum=1",
                f"backbone.height={size}",
                f"backbone.width={size}",
                f"backbone.frames={frames}",
                f"backbone.steps={steps}",
                "backbone.guidance=9",
                f"truncation.k={k}",
                "memory.decoded_frames=1",
                "memory.frame_selection=uniform",
                "lora.dropout=0",
                "train.prompts=[a panda riding a bike]",
            ],
            {"backbone.name": "modelscope-random", "rewards": ["saturation"], "device": "cpu", "precision": "fp32"},
        )
        tr = Trainer(cfg, progress=False)
        tr._setup()
        hand = _hand_loop(width, size, frames, steps, k, 0)
        tr.train_step(0), hand(0)  # warm-up both
        t_vader, t_hand = [], []
        for i in range(1, rounds + 1):  # interleaved, so load on the machine hits both alike
            t0 = time.perf_counter()
            tr.train_step(i)
            t_vader.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hand(i)
            t_hand.append(time.perf_counter() - t0)
            print(f"B2 round {i}: vader {t_vader[-1]:.3f}s, hand-written {t_hand[-1]:.3f}s", flush=True)
    mv, mh = statistics.median(t_vader), statistics.median(t_hand)
    return {
        "settings": {"width": width, "size": size, "frames": frames, "steps": steps, "k": k, "rounds": rounds},
        "vader_step_s": t_vader,
        "hand_step_s": t_hand,
        "vader_median_s": mv,
        "hand_median_s": mh,
        "overhead_ratio": mv / mh,
    }


# ---------------------------------------------------------------------------- B4
#: Fractions of vader's final held-out gain at which both methods' query counts are compared.
B4_LEVELS = (0.25, 0.5, 0.9)


def _b4_run(
    backbone: str, base: Any, reward_flag: Any, common: list[str], sets: list[str], method: str, seed: int
) -> dict[str, Any]:
    import tempfile

    from vader_core.config import build_config
    from vader_core.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config(
            base,
            [f"output.dir={tmp}", *common, *sets],
            {
                "backbone.name": backbone,
                "rewards": reward_flag,
                "device": "cpu",
                "method.name": method,
                "train.seed": seed,
            },
        )
        t0 = time.perf_counter()
        Trainer(cfg, progress=False).run()
        wall = time.perf_counter() - t0
        rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        queries = {0: 0, **{r["step"]: r["reward_queries"] for r in rows}}
        # Training time only (validation excluded): the sum of the optimiser steps' times so far.
        train_s, total = {0: 0.0}, 0.0
        for r in rows:
            total += r["step_time"]
            train_s[r["step"]] = total
        val = [json.loads(x) for x in (Path(tmp) / "validation.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        "wall_s": wall,
        "points": [
            {
                "step": v["step"],
                "queries": queries.get(v["step"], 0),
                "train_s": train_s.get(v["step"], 0.0),
                "heldout_reward": v["reward"],
            }
            for v in val
        ],
    }


def _first_reaching(points: list[dict[str, Any]], target: float) -> int | None:
    return next((p["queries"] for p in points if p["heldout_reward"] >= target), None)


def b4_levels(
    curves: dict[str, list[dict[str, Any]]], levels: Sequence[float] = B4_LEVELS, own_gain: bool = False
) -> dict[str, Any]:
    """Queries each method needs to reach ``start + f * gain`` for each ``f`` in ``levels``, where ``gain`` is
    vader's final held-out gain (mean over its seeds); per seed the first validation at or above the target.

    With ``own_gain`` each seed has its own target: vader's final gain *on that seed* (its start the mean of
    both methods' first validation on that seed), and DDPO's run with the same seed is held to the same target.
    vader then reaches every level on every seed by construction (its last validation is at 100%), so each
    ratio is defined; a seed whose vader run lost reward makes it undefined.

    A seed that never reaches a target counts as its method's whole budget, so the mean is then a lower
    bound ("not reached in N queries" when no seed reaches it), and so is any ratio built on it.
    """
    n = len(curves["vader"])
    if own_gain:
        if any(len(runs) != n for runs in curves.values()):
            raise ValueError("own_gain pairs the methods' runs by seed: every method needs as many seeds as vader")
        starts = [statistics.mean(runs[i]["points"][0]["heldout_reward"] for runs in curves.values()) for i in range(n)]
        gains = [curves["vader"][i]["points"][-1]["heldout_reward"] - starts[i] for i in range(n)]
    else:
        start = statistics.mean(c["points"][0]["heldout_reward"] for m in curves.values() for c in m)
        gain = statistics.mean(c["points"][-1]["heldout_reward"] for c in curves["vader"]) - start
        starts, gains = [start] * n, [gain] * n
    out: dict[str, Any] = {
        "start": statistics.mean(starts),
        "vader_final_gain": statistics.mean(gains),
        "own_gain": own_gain,
        **({"seed_starts": starts, "seed_gains": gains} if own_gain else {}),
        "levels": [],
    }
    for f in levels:
        targets = [s + f * g for s, g in zip(starts, gains, strict=True)]
        row: dict[str, Any] = {"fraction": f, "target": statistics.mean(targets)}
        if own_gain:
            row["seed_targets"] = targets
        for m, runs in curves.items():
            budget = max(p["queries"] for c in runs for p in c["points"])
            per_seed = [
                _first_reaching(c["points"], targets[i] if own_gain else targets[0]) for i, c in enumerate(runs)
            ]
            reached = [q for q in per_seed if q is not None]
            filled = [q if q is not None else budget for q in per_seed]
            row[m] = {
                "per_seed": per_seed,
                "reached": len(reached),
                "seeds": len(per_seed),
                "budget": budget,
                "mean": statistics.mean(filled),
                "min": min(filled),
                "max": max(filled),
                "lower_bound": len(reached) < len(per_seed),
            }
        v, d = row["vader"], row["ddpo"]
        row["ratio"] = d["mean"] / v["mean"] if v["mean"] else None
        # Censored DDPO seeds make the ratio a lower bound; censored vader seeds make it meaningless.
        row["ratio_is_lower_bound"] = d["lower_bound"]
        row["ratio_valid"] = not v["lower_bound"] and min(gains) > 0
        out["levels"].append(row)
    return out


def b4_ratios(levels: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ratio at each level as the report states it: ``{"25%": {"ratio": 48.0, "lower_bound": true}}``, or
    ``ratio`` null with ``why`` when it is not defined: vader's own queries censored, or its gain not positive
    (the mean gain, or with ``own_gain`` some seed's)."""
    out: dict[str, dict[str, Any]] = {}
    for r in levels["levels"]:
        key = f"{r['fraction']:.0%}"
        if r["ratio_valid"] and r["ratio"] is not None:
            out[key] = {"ratio": r["ratio"], "lower_bound": r["ratio_is_lower_bound"]}
        else:
            v = r["vader"]
            out[key] = {
                "ratio": None,
                "lower_bound": None,
                "why": f"vader reached it on {v['reached']} of {v['seeds']} seeds in {v['budget']} queries"
                if v["lower_bound"]
                else "vader's final gain is not positive" + (" on every seed" if levels.get("own_gain") else ""),
            }
    return out


def b4_own_gain(b: dict[str, Any]) -> dict[str, Any]:
    """B4's levels and ratios against each seed's own final vader gain (:func:`b4_levels` ``own_gain``), derived
    from the stored curves, so a B4 result from before this form gains them without a rerun."""
    levels = b4_levels(b["curves"], own_gain=True)
    return {"levels_own_gain": levels, "ddpo_query_ratios_own_gain": b4_ratios(levels)}


def _b4_worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def b4(quick: bool, partial: Path | None = None, jobs: int = 1) -> dict[str, Any]:
    """vader against DDPO on the same model and reward: an lr sweep for each (seed 0, best final held-out reward
    kept), then the best lr on every seed; DDPO gets at least 30 times vader's reward queries.

    ``jobs`` > 1 runs that many training runs side by side in worker processes, sharing the cores between them
    (queries and held-out rewards do not depend on it; the training-time column does, and says so)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from vader_core import plugins

    backbone = "toy" if plugins.has("backbone", "toy") else "tiny"
    seeds = [0] if quick else [0, 1, 2]
    # vader: 2 videos per optimiser step; DDPO: 16 trajectories per epoch (4 micro-batches of 4), each trained
    # over 2 optimiser steps (2 micro-batches each), every denoising step trained (REFERENCE.md).
    # 20 vader steps: the 3 steps of the first fair form moved one seed's held-out reward by 0.0005, within
    # noise of the start, which made every level's ratio meaningless; with 10 one seed gained +0.110 and
    # reached neither 50% nor 90% of the mean final gain, so no ratio could be stated at those levels.
    vader_steps = 2 if quick else 20
    vader_queries = 2 * vader_steps
    ddpo_epochs = 1 if quick else -(-30 * vader_queries // 16)  # at least 30x vader's queries
    sweep = {"vader": [2e-3] if quick else [2e-3, 5e-3], "ddpo": [3e-3] if quick else [1e-3, 3e-3]}
    demo = ROOT / "examples" / "demo-toy.yaml"
    base, reward_flag, reward_desc = (
        (demo, None, "brightness towards 0.85 (the demo's objective)")
        if backbone == "toy"
        else (None, ["saturation"], "saturation")
    )
    common = [
        "output.logger=none",
        "validation.save_videos=false",
        "validation.seeds=[0, 1]",
        "output.checkpoint_every=0",
        "sampling.eta=1.0",
        "backbone.scheduler=ddim",
        "optim.schedule=constant",
        "optim.warmup_steps=0",
        # --quick checks the report's form only: fewer denoising steps and held-out prompts.
        *(["backbone.steps=4", "validation.max_prompts=2"] if quick else []),
    ]
    runs = {
        # vader: the demo's set-up; K=2 of the 10 steps backpropagated, 2 videos per step, validated every step.
        "vader": [
            "optim.grad_accum=1",
            "train.batch_size=2",
            "truncation.k=2",
            f"train.max_steps={vader_steps}",
            "validation.every=1",
        ],
        # DDPO: validated every 2 epochs (32 queries).
        "ddpo": [
            "optim.grad_accum=2",
            "train.batch_size=4",
            "method.sample_batches=4",
            "method.stat_min_count=8",
            f"train.max_steps={2 * ddpo_epochs}",
            f"validation.every={1 if quick else 4}",
        ],
    }
    # Every finished run is written to `partial` (keyed method:lr:seed) and taken from there when the
    # benchmark is started again, so an interrupted B4 continues where it stopped.
    key = f"{backbone}:{vader_steps}:{ddpo_epochs}:{int(quick)}"
    done: dict[str, Any] = {"key": key, "runs": {}}
    if partial is not None and partial.is_file():
        old = json.loads(partial.read_text())
        if old.get("key") == key:
            done = old
    jobs = max(1, jobs)
    threads = max(1, THREADS // jobs)
    pool = (
        ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_b4_worker_init, initargs=(threads,)
        )
        if jobs > 1
        else None
    )
    pending: dict[Any, str] = {}

    def start(method: str, lr: float, seed: int) -> None:
        name = f"{method}:{lr}:{seed}"
        if name in done["runs"] or name in pending.values():
            return
        args = (backbone, base, reward_flag, common, [*runs[method], f"optim.lr={lr}"], method, seed)
        if pool is None:
            finish(name, _b4_run(*args))
        else:
            pending[pool.submit(_b4_run, *args)] = name

    def finish(name: str, c: dict[str, Any]) -> None:
        done["runs"][name] = c
        if partial is not None:
            partial.write_text(json.dumps(done, indent=1))
        print(f"B4 {name.replace(':', ' ')}: {c['points'][-1]} in {c['wall_s']:.0f}s", flush=True)

    best: dict[str, float] = {}

    def sweep_done(method: str) -> bool:
        return all(f"{method}:{lr}:{seeds[0]}" in done["runs"] for lr in sweep[method])

    def pick_best(method: str) -> None:
        best[method] = max(
            sweep[method], key=lambda lr: done["runs"][f"{method}:{lr}:{seeds[0]}"]["points"][-1]["heldout_reward"]
        )
        for s in seeds[1:]:
            start(method, best[method], s)

    try:
        # DDPO's runs first (the long ones); a method's best lr goes on the other seeds once its sweep is in.
        for method in ("ddpo", "vader"):
            for lr in sweep[method]:
                start(method, lr, seeds[0])
        while True:
            for method in runs:
                if method not in best and sweep_done(method):
                    pick_best(method)
            if not pending:
                break
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                finish(pending.pop(fut), fut.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    results_sweep = {m: {str(lr): done["runs"][f"{m}:{lr}:{seeds[0]}"] for lr in sweep[m]} for m in runs}
    curves = {m: [done["runs"][f"{m}:{best[m]}:{s}"] for s in seeds] for m in runs}
    done["sweep"] = results_sweep

    def mean_curve(method: str, x: str = "queries") -> list[tuple[Any, float]]:
        pts = [c["points"] for c in curves[method]]
        return [
            (
                statistics.mean(q[x] for q in p) if x == "train_s" else p[0][x],
                statistics.mean(c[i]["heldout_reward"] for c in pts),
            )
            for i, p in enumerate(zip(*pts, strict=True))
        ]

    levels = b4_levels(curves)
    half = next(r for r in levels["levels"] if r["fraction"] == 0.5)
    return {
        "backbone": backbone,
        "reward": reward_desc,
        "seeds": seeds,
        "lr_sweep": sweep,
        "best_lr": best,
        "sweep": results_sweep,
        "curves": curves,
        "budgets": {"vader": vader_queries, "ddpo": 16 * ddpo_epochs},
        "vader_mean": mean_curve("vader"),
        "ddpo_mean": mean_curve("ddpo"),
        "vader_mean_time": mean_curve("vader", "train_s"),
        "ddpo_mean_time": mean_curve("ddpo", "train_s"),
        "levels": levels,
        "ddpo_query_ratio": half["ratio"] if half["ratio_valid"] else None,
        "ratio_is_lower_bound": half["ratio_is_lower_bound"],
        "ddpo_query_ratios": b4_ratios(levels),
        **b4_own_gain({"curves": curves}),
        "jobs": jobs,
        "threads_per_run": threads,
    }


# ---------------------------------------------------------------------------- B8
def b8(quick: bool) -> dict[str, Any]:
    """Where a step's time goes (phases, timed here; FLOPs at the real sizes, meta device) and what the
    speed levers save (interleaved with repeats): :mod:`benchmarks.b8`."""
    import torch

    from benchmarks import b8 as m

    torch.set_num_threads(THREADS)
    models = m.QUICK_MODELS if quick else m.CPU_MODELS
    rounds = 1 if quick else 3
    out: dict[str, Any] = {"threads": THREADS, "rounds": rounds, "machine": machine()}
    out["phases"] = m.phases(models, rounds)
    out["levers"] = m.levers(models, ["tiny"] if quick else ["toy", "wan-random"], rounds)
    if not quick:  # the scaled Wan on the chain of the alignment check (25 steps, K=1), with its levers
        wan = m.CPU_MODELS["wan-random"]
        paper = {"wan-random": {**wan, "size": {**wan["size"], "steps": 25}}}
        out["levers_paper_chain"] = m.levers(paper, ["wan-random"], rounds, settings_of=m.paper_chain_settings)
    out["flops"] = {} if quick else m.flops()
    out["gain"] = m.gain(quick)
    out["estimator"] = estimator_check(quick)
    if not quick:
        try:
            out["compile"] = m.compile_time()
        except Exception as e:  # noqa: BLE001 - inductor needs a C compiler; the other figures stand
            out["compile"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    return out


def _estimator_row(case: dict[str, Any], step: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    """One row of the estimator check: ``case``'s estimate against its measured ``step`` and no-gradient decode
    ``probe`` (each a worker's result); a failed measurement leaves its message under ``error``."""
    from benchmarks import b8 as m

    est = m.estimate_case(case, step.get("decoded_latent_frames") or ())
    row: dict[str, Any] = {**case, **est}
    if "error" in step or "error" in probe:
        row["error"] = step.get("error") or probe.get("error")
    else:
        workspace = max(0.0, probe["step_added_mb"] - est["decode_live_mib"])
        row.update(
            measured_mib=step["step_added_mb"],
            decoded=step.get("decoded_latent_frames"),
            decode_nograd_mib=probe["step_added_mb"],
            cpu_workspace_mib=workspace,
            error_raw=est["step_mib"] / step["step_added_mb"] - 1,
            error=(est["step_mib"] + workspace) / step["step_added_mb"] - 1,
        )
    print(f"B8 estimator {case}: {row}", flush=True)
    return row


def estimator_check(
    quick: bool, backbones: Sequence[str] = (), earlier: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The backbone plugins' memory estimators against the step memory measured here (each in a fresh process),
    and what decoding without gradient adds here beyond its tensors (the CPU kernels' workspace).

    ``backbones`` measures only those backbones' cases; the other rows (and the floor) are kept from ``earlier``.
    """
    from benchmarks import b8 as m

    cases = m.QUICK_ESTIMATOR_CASES if quick else m.ESTIMATOR_CASES
    kept: list[dict[str, Any]] = []
    if backbones:
        unknown = set(backbones) - {c["backbone"] for c in cases}
        if unknown:
            raise SystemExit(f"error: no estimator case for {', '.join(sorted(unknown))}")
        kept = [r for r in (earlier or {}).get("rows", []) if r["backbone"] not in backbones]
        cases = [c for c in cases if c["backbone"] in backbones]
    common = {"steps": 2, "lora": True, "precision": "fp32", "k": 1, "decoded_frames": 1, "precise_rss": True}
    probes = {(c["backbone"], c["width"], c["size"], c["frames"]): {**common, **c, "probe": "decode"} for c in cases}
    floor = {**common, "backbone": "modelscope", "width": 8, "size": 32, "frames": 2, "checkpointing": True}
    floors = [] if quick or backbones else [floor]
    measured = _workers([{**common, **c} for c in cases] + list(probes.values()) + floors, quick)
    steps, decodes = (
        measured[: len(cases)],
        dict(zip(probes, measured[len(cases) : len(cases) + len(probes)], strict=True)),
    )
    rows = [
        _estimator_row(case, r, decodes[(case["backbone"], case["width"], case["size"], case["frames"])])
        for case, r in zip(cases, steps, strict=True)
    ]
    # rows kept from an earlier run: their measurements stand, their estimates are redone (an estimator may have
    # changed since; the estimates take seconds on the meta device)
    redone = []
    for row in kept:
        if "measured_mib" not in row:
            redone.append(row)
            continue
        case = {k: row[k] for k in ("backbone", "width", "size", "frames", "checkpointing")}
        step = {"step_added_mb": row["measured_mib"], "decoded_latent_frames": row.get("decoded")}
        redone.append(_estimator_row(case, step, {"step_added_mb": row["decode_nograd_mib"]}))
    kept = redone
    order = {(c["backbone"], c["size"], c["checkpointing"]): i for i, c in enumerate(m.ESTIMATOR_CASES)}
    rows = sorted(kept + rows, key=lambda r: order.get((r["backbone"], r["size"], r["checkpointing"]), len(order)))
    ok = [r for r in rows if "error_raw" in r]
    if quick:
        floor_mib = None
    elif backbones:  # not measured again
        floor_mib = (earlier or {}).get("floor_mib")
    else:
        floor_mib = measured[-1].get("step_added_mb")
    return {
        "machine": machine(),
        "rows": rows,
        "floor_mib": floor_mib,
        "max_abs_error": max((abs(r["error"]) for r in ok), default=None),
    }


def b8_report(b: dict[str, Any]) -> list[str]:
    from benchmarks.b8 import PHASES

    names = {
        "encode": "encode the condition",
        "prefix": "no-gradient prefix",
        "kept_forward": "kept calls, forward",
        "kept_backward": "kept calls, recomputation and backward",
        "decode_forward": "decode with gradient",
        "decode_backward": "decode, backward",
        "reward_forward": "reward",
        "reward_backward": "reward, backward",
        "optimizer": "optimizer",
    }
    order = [
        "encode",
        "prefix",
        "kept_forward",
        "kept_backward",
        "decode_forward",
        "decode_backward",
        "reward_forward",
        "reward_backward",
        "optimizer",
    ]
    assert set(order) == set(PHASES)
    models = list(b["phases"])
    lines = [
        "## B8. Where the time of a step goes, and the speed levers",
        "",
        (
            f"Measured on {b['machine'].get('cpu', '?')}, {b['machine'].get('cpus')} CPUs, torch {b['machine']['torch']}. "
            if b.get("machine")
            else ""
        )
        + f"One training step through `sample_with_grad`, its phases timed with tensor hooks where the gradient "
        f"reaches the decoded video and the chain's final latents; {b['rounds']} rounds after a warm-up, the "
        f"models taken in turn, {b['threads']} torch thread(s), median of the rounds (the spread of the step "
        "over the rounds is the noise of this shared machine). Reward: brightness towards 0.85 (cheap on "
        "purpose: a reward model's share is in the FLOPs table).",
        "",
        "| phase | " + " | ".join(models) + " |",
        "| --- | " + " | ".join("---" for _ in models) + " |",
    ]
    for k in order:
        cells = [f"{b['phases'][n]['median_s'][k]:.3f} ({b['phases'][n]['share'][k]:.0%})" for n in models]
        lines.append(f"| {names[k]} | " + " | ".join(cells) + " |")
    lines.append(
        "| **step** | "
        + " | ".join(
            f"**{b['phases'][n]['median_s']['step']:.2f}** (± {b['phases'][n]['range_s']['step'] / 2:.2f})"
            for n in models
        )
        + " |"
    )
    lines += ["", "Settings: " + "; ".join(f"{n} `{json.dumps(b['phases'][n]['settings'])}`" for n in models), ""]
    if b.get("flops"):
        lines += [
            "FLOPs of a K=1 step at the real sizes, counted on the meta device (`torch.utils.flop_counter`: "
            "matrix products, convolutions, attention): the prefix is the guided no-gradient calls, the kept call "
            "runs forward three times under block checkpointing plus its backward, decoding one frame with "
            "gradient (blocks recomputed), the reward a CLIP ViT-H/14 image tower (HPSv2's) forward and backward "
            "on that frame.",
            "",
            "| model | setting | one guided call (TFLOP) | prefix | kept call | decode | reward | step (PFLOP) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for n, f in b["flops"].items():
            if "error" in f:
                lines.append(f"| {n} | {f['setting']} | failed: {f['error']} | | | | | |")
                continue
            sh = f["share"]
            lines.append(
                f"| {n} | {f['setting']} | {f['denoiser_call_forward'] / 1e12:.1f} | {sh['prefix']:.1%} | "
                f"{sh['kept']:.1%} | {sh['decode']:.1%} | {sh['reward']:.2%} | {f['total'] / 1e15:.2f} |"
            )
        lines.append("")
    for n, lv in [
        *b["levers"].items(),
        *((f"{k}, the paper's chain", v) for k, v in b.get("levers_paper_chain", {}).items()),
    ]:
        lines += [
            f"Levers on `{n}` (`{json.dumps(lv['settings'])}`), each setting in turn within every round, "
            f"{lv['rounds']} rounds:",
            "",
            "| levers | median step (s) | min-max (s) | prefix (s) | speed-up |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in lv["rows"]:
            lines.append(
                f"| {r['lever']} | {r['median_step_s']:.2f} | {r['min_step_s']:.2f}-{r['max_step_s']:.2f} | "
                f"{r['median_prefix_s']:.2f} | **{r['speedup']:.2f}x** |"
            )
        lines.append("")
    c = b.get("compile")
    if c:
        if "error" in c:
            lines += [f"Regional compilation (`speed.compile`) on scaled Wan: failed: {c['error']}", ""]
        else:
            lines += [
                f"Regional compilation (`speed.compile`, inductor on this CPU) on scaled Wan "
                f"(`{json.dumps(c['settings'])}`): first step {c['first_compiled_step_s']:.0f} s (compilation "
                f"included, from an empty inductor cache), then {c['compiled_median_s']:.2f} s against {c['eager_median_s']:.2f} s eager: "
                f"**{c['speedup']:.2f}x**.",
                "",
            ]
    if b.get("gain"):
        g = b["gain"]
        lines += [
            f"Alignment with the levers on `{g['backbone']}` (the demo's configuration with {g['chain']}; levers "
            f"{g['levers']}): held-out reward gain after {g['steps']} steps, seeds {g['seeds']}, each seed's run "
            f"without and with the levers one after the other. Step speed-up from the same runs: "
            f"**{g['speedup']:.2f}x** at **{g['share_of_gain']:.0%}** of the gain without levers.",
            "",
            "| levers | gain per seed | mean gain | share of the gain without levers | median step (s) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in g["rows"]:
            lines.append(
                f"| {r['setting']} | {' / '.join(f'{x:+.4f}' for x in r['gains'])} | {r['mean_gain']:+.4f} | "
                f"{r['share']:.0%} | {r['median_step_s']:.2f} |"
            )
        lines.append("")
    e = b.get("estimator")
    if e:
        floor = f"{e['floor_mib']:.0f} MiB" if e.get("floor_mib") is not None else "not measured (quick run)"
        lines += [
            "The memory estimators against measurement: each backbone plugin's `scripts/estimate_memory.py` (the "
            "code behind every GPU figure we publish), given the scaled-down architecture on the `meta` device in "
            "float32, against the memory one training step adds over the loaded model here (2 steps, K=1, one "
            "decoded frame, LoRA, each row in a fresh process, resident memory with freed blocks returned to the "
            "system). The CPU's own kernels add a workspace no GPU has: Conv3d runs through im2col buffers (one "
            "Conv3d of 12 channels at 256x256x4 frames adds 339 MiB for a 12 MiB output), measured as what decoding "
            "the same latents without gradient adds here beyond the tensors alive at its worst moment (counted on "
            f"`meta`). A step of the same model at 32x32x2 adds {floor} (the process's floor, not activations)."
            + (
                f" Measured on {em.get('cpu', '?')} ({em.get('cpus', '?')} cores), separately from B8's other figures "
                "(`--b8-estimator-only`)."
                if (em := e.get("machine")) and em.get("cpu") != b.get("machine", {}).get("cpu")
                else ""
            ),
            "",
            "| backbone | setting | measured step (MiB) | estimated (MiB) | error | CPU decode workspace (MiB) | "
            "estimated + workspace | error |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in e["rows"]:
            setting = (
                f"/{r['width']}, {r['size']}x{r['size']}x{r['frames']}, "
                f"`gradient_checkpointing: {str(r['checkpointing']).lower()}`"
            )
            if "error_raw" not in r:
                lines.append(f"| {r['backbone']} | {setting} | failed: {r.get('error')} | | | | | |")
                continue
            lines.append(
                f"| {r['backbone']} | {setting} | {r['measured_mib']:.0f} | {r['step_mib']:.0f} | "
                f"{r['error_raw']:+.0%} | {r['cpu_workspace_mib']:.0f} | {r['step_mib'] + r['cpu_workspace_mib']:.0f} | "
                f"**{r['error']:+.0%}** |"
            )
        lines.append("")
    return lines


# ---------------------------------------------------------------------------- B6
# ---------------------------------------------------------------------------- B7
#: B7's Wan-shaped model: Wan 2.1's architecture with a 512-wide transformer (8 heads of 64), 8 blocks.
B7_SHAPE = {"heads": 8, "head_dim": 64, "layers": 8, "ffn_dim": 2048, "size": 128, "frames": 9, "steps": 2}
B7_ROWS = [
    ("ddp (every process holds the whole model)", {"strategy": "ddp", "sp": 1}),
    ("fsdp (weights and LoRA sharded over the 2 processes)", {"strategy": "fsdp", "sp": 1}),
    ("fsdp + sequence parallelism 2 (each process holds half of a video's tokens)", {"strategy": "fsdp", "sp": 2}),
]


def b7(quick: bool) -> dict[str, Any]:
    """Two processes (torchrun, gloo) training the Wan-shaped model under each ``distributed`` setting, one
    setting after the other: each process's peak resident memory and the transformer bytes it holds."""
    import tempfile

    shape = {**B7_SHAPE, **({"heads": 2, "head_dim": 16, "layers": 2, "ffn_dim": 64, "size": 32} if quick else {})}
    torchrun = Path(sys.executable).parent / "torchrun"
    rows = []
    for label, setting in B7_ROWS:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {**shape, **setting, "max_steps": 1, "out": tmp}
            env = {**os.environ, "VADER_PLUGINS": "wan", "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
            t0 = time.perf_counter()
            res = subprocess.run(
                [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "benchmarks.b7_worker", json.dumps(cfg)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
                timeout=3600,
            )
            if res.returncode != 0:
                rows.append({"config": label, "error": (res.stderr.strip().splitlines() or ["failed"])[-1][:300]})
                continue
            ranks = [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(2)]
        row = {
            "config": label,
            **setting,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in ranks),
            "step_mib": max(r["peak_rss_mib"] - r["loaded_rss_mib"] for r in ranks),
            "param_mib_held": max(r["param_mib_held"] for r in ranks),
            "param_mib_whole": ranks[0]["param_mib_whole"],
            "wall_s": time.perf_counter() - t0,
        }
        rows.append(row)
        print(f"B7 {label}: {row}", flush=True)
    ok = {r["strategy"] + str(r["sp"]): r for r in rows if "error" not in r}
    ratios = {}
    if "ddp1" in ok and "fsdp1" in ok:
        ratios["fsdp_param_ratio"] = ok["ddp1"]["param_mib_held"] / ok["fsdp1"]["param_mib_held"]
        ratios["fsdp_peak_ratio"] = ok["ddp1"]["peak_rss_mib"] / ok["fsdp1"]["peak_rss_mib"]
    if "ddp1" in ok and "fsdp2" in ok:
        ratios["fsdp_sp_peak_ratio"] = ok["ddp1"]["peak_rss_mib"] / ok["fsdp2"]["peak_rss_mib"]
    if "fsdp1" in ok and "fsdp2" in ok:
        ratios["sp_step_ratio"] = ok["fsdp1"]["step_mib"] / max(ok["fsdp2"]["step_mib"], 1e-9)
    return {"shape": shape, "processes": 2, "rows": rows, **ratios}


def b7_report(b: dict[str, Any]) -> list[str]:
    s = b["shape"]
    lines = [
        "## B7. Sharding and sequence parallelism",
        "",
        f"Two processes (`torchrun --nproc_per_node 2`, gloo, one thread each) train one step of the Wan 2.1 "
        f"architecture scaled to fit: a transformer of {s['layers']} blocks, {s['heads']} heads of {s['head_dim']}, "
        f"feed-forward {s['ffn_dim']}, the tiny VAE and text encoder, {s['size']}x{s['size']} pixels, "
        f"{s['frames']} frames, {s['steps']} steps, fp32, each `distributed` setting in fresh processes, one after the "
        "other. Peak = the larger of the two processes' peak resident memory from the end of loading (the model "
        "sharded where it is) to the end of the run (Python, torch, every model, validation and the step); step = "
        "what that peak adds over the process once loaded; parameters = the transformer bytes a process holds "
        "between calls (its shard under FSDP).",
        "",
        "| setting | peak per process (MiB) | step (MiB) | transformer parameters held (MiB of) |",
        "| --- | --- | --- | --- |",
    ]
    for r in b["rows"]:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error']} | | |")
            continue
        lines.append(
            f"| {r['config']} | {r['peak_rss_mib']:.0f} | {r['step_mib']:.0f} | "
            f"{r['param_mib_held']:.1f} of {r['param_mib_whole']:.1f} |"
        )
    lines.append("")
    if "fsdp_param_ratio" in b:
        lines.append(
            f"Parameters held, DDP over FSDP: **{b['fsdp_param_ratio']:.2f}x** (2 processes: half each). Peak per "
            f"process, DDP over FSDP: **{b['fsdp_peak_ratio']:.2f}x**"
            + (
                f"; DDP over FSDP with sequence parallelism 2: **{b['fsdp_sp_peak_ratio']:.2f}x**."
                if "fsdp_sp_peak_ratio" in b
                else "."
            )
            + (
                f" What a step adds, FSDP over FSDP with sequence parallelism 2: **{b['sp_step_ratio']:.2f}x**."
                if "sp_step_ratio" in b
                else ""
            )
        )
        lines += [
            "",
            "What the ratios mean: the parameter ratio is exact and carries to any size (every frozen weight and LoRA "
            "weight is in one shard); the peak ratio is smaller because each process also holds what FSDP does not "
            "shard (the VAE, the text encoder, the Python and torch floor, the gathered block while it runs) and "
            "what a step adds. Sequence parallelism lowers what a step adds (each process keeps half of a video's "
            "block inputs and recomputes half of a block); on this scaled model the activations are small next to "
            "the process floor, so its gain here is small, while at 720p a 14B model's block inputs alone are 28 GiB "
            "per call (see the estimates in docs/distributed.md)."
            " On this scaled model (138 MiB of transformer next to a process floor of about 700 MiB) the half of the weights FSDP frees is used again by what it gathers during the step (a block running, the next one prefetched, the communication buffers), so the peak does not move; the saving grows with the model, since the gathered part is two blocks whatever the depth.",
            "",
        ]
    return lines


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (x, y) no other point beats on both (higher is better on each)."""
    return [
        i
        for i, (x, y) in enumerate(points)
        if not any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
    ]


def b6(quick: bool) -> dict[str, Any]:
    """Over-optimisation on `toy` with the demo's objective: KL weights and LoRA scales against colour fidelity."""
    import tempfile

    from vader_core.config import build_config
    from vader_core.evaluate import model_specs, run_eval
    from vader_core.resolve import resolve_config
    from vader_core.trainer import Trainer
    from vader_plugins.toy.data import HELDOUT_CAPTIONS

    seeds = [0] if quick else [0, 1, 2]
    kls = [0.0, 1.0] if quick else B6_KLS
    scales = [0.5] if quick else [0.25, 0.5, 0.6, 0.75]
    prompts = list(HELDOUT_CAPTIONS[:4] if quick else HELDOUT_CAPTIONS)
    demo = ROOT / "examples" / "demo-toy.yaml"
    common = [
        "output.logger=none",
        "validation.save_videos=false",
        "output.checkpoint_every=0",
        "validation.every=0",
        *(["train.max_steps=2", "backbone.steps=4", "validation.max_prompts=2"] if quick else []),
    ]
    cache = ROOT / "runs" / "bench-b6" / "results.jsonl"
    done = {}
    if not quick:
        cache.parent.mkdir(parents=True, exist_ok=True)
        for line in cache.read_text().splitlines() if cache.is_file() else []:
            r = json.loads(line)
            done[(r["kl"], r["seed"])] = r
    eval_sets = ["validation.metrics=[{name: toy_color}, {name: toy_direction}]"]

    def held_out(cfg_sets: list[str], loras: list[Path], sc: list[float], base: bool) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = resolve_config(build_config(demo, [*common, *eval_sets, *cfg_sets], {"device": "cpu"}))
            data = run_eval(
                cfg,
                model_specs(loras, sc, base=base),
                prompts,
                None,
                [0],
                Path(tmp),
                batch_size=len(prompts),
                grid_rows=1,
            )
        return {
            m["model"].split("@")[-1] if m["lora"] else "base": {k: v["mean"] for k, v in m["scores"].items()}
            for m in data["models"]
        }

    base_file = cache.parent / "base.json"
    if not quick and base_file.is_file():
        base = json.loads(base_file.read_text())
    else:
        base = held_out([], [], [1.0], True)["base"]
        if not quick:
            base_file.write_text(json.dumps(base))
    print(f"B6 base: {base}", flush=True)
    # The unguarded run and the first KL weight on every seed first, then the other weights: a sweep cut
    # short still has the main comparison on every seed.
    order = [(seed, kl) for group in (kls[:2], kls[2:]) for seed in seeds for kl in group]
    for seed, kl in order:
        if (kl, seed) in done or B6_CACHED_ONLY:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cfg = build_config(
                demo, [f"output.dir={tmp}", *common, f"regularization.kl={kl}"], {"device": "cpu", "train.seed": seed}
            )
            t0 = time.perf_counter()
            Trainer(cfg, progress=False).run()
            wall = time.perf_counter() - t0
            rows = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
            ck = sorted((Path(tmp) / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))[-1]
            ev = held_out([], [ck], [1.0, *scales] if kl == 0 else [1.0], False)
            if not quick:  # the LoRA itself, so that other scales can be evaluated later
                import shutil

                keep = cache.parent / f"lora-kl{kl:g}-seed{seed}"
                shutil.rmtree(keep, ignore_errors=True)
                keep.mkdir(parents=True)
                shutil.copy(ck / "pytorch_lora_weights.safetensors", keep)
        rec = {
            "kl": kl,
            "seed": seed,
            "wall_s": wall,
            "train_s": sum(r["step_time"] for r in rows),
            "final_kl": (rows[-1].get("extras") or {}).get("kl"),
            "scales": ev,
        }
        done[(kl, seed)] = rec
        if not quick:
            with cache.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        print(f"B6 kl={kl} seed={seed}: {ev['1']} in {wall:.0f}s", flush=True)
    runs = [done[(kl, s)] for s in seeds for kl in kls if (kl, s) in done]

    def setting(label: str, kind: str, value: float, recs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        objective = [r["scales"][key]["objective"] for r in recs]
        gains = [o - base["objective"] for o in objective]
        return {
            "setting": label,
            "kind": kind,
            "value": value,
            "seeds": [r["seed"] for r in recs],
            "objective": statistics.mean(objective),
            "gain": statistics.mean(gains),
            "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "brightness": statistics.mean(r["scales"][key]["brightness"] for r in recs),
            "color": statistics.mean(r["scales"][key]["toy_color"] for r in recs),
            "color_per_seed": [r["scales"][key]["toy_color"] for r in recs],
            "direction": statistics.mean(r["scales"][key]["toy_direction"] for r in recs),
            "final_kl": statistics.mean(r["final_kl"] for r in recs)
            if all(r["final_kl"] is not None for r in recs)
            else None,
        }

    rows = []
    for kl in sorted(kls):
        recs = [r for r in runs if r["kl"] == kl]
        if recs:
            rows.append(setting("unguarded" if kl == 0 else f"KL weight {kl:g}", "kl", kl, recs, "1"))
    unguarded = [r for r in runs if r["kl"] == 0]
    for sc in scales:
        have = [r for r in unguarded if f"{sc:g}" in r["scales"]]
        if have:
            rows.append(setting(f"unguarded, LoRA scale {sc:g}", "scale", sc, have, f"{sc:g}"))
    ref = rows[0]["gain"] if rows and rows[0]["setting"] == "unguarded" else None
    for r in rows:
        r["gain_share"] = r["gain"] / ref if ref else None
        r["meets_goal"] = bool(ref and r["color"] >= 0.95 and r["gain"] >= 0.9 * ref)
    front = _pareto([(r["gain"], r["color"]) for r in rows])
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    best = [r for r in rows if r["meets_goal"] and r["kind"] == "kl"] or [r for r in rows if r["meets_goal"]]
    return {
        "seeds": seeds,
        "prompts": len(prompts),
        "kls": kls,
        "scales": scales,
        "base": base,
        "runs": runs,
        "rows": rows,
        "unguarded_gain": ref,
        "goal_setting": best[0]["setting"] if best else None,
    }


#: ``--b6-cached``: report the runs cached so far and start no new one.
B6_CACHED_ONLY = False
#: KL weights of B6's sweep (the unguarded run is weight 0).
B6_KLS = [0.0, 0.3, 0.1, 1.0]


# ---------------------------------------------------------------------------- report
def _plots(results: dict[str, Any], img: Path, prefix: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    files = {}
    if "b1" in results:
        rows = [r for r in results["b1"]["rows"] if "error" not in r]
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
        ax.barh([r["config"] for r in rows][::-1], [r["peak_rss_mb"] / 1024 for r in rows][::-1], color="#4c72b0")
        ax.set_xlabel("peak memory of the training step process (GiB)")
        ax.set_title("B1: memory ablation (ModelScope architecture, CPU)")
        fig.tight_layout()
        files["b1"] = f"{prefix}b1-memory.png"
        fig.savefig(img / files["b1"])
        plt.close(fig)
    if "b3" in results:
        axes = results["b3"]["axes"]
        fig, grid = plt.subplots(2, len(axes), figsize=(3.2 * len(axes), 5), dpi=100)
        for j, (axis, pts) in enumerate(axes.items()):
            pts = [p for p in pts if "error" not in p]
            xs = [str(p["value"]) for p in pts]
            grid[0][j].plot(xs, [p["step_time_s"] for p in pts], "o-")
            grid[1][j].plot(xs, [p["step_added_mb"] / 1024 for p in pts], "o-", color="#dd8452")
            grid[1][j].set_xlabel(axis)
            grid[0][j].set_ylim(bottom=0)
            grid[1][j].set_ylim(bottom=0)
        grid[0][0].set_ylabel("step time (s)")
        grid[1][0].set_ylabel("step memory (GiB)")
        fig.suptitle("B3: cost against frames, kept steps K, decoded frames, resolution")
        fig.tight_layout()
        files["b3"] = f"{prefix}b3-scaling.png"
        fig.savefig(img / files["b3"])
        plt.close(fig)
    if "b4" in results:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
        b = results["b4"]
        for m, color in (("vader", "#55a868"), ("ddpo", "#c44e52")):
            for ax, key in zip(axes, (f"{m}_mean", f"{m}_mean_time"), strict=True):
                pts = b.get(key) or []
                ax.plot([q for q, _ in pts], [r for _, r in pts], "o-", color=color, label=m)
        axes[0].set_xscale("symlog")
        axes[0].set_xlabel("reward queries (videos scored)")
        axes[1].set_xlabel("training time (s, validation excluded)")
        for ax in axes:
            ax.set_ylabel("held-out reward")
            ax.legend()
        fig.suptitle(
            f"B4: sample efficiency on `{b['backbone']}`, {b.get('reward', 'saturation')}, mean of seeds {b['seeds']}"
        )
        fig.tight_layout()
        files["b4"] = f"{prefix}b4-sample-efficiency.png"
        fig.savefig(img / files["b4"])
        plt.close(fig)
    if "b6" in results:
        b = results["b6"]
        fig, ax = plt.subplots(figsize=(6.4, 4), dpi=110)
        for kind, marker, color in (("kl", "o", "#4c72b0"), ("scale", "s", "#dd8452")):
            pts = [r for r in b["rows"] if r["kind"] == kind]
            ax.scatter(
                [r["gain"] for r in pts],
                [100 * r["color"] for r in pts],
                marker=marker,
                color=color,
                label="KL weight (0 = unguarded)" if kind == "kl" else "LoRA scale of the unguarded run",
            )
            for r in pts:
                ax.annotate(
                    f"{r['value']:g}",
                    (r["gain"], 100 * r["color"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        front = sorted((r["gain"], 100 * r["color"]) for r in b["rows"] if r["pareto"])
        ax.plot(*zip(*front, strict=True), "k--", lw=1, alpha=0.6, label="Pareto front")
        if b.get("unguarded_gain"):
            ax.axvline(0.9 * b["unguarded_gain"], color="gray", lw=0.8, ls=":")
        ax.axhline(95, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("held-out reward gain over the base model")
        ax.set_ylabel("held-out clips with the prompted colour (%)")
        ax.set_title(f"B6: over-optimisation guards on `toy`, mean of seeds {b['seeds']}", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        files["b6"] = f"{prefix}b6-guards.png"
        fig.savefig(img / files["b6"])
        plt.close(fig)
    return files


def _fmt(x: Any, nd: int = 2) -> str:
    return "n/a" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _queries(cell: dict[str, Any]) -> str:
    if cell["reached"] == 0:
        return f"not reached in {cell['budget']} queries"
    if cell["lower_bound"]:
        return (
            f">= {cell['mean']:.1f} ({cell['min']}-{cell['max']}; {cell['seeds'] - cell['reached']} of "
            f"{cell['seeds']} seeds not reached in {cell['budget']})"
        )
    return f"{cell['mean']:.1f} ({cell['min']}-{cell['max']})"


def b4_report(b: dict[str, Any]) -> list[str]:
    """The B4 section of docs/benchmarks.md."""
    if "levels" not in b:  # a result of the earlier B4 (one lr each, DDPO 4x vader's queries)
        lines = [
            "## B4. Sample efficiency against DDPO (earlier form, not yet rerun)",
            "",
            "From the earlier B4, before the lr sweep and the 30x budget: DDPO moved the held-out reward by "
            f"0.005 in its whole budget, so its ratio ({_fmt(b.get('ddpo_query_ratio'))}x) was measured within "
            "noise of the start. `python -m benchmarks.run --only b4 --merge` runs the fair form.",
            "",
            "| method | queries | held-out reward |",
            "| --- | --- | --- |",
        ]
        for m in ("vader", "ddpo"):
            lines += [f"| {m} | {q} | {r:.4f} |" for q, r in b[f"{m}_mean"]]
        return lines + [""]
    lv = b["levels"]
    lines = [
        "## B4. Sample efficiency against DDPO",
        "",
        f"`vader` and `ddpo` on `{b['backbone']}`, reward {b.get('reward', 'saturation')}, the same LoRA, sampler "
        f"(DDIM, eta 1) and held-out prompts and seeds. Budgets: vader {b['budgets']['vader']} reward queries "
        f"(videos scored), DDPO {b['budgets']['ddpo']} ({b['budgets']['ddpo'] / b['budgets']['vader']:.0f}x). "
        f"Learning rates swept on seed 0 (vader {b['lr_sweep']['vader']}, DDPO {b['lr_sweep']['ddpo']}; the one "
        f"with the best final held-out reward kept: vader {b['best_lr']['vader']}, DDPO {b['best_lr']['ddpo']}), "
        f"then run on seeds {b['seeds']}.",
        "",
        f"Definition: vader's final gain G is its mean held-out reward at the end of its budget minus the start "
        f"({lv['start']:.4f}): G = {lv['vader_final_gain']:.4f}. For each fraction f the table gives the reward "
        "queries each method needs before its held-out reward first reaches start + f G (mean over seeds, range "
        "in brackets; a seed that never reaches it counts as its whole budget, which makes the mean and the "
        "ratio lower bounds). Ratio = DDPO's queries / vader's.",
        "",
        "| fraction of vader's final gain | target | vader queries | DDPO queries | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in lv["levels"]:
        why = " (vader's queries a lower bound)" if r["vader"]["lower_bound"] else ""
        ratio = (
            f"n/a{why}"
            if not r["ratio_valid"] or r["ratio"] is None
            else ((">= " if r["ratio_is_lower_bound"] else "") + f"{r['ratio']:.0f}x")
        )
        lines.append(
            f"| {r['fraction']:.0%} | {r['target']:.4f} | {_queries(r['vader'])} | {_queries(r['ddpo'])} | {ratio} |"
        )
    own = b.get("levels_own_gain")
    if own:
        gains = ", ".join(f"{g:+.3f}" for g in own["seed_gains"])
        lines += [
            "",
            f"Against each seed's own final gain (seeds {b['seeds']}: vader gains {gains}): on each seed the "
            "target is that seed's start (the mean of both methods' first validation on it) + f times that seed's "
            "vader gain, and DDPO's run with the same seed is held to the same target. A vader seed with a "
            "positive gain reaches every level by its last validation, so the ratio is defined unless a seed lost "
            "reward; a seed with a small gain gets an easy target for DDPO as well.",
            "",
            "| fraction of the seed's own gain | mean target | vader queries | DDPO queries | ratio |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in own["levels"]:
            ratio = (
                "n/a"
                if not r["ratio_valid"] or r["ratio"] is None
                else ((">= " if r["ratio_is_lower_bound"] else "") + f"{r['ratio']:.0f}x")
            )
            lines.append(
                f"| {r['fraction']:.0%} | {r['target']:.4f} | {_queries(r['vader'])} | {_queries(r['ddpo'])} | "
                f"{ratio} |"
            )
    lines += [
        "",
        "Learning-rate sweep (seed 0, final held-out reward):",
        "",
        "| method | lr | final held-out reward | queries |",
        "| --- | --- | --- | --- |",
    ]
    for m, runs in b["sweep"].items():
        for lr, c in runs.items():
            lines.append(f"| {m} | {lr} | {c['points'][-1]['heldout_reward']:.4f} | {c['points'][-1]['queries']} |")
    par = (
        f" Training time is the optimiser steps' time (validation excluded) with {b['jobs']} runs side by side, "
        f"{b['threads_per_run']} torch thread(s) each."
        if b.get("jobs", 1) > 1
        else " Training time is the optimiser steps' time, validation excluded."
    )
    lines += [
        "",
        "Mean curves (best learning rates)." + par,
        "",
        "| method | queries | training time (s) | held-out reward |",
        "| --- | --- | --- | --- |",
    ]
    for m in ("vader", "ddpo"):
        times = [t for t, _ in b.get(f"{m}_mean_time", [])] or [None] * len(b[f"{m}_mean"])
        for (q, r), t in zip(b[f"{m}_mean"], times, strict=True):
            lines.append(f"| {m} | {q} | {_fmt(t, 1)} | {r:.4f} |")
    lines.append("")
    return lines


def report(results: dict[str, Any], files: dict[str, str], quick: bool) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks.run`)"
        + (" in `--quick` mode (tiny sizes: the figures show the format, not the product)" if quick else "")
        + f" on {m.get('cpu', '?')}, {m.get('cpus')} CPUs, "
        f"{m.get('memory_gb', '?')} GB, device `{m['device']}`, torch {m['torch']}. Timings are ratios measured in "
        "the same run; absolute times are context only. Every figure is also in `docs/benchmarks.json`.",
        "",
    ]
    if "b1" in results:
        b = results["b1"]
        st = b["settings"]
        lines += [
            "## B1. Memory ablation",
            "",
            f"One training step per configuration, each in a fresh process, of the ModelScope T2V architecture with "
            f"random weights and every channel count divided by {st['width']} (to fit a CPU), {st['size']}x{st['size']} "
            f"pixels, {st['frames']} frames, {st['steps']} DDIM steps, guidance 9, saturation reward. Peak = the "
            "process's peak resident memory (model included); step = what the step added over the loaded model.",
            "",
            "| configuration | peak (MiB) | step (MiB) | step time (s) | trainable parameters |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in b["rows"]:
            if "error" in r:
                lines.append(f"| {r['config']} | failed: {r['error']} | | | |")
            else:
                lines.append(
                    f"| {r['config']} | {r['peak_rss_mb']:.0f} | {r['step_added_mb']:.0f} | "
                    f"{r['step_time_s']:.2f} | {r['trainable_params']:,} |"
                )
        if b.get("rows_from_earlier_run"):
            lines += [
                "",
                f"The first {b['rows_from_earlier_run']} rows are from an earlier run with the same "
                "settings (`--b1-from`); the others were measured side by side in this one.",
            ]
        lines += [
            "",
            f"Peak memory, full over all savers: **{_fmt(b['memory_reduction_ratio'])}x**; memory the step "
            f"adds: **{_fmt(b['step_memory_reduction_ratio'])}x** (the paper: 276.3 GB -> 32.5 GB, 8.5x, on GPU "
            "at full size). With all savers the peak is mostly the process itself (Python, torch and the "
            "weights: the `model` part), so the peak ratio grows with the model's activations, not with "
            "vader. Recomputing the whole kept call pays off when several steps are kept (K > 1, see B3): with "
            "K=1 it is recomputed in backward with the same activations, so the peak stays; block "
            "checkpointing lowers the one call's activations themselves (B5 measures it where they "
            "dominate the process floor).",
            "",
        ]
        if "b1" in files:
            lines += [f"![B1](img/{files['b1']})", ""]
    if "b2" in results:
        b = results["b2"]
        st = b["settings"]
        lines += [
            "## B2. Framework overhead",
            "",
            f"Optimiser step of `vader`'s trainer against a minimal hand-written PyTorch + diffusers + peft loop doing "
            f"the same computation (ModelScope architecture / {st['width']}, {st['size']}x{st['size']}, {st['frames']} "
            f"frames, {st['steps']} steps, K={st['k']}, 1 decoded frame, fp32, gradient checkpointing), "
            f"{st['rounds']} interleaved rounds after a warm-up.",
            "",
            "| | median step (s) |",
            "| --- | --- |",
            f"| vader trainer | {b['vader_median_s']:.3f} |",
            f"| hand-written loop | {b['hand_median_s']:.3f} |",
            "",
            f"Overhead ratio: **{b['overhead_ratio']:.3f}** (goal: at most 1.05).",
            "",
        ]
    if "b3" in results:
        b = results["b3"]
        lines += [
            "## B3. Scaling",
            "",
            f"Base settings: `{json.dumps(b['settings'])}`; one axis varied at a time, "
            "each point in a fresh process. Step memory is the peak resident memory above the loaded model: "
            "below about 0.4 GiB it is the process's allocation floor, not the step; step times of points "
            "in separate processes are less comparable than B2's interleaved ones.",
            "",
        ]
        for axis, pts in b["axes"].items():
            lines += [f"| {axis} | step time (s) | step memory (MiB) | peak (MiB) |", "| --- | --- | --- | --- |"]
            for p in pts:
                if "error" in p:
                    lines.append(f"| {p['value']} | failed: {p['error']} | | |")
                else:
                    lines.append(
                        f"| {p['value']} | {p['step_time_s']:.2f} | {p['step_added_mb']:.0f} | {p['peak_rss_mb']:.0f} |"
                    )
            lines.append("")
        if "b3" in files:
            lines += [f"![B3](img/{files['b3']})", ""]
    if "b5" in results:
        b = results["b5"]
        st = b["settings"]
        lines += [
            "## B5. Whole-call against block checkpointing",
            "",
            f"One training step per configuration, each in a fresh process, side by side in one run: ModelScope "
            f"architecture / {st['width']}, {st['size']}x{st['size']}, {st['frames']} frames, {st['steps']} DDIM "
            f"steps, K={st['k']}, guidance 9, 1 decoded frame, LoRA, fp32. Step = the process's peak resident "
            "memory above the loaded model, with the C allocator returning freed blocks to the system "
            "(`MALLOC_MMAP_THRESHOLD_=65536`), so that it follows the live tensors.",
            "",
            "| `memory.gradient_checkpointing` | `split_guidance` | configuration | step (MiB) | peak (MiB) | step time (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in b["rows"]:
            lvl = {True: "`true` (block)", False: "`false`", "call": "`call`"}[r["checkpointing"]]
            if "error" in r:
                lines.append(f"| {lvl} | {r['split_guidance']} | {r['config']} | failed: {r['error']} | | |")
            else:
                lines.append(
                    f"| {lvl} | {r['split_guidance']} | {r['config']} | {r['step_added_mb']:.0f} | "
                    f"{r['peak_rss_mb']:.0f} | {r['step_time_s']:.2f} |"
                )
        lines += [
            "",
            f"Step memory, whole call over block by block: **{_fmt(b['call_over_block'])}x** (guidance "
            f"halves together), **{_fmt(b['call_over_block_split'])}x** (halves one after the other); the "
            f"earlier default (whole call) over the new one (block, halves one after the other): "
            f"**{_fmt(b['old_default_over_new'])}x**. Step times of separate processes on a shared machine "
            "are context only; block checkpointing runs each kept call's forward three times instead of two.",
            "",
        ]
    if "b4" in results:
        b = results["b4"]
        lines += b4_report(b)
        if "b4" in files:
            lines += [f"![B4](img/{files['b4']})", ""]
    if "b8" in results:
        lines += b8_report(results["b8"])
    if "b6" in results:
        b = results["b6"]
        ref = b.get("unguarded_gain")
        lines += [
            "## B6. Guarding against over-optimisation",
            "",
            f"`toy` with the demo's configuration (`examples/demo-toy.yaml`: brightness towards 0.85, 30 steps), "
            f"trained with the KL guard (`regularization.kl`) at weights {[k for k in b['kls'] if k]} and without "
            f"(weight 0), seeds {b['seeds']}; the unguarded runs' LoRAs are also evaluated at scales {b['scales']} "
            f"(`vader eval --lora-scale`). Every setting is scored on all {b['prompts']} held-out prompts, seed 0 "
            "(the prompt-following check of the toy model card: colour and direction of the object), with "
            "`vader eval` (`toy_color`, `toy_direction`, objective `-|brightness - 0.85|`). Gain = held-out "
            f"objective minus the base model's ({b['base']['objective']:.4f}; colour {b['base']['toy_color']:.0%}, "
            f"direction {b['base']['toy_direction']:.0%}); mean of the seeds, ± their standard deviation.",
            "",
            "| setting | seeds | gain | share of the unguarded gain | brightness | colour | colour per seed | direction | final KL term | Pareto | goal |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in b["rows"]:
            share = f"{r['gain_share']:.0%}" if r.get("gain_share") is not None else "n/a"
            lines.append(
                f"| {r['setting']} | {len(r['seeds'])} | {r['gain']:+.4f} ± {r['gain_sd']:.4f} | {share} | {r['brightness']:.3f} | "
                f"{r['color']:.1%} | {' / '.join(f'{c:.1%}' for c in r.get('color_per_seed', []))} | {r['direction']:.1%} | {_fmt(r['final_kl'], 4)} | "
                f"{'yes' if r['pareto'] else ''} | {'**yes**' if r['meets_goal'] else 'no'} |"
            )
        goal = b.get("goal_setting")
        few = [r["setting"] for r in b["rows"] if len(r["seeds"]) < len(b["seeds"])]
        if few:
            lines += [
                "",
                f"{', '.join(few)}: fewer seeds than the others (the sweep is sized to about 40 minutes of "
                "a shared 2-core CPU; the unguarded run and the first KL weight run on every seed first).",
            ]
        lines += [
            "",
            "Goal: colour on at least 95% of held-out clips with at least 90% of the unguarded gain "
            f"({_fmt(0.9 * ref if ref else None, 4)}). "
            + (f"Met by: **{goal}**." if goal else "**Not met** by any setting measured."),
            "",
        ]
        if "b6" in files:
            lines += [f"![B6](img/{files['b6']})", ""]
    if "b7" in results:
        lines += b7_report(results["b7"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes (format check)")
    ap.add_argument("--only", default="b1,b2,b3,b4,b5,b8", help="comma list of benchmarks to run")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="directory of benchmarks.md/.json and img/")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the results of benchmarks not run now from the existing benchmarks.json",
    )
    ap.add_argument(
        "--b6-cached", action="store_true", help="B6: report the runs cached in runs/bench-b6/ so far, start no new run"
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="B4: training runs side by side, the cores shared between them (queries do not depend on it)",
    )
    ap.add_argument(
        "--b1-from",
        type=int,
        default=1,
        help="with --merge: rerun B1 from this row (1-based), keeping the earlier rows",
    )
    ap.add_argument(
        "--b8-estimator-only",
        action="store_true",
        help="with --merge: rerun only B8's estimator check (a few minutes), keeping B8's other figures",
    )
    ap.add_argument(
        "--b8-estimator-backbones",
        default="",
        help="with --b8-estimator-only: comma list of backbones whose cases are measured; the other rows are kept",
    )
    args = ap.parse_args(argv)
    if args.b8_estimator_backbones and (not args.b8_estimator_only or args.quick):
        raise SystemExit("error: --b8-estimator-backbones needs --b8-estimator-only and --merge, without --quick")
    global B6_CACHED_ONLY
    B6_CACHED_ONLY = args.b6_cached
    os.environ.setdefault("VADER_PLUGINS", "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    old = out / "benchmarks.json"
    if args.merge and old.is_file():
        earlier = json.loads(old.read_text())["details"]
        results.update({k: v for k, v in earlier.items() if k.startswith("b")})  # --b1-from reads B1's rows
        if any(k.startswith("b") and k not in args.only.split(",") for k in earlier):
            # the header names the machine of the benchmarks kept from the earlier run; B8 names its own
            results["machine"] = earlier.get("machine", results["machine"])
    if "curves" in results.get("b4", {}) and "levels_own_gain" not in results["b4"]:
        results["b4"].update(b4_own_gain(results["b4"]))  # kept from a run before the own-gain form
    t0 = time.perf_counter()
    for name in [n for n in args.only.split(",") if n]:
        if name == "b1" and args.b1_from > 1:
            prev = results.get("b1", {})
            if not args.merge or len(prev.get("rows", [])) < args.b1_from - 1:
                raise SystemExit("error: --b1-from N needs --merge and an earlier B1 with at least N-1 rows")
            kept = prev["rows"][: args.b1_from - 1]
            results[name] = b1(args.quick, kept)
            results[name]["rows_from_earlier_run"] = len(kept)
        elif name == "b8" and args.b8_estimator_only:
            if not args.merge or "b8" not in results:
                raise SystemExit("error: --b8-estimator-only needs --merge and an earlier B8 in benchmarks.json")
            only = [b.strip() for b in args.b8_estimator_backbones.split(",") if b.strip()]
            est = estimator_check(args.quick, only, results["b8"].get("estimator"))
            results[name] = {**results["b8"], "estimator": est}
        elif name == "b4":  # long: its runs are also written as they finish, and reused if it is started again
            results[name] = b4(args.quick, out / "b4-partial.json", args.jobs)
            (out / "b4-partial.json").unlink(missing_ok=True)
        else:
            results[name] = {"b1": b1, "b2": b2, "b3": b3, "b5": b5, "b6": b6, "b7": b7, "b8": b8}[name](args.quick)
    results["wall_s"] = time.perf_counter() - t0
    files = _plots(results, out / "img", "bench-quick-" if args.quick else "bench-")
    summary = {
        "memory_reduction_ratio": results.get("b1", {}).get("memory_reduction_ratio"),
        "overhead_ratio": results.get("b2", {}).get("overhead_ratio"),
        # only the fair form's (the earlier B4's ratio was measured within noise of the start)
        "ddpo_query_ratio": results.get("b4", {}).get("ddpo_query_ratio")
        if "levels" in results.get("b4", {})
        else None,
        # B4: DDPO's queries over vader's at 25%, 50% and 90% of vader's final gain, each with whether it is a
        # lower bound (DDPO seeds that never got there), as the README states them
        "ddpo_query_ratios": results.get("b4", {}).get("ddpo_query_ratios"),
        # the same against each seed's own final vader gain, DDPO's run on that seed held to its target; defined
        # at every level since each vader seed reaches its own 90%
        "ddpo_query_ratios_own_gain": results.get("b4", {}).get("ddpo_query_ratios_own_gain"),
        "block_checkpointing_memory_ratio": results.get("b5", {}).get("call_over_block"),
        "fsdp_param_ratio": results.get("b7", {}).get("fsdp_param_ratio"),
        # B8: each lever setting's step speed-up on each backbone (median of interleaved rounds)
        "speed_levers": {
            n: {r["lever"]: r["speedup"] for r in lv["rows"]}
            for n, lv in [
                *results.get("b8", {}).get("levers", {}).items(),
                *((f"{k} (25 steps)", v) for k, v in results.get("b8", {}).get("levers_paper_chain", {}).items()),
            ]
        },
        # B8: the levers' step speed-up on toy and the share of the held-out gain they keep (3 seeds)
        "speed_gain": {k: results["b8"]["gain"][k] for k in ("speedup", "share_of_gain")}
        if "gain" in results.get("b8", {})
        else None,
        # B8: the largest error of the backbones' memory estimators against a measured step (CPU workspace removed)
        "estimator_max_abs_error": results.get("b8", {}).get("estimator", {}).get("max_abs_error"),
        "machine": results["machine"],
    }
    gpu = json.loads(old.read_text()).get("gpu") if old.is_file() else None  # benchmarks.gpu's, kept
    (out / "benchmarks.json").write_text(
        json.dumps({**summary, "details": results, **({"gpu": gpu} if gpu else {})}, indent=2)
    )
    (out / "benchmarks.md").write_text(report(results, files, args.quick))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
