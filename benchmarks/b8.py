"""B8: where the time of a training step goes, and what the speed levers of ``vader_core.speed`` save.

Three parts, all through vader's own functions (``vader_core.sampling.sample_with_grad``):

* ``phases``: one K-step training step of each backbone split into its phases, timed on this machine:
  the condition's encoding, the no-gradient prefix of the chain, the kept calls (forward, and their
  recomputation and backward), decoding with gradient (forward and backward), the reward (forward and
  backward), the optimizer. The backward is split where the gradient reaches the decoded video and the
  chain's final latents (tensor hooks). Every backbone is timed in turn, round after round.
* ``flops``: the FLOPs of each phase at the real sizes (ModelScope 384x384x16, Wan 2.1 1.3B 480x832x81,
  25 steps, K=1, one decoded frame, block checkpointing: each kept call runs forward three times),
  counted on the ``meta`` device with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products,
  convolutions and attention; element-wise work is not counted), with a CLIP ViT-H/14 image tower as the
  reward model (HPSv2's).
* ``levers``: the step with the levers off and on, interleaved with repeats, per lever and all together.
"""

from __future__ import annotations

import functools
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

PHASES = (
    "encode",
    "prefix",
    "kept_forward",
    "decode_forward",
    "reward_forward",
    "reward_backward",
    "decode_backward",
    "kept_backward",
    "optimizer",
)


# ---------------------------------------------------------------------------- backbones
def build(kind: str, size: dict[str, Any]) -> Any:
    """A loaded backbone with LoRA (rank 16, dropout 0) of ``kind``: toy, tiny, modelscope-random, wan-random."""
    import torch

    from benchmarks.arch import register_random_modelscope, register_random_wan
    from vader_core.config import BackboneSection
    from vader_core.lora import add_lora
    from vader_core.resolve import build_backbone

    if kind == "modelscope-random":
        register_random_modelscope(size.pop("arch_width", 8))
    elif kind == "wan-random":
        register_random_wan(size.pop("arch_width", 8))
    bb = build_backbone(BackboneSection(name=kind, **size))
    bb.load("cpu", torch.float32)
    add_lora(bb.denoiser, 16, 16, 0.0, bb.default_lora_targets)
    return bb


class StepTimer:
    """One training step of ``backbone`` (brightness towards 0.85 as reward), its phases timed."""

    def __init__(self, backbone: Any, k: int = 1, batch: int = 1, decoded: int = 1, checkpointing: Any = True) -> None:
        import torch

        from vader_core.lora import lora_parameters

        self.bb = backbone
        self.k, self.batch, self.decoded, self.checkpointing = k, batch, decoded, checkpointing
        self.params = lora_parameters(backbone.denoiser)
        self.opt = torch.optim.AdamW(self.params, lr=1e-4)
        self.prompts = ["a red circle moving left on a gray background"] * batch

    def __call__(self, seed: int, sampling: Any = None, speed: Any = None) -> dict[str, float]:
        import torch

        from vader_core.config import MemorySection, TruncationSection
        from vader_core.sampling import sample_with_grad

        bb, marks = self.bb, {}
        clock = time.perf_counter

        def pre(mod: Any, args: Any, kwargs: Any) -> None:
            if torch.is_grad_enabled() and "kept" not in marks:
                marks["kept"] = clock()

        decode = bb.decode

        @functools.wraps(decode)  # the core passes the opt-in keywords the backbone's decode declares
        def timed_decode(latents: Any, *a: Any, **kw: Any) -> Any:
            marks["decode"] = clock()
            if latents.requires_grad:
                latents.register_hook(lambda g: marks.__setitem__("latents_grad", clock()))
            out = decode(latents, *a, **kw)
            marks["decoded"] = clock()
            return out

        h = bb.denoiser.register_forward_pre_hook(pre, with_kwargs=True)
        bb.decode = timed_decode
        try:
            t0 = clock()
            with torch.no_grad():
                cond = bb.encode_condition(self.prompts, None)
            marks["chain"] = clock()
            video, _, _ = sample_with_grad(
                bb,
                cond,
                self.batch,
                torch.Generator().manual_seed(seed),
                random.Random(seed),
                TruncationSection(mode="last", k=self.k),
                MemorySection(gradient_checkpointing=self.checkpointing, decoded_frames=self.decoded),
                sampling=sampling,
                speed=speed,
            )
            video.register_hook(lambda g: marks.__setitem__("video_grad", clock()))
            reward = -(video.mean(dim=(1, 2, 3, 4)) - 0.85).abs()  # the demo's brightness objective
            loss = -reward.mean()
            marks["backward"] = clock()
            loss.backward()
            marks["backward_end"] = clock()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            end = clock()
        finally:
            h.remove()
            del bb.decode
        return {
            "encode": marks["chain"] - t0,
            "prefix": marks["kept"] - marks["chain"],
            "kept_forward": marks["decode"] - marks["kept"],
            "decode_forward": marks["decoded"] - marks["decode"],
            "reward_forward": marks["backward"] - marks["decoded"],
            "reward_backward": marks["video_grad"] - marks["backward"],
            "decode_backward": marks["latents_grad"] - marks["video_grad"],
            "kept_backward": marks["backward_end"] - marks["latents_grad"],
            "optimizer": end - marks["backward_end"],
            "step": end - t0,
        }


#: The CPU settings of each backbone (sizes chosen so that a step takes seconds on one core).
CPU_MODELS: dict[str, dict[str, Any]] = {
    # the demo's settings (examples/demo-toy.yaml): 10 steps, K=2, 2 videos, 2 decoded frames, whole-call recompute
    "toy": {
        "size": {"steps": 10},
        "step": {"k": 2, "batch": 2, "decoded": 2, "checkpointing": "call"},
    },
    "tiny": {"size": {"frames": 4, "steps": 10}, "step": {}},
    "modelscope-random": {
        "size": {"arch_width": 8, "height": 64, "width": 64, "frames": 8, "steps": 10, "guidance": 9.0},
        "step": {},
    },
    "wan-random": {
        "size": {"arch_width": 8, "height": 64, "width": 64, "frames": 9, "steps": 10},
        "step": {},
    },
}
QUICK_MODELS: dict[str, dict[str, Any]] = {
    "tiny": {"size": {"frames": 2, "steps": 3}, "step": {}},
}


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = list(rows[0])
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    spread = {k: (max(r[k] for r in rows) - min(r[k] for r in rows)) for k in keys}
    return {"median_s": med, "range_s": spread, "rounds": len(rows)}


def phases(models: dict[str, dict[str, Any]], rounds: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Median phase times of each model over ``rounds`` rounds (one warm-up), the models taken in turn."""
    from vader_core import plugins

    timers = {}
    for name, m in models.items():
        if name in ("toy", "tiny") and not plugins.has("backbone", name):
            continue
        timers[name] = StepTimer(build(name, dict(m["size"])), **m["step"])
        timers[name](0)  # warm-up
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in timers}
    for r in range(1, rounds + 1):
        for name, timer in timers.items():
            rows[name].append(timer(r))
            log(f"B8 phases {name} round {r}: step {rows[name][-1]['step']:.2f}s")
    out = {}
    for name, rs in rows.items():
        s = _summary(rs)
        total = s["median_s"]["step"]
        s["share"] = {k: s["median_s"][k] / total for k in PHASES}
        s["settings"] = {**models[name]["size"], **models[name]["step"]}
        out[name] = s
    return out


# ---------------------------------------------------------------------------- levers
def lever_settings(name: str, steps: int, k: int = 1) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The levers measured on backbone ``name`` with ``steps`` denoising steps, K of them kept: label ->
    (sampling options, speed options)."""
    gi = {"guidance_interval": (0.0, 0.5)}
    ts = max(k + 1, steps * 6 // 10)
    rows: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "off": ({}, {}),
        "guidance interval [0, 0.5)": (gi, {}),
        f"train steps {ts} (of {steps})": ({"train_steps": ts}, {}),
    }
    if name == "wan-random":
        fbc = {"cache": "first_block", "cache_options": {"threshold": 0.1}}
        rows["first-block cache (threshold 0.1)"] = ({}, fbc)
        rows["pyramid attention broadcast"] = ({}, {"cache": "pab"})
        rows[f"all: guidance interval + train steps {ts} + first-block cache"] = ({**gi, "train_steps": ts}, fbc)
    else:
        rows[f"all: guidance interval + train steps {ts}"] = ({**gi, "train_steps": ts}, {})
    return rows


def paper_chain_settings(name: str, steps: int, k: int = 1) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Off against the levers of the alignment check (:data:`GAIN_LEVERS`), for a chain of ``steps`` steps."""
    return {
        "off": ({}, {}),
        "train steps 10 + guidance interval [0, 0.5)": ({"train_steps": 10, "guidance_interval": (0.0, 0.5)}, {}),
    }


def levers(
    models: dict[str, dict[str, Any]],
    names: list[str],
    rounds: int,
    log: Callable[[str], None] = print,
    settings_of: Callable[[str, int, int], dict[str, tuple[dict[str, Any], dict[str, Any]]]] = lever_settings,
) -> dict[str, Any]:
    """Step time with each lever on against off, interleaved round after round, per model (``settings_of``:
    the lever rows of a backbone, its steps and K)."""
    from vader_core import plugins
    from vader_core.config import SamplingSection, SpeedSection

    out: dict[str, Any] = {}
    for name in names:
        if name in ("toy", "tiny") and not plugins.has("backbone", name):
            continue
        m = models[name]
        timer = StepTimer(build(name, dict(m["size"])), **m["step"])
        settings = {
            label: (SamplingSection(**s) if s else None, SpeedSection(**p) if p else None)
            for label, (s, p) in settings_of(name, m["size"]["steps"], m["step"].get("k", 1)).items()
        }
        for sampling, speed in settings.values():  # warm-up of each setting
            timer(0, sampling, speed)
        times: dict[str, list[float]] = {label: [] for label in settings}
        prefix: dict[str, list[float]] = {label: [] for label in settings}
        for r in range(1, rounds + 1):
            for label, (sampling, speed) in settings.items():
                t = timer(r, sampling, speed)
                times[label].append(t["step"])
                prefix[label].append(t["prefix"])
            log(f"B8 levers {name} round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        off = statistics.median(times["off"])
        out[name] = {
            "settings": {**m["size"], **m["step"]},
            "rows": [
                {
                    "lever": label,
                    "median_step_s": statistics.median(ts),
                    "min_step_s": min(ts),
                    "max_step_s": max(ts),
                    "median_prefix_s": statistics.median(prefix[label]),
                    "speedup": off / statistics.median(ts),
                }
                for label, ts in times.items()
            ],
            "rounds": rounds,
        }
    return out


def compile_time(width: int = 8, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Scaled Wan: the first compiled step (compilation included, an empty inductor cache: what a first run on a
    machine pays) and the steps after, against eager."""
    import os
    import tempfile

    import torch

    from vader_core.config import SpeedSection
    from vader_core.speed import apply_speed

    size = {"arch_width": width, "height": 64, "width": 64, "frames": 9, "steps": 10}
    eager = StepTimer(build("wan-random", dict(size)))
    compiled = StepTimer(build("wan-random", dict(size)))
    eager(0)
    torch._dynamo.reset()
    apply_speed(compiled.bb, SpeedSection(compile=True))
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # nothing compiled by an earlier run is reused
        try:
            t0 = time.perf_counter()
            compiled(0)
            first = time.perf_counter() - t0
            te, tc = [], []
            for r in range(1, 4):
                te.append(eager(r)["step"])
                tc.append(compiled(r)["step"])
                log(f"B8 compile round {r}: eager {te[-1]:.2f}s, compiled {tc[-1]:.2f}s")
        finally:
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    return {
        "settings": size,
        "first_compiled_step_s": first,
        "eager_median_s": statistics.median(te),
        "compiled_median_s": statistics.median(tc),
        "speedup": statistics.median(te) / statistics.median(tc),
    }


# ---------------------------------------------------------------------------- FLOPs at real sizes
def _count(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn`` by ``FlopCounterMode``; where its module tracker fails on a backward (Wan's transformer),
    by the same per-operator formulas (``torch.utils.flop_counter.flop_registry``) without the tracker."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    try:
        with FlopCounterMode(display=False) as fc:
            fn()
        return int(fc.get_total_flops())
    except AssertionError:
        pass

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count():
        fn()
    return int(Count.total)


def _reward_flops(frames: int) -> dict[str, int]:
    """CLIP ViT-H/14 image tower (HPSv2's reward model) at 224x224 on ``frames`` frames: forward, backward."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    with torch.device("meta"):
        model = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14
            )
        ).requires_grad_(False)
        x = torch.empty(frames, 3, 224, 224, requires_grad=True)
    fwd = _count(lambda: model(pixel_values=x).pooler_output)
    both = _count(lambda: model(pixel_values=x).pooler_output.float().sum().backward())
    return {"forward": fwd, "backward": both - fwd}


def _chain_flops(bb: Any, steps: int, k: int = 1, decoded: int = 1, cond: Any = None) -> dict[str, Any]:
    """FLOPs of each phase of a K-step training step of the meta-device backbone ``bb`` (``cond``: the encoded
    condition, when the text encoder does not run on the meta device)."""
    import torch

    if cond is None:
        with torch.no_grad():
            cond = bb.encode_condition(["a panda riding a bike"], None)
    timesteps = bb.set_timesteps(steps)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0), cond=cond)
    t = timesteps[-1]

    def call() -> Any:
        return bb.predict(latents, t, cond, steps - 1)

    with torch.no_grad():
        fwd = _count(call)
    lat = latents.detach().requires_grad_(True)
    both = _count(lambda: bb.predict(lat, t, cond, steps - 1).float().sum().backward())
    bwd = both - fwd
    n = bb.num_latent_frames(latents)
    frames = [n // 2] if decoded == 1 else list(range(decoded))
    with torch.no_grad():
        dec_f = _count(lambda: bb.decode(latents, frames))
    lat2 = latents.detach().requires_grad_(True)
    dec_both = _count(lambda: bb.decode(lat2, frames).float().sum().backward())
    reward = _reward_flops(decoded)
    return {
        "denoiser_call_forward": fwd,
        "denoiser_call_backward": bwd,
        "prefix": (steps - k) * fwd,
        # block checkpointing: the forward, the call's recomputation, each block's recomputation, backward
        "kept": k * (3 * fwd + bwd),
        "decode": 2 * dec_f + (dec_both - dec_f),  # forward, the blocks' recomputation, backward
        "reward": reward["forward"] + reward["backward"],
        # model FLOPs (for utilisation): every call once forward, the kept ones once backward, no recomputation
        "model_without_reward": (steps - k) * fwd + k * (fwd + bwd) + dec_both,
    }


def _meta_modelscope() -> Any:
    import torch
    from vader_modelscope.backbone import ModelScopeBackbone, ModelScopeOptions

    from benchmarks.gpu import _build_modelscope
    from vader_core.lora import add_lora

    # The plugin's class itself: the benchmarks run with VADER_PLUGINS="" (built-in plugins only).
    bb = ModelScopeBackbone(ModelScopeOptions(height=384, width=384, frames=16, steps=25, guidance=9.0))
    _build_modelscope(bb, torch.device("meta"), torch.bfloat16)
    add_lora(bb.denoiser, 16, 16, 0.0, bb.default_lora_targets)
    return bb


def _meta_wan() -> Any:
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel
    from vader_wan import WanBackbone, WanOptions
    from vader_wan.backbone import WanCondition
    from vader_wan.tiny import scheduler_config, tiny_tokenizer

    from vader_core.lora import add_lora

    bb = WanBackbone(WanOptions(height=480, width=832, frames=81, steps=25))
    with torch.device("meta"):
        comps = {
            "transformer": WanTransformer3DModel(
                num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30
            ),
            "vae": AutoencoderKLWan(),
            "text_encoder": UMT5EncoderModel(
                UMT5Config(d_model=4096, d_ff=10240, num_layers=2, num_heads=64, d_kv=64, vocab_size=256384)
            ),
        }
    comps["tokenizer"] = tiny_tokenizer()
    comps["scheduler"] = bb.make_scheduler(scheduler_config())
    bb.setup(comps, torch.device("meta"), torch.bfloat16)
    add_lora(bb.denoiser, 16, 16, 0.0, bb.default_lora_targets)
    # UMT5's relative positions do not run on the meta device: the encoded prompts (512 tokens of 4096) as given.
    emb = torch.empty(1, 512, 4096, device="meta", dtype=torch.bfloat16)
    bb.meta_condition = WanCondition(prompt_embeds=emb, negative_prompt_embeds=emb)
    return bb


def flops(
    names: list[str] = ("modelscope", "wan"), steps: int = 25, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """FLOPs per phase of a K=1 step at the real sizes (see the module docstring); a model whose plugin is not
    installed is left out, and one that fails is reported with its error."""
    import importlib

    settings = {
        "modelscope": ("vader_modelscope", _meta_modelscope, f"384x384, 16 frames, {steps} steps, guidance 9"),
        "wan": ("vader_wan", _meta_wan, f"480x832, 81 frames, {steps} steps"),
    }
    out: dict[str, Any] = {}
    for name in names:
        package, make, setting = settings[name]
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        try:
            bb = make()
            f = _chain_flops(bb, steps, cond=getattr(bb, "meta_condition", None))
        except Exception as e:  # noqa: BLE001 - one model failing must not lose the other's figures
            out[name] = {"setting": setting, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            continue
        total = f["prefix"] + f["kept"] + f["decode"] + f["reward"]
        out[name] = {
            "setting": setting,
            **f,
            "total": total,
            "share": {k: f[k] / total for k in ("prefix", "kept", "decode", "reward")},
        }
        log(f"B8 FLOPs {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in out[name]["share"].items()))
    return out


# ---------------------------------------------------------------------------- alignment with the levers
#: The chain of the alignment check on ``toy``: the demo's configuration with the paper's chain (25 steps, the
#: last one kept), where the no-gradient prefix is most of a step (the demo's own 10 steps with K=2 keep 2 of 10
#: calls, so no prefix lever can make its step more than about 1.6x faster: B8's phase table).
GAIN_CHAIN = ["backbone.steps=25", "truncation.k=1"]
#: The levers of the alignment check (``--set`` options), chosen before the measurement.
GAIN_LEVERS = ["sampling.train_steps=10", "sampling.guidance_interval=[0.0, 0.5]"]
GAIN_STEPS = 20


def _train(base: Any, sets: list[str], seed: int) -> dict[str, Any]:
    import json
    import tempfile
    from pathlib import Path

    from vader_core.config import build_config
    from vader_core.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config(base, [f"output.dir={tmp}", *sets], {"train.seed": seed, "device": "cpu"})
        Trainer(cfg, progress=False).run()
        val = [json.loads(x) for x in (Path(tmp) / "validation.jsonl").read_text().splitlines()]
        steps = [json.loads(x)["step_time"] for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    return {"gain": val[-1]["reward"] - val[0]["reward"], "start": val[0]["reward"], "step_s": steps}


def gain(quick: bool = False, levers: list[str] = GAIN_LEVERS, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Held-out reward gain of the demo's model (``toy``, examples/demo-toy.yaml with :data:`GAIN_CHAIN`) after the
    same number of steps with the levers off and on, seeds 0-2 (one in ``quick``, on a 4-step chain), the two
    runs of a seed one after the other; the step speed-up from the same runs."""
    from pathlib import Path

    base = Path(__file__).resolve().parent.parent / "examples" / "demo-toy.yaml"
    seeds = [0] if quick else [0, 1, 2]
    chain = ["backbone.steps=4", "truncation.k=1"] if quick else GAIN_CHAIN
    if quick:
        levers = ["sampling.train_steps=2", *(x for x in levers if not x.startswith("sampling.train_steps"))]
    steps = 1 if quick else GAIN_STEPS
    common = [
        "output.logger=none",
        "validation.save_videos=false",
        "output.checkpoint_every=0",
        "validation.every=0",
        f"train.max_steps={steps}",
        *chain,
        *(["validation.max_prompts=1", "validation.seeds=[0]", "optim.warmup_steps=0"] if quick else []),
    ]
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for s in seeds:
        for label, extra in (("off", []), ("on", list(levers))):
            r = _train(base, [*common, *extra], s)
            runs[label].append(r)
            log(f"B8 gain seed {s} levers {label}: gain {r['gain']:+.4f}, step {statistics.median(r['step_s']):.2f}s")
    off_gain = statistics.mean(r["gain"] for r in runs["off"])
    rows = []
    for label in ("off", "on"):
        g = [r["gain"] for r in runs[label]]
        rows.append(
            {
                "setting": "levers off" if label == "off" else "levers on",
                "gains": g,
                "mean_gain": statistics.mean(g),
                "share": statistics.mean(g) / off_gain if off_gain else float("nan"),
                "median_step_s": statistics.median(t for r in runs[label] for t in r["step_s"]),
            }
        )
    return {
        "backbone": "toy",
        "chain": ", ".join(f"`{x}`" for x in chain),
        "levers": ", ".join(f"`{x}`" for x in levers),
        "steps": steps,
        "seeds": seeds,
        "rows": rows,
        "share_of_gain": rows[1]["share"],
        "speedup": rows[0]["median_step_s"] / rows[1]["median_step_s"],
    }


# ---------------------------------------------------------------------------- the estimator against measurement
#: The sizes of the estimator check: large enough that the step's activations dominate the process floor (the
#: step of the same model at 32x32 adds about 66 MiB), each measured in a fresh process by ``benchmarks.worker``.
ESTIMATOR_CASES: list[dict[str, Any]] = [
    {"backbone": "modelscope", "width": 8, "size": 384, "frames": 16, "checkpointing": True},
    {"backbone": "modelscope", "width": 8, "size": 256, "frames": 16, "checkpointing": False},
    # 13 frames: the decoded frame (worker seed 0) is the 7th, in the third of 4 latent frames, which costs the
    # causal decoder what the last one does (every latent frame after the first decodes 4 frames)
    {"backbone": "wan", "width": 8, "size": 256, "frames": 13, "checkpointing": True},
    {"backbone": "wan", "width": 8, "size": 256, "frames": 13, "checkpointing": False},
    # CogVideoX 1.5: 17 frames are 5 latent frames padded to 6, 3 temporal patches of 768 tokens with the text
    {"backbone": "cogvideox", "width": 8, "size": 256, "frames": 17, "checkpointing": True},
    {"backbone": "cogvideox", "width": 8, "size": 256, "frames": 17, "checkpointing": False},
    # VideoCrafter2: 320 / 10 = 32 channels (GroupNorm's 32 groups)
    {"backbone": "videocrafter", "width": 10, "size": 384, "frames": 16, "checkpointing": True},
    {"backbone": "videocrafter", "width": 10, "size": 256, "frames": 16, "checkpointing": False},
    # Stable Video Diffusion: (320, 640, 1280, 1280) / 10 (GroupNorm's 32 groups), the decoder's channels / 4
    {"backbone": "svd", "width": 10, "size": 256, "frames": 14, "checkpointing": True},
    {"backbone": "svd", "width": 10, "size": 192, "frames": 14, "checkpointing": False},
    # Open-Sora 1.2: 17 frames are one micro-batch of the temporal VAE (5 latent frames); it has no "off" level
    # estimate: the second case is `call` (the kept call stored whole while it is recomputed)
    {"backbone": "opensora", "width": 8, "size": 512, "frames": 17, "checkpointing": True},
    {"backbone": "opensora", "width": 8, "size": 384, "frames": 17, "checkpointing": "call"},
    # HunyuanVideo 1.5 T2V: 9 frames are 3 latent frames; the estimate is for block checkpointing only, and the
    # causal VAE decodes the prefix up to the measured step's frame (the estimate is given that frame)
    {"backbone": "hunyuanvideo", "width": 8, "size": 384, "frames": 9, "checkpointing": True},
    {"backbone": "hunyuanvideo", "width": 8, "size": 256, "frames": 9, "checkpointing": True},
    # LTX-Video (0.9.1 VAE): 33 frames are 5 latent frames; the decode with gradient is the temporal tiles that
    # hold the decoded frame (tiles of 16 frames)
    {"backbone": "ltx", "width": 8, "size": 512, "frames": 33, "checkpointing": True},
    {"backbone": "ltx", "width": 8, "size": 384, "frames": 33, "checkpointing": False},
]
QUICK_ESTIMATOR_CASES: list[dict[str, Any]] = [
    {"backbone": "modelscope", "width": 32, "size": 32, "frames": 2, "checkpointing": True},
    {"backbone": "wan", "width": 16, "size": 32, "frames": 5, "checkpointing": True},
    {"backbone": "cogvideox", "width": 16, "size": 32, "frames": 9, "checkpointing": True},
    {"backbone": "videocrafter", "width": 10, "size": 64, "frames": 2, "checkpointing": True},
    {"backbone": "svd", "width": 10, "size": 32, "frames": 2, "checkpointing": True},
    {"backbone": "opensora", "width": 16, "size": 32, "frames": 17, "checkpointing": "call"},
    # about 40 s here: 54 blocks over the released 1985 text tokens, whatever the video size
    {"backbone": "hunyuanvideo", "width": 16, "size": 32, "frames": 5, "checkpointing": True},
    {"backbone": "ltx", "width": 16, "size": 64, "frames": 9, "checkpointing": True},
]


def _meta(components: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {k: v.to("meta") if isinstance(v, torch.nn.Module) else v for k, v in components.items()}


def _cogvideox_on_meta(comps: dict[str, Any], size: int, frames: int) -> Any:
    import torch
    from vader_cogvideox import CogVideoXBackbone, CogVideoXOptions

    bb = CogVideoXBackbone(CogVideoXOptions(height=size, width=size, frames=frames))
    bb.components = {"transformer": comps["transformer"], "vae": comps["vae"]}
    bb.vae_spatial, bb.vae_temporal, bb.device = 8, 4, torch.device("meta")
    return bb


def estimate_case(case: dict[str, Any], decoded: Sequence[int] = ()) -> dict[str, float]:
    """What the backbone plugin's own estimator (``scripts/estimate_memory.py``, the code behind every published
    GPU figure) says of ``case`` in float32, with the scaled components on the ``meta`` device: the memory the
    step adds over the loaded model (``step_mib``), and the tensors alive at the worst moment of decoding the
    chain's latents without gradient (``decode_live_mib``: the part of the measured no-gradient decode that is
    tensors; the rest is the CPU kernels' own workspace). ``decoded``: the frame the measured step decoded, for
    a backbone whose decoding cost depends on it and whose estimate takes it (HunyuanVideo's causal prefix)."""
    import torch

    from benchmarks.arch import modelscope_components, wan_components
    from benchmarks.gpu import _script
    from vader_core.estimate import GIB, live_peak_gib

    size, frames, ck = case["size"], case["frames"], case["checkpointing"]
    if case["backbone"] == "modelscope":
        comps = _meta(modelscope_components(case["width"]))
        r = _script("vader_modelscope").estimate(
            size,
            frames,
            1,
            1,
            ck,
            torch.float32,
            True,
            False,
            comps,  # split guidance, encoders on the device
        )
        step = r["peak"] - r["weights_gpu"]
        z = torch.randn(1, 4, size // 8, size // 8, device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: comps["vae"].decode(z).sample)
    elif case["backbone"] == "cogvideox":
        from benchmarks.arch import cogvideox_components

        comps = _meta(cogvideox_components(case["width"], (size, size, frames)))
        r = _script("vader_cogvideox").estimate(
            "1.5-t2v", size, size, frames, True, False, comps, torch.float32, bool(ck)
        )
        step = (r["peak_last"] if ck else r["peak_off"]) - r["weights"]
        bb = _cogvideox_on_meta(comps, size, frames)
        z = torch.randn(*bb.latent_shape(1), device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: bb.decode(z, [frames - 1]))
    elif case["backbone"] == "videocrafter":
        from benchmarks.arch import videocrafter_components

        comps = _meta(videocrafter_components(case["width"]))
        r = _script("vader_videocrafter").estimate(
            size, size, frames, dtype=torch.float32, offload_encoders=False, components=comps
        )
        step = (r["peak"] if ck else r["peak_off"]) - r["weights_gpu"]
        z = torch.randn(1, 4, size // 8, size // 8, device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: comps["vae"].decode(z).sample)
    elif case["backbone"] == "svd":
        from benchmarks.arch import svd_components

        comps = _meta(svd_components(case["width"]))
        # the temporal decoder decoding all frames (no chunk), the image encoder on the device
        r = _script("vader_svd").estimate(
            size, size, frames, dtype=torch.float32, offload_encoders=False, components=comps
        )
        step = (r["peak"] if ck else r["peak_off"]) - r["weights_gpu"]
        z = torch.randn(frames, 4, size // 8, size // 8, device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: comps["vae"].decode(z, num_frames=frames).sample)
    elif case["backbone"] == "opensora":
        from benchmarks.arch import opensora_components

        comps = _meta(opensora_components(case["width"]))
        r = _script("vader_opensora").estimate(  # T5 on the device
            size, size, frames, block_checkpointing=ck is True, dtype=torch.float32, components=comps
        )
        step = r["peak"] - r["weights"]
        vae = comps["vae"]
        z = torch.randn(1, 4, vae.latent_frames(frames), size // 8, size // 8, device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: vae.decode(z, frames, [frames - 1]))
    elif case["backbone"] == "hunyuanvideo":
        from vader_hunyuanvideo import HunyuanVideoBackbone

        from benchmarks.arch import hunyuanvideo_components

        if not ck:
            raise ValueError("the HunyuanVideo estimate is for the default block checkpointing only")
        frame = decoded[0] if decoded else frames - 1
        comps = _meta(hunyuanvideo_components(case["width"]))
        r = _script("vader_hunyuanvideo").estimate(
            size, size, frames, components=comps, dtype=torch.float32, frame=frame
        )
        step = r["peak_frame"] - r["weights"]
        bb = HunyuanVideoBackbone(HunyuanVideoBackbone.Options(height=size, width=size, frames=frames))
        bb.components, bb.vae_temporal = {"vae": comps["vae"]}, 4
        z = torch.randn(1, 32, (frames - 1) // 4 + 1, size // 16, size // 16, device="meta")
        with torch.no_grad():  # as the worker's probe: the last frame
            live = live_peak_gib(lambda: bb.decode(z, [frames - 1]))
    elif case["backbone"] == "ltx":
        from vader_ltx import LTXBackbone

        from benchmarks.arch import ltx_components

        comps = _meta(ltx_components(case["width"]))
        r = _script("vader_ltx").estimate("0.9.1", size, size, frames, 16, False, comps, torch.float32)
        step = (r["peak_tiled"] if ck else r["peak_tiled_off"]) - r["weights"]
        bb = LTXBackbone(LTXBackbone.Options(height=size, width=size, frames=frames))
        bb.components = {"vae": comps["vae"], "transformer": comps["transformer"]}
        bb.vae_spatial, bb.vae_temporal, bb.device = 32, 8, torch.device("meta")
        z = torch.randn(1, 128, (frames - 1) // 8 + 1, size // 32, size // 32, device="meta")
        with torch.no_grad():  # as the worker's probe: the whole video (no gradient, so not from tiles)
            live = live_peak_gib(lambda: bb.decode(z, [frames - 1]))
    else:
        from vader_wan import WanBackbone

        comps = _meta(wan_components(case["width"]))
        r = _script("vader_wan").estimate("t2v-1.3b", size, size, frames, bool(ck), False, comps, torch.float32)
        step = r["peak"] - r["weights"]
        bb = WanBackbone()
        bb.components = {"vae": comps["vae"]}
        z = torch.randn(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8, device="meta")
        with torch.no_grad():
            live = live_peak_gib(lambda: bb._decode_cut_history(z, set()))
    return {"step_mib": step * GIB / 2**20, "decode_live_mib": live * GIB / 2**20}
