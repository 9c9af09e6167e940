"""Numerical agreement of vader-videocrafter with the official VideoCrafter code, on tiny random weights.

    python plugins/vader-videocrafter/scripts/compare_reference.py --official /path/to/VideoCrafter \
        [--ref-path /path/to/reference-deps]

``--official`` is a checkout of github.com/AILab-CVC/VideoCrafter (not part of this repository);
``--ref-path`` a folder with the packages only the official code needs (einops, omegaconf and the
open_clip_torch 2.22.0 it pins; e.g. ``pip install --target DIR einops omegaconf open_clip_torch==2.22.0
--no-deps``). Two processes:

1. *reference* (the official code): builds ``LatentDiffusion`` from the official
   ``configs/inference_t2v_512_v2.0.yaml`` with the widths shrunk to the tiny test configuration of
   ``vader_videocrafter.tiny`` (every other setting official: temporal convolutions and attention,
   ``init_attn``, fps conditioning, ``use_scale``), gives its zero-initialised layers random values
   and, by default (``--init denoiser``), routes the input through to the output so that the noise
   prediction follows the input's noise and the sampled latents stay O(1) as with trained weights (see
   ``_denoiser_like``; ``--init random`` keeps plain random weights, whose latents grow to about 80), and
   records its state dict, the text embeddings, one denoiser call and a full ``DDIMSampler.sample``
   (25 steps, eta 1.0 and 0.0, guidance 12, fps 24, the empty prompt as unconditional) followed by
   ``decode_first_stage``. The sampler's noise comes from a seeded generator (its ``noise_like`` is
   replaced), and the initial noise is passed as ``x_T``.
   Modules the official package imports but this path does not use are replaced by empty stand-ins
   (``pytorch_lightning.LightningModule`` by ``torch.nn.Module``, ``cv2``, ``kornia``), and the sampler's
   ``register_buffer``, which moves everything to CUDA, by a plain ``setattr``.
2. *ours* (this environment): loads that state dict with ``VideoCrafterBackbone.load_state_dict_components``
   (the checkpoint loader, strict key check included), runs the same calls through vader's sampling
   loop with a generator seeded alike, and prints the largest absolute differences, the same relative to
   the reference's largest magnitude (``_relative``), and, as a yardstick for float32 rounding, how far
   our own DDIM result moves when ``x_T`` is moved by one unit in the last place (``one_ulp_x_T``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SEED, STEPS, GUIDANCE, FPS = 0, 25, 12.0, 24
FRAMES, H, W = 4, 32, 32
PROMPTS = ["a panda riding a bike", "a dog surfing a wave"]
SHIMS = {
    "pytorch_lightning/__init__.py": "import torch\n\nclass LightningModule(torch.nn.Module):\n"
    "    @property\n    def device(self):\n        return next(self.parameters()).device\n",
    "cv2.py": "",
    "kornia.py": "",
}


def tiny_overrides() -> tuple[dict, dict, dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from vader_videocrafter.tiny import TINY_OPENCLIP, TINY_UNET, TINY_VAE

    return TINY_UNET, TINY_VAE, TINY_OPENCLIP


def _denoiser_like(unet) -> None:  # noqa: ANN001 - the official UNetModel
    """Make the random UNet predict its input's noise as a trained one roughly does, in place.

    A random UNet's noise prediction is unrelated to the noise in its input, so DDIM never removes
    the noise: the latents end as ``x_T`` times ``1 / sqrt(alphas_cumprod[T])`` and the ``use_scale``
    factor (about 20), whatever the scale of the prediction, and rounding differences grow with
    them. Here the input convolution copies the 4 latent channels into channels 0-3 and their
    negatives into 4-7, the last output block's skip connection passes those 8 channels through, and
    the output convolution takes ``SiLU(z) - SiLU(-z) = z`` of them after the output GroupNorm: the
    prediction is the input normalised per channel (about the noise at large t) plus what every other
    path (attention, text, fps, temporal layers, with their random weights) adds through the other
    channels. The sampled latents then stay O(1) like a trained model's.
    """
    import torch

    conv_in, skip, conv_out = unet.input_blocks[0][0], unet.output_blocks[-1][0].skip_connection, unet.out[-1]
    c_in = conv_out.weight.shape[0]  # 4 latent channels
    width = conv_in.weight.shape[0]  # channels of the first level; the skip's input is (h, h0)
    with torch.no_grad():
        conv_in.weight[: 2 * c_in].zero_()
        conv_in.bias[: 2 * c_in].zero_()
        skip.weight[: 2 * c_in].zero_()
        skip.bias[: 2 * c_in].zero_()
        conv_out.weight[:, : 2 * c_in].zero_()
        conv_out.bias.zero_()
        for c in range(c_in):
            conv_in.weight[c, c, 1, 1], conv_in.weight[c_in + c, c, 1, 1] = 1.0, -1.0
            conv_out.weight[c, c, 1, 1], conv_out.weight[c, c_in + c, 1, 1] = 1.0, -1.0
        for c in range(2 * c_in):
            skip.weight[c, width + c] = 1.0


def reference(official: Path, out: Path, guidance: float, init: str) -> None:
    import torch
    from omegaconf import OmegaConf

    unet, vae, clip = tiny_overrides()
    import open_clip

    open_clip.factory._MODEL_CONFIGS["vader-tiny"] = clip  # the official embedder takes an architecture name
    import lvdm.models.samplers.ddim as ddim_mod
    from utils.utils import instantiate_from_config

    cfg = OmegaConf.load(official / "configs" / "inference_t2v_512_v2.0.yaml").model
    p = cfg.params.unet_config.params
    p.model_channels, p.channel_mult, p.num_res_blocks = (
        unet["model_channels"],
        list(unet["channel_mult"]),
        unet["num_res_blocks"],
    )
    p.attention_resolutions, p.num_head_channels, p.context_dim = (
        list(unet["attention_resolutions"]),
        unet["num_head_channels"],
        unet["context_dim"],
    )
    dd = cfg.params.first_stage_config.params.ddconfig
    dd.ch, dd.ch_mult, dd.num_res_blocks, dd.resolution = (
        vae["block_out_channels"][0],
        [1, 2],
        vae["layers_per_block"],
        H,
    )
    cfg.params.cond_stage_config.params.arch = "vader-tiny"
    torch.manual_seed(SEED)
    model = instantiate_from_config(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, prm in model.named_parameters():
            if prm.abs().sum() == 0:  # zero-initialised output layers: give every path a value
                prm.copy_(torch.randn(prm.shape, generator=g) * 0.02)
        if init == "denoiser":
            _denoiser_like(model.model.diffusion_model)
    ddim_mod.DDIMSampler.register_buffer = lambda self, name, attr: setattr(self, name, attr)
    rec: dict = {"state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    with torch.no_grad():
        c = model.get_learned_conditioning(PROMPTS)
        uc = model.get_learned_conditioning([""] * len(PROMPTS))
        rec["text"], rec["uncond_text"] = c, uc
        fps = torch.full((len(PROMPTS),), FPS, dtype=torch.long)
        f = 2 ** (len(vae["block_out_channels"]) - 1)  # the VAE's downsampling
        x = torch.randn(len(PROMPTS), 4, FRAMES, H // f, W // f, generator=g)
        t = torch.tensor([500, 81])
        rec["x"], rec["t"] = x, t
        rec["eps"] = model.apply_model(x, t, {"c_crossattn": [c], "fps": fps})
        for eta in (1.0, 0.0):
            noise_gen = torch.Generator().manual_seed(SEED)
            shape = (len(PROMPTS), 4, FRAMES, H // f, W // f)
            x_T = torch.randn(shape, generator=noise_gen)
            ddim_mod.noise_like = lambda shape, device, repeat=False, g=noise_gen: torch.randn(shape, generator=g)
            samples, _ = ddim_mod.DDIMSampler(model).sample(
                S=STEPS,
                batch_size=len(PROMPTS),
                shape=shape[1:],
                conditioning={"c_crossattn": [c], "fps": fps},
                verbose=False,
                unconditional_guidance_scale=guidance,
                unconditional_conditioning={"c_crossattn": [uc], "fps": fps},
                eta=eta,
                x_T=x_T,
            )
            rec[f"latents_eta{eta}"] = samples
            rec[f"video_eta{eta}"] = model.decode_first_stage(samples)
    torch.save(rec, out)


def _diff(res: dict, name: str, ours_: torch.Tensor, ref: torch.Tensor) -> None:  # noqa: F821
    """Largest absolute difference, and relative to the reference's largest magnitude."""
    res[name] = (ours_ - ref).abs().max().item()
    res[f"{name}_relative"] = res[name] / ref.abs().max().item()


def ours(rec_path: Path, guidance: float) -> dict:
    import torch
    from vader_videocrafter import VideoCrafterBackbone, VideoCrafterOptions

    from vader_core.sampling import denoise, prepare_latents

    unet, vae, clip = tiny_overrides()
    rec = torch.load(rec_path, weights_only=True)
    res: dict = {}
    for eta in (1.0, 0.0):
        bb = VideoCrafterBackbone(
            VideoCrafterOptions(height=H, width=W, frames=FRAMES, steps=STEPS, guidance=guidance, eta=eta, fps=FPS)
        )
        bb.load_state_dict_components(
            rec["state_dict"],
            "reference state dict",
            "cpu",
            torch.float32,
            unet_config=unet,
            vae_config=vae,
            text_config=clip,
        )
        with torch.no_grad():
            cond = bb.encode_condition(PROMPTS)
            if eta == 1.0:
                n = len(PROMPTS)
                emb = cond["encoder_hidden_states"]
                res["text_embedding"] = (emb[-n:] - rec["text"]).abs().max().item()
                if bb.do_cfg:
                    res["uncond_embedding"] = (emb[:n] - rec["uncond_text"]).abs().max().item()
                eps = bb.denoiser(rec["x"], rec["t"], rec["text"], fps=FPS)
                _diff(res, "denoiser_call", eps, rec["eps"])
                res["denoiser_call_max"] = rec["eps"].abs().max().item()
                # How much the prompt moves the prediction (what guidance multiplies).
                eps_uc = bb.denoiser(rec["x"], rec["t"], rec["uncond_text"], fps=FPS)
                res["denoiser_text_minus_empty_max"] = (eps - eps_uc).abs().max().item()
            gen = torch.Generator().manual_seed(SEED)
            timesteps = bb.set_timesteps(STEPS)
            x_T = prepare_latents(bb, len(PROMPTS), gen, cond)
            state = gen.get_state()
            latents = denoise(bb, cond, x_T, timesteps, gen)
            video = bb.decode(latents)  # (B, F, 3, H, W) in [0, 1]
            # Sensitivity of the whole chain to float32 rounding: the same run of ours with x_T moved by
            # one unit in the last place (same per-step noise).
            gen.set_state(state)
            nudged = denoise(bb, cond, torch.nextafter(x_T, torch.full_like(x_T, float("inf"))), timesteps, gen)
        ref_video = ((rec[f"video_eta{eta}"].clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4)
        ref_latents = rec[f"latents_eta{eta}"]
        _diff(res, f"ddim_latents_eta{eta}", latents, ref_latents)
        res[f"ddim_latents_max_eta{eta}"] = ref_latents.abs().max().item()
        res[f"ddim_latents_one_ulp_x_T_eta{eta}"] = (nudged - latents).abs().max().item()
        _diff(res, f"ddim_video_eta{eta}", video, ref_video)
        res[f"ddim_video_saturated_fraction_eta{eta}"] = (rec[f"video_eta{eta}"].abs() >= 1).float().mean().item()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, help="checkout of github.com/AILab-CVC/VideoCrafter")
    ap.add_argument(
        "--ref-path",
        type=Path,
        default=None,
        help="folder of reference-only packages (einops, omegaconf, open_clip_torch==2.22.0)",
    )
    ap.add_argument("--guidance", type=float, default=GUIDANCE, help="guidance scale of the DDIM runs (default 12)")
    ap.add_argument(
        "--init",
        choices=["denoiser", "random"],
        default="denoiser",
        help="denoiser (default): random weights whose noise prediction follows the input's noise, "
        "so the sampled latents stay O(1); random: plain random weights (latents grow to about 80)",
    )
    ap.add_argument("--phase", choices=["reference"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "reference":
        sys.path[:0] = [str(args.official)]
        reference(args.official, args.out, args.guidance, args.init)
        return
    if args.official is None or not (args.official / "lvdm").is_dir():
        ap.error("--official must point at a checkout of AILab-CVC/VideoCrafter (with lvdm/)")
    with tempfile.TemporaryDirectory() as tmp:
        shims = Path(tmp) / "shims"
        for name, text in SHIMS.items():
            (shims / name).parent.mkdir(parents=True, exist_ok=True)
            (shims / name).write_text(text)
        paths = [str(args.official)] + ([str(args.ref_path)] if args.ref_path else []) + [str(shims)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        rec = Path(tmp) / "reference.pt"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                "reference",
                "--official",
                str(args.official),
                "--guidance",
                str(args.guidance),
                "--init",
                args.init,
                "--out",
                str(rec),
            ],
            env=env,
            check=True,
            cwd=args.official,
        )
        res = ours(rec, args.guidance)
    print(json.dumps({k: float(f"{v:.3g}") for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
