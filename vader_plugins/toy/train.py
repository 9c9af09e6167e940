"""Train the bundled ``toy`` text-to-video model from scratch on procedural clips (CPU, about an hour a stage).

Two stages, both on :class:`~vader_plugins.toy.data.ToyVideoDataset`:

1. the ``AutoencoderKL`` on single frames (MSE + L1 reconstruction, object pixels weighted 10x, plus a
   small KL term as in Stable Diffusion's VAE); its latent scaling factor is then set to ``1 / std`` of the latents;
2. the UNet (ModelScope's ``UNet3DConditionModel``; ``--unet motion`` for AnimateDiff's ``UNetMotionModel``)
   and the CLIP text encoder jointly, with the DDPM loss of a noise schedule of
   :data:`~vader_plugins.toy.backbone.SCHEDULES` (``--schedule``, written to ``scheduler/``: Stable
   Diffusion's epsilon prediction by default, or v-prediction under zero terminal SNR), 10% empty
   captions for classifier-free guidance, and an exponential moving average of both, which is what
   gets saved. Under zero terminal SNR, ``--terminal-steps`` and ``--terminal-share`` train the last
   timestep against each caption's mean clip, which is how the bundled model learnt the direction
   word. The clips of this stage are encoded once into a pool of latent distributions (a fresh latent
   is sampled from each every time it is drawn): the frozen encoder would otherwise cost a third of
   every step.

Writes the diffusers layout (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``, safetensors, fp16)
and ``MODEL_CARD.md``, then measures prompt following with :mod:`vader_plugins.toy.quality`::

    python -m vader_plugins.toy.train --out vader_plugins/toy/weights --vae-steps 600 --steps 2000

The bundled weights took four such runs, each continuing the last (``--init``); their model card lists
the commands. One run from scratch learns colour and direction too (49.7 minutes on 2 threads; the
toy README gives its figures)::

    python -m vader_plugins.toy.train --unet motion --schedule zero-snr --terminal-steps 1500 \\
        --terminal-share 0.5 --vae-steps 600 --steps 4200 --threads 2 --out my-toy
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbone import SCHEDULES, SIZES, UNET_KINDS, toy_components
from .data import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    HELDOUT_CAPTIONS,
    SHAPES,
    TRAIN_CAPTIONS,
    ClipConfig,
    ToyVideoDataset,
    parse_caption,
)

#: The word each caption word is swapped for when measuring whether the denoiser uses it: the next colour,
#: the opposite direction.
_SWAP: dict[str, dict[str, str]] = {
    "color": {c: list(COLORS)[(i + 1) % len(COLORS)] for i, c in enumerate(COLORS)},
    "direction": {"left": "right", "right": "left", "up": "down", "down": "up"},
}


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)


def train_vae(
    vae: torch.nn.Module,
    data: ToyVideoDataset,
    steps: int,
    batch_clips: int,
    lr: float,
    kl_weight: float,
    log_every: int,
) -> dict[str, float]:
    """Stage 1. Each step draws ``batch_clips`` clips and trains on two random frames of each."""
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05)
    rng = np.random.default_rng(1)
    vae.train()
    rec_avg = kl_avg = float("nan")
    for step in range(steps):
        clips, _ = data.batch(step * batch_clips, batch_clips)
        idx = rng.integers(clips.shape[1], size=(batch_clips, 2))
        x = torch.from_numpy(np.stack([clips[i, idx[i]] for i in range(batch_clips)])).flatten(0, 1) * 2 - 1
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        # The object covers under a tenth of the frame: unweighted, the loss is all background and the
        # VAE learns washed-out shapes. Pixels away from the frame's median (the background) weigh 10x.
        bg = x.flatten(2).median(dim=2).values[:, :, None, None]
        weight = 1.0 + 9.0 * ((x - bg).abs().sum(dim=1, keepdim=True) > 0.2).float()
        err = rec - x
        rec_loss = (weight * (err.pow(2) + err.abs())).mean() / weight.mean()
        kl = post.kl().mean() / x[0].numel()
        loss = rec_loss + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        # Smoothed figures for the log and the model card (one step is a noisy estimate).
        a = 0.9 if step else 0.0
        rec_avg = a * (rec_avg if step else 0.0) + (1 - a) * rec_loss.item()
        kl_avg = a * (kl_avg if step else 0.0) + (1 - a) * kl.item()
        if log_every and (step % log_every == 0 or step == steps - 1):
            _log(f"vae step {step + 1}/{steps} rec {rec_avg:.5f} kl {kl_avg:.3f}")
    vae.eval()
    return {"vae_reconstruction_loss": rec_avg, "vae_kl_per_dim": kl_avg}


@torch.no_grad()
def vae_color_error(vae: torch.nn.Module, n: int = 64, seed: int = 5) -> float:
    """Mean absolute error, pixels in [0, 1], of the VAE on plain frames of ``n`` random RGB colours.

    The captions name only a few colours; a reward may ask for any other (the demo asks for orange),
    which the frozen decoder must then be able to produce.
    """
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1).expand(n, 3, 32, 32)
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample
    return float((rec - x).abs().mean() / 2)


@torch.no_grad()
def encode_pool(vae: torch.nn.Module, data: ToyVideoDataset, clips: int, start: int) -> dict[str, Any]:
    """Latent mean and std of ``clips`` clips, ``(N, 4, F, h, w)`` each, their captions, and ``object``:
    ``(N, 1, F, h, w)``, 1 on the latent cells the moving object touches in that frame."""
    import torch.nn.functional as F

    means, stds, objects, captions = [], [], [], []
    for i in range(start, start + clips, 32):
        n = min(32, start + clips - i)
        v, caps = data.batch(i, n)
        x = torch.from_numpy(v).flatten(0, 1) * 2 - 1
        dist = vae.encode(x).latent_dist
        for t, out in ((dist.mean, means), (dist.std, stds)):
            out.append(t.reshape(n, v.shape[1], *t.shape[1:]).permute(0, 2, 1, 3, 4).contiguous())
        # Object pixels: far from the frame's median colour (the background; the faint texture stays below
        # the threshold).
        bg = x.flatten(2).median(dim=2).values[:, :, None, None]
        mask = ((x - bg).norm(dim=1, keepdim=True) > 0.3).float()
        cells = F.adaptive_max_pool2d(mask, dist.mean.shape[-2:])
        objects.append(cells.reshape(n, v.shape[1], *cells.shape[1:]).permute(0, 2, 1, 3, 4).contiguous())
        captions += caps
    return {"mean": torch.cat(means), "std": torch.cat(stds), "object": torch.cat(objects), "captions": captions}


def _target(noise_sched: Any, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict: the noise, or v (``noise_sched.get_velocity``) for v-prediction."""
    kind = noise_sched.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_sched.get_velocity(z0, noise, t)
    raise ValueError(f"unsupported prediction_type {kind!r}")


def _group_means(latents: torch.Tensor, keys: Sequence[Any]) -> tuple[list[Any], torch.Tensor, torch.Tensor]:
    """Mean of ``latents`` rows per distinct key: the sorted keys, their means ``(K, ...)`` and each row's
    index into them."""
    names = sorted(set(keys))
    position = {k: i for i, k in enumerate(names)}
    index = torch.tensor([position[k] for k in keys])
    sums = torch.zeros(len(names), *latents.shape[1:]).index_add_(0, index, latents)
    counts = torch.bincount(index, minlength=len(names)).view(-1, *[1] * (latents.dim() - 1))
    return names, sums / counts, index


def _text_per_frame(unet: torch.nn.Module, text: torch.Tensor, frames: int) -> torch.Tensor:
    """The text as ``unet`` takes it: once per frame for ``UNetMotionModel``, once per clip for the UNet3D."""
    from vader_core.unet_t2v import takes_text_per_frame

    return text.repeat_interleave(frames, dim=0) if takes_text_per_frame(unet) else text


def _token_ids(tokenizer: Any, captions: Sequence[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's length, as the backbone encodes prompts."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_denoiser(
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    tokenizer: Any,
    pool: dict[str, Any],
    scaling: float,
    steps: int,
    batch_size: int,
    lr: float,
    cfg_drop: float,
    ema_decay: float,
    log_every: int,
    max_seconds: float | None,
    on_checkpoint: Any = None,
    checkpoint_every: int = 0,
    object_weight: float = 1.0,
    train_text: bool = True,
    high_noise_weight: float = 1.0,
    scheduler_config: dict[str, Any] = SCHEDULES["sd"],
    terminal_share: float = 0.0,
    terminal_steps: int = 0,
) -> dict[str, Any]:
    """Stage 2: the DDPM loss of ``scheduler_config`` (a value of :data:`SCHEDULES`: the UNet predicts the
    noise or v, as its ``prediction_type`` says); returns the EMA modules and figures.

    ``object_weight`` > 1 weighs the squared error on the latent cells the object touches in each frame
    that much more (normalised by the mean weight): the object, whose place in each frame is all that
    says which way it moves, covers about a tenth of the latent cells. ``train_text=False`` keeps the
    text encoder frozen, as real text-to-video models keep theirs. ``high_noise_weight`` > 1 weighs each
    clip's error by ``clamp(1 / SNR(t), 1, high_noise_weight)``: at high noise the layout (where the
    object is in each frame) is not yet visible in the input, so only the caption can tell it, while the
    epsilon loss scales layout errors down by the SNR there.

    ``terminal_share`` > 0 (zero-SNR v-prediction only) trains that share of each batch at the last
    timestep, where the input is pure noise and the best prediction is minus the mean clip of the caption,
    against that mean (over the pool's clips of the same caption; the mean of all clips for an empty
    caption) instead of one noisy clip: the same minimiser, with far less variance. A denoiser trained on
    such means alone learns the direction word after a plateau of about 1000 steps (see the README).
    ``terminal_steps`` > 0 trains the whole batch that way for the first that many steps (then
    ``terminal_share``): the plateau is crossed first, and the rest of the noise range trained after.
    """
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler.from_config(scheduler_config)
    params = list(unet.parameters()) + (list(text_encoder.parameters()) if train_text else [])
    text_encoder.requires_grad_(train_text)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    warmup = min(100, max(steps // 10, 1))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0))))
        ),
    )
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    g = torch.Generator().manual_seed(2)
    n = pool["mean"].shape[0]
    ids_all = _token_ids(tokenizer, pool["captions"])
    empty = _token_ids(tokenizer, [""])[0]
    last = noise_sched.config.num_train_timesteps - 1
    terminal_on = terminal_share > 0 or terminal_steps > 0
    if terminal_on:
        if noise_sched.config.prediction_type != "v_prediction" or float(noise_sched.alphas_cumprod[last]) != 0.0:
            raise ValueError(
                "terminal_share and terminal_steps need a zero-terminal-SNR v-prediction schedule (--schedule zero-snr)"
            )
        latents = pool["mean"] * scaling
        _, cap_mean, cap_of = _group_means(latents, pool["captions"])
        all_mean = latents.mean(dim=0)
    unet.train()
    text_encoder.train(train_text)
    t0 = time.perf_counter()
    loss_avg, done = float("nan"), 0
    for step in range(steps):
        idx = torch.randint(n, (batch_size,), generator=g)
        z0 = (pool["mean"][idx] + pool["std"][idx] * torch.randn(pool["mean"][idx].shape, generator=g)) * scaling
        ids = ids_all[idx].clone()
        dropped = torch.rand(batch_size, generator=g) < cfg_drop
        ids[dropped] = empty
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (batch_size,), generator=g)
        if terminal_on:  # drawn only then, so runs without it keep their random stream
            terminal = torch.rand(batch_size, generator=g) < (1.0 if step < terminal_steps else terminal_share)
            t = torch.where(terminal, torch.full_like(t, last), t)
        zt = noise_sched.add_noise(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=_text_per_frame(unet, text_encoder(ids)[0], zt.shape[2])).sample
        target = _target(noise_sched, z0, noise, t)
        if terminal_on:
            mean = torch.where(dropped.view(-1, 1, 1, 1, 1), all_mean, cap_mean[cap_of[idx]])
            target = torch.where(terminal.view(-1, 1, 1, 1, 1), -mean, target)  # v = -x0 at zero SNR
        weight = 1.0 + (object_weight - 1.0) * pool["object"][idx]
        if high_noise_weight != 1.0:
            ab = noise_sched.alphas_cumprod[t]
            weight = weight * ((1 - ab) / ab).clamp(1.0, high_noise_weight).view(-1, 1, 1, 1, 1)
        loss = (weight * (pred - target).pow(2)).mean() / weight.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        # Warm-up of the EMA (as in diffusers' EMAModel) so that short runs are not dominated by the init.
        d = min(ema_decay, (1 + step) / (10 + step))
        _ema_update(ema_unet, unet, d)
        if train_text:
            _ema_update(ema_text, text_encoder, d)
        done = step + 1
        a = 0.98 if step else 0.0
        loss_avg = a * (loss_avg if step else 0.0) + (1 - a) * loss.item()
        elapsed = time.perf_counter() - t0
        if log_every and (step % log_every == 0 or step == steps - 1):
            _log(
                f"denoiser step {done}/{steps} loss {loss_avg:.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"{elapsed / done:.2f} s/step"
            )
        if on_checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < steps:
            on_checkpoint(ema_unet, ema_text, done, loss_avg)
        if max_seconds is not None and elapsed > max_seconds:
            _log(f"time budget reached after {done} steps")
            break
    return {
        "unet": ema_unet,
        "text_encoder": ema_text,
        "steps_done": done,
        "denoiser_loss": loss_avg,
        "seconds": time.perf_counter() - t0,
    }


@torch.no_grad()
def caption_sensitivity(
    comps: dict[str, Any],
    clips: int = 96,
    timestep: int = 500,
    seed: int = 3,
    config: ClipConfig | None = None,
    scheduler_config: dict[str, Any] = SCHEDULES["sd"],
) -> dict[str, float]:
    """Does the denoiser listen to each word? Its error on held-out clips with one word of the caption swapped.

    Held-out clips are noised to ``timestep`` under ``scheduler_config`` (the model's schedule); the UNet
    predicts its target (noise or v) once with the true caption and once with the colour word (next
    colour) or the direction word (the opposite one) swapped. The figure is the relative rise of the
    squared error on the object's latent cells: 0 means the word is ignored, as the models trained
    on Stable Diffusion's schedule ignored the direction word. :func:`reference_sensitivity` gives what
    the best possible denoiser would show at the last timestep of the ``zero-snr`` schedule.

    Returns:
        `dict[str, float]`: ``color`` and ``direction``.
    """
    from diffusers import DDPMScheduler

    unet, text_encoder, tok = comps["unet"].eval(), comps["text_encoder"].eval(), comps["tokenizer"]
    pool = encode_pool(comps["vae"], ToyVideoDataset("heldout", seed=seed, config=config), clips, start=0)
    z0 = pool["mean"] * float(comps["vae"].config.scaling_factor)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(z0.shape, generator=g)
    t = torch.full((z0.shape[0],), timestep)
    noise_sched = DDPMScheduler.from_config(scheduler_config)
    zt = noise_sched.add_noise(z0, noise, t)
    target = _target(noise_sched, z0, noise, t)
    positions = {"color": 1, "direction": 4}  # word index in "a red circle moving left on a gray background"

    def error(captions: list[str]) -> float:
        text = text_encoder(_token_ids(tok, captions))[0]
        pred = unet(zt, t, encoder_hidden_states=_text_per_frame(unet, text, zt.shape[2])).sample
        return float(((pred - target).pow(2) * pool["object"]).sum() / pool["object"].sum())

    base = error(list(pool["captions"]))
    out = {}
    for name, pos in positions.items():
        swapped = [
            " ".join(_SWAP[name][w] if i == pos else w for i, w in enumerate(c.split())) for c in pool["captions"]
        ]
        out[name] = error(swapped) / base - 1.0
    return out


@torch.no_grad()
def reference_sensitivity(
    vae: torch.nn.Module, clips: int = 3000, heldout: int = 96, seed: int = 3, config: ClipConfig | None = None
) -> dict[str, float]:
    """What :func:`caption_sensitivity` at the last timestep of a zero-SNR schedule would show for the best
    possible denoiser, one that knows the caption only.

    There the input is pure noise and the best prediction of the clip is its mean given the caption. It is
    estimated by the mean latent of ``clips`` training clips per colour, direction and background (the
    shape is left out so that every group has clips). Returns the relative rise of the squared error on
    the object's latent cells of ``heldout`` held-out clips when that mean is taken for the swapped
    caption: a UNet that uses the word fully scores about this much at ``timestep=999``.

    Returns:
        `dict[str, float]`: ``color`` and ``direction``.
    """
    scaling = float(vae.config.scaling_factor)
    train = encode_pool(vae, ToyVideoDataset("train", seed=seed, config=config), clips, start=0)
    groups = [(s.color, s.direction, s.background) for s in map(parse_caption, train["captions"])]
    names, group_means, _ = _group_means(train["mean"] * scaling, groups)
    means = dict(zip(names, group_means, strict=True))
    held = encode_pool(vae, ToyVideoDataset("heldout", seed=seed, config=config), heldout, start=0)
    err = {"true": 0.0, "color": 0.0, "direction": 0.0}
    for z, obj, caption in zip(held["mean"], held["object"], held["captions"], strict=True):
        s = parse_caption(caption)
        x0 = z * scaling
        keys = {
            "true": (s.color, s.direction, s.background),
            "color": (_SWAP["color"][s.color], s.direction, s.background),
            "direction": (s.color, _SWAP["direction"][s.direction], s.background),
        }
        if not all(k in means for k in keys.values()):
            continue  # a group no training clip fell into (only with very few ``clips``)
        for name, k in keys.items():
            err[name] += float(((means[k] - x0).pow(2) * obj).sum())
    if not err["true"]:
        raise ValueError(f"no held-out clip has all its caption groups among {clips} training clips; use more")
    return {name: err[name] / err["true"] - 1.0 for name in ("color", "direction")}


def load_components(path: Path) -> dict[str, Any]:
    """The unet, vae, text encoder and tokenizer written by :func:`save_weights`, in float32."""
    from diffusers import AutoencoderKL, AutoModel
    from transformers import CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    return {
        "unet": AutoModel.from_pretrained(str(path / "unet"), torch_dtype=torch.float32),
        "vae": AutoencoderKL.from_pretrained(path / "vae", torch_dtype=torch.float32),
        "text_encoder": CLIPTextModel.from_pretrained(path / "text_encoder", torch_dtype=torch.float32),
        "tokenizer": clip_tokenizer(
            int(json.loads((path / "text_encoder" / "config.json").read_text())["max_position_embeddings"])
        ),
    }


def save_weights(out: Path, comps: dict[str, Any], scheduler_config: dict[str, Any]) -> None:
    """Write the components in the diffusers layout, fp16 safetensors (loaded back in any dtype), and the
    DDIM sampler of ``scheduler_config``."""
    from diffusers import DDIMScheduler

    out.mkdir(parents=True, exist_ok=True)
    for name in ("unet", "vae", "text_encoder"):
        copy.deepcopy(comps[name]).half().save_pretrained(out / name, safe_serialization=True)
    comps["tokenizer"].save_pretrained(out / "tokenizer")
    DDIMScheduler.from_config(scheduler_config).save_pretrained(out / "scheduler")


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _history(info: dict[str, Any]) -> str:
    """Earlier stages of a run continued with ``--init``, oldest first (empty for a run from scratch)."""
    if not info.get("history"):
        return ""
    kept = (
        "same VAE; UNet and text encoder trained from scratch (`--fresh-denoiser`)"
        if info.get("fresh_denoiser")
        else "same VAE"
    )
    rows = [
        f"The table above is the last stage. It continued (`--init`, {kept}) from earlier stages:",
        "",
        "| stage | command | UNet | VAE steps | denoiser steps | final denoiser loss | time | held-out colour / direction "
        "| error rise, colour / direction word swapped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, h in enumerate(info["history"], 1):
        q = h.get("quality") or {}
        qa = f"{q['color_accuracy']:.0%} / {q['direction_accuracy']:.0%}" if q else "-"
        cs = h.get("caption_sensitivity")
        sa = f"{cs['color']:+.0%} / {cs['direction']:+.1%}" if cs else "-"
        rows.append(
            f"| {i} | `{h.get('argv')}` | `{h.get('unet_class') or 'UNet3DConditionModel'}` | "
            f"{h.get('vae_steps')} | {h.get('denoiser_steps')} | "
            f"{h.get('denoiser_loss', float('nan')):.4f} | {h.get('wall_minutes', float('nan')):.1f} min | {qa} | {sa} |"
        )
    return "\n".join(rows) + "\n\n"


def model_card(info: dict[str, Any]) -> str:
    """``MODEL_CARD.md`` from the figures collected by :func:`main`."""
    q = info.get("quality")
    qtext = "not measured (`--no-quality`)."
    if q:
        qtext = (
            f"{q['n']} held-out clips ({len(HELDOUT_CAPTIONS)} caption combinations never seen in training, seeds "
            f"{q['seeds']}, {q['sampling']}), scored by `vader_plugins.toy.quality`:\n\n"
            f"| check | share of clips |\n| --- | --- |\n"
            f"| dominant colour of the moving object = prompted colour | {q['color_accuracy']:.1%} |\n"
            f"| object centroid moves in the prompted direction | {q['direction_accuracy']:.1%} |\n"
            f"| both | {q['both_accuracy']:.1%} |\n\n"
            f"The same check on the training data itself (real clips of the held-out combinations) gives "
            f"{q['data_color_accuracy']:.0%} / {q['data_direction_accuracy']:.0%}."
        )
        dc = q.get("direction_control")
        if dc:
            qtext += (
                f"\n\nDoes the caption or the initial noise set the motion? Each of {dc['n']} held-out prompts, generated "
                f"from one seed with each of the four direction words (`quality.direction_control`): the four clips "
                f"move {dc['distinct_directions']:.2f} different ways on average, all the same way for "
                f"{dc['same_direction']:.0%} of the prompts, and {dc['direction_accuracy']:.0%} of the "
                f"{4 * dc['n']} clips move as their word says."
            )
    cs = info.get("caption_sensitivity")
    if cs:
        qtext += (
            f"\n\nDoes the UNet use each word? On 96 held-out clips noised to t=500 (`caption_sensitivity`), "
            f"swapping the colour word for another raises its error on the object's latent cells by "
            f"{cs['color']:+.1%}, swapping the direction word for the opposite one by {cs['direction']:+.2%}."
        )
    s = info["sizes"]
    unet_row = (
        f"| `UNetMotionModel` | blocks {s['unet_channels']}, 1 layer per block, cross-attention to the text in every "
        f"block, temporal attention with sinusoidal frame positions (up to 16 frames), {s['unet_heads']} heads |"
        if info.get("unet_class") == "UNetMotionModel"
        else f"| `UNet3DConditionModel` | blocks {s['unet_channels']}, 1 layer per block, cross-attention in every block, "
        f"{s['unet_heads']} heads |"
    )
    return f"""# toy: a small text-to-video model of moving coloured shapes

Trained from scratch by `python -m vader_plugins.toy.train {info["argv"]}` in {info["wall_minutes"]:.1f}
minutes on {info["machine"]}. Everything it knows comes from the procedural data below; nothing was
downloaded. It exists so that vader's reward training can be shown end to end offline, on a CPU.

## Data

`vader_plugins.toy.data.ToyVideoDataset` (seed {info["seed"]}): {info["frames"]} frames at
{info["size"]}x{info["size"]} of one shape ({", ".join(SHAPES)}) in one colour ({", ".join(COLORS)}) moving
{", ".join(DIRECTIONS)} over a {", ".join(BACKGROUNDS)} background (half the clips with a faint static
texture), with random position, size and speed{_speed(info)}. Captions: "a red circle moving left on a gray background".
The VAE also trains on clips whose background and object colours are drawn uniformly from the RGB cube
({info["vae_random_colors"]:.0%} of its clips), so that it decodes colours the captions never name: its mean absolute error
on plain frames of 64 random colours is {info["vae"].get("vae_plain_color_error", float("nan")):.4f} (pixels in [0, 1]).
{len(TRAIN_CAPTIONS)} caption combinations are used for training; {len(HELDOUT_CAPTIONS)} others are held out
(every word and every pair of attributes of them occurs in training, not the combination).

## Architecture (diffusers / transformers classes)

| component | configuration | parameters |
| --- | --- | --- |
| `AutoencoderKL` | blocks {s["vae_channels"]}, 1 layer per block, 4 latent channels, 32x32 -> 8x8, scaling factor {info["scaling_factor"]:.4f} | {info["params"]["vae"]:,} |
{unet_row} {info["params"]["unet"]:,} |
| `CLIPTextModel` | {s["text_layers"]} layers, width {s["text_hidden"]}, {s["max_length"]} tokens, CLIP BPE vocabulary (49,408) | {info["params"]["text_encoder"]:,} |
| scheduler | {_schedule_row(info)} | - |

Weights are stored in fp16 safetensors: {info["bytes"] / 1e6:.1f} MB in all.

## Training

| stage | steps | batch | final loss (moving average) | time |
| --- | --- | --- | --- | --- |
| VAE (frames) | {info["vae_steps"]}{" (kept from stage 1)" if info.get("history") and not info["vae_steps"] else ""} | {info["vae_batch"]} clips x 2 frames | object-weighted reconstruction MSE + L1 {info["vae"]["vae_reconstruction_loss"]:.4f} (pixels in [-1, 1]), KL/dim {info["vae"]["vae_kl_per_dim"]:.3f} | {info["vae_minutes"]:.1f} min |
| latent pool | {info["pool"]} clips | - | - | {info["pool_minutes"]:.1f} min |
| {_stage2(info)} | {info["denoiser_steps"]} (of {info["steps"]} planned) | {info["batch_size"]} clips | {"epsilon" if info.get("schedule", "sd") == "sd" else "v"} MSE{_weighting(info)} {info["denoiser_loss"]:.4f} | {info["denoiser_minutes"]:.1f} min |

{_history(info)}AdamW, learning rates {info["vae_lr"]} (VAE, one-cycle) and {info["lr"]} (denoiser, warm-up then cosine to 10%),
gradient clipping at 1, 10% empty captions (classifier-free guidance), EMA {info["ema_decay"]} of the trained
weights (what is saved). Seed {info["seed"]}; torch {torch.__version__}, {info["threads"]} CPU thread(s).

## Prompt following

{qtext}

## Limits

32x32 pixels, 8 frames, one object, the vocabulary above only. {_direction_limit(q)} Shapes are not
checked.
"""


def _schedule_row(info: dict[str, Any]) -> str:
    if info.get("schedule", "sd") == "sd":
        return "DDPM `scaled_linear` betas 0.00085-0.012, 1000 steps, epsilon prediction (sampled with DDIM)"
    return (
        "DDPM `scaled_linear` betas 0.00085-0.012 rescaled to zero terminal SNR, 1000 steps, v-prediction "
        "(sampled with DDIM from the last timestep, `trailing` spacing)"
    )


def _speed(info: dict[str, Any]) -> str:
    lo, hi = info.get("speed") or ClipConfig().speed
    return f" ({lo:g} to {hi:g} pixels per frame)"


def _stage2(info: dict[str, Any]) -> str:
    if not info.get("freeze_text"):
        return "UNet + text encoder"
    if info.get("fresh_denoiser") or not info.get("init"):
        return "UNet (text encoder frozen at its random initialisation)"
    return "UNet (text encoder frozen)"


def _weighting(info: dict[str, Any]) -> str:
    w, h = info.get("object_weight", 1.0), info.get("high_noise_weight", 1.0)
    parts = ([f"object cells weighted {w:g}x"] if w != 1.0 else []) + (
        [f"clips weighted clamp(1/SNR(t), 1, {h:g})"] if h != 1.0 else []
    )
    steps, share = info.get("terminal_steps"), info.get("terminal_share")
    if steps:
        parts.append(f"the first {steps} steps only at the last timestep against the caption's mean clip")
    if share:
        parts.append(
            f"{'then ' if steps else ''}{share:.0%} of each batch at the last timestep against its caption's mean clip"
        )
    return f" ({'; '.join(parts)})" if parts else ""


def _direction_limit(q: dict[str, Any] | None) -> str:
    if not q:
        return ""
    if q["direction_accuracy"] >= 0.5:
        return f"Objects move in the prompted direction in {q['direction_accuracy']:.0%} of held-out clips."
    return (
        f"Direction is NOT learnt yet: {q['direction_accuracy']:.0%} of held-out clips move the prompted way, "
        "about chance for four directions (25%), although objects do move (several pixels over a clip): the "
        "initial noise, not the direction word, decides which way (see the caption sensitivity and the "
        "direction control above). Colour, which reward training changes in the demo, is learnt."
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Train the toy text-to-video model from scratch.")
    p.add_argument("--out", required=True, help="output directory (diffusers layout + MODEL_CARD.md)")
    p.add_argument("--size", default="full", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--unet",
        default="3d",
        choices=UNET_KINDS,
        help="denoiser: `3d` (ModelScope's UNet3DConditionModel) or `motion` (AnimateDiff's UNetMotionModel: "
        "temporal attention with frame positions; the bundled model's)",
    )
    p.add_argument("--vae-steps", type=int, default=600)
    p.add_argument("--vae-batch", type=int, default=32, help="clips per VAE step (two frames of each)")
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument(
        "--vae-random-colors",
        type=float,
        default=0.5,
        help="share of the VAE's clips drawn in arbitrary background and object colours",
    )
    p.add_argument("--pool", type=int, default=6000, help="clips encoded for the denoiser stage")
    p.add_argument(
        "--speed",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="range of the objects' speed in pixels per frame (default: ClipConfig's)",
    )
    p.add_argument("--steps", type=int, default=2000, help="denoiser steps")
    p.add_argument(
        "--schedule",
        default="sd",
        choices=sorted(SCHEDULES),
        help="noise schedule and prediction target of the denoiser: `sd` (Stable Diffusion's: epsilon, "
        "non-zero terminal SNR) or `zero-snr` (the bundled model's: v-prediction, zero terminal SNR, "
        "sampled from the last timestep)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--cfg-drop", type=float, default=0.1)
    p.add_argument(
        "--high-noise-weight",
        type=float,
        default=1.0,
        help="weigh each clip's error by clamp(1/SNR(t), 1, this) to stress the high-noise steps that decide "
        "the layout (1: plain epsilon MSE)",
    )
    p.add_argument(
        "--terminal-share",
        type=float,
        default=0.0,
        help="with --schedule zero-snr: share of each batch trained at the last timestep against the mean "
        "clip of its caption (a low-variance target for the caption-only prediction; 0: off)",
    )
    p.add_argument(
        "--terminal-steps",
        type=int,
        default=0,
        help="with --schedule zero-snr: train only at the last timestep (against the captions' mean clips) "
        "for the first this many denoiser steps, then as --terminal-share says",
    )
    p.add_argument(
        "--freeze-text",
        action="store_true",
        help="keep the text encoder as it is (with --fresh-denoiser: at its random initialisation) instead "
        "of training it with the UNet",
    )
    p.add_argument(
        "--object-weight",
        type=float,
        default=1.0,
        help="weight of the denoiser's error on the latent cells the object touches (1: plain MSE)",
    )
    p.add_argument("--ema-decay", type=float, default=0.998)
    p.add_argument("--max-minutes", type=float, default=None, help="stop the denoiser stage after this long")
    p.add_argument("--checkpoint-every", type=int, default=500, help="write EMA weights every N steps (0: end only)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a CPU shared with other jobs)"
    )
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-quality", action="store_true", help="skip the prompt-following check")
    p.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--init",
        default=None,
        help="continue from the weights in this directory (written by this script) instead of a fresh "
        "initialisation; with --vae-steps 0 its VAE and latent scaling are kept as they are",
    )
    p.add_argument(
        "--fresh-denoiser",
        action="store_true",
        help="with --init: keep its VAE (and latent scaling) but start the UNet (`--unet`) and the text "
        "encoder, which stage 2 trains together, from scratch",
    )
    a = p.parse_args(argv)
    if (a.terminal_share or a.terminal_steps) and a.schedule != "zero-snr":
        p.error("--terminal-share and --terminal-steps need --schedule zero-snr")

    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    if a.fresh_denoiser and not a.init:
        p.error("--fresh-denoiser needs --init (without --init every component starts from scratch)")
    comps = toy_components(a.size, a.seed, a.unet)
    history: list[dict[str, Any]] = []
    data_start = 0
    if a.init:
        fresh, comps = comps, load_components(Path(a.init))
        if a.fresh_denoiser:
            comps["unet"], comps["text_encoder"] = fresh["unet"], fresh["text_encoder"]
        prev_path = Path(a.init) / "training_info.json"
        prev = json.loads(prev_path.read_text()) if prev_path.is_file() else {}
        history = (
            prev.get("history", [])
            + [
                {
                    k: prev.get(k)
                    for k in (
                        "argv",
                        "unet_class",
                        "vae_steps",
                        "denoiser_steps",
                        "denoiser_loss",
                        "wall_minutes",
                        "quality",
                        "caption_sensitivity",
                        "schedule",
                    )
                }
            ]
            if prev
            else []
        )
        # Continue on clips the earlier stages never drew.
        data_start = prev.get("data_end", 0)
    schedule = SCHEDULES[a.schedule]
    speed = tuple(a.speed) if a.speed else ClipConfig().speed
    data = ToyVideoDataset("train", seed=a.seed, config=ClipConfig(speed=speed))
    # The VAE also sees clips in arbitrary colours, so that any colour a reward asks for can be decoded.
    vae_data = ToyVideoDataset("train", seed=a.seed, config=ClipConfig(speed=speed, random_colors=a.vae_random_colors))
    _log("params: " + ", ".join(f"{k} {_count(comps[k]):,}" for k in ("vae", "unet", "text_encoder")))

    t = time.perf_counter()
    keep_vae = bool(a.init) and a.vae_steps == 0
    if keep_vae:
        vae_info = dict(prev.get("vae", {}))
    else:
        vae_info = train_vae(comps["vae"], vae_data, a.vae_steps, a.vae_batch, a.vae_lr, a.kl_weight, a.log_every)
    vae_minutes = (time.perf_counter() - t) / 60
    vae_info["vae_plain_color_error"] = vae_color_error(comps["vae"])
    _log(f"vae: mean abs error on plain frames of random colours {vae_info['vae_plain_color_error']:.4f}")
    t = time.perf_counter()
    # Clip indices after those the VAE saw: the two stages draw disjoint clips of the same distribution.
    pool_start = data_start + a.vae_steps * a.vae_batch
    pool = encode_pool(comps["vae"], data, a.pool, start=pool_start)
    if keep_vae:
        scaling = float(comps["vae"].config.scaling_factor)
    else:
        scaling = float(1.0 / pool["mean"].std())
        comps["vae"].register_to_config(scaling_factor=scaling)
    pool_minutes = (time.perf_counter() - t) / 60
    _log(f"latent pool {tuple(pool['mean'].shape)}, scaling factor {scaling:.4f}")

    def checkpoint(ema_unet: Any, ema_text: Any, step: int, loss: float) -> None:
        save_weights(out, {**comps, "unet": ema_unet, "text_encoder": ema_text}, schedule)
        (out / "checkpoint.json").write_text(json.dumps({"denoiser_steps": step, "denoiser_loss": loss}))
        _log(f"checkpoint at step {step} written to {out}")

    den = train_denoiser(
        comps["unet"],
        comps["text_encoder"],
        comps["tokenizer"],
        pool,
        scaling,
        a.steps,
        a.batch_size,
        a.lr,
        a.cfg_drop,
        a.ema_decay,
        a.log_every,
        a.max_minutes * 60 if a.max_minutes else None,
        on_checkpoint=checkpoint,
        checkpoint_every=a.checkpoint_every,
        object_weight=a.object_weight,
        train_text=not a.freeze_text,
        high_noise_weight=a.high_noise_weight,
        scheduler_config=schedule,
        terminal_share=a.terminal_share,
        terminal_steps=a.terminal_steps,
    )
    final = {**comps, "unet": den["unet"], "text_encoder": den["text_encoder"]}
    save_weights(out, final, schedule)
    (out / "checkpoint.json").unlink(missing_ok=True)

    sensitivity = caption_sensitivity(final, config=data.config, scheduler_config=schedule)
    _log(
        "caption sensitivity (rise of the error on the object when a word is swapped): "
        + ", ".join(f"{k} {v:+.1%}" for k, v in sensitivity.items())
    )
    quality = None
    if not a.no_quality:
        from .backbone import ToyBackbone, ToyOptions
        from .data import HELDOUT_SPECS, render
        from .quality import direction_control, evaluate, score

        bb = ToyBackbone(ToyOptions(model=str(out)))
        bb.load("cpu", torch.float32)
        res = evaluate(bb, seeds=a.quality_seeds)
        rng = np.random.default_rng(0)
        real = torch.from_numpy(np.stack([render(s, rng) for s in HELDOUT_SPECS]))
        ref = score(real, HELDOUT_CAPTIONS)
        o = bb.options
        quality = {k: res[k] for k in ("n", "color_accuracy", "direction_accuracy", "both_accuracy")}
        quality.update(
            seeds=a.quality_seeds,
            sampling=f"DDIM {o.steps} steps, guidance {o.guidance}",
            data_color_accuracy=ref["color_accuracy"],
            data_direction_accuracy=ref["direction_accuracy"],
            direction_control=direction_control(bb, HELDOUT_CAPTIONS[:12], seeds=(0,)),
        )
        _log(f"quality: {json.dumps(quality)}")

    info = {
        "argv": " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "seed": a.seed,
        "sizes": SIZES[a.size],
        "unet_class": type(comps["unet"]).__name__,
        "fresh_denoiser": a.fresh_denoiser,
        "frames": data.config.frames,
        "size": data.config.size,
        "params": {k: _count(comps[k]) for k in ("vae", "unet", "text_encoder")},
        "scaling_factor": scaling,
        "vae": vae_info,
        "vae_steps": a.vae_steps,
        "vae_batch": a.vae_batch,
        "vae_lr": a.vae_lr,
        "object_weight": a.object_weight,
        "speed": list(speed),
        "freeze_text": a.freeze_text,
        "high_noise_weight": a.high_noise_weight,
        "schedule": a.schedule,
        "terminal_share": a.terminal_share,
        "terminal_steps": a.terminal_steps,
        "vae_random_colors": a.vae_random_colors,
        "lr": a.lr,
        "pool": a.pool,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "denoiser_steps": den["steps_done"],
        "denoiser_loss": den["denoiser_loss"],
        "ema_decay": a.ema_decay,
        "vae_minutes": vae_minutes,
        "pool_minutes": pool_minutes,
        "denoiser_minutes": den["seconds"] / 60,
        "threads": a.threads,
        "quality": quality,
        "caption_sensitivity": sensitivity,
        "init": a.init,
        "history": history,
        "data_end": pool_start + a.pool,
        "machine": f"{platform.machine()} CPU ({torch.get_num_threads()} torch thread(s); shared with other jobs), "
        f"{platform.system()}, Python {platform.python_version()}",
    }
    info["wall_minutes"] = (time.perf_counter() - t_start) / 60
    info["bytes"] = _dir_size(out)
    (out / "MODEL_CARD.md").write_text(model_card(info))
    (out / "training_info.json").write_text(json.dumps({k: v for k, v in info.items()}, indent=2, default=str))
    _log(f"done in {info['wall_minutes']:.1f} min; {info['bytes'] / 1e6:.1f} MB in {out}")
    return info


if __name__ == "__main__":
    main()
