"""Numerical agreement of vader-opensora with the official Open-Sora 1.2 code, on tiny random weights.

    git -C <Open-Sora clone> archive v1.2.0 opensora | tar -x -C /tmp/opensora-v1.2
    pip install --target /tmp/osref --no-deps rotary-embedding-torch==0.5.3 timm==0.9.16 einops ftfy wcwidth \
        mmengine==0.10.7 addict yapf termcolor platformdirs \
        beartype beautifulsoup4 soupsieve
    python plugins/vader-opensora/scripts/compare_reference.py --official /tmp/opensora-v1.2 --ref-path /tmp/osref

``--official`` holds the ``opensora/`` package of hpcai-tech/Open-Sora at tag v1.2.0 (not part of this
repository); ``--ref-path`` the packages only the official code needs, at the versions its
``requirements.txt`` pins where it pins one (rotary-embedding-torch 0.5.3, timm 0.9.16; mmengine for its
registry, ftfy and beautifulsoup4 for its T5 module's text_preprocessing).

The official module files are imported one by one (``opensora/models/stdit/stdit3.py``,
``layers/blocks.py``, ``vae/vae.py``, ``vae/vae_temporal.py``, ``text_encoder/t5.py``,
``schedulers/rf/``), the package ``__init__`` files that would import every other model being skipped.
Stand-ins, in this script only, for what cannot run here:

* ``xformers`` (its ``memory_efficient_attention`` has no CPU kernel): the official cross-attention calls
  ``xformers.ops.memory_efficient_attention(q, k, v, attn_bias=BlockDiagonalMask.from_seqlens([N] * B,
  y_lens))``; the stand-in evaluates exactly that (each video's N queries attend to its own ``y_lens[i]``
  keys) as a dense masked softmax attention in float32;
* ``colossalai`` and ``torchvision.datasets.utils``, imported by ``opensora/utils/ckpt_utils.py`` for
  distributed checkpoint I/O: ``ckpt_utils`` is replaced by a module whose ``load_checkpoint`` is never
  called (the weights are loaded here with ``load_state_dict(strict=True)``).

Both sides get the same tiny random weights (``vader_opensora.tiny``, non-square frames 32x48, 17 and 20
frames), saved in the released layout: the port loads them through its own loader (strict key check),
the official modules through ``load_state_dict(strict=True)``, which also checks that the names agree.
Printed: the largest absolute differences for one STDiT3 call (with a padded prompt mask and the null
caption, as in guidance), the T5 encoding (VADER-Open-Sora's prompt pipeline, ``append_score_to_prompts``
with ``aes`` 6.5 and ``text_preprocessing``, then the official ``T5Encoder.encode``), a VAE decode (two temporal
chunks, the second a 3-frame remainder) and a full sample (official ``RFLOW.sample`` with
``use_timestep_transform=True``, cfg 7, then ``VideoAutoencoderPipeline.decode``, against vader's
``generate`` with a generator seeded alike), fp32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SEED, STEPS, GUIDANCE, FPS = 0, 10, 7.0, 24
H, W = 32, 48
PROMPTS = [
    "A red robot walking in the City",
    "a dog  surfing",
    "A woman in a stylish dress walking down a busy street, with high-end stores and neon lights.",
]


def _xformers_stand_in() -> None:
    """``xformers.ops.memory_efficient_attention`` with ``fmha.BlockDiagonalMask``, evaluated densely."""

    class BlockDiagonalMask:
        def __init__(self, q_seqlen: list[int], kv_seqlen: list[int]) -> None:
            self.q_seqlen, self.kv_seqlen = list(q_seqlen), list(kv_seqlen)

        @classmethod
        def from_seqlens(cls, q_seqlen, kv_seqlen=None):  # noqa: ANN001, ANN206
            return cls(q_seqlen, kv_seqlen if kv_seqlen is not None else q_seqlen)

        def dense(self, device: torch.device) -> torch.Tensor:
            m = torch.zeros(sum(self.q_seqlen), sum(self.kv_seqlen), dtype=torch.bool, device=device)
            qi = ki = 0
            for nq, nk in zip(self.q_seqlen, self.kv_seqlen, strict=True):
                m[qi : qi + nq, ki : ki + nk] = True
                qi, ki = qi + nq, ki + nk
            return m

    def memory_efficient_attention(q, k, v, p=0.0, attn_bias=None):  # noqa: ANN001, ANN202
        # (1, M, H, D) layout; softmax(q k^T / sqrt(D)) v over the allowed keys
        qh, kh, vh = (t.transpose(1, 2).float() for t in (q, k, v))
        scores = qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5
        if attn_bias is not None:
            scores = scores.masked_fill(~attn_bias.dense(q.device), float("-inf"))
        return (scores.softmax(-1) @ vh).transpose(1, 2).contiguous().to(q.dtype)

    xf = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    fmha = types.ModuleType("xformers.ops.fmha")
    fmha.BlockDiagonalMask = BlockDiagonalMask
    ops.fmha, ops.memory_efficient_attention = fmha, memory_efficient_attention
    xf.ops = ops
    import importlib.machinery

    for m in (xf, ops, fmha):  # a spec, so that libraries probing for xformers find a module (without kernels)
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    sys.modules.update({"xformers": xf, "xformers.ops": ops, "xformers.ops.fmha": fmha})


def import_official(root: Path) -> dict[str, types.ModuleType]:
    """The official module files, their packages' ``__init__`` files skipped (stand-ins as described above)."""
    import importlib

    _xformers_stand_in()
    pkg_root = root / "opensora"
    for name in (
        "opensora",
        "opensora.models",
        "opensora.models.stdit",
        "opensora.models.vae",
        "opensora.models.text_encoder",
        "opensora.models.layers",
        "opensora.schedulers",
        "opensora.schedulers.iddpm",
        "opensora.utils",
        "opensora.acceleration",
    ):
        m = types.ModuleType(name)
        m.__path__ = [str(pkg_root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = m
    ckpt = types.ModuleType("opensora.utils.ckpt_utils")

    def load_checkpoint(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("not used: the script loads the weights itself")

    ckpt.load_checkpoint = load_checkpoint
    sys.modules["opensora.utils.ckpt_utils"] = ckpt
    names = {
        "stdit3": "opensora.models.stdit.stdit3",
        "vae": "opensora.models.vae.vae",
        "vae_temporal": "opensora.models.vae.vae_temporal",
        "t5": "opensora.models.text_encoder.t5",
        "rf": "opensora.schedulers.rf",
    }
    return {k: importlib.import_module(v) for k, v in names.items()}


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="folder holding Open-Sora v1.2's opensora/ package")
    ap.add_argument("--ref-path", type=Path, help="folder with the packages only the official code needs")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--prompt-file",
        type=Path,
        help="also count the prompts of this file (one a line) whose text for T5 differs from the official pipeline's",
    )
    a = ap.parse_args()
    if a.ref_path:
        sys.path.insert(0, str(a.ref_path))
    sys.path.insert(0, str(a.official))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    official = import_official(a.official)

    from vader_opensora import OpenSoraBackbone, OpenSoraOptions
    from vader_opensora.tiny import (
        TINY_SPATIAL_VAE,
        TINY_STDIT3,
        TINY_TEMPORAL_VAE,
        save_official_layout,
        tiny_components,
    )
    from vader_opensora.vae import SCALE, SHIFT

    from vader_core.sampling import generate

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_official_layout(tiny_components(SEED), tmp)
        OpenSoraBackbone.architecture = {"spatial_vae": TINY_SPATIAL_VAE, "temporal_vae": TINY_TEMPORAL_VAE}
        ours = OpenSoraBackbone(
            OpenSoraOptions(
                height=H,
                width=W,
                frames=17,
                steps=STEPS,
                guidance=GUIDANCE,
                fps=FPS,
                model=str(paths["model"]),
                vae=str(paths["vae"]),
                text_encoder=str(paths["text_encoder"]),
            )
        )
        ours.load("cpu", torch.float32)
        from safetensors.torch import load_file

        # --- the official modules on the same weights
        st = official["stdit3"]
        cfg = {k: v for k, v in TINY_STDIT3.items()}
        theirs = st.STDiT3(st.STDiT3Config(**cfg)).eval()
        theirs.load_state_dict(load_file(str(paths["model"] / "model.safetensors")), strict=True)
        spatial_dir = Path(tmp) / "spatial"
        ours.components["vae"].spatial_vae.module.save_pretrained(spatial_dir)
        vae_mod = official["vae"]
        vae_cfg = vae_mod.VideoAutoencoderPipelineConfig(
            vae_2d=dict(
                type="VideoAutoencoderKL", from_pretrained=str(spatial_dir), micro_batch_size=4, local_files_only=True
            ),
            vae_temporal=dict(type="VAE_Temporal", **TINY_TEMPORAL_VAE),
            micro_frame_size=17,
            shift=SHIFT,
            scale=SCALE,
        )
        their_vae = vae_mod.VideoAutoencoderPipeline(vae_cfg).eval()
        their_vae.load_state_dict(load_file(str(paths["vae"] / "model.safetensors")), strict=True)
        t5 = official["t5"]
        t5.T5Embedder.available_models = [str(paths["text_encoder"])]
        their_text = t5.T5Encoder(
            from_pretrained=str(paths["text_encoder"]),
            model_max_length=TINY_STDIT3["model_max_length"],
            device="cpu",
            dtype=torch.float32,
        )
        their_text.y_embedder = theirs.y_embedder

        with torch.no_grad():
            # --- text encoding
            # the official prompt pipeline of VADER-Open-Sora: append_score_to_prompts(aes=6.5), text_preprocessing
            def official_prompt(p: str) -> str:
                return t5.text_preprocessing(f"{p} aesthetic score: 6.5.")

            results["prompt_texts_differing"] = float(sum(official_prompt(p) != ours.prompt_text(p) for p in PROMPTS))
            if a.prompt_file:
                lines = [ln.strip() for ln in a.prompt_file.read_text().splitlines() if ln.strip()]
                results["prompt_file_lines"] = float(len(lines))
                results["prompt_file_texts_differing"] = float(
                    sum(official_prompt(p) != ours.prompt_text(p) for p in lines)
                )
            enc = their_text.encode([official_prompt(p) for p in PROMPTS])
            cond = ours.encode_condition(PROMPTS)
            n = len(PROMPTS)
            results["text_encoding"] = max_abs(cond["y"][:n], enc["y"][:, 0])
            assert torch.equal(cond["mask"][:n].long(), enc["mask"].long()), "token masks differ"
            results["null_caption"] = max_abs(cond["y"][n:], their_text.null(n)[:, 0])

            # --- one STDiT3 call (text + null caption, the prompt mask repeated, as in guidance)
            g = torch.Generator().manual_seed(1)
            x = torch.randn(2 * n, 4, 5, H // 2, W // 2, generator=g)
            t = torch.tensor([870.0, 120.5, 500.0] * 2)
            margs = {k: torch.full((2 * n,), float(v)) for k, v in (("fps", FPS), ("height", H), ("width", W))}
            ref = theirs(x, t, torch.cat([enc["y"], their_text.null(n)]), mask=enc["mask"], **margs)
            port = ours.denoiser(x, t, cond["y"], mask=cond["mask"], **margs)
            results["stdit3_forward"] = max_abs(port, ref)
            results["stdit3_forward_scale"] = float(ref.abs().max())

            # --- VAE decode: 20 frames = a 17-frame chunk (5 latents) + a 3-frame remainder (1 latent)
            z = torch.randn(1, 4, 6, H // 2, W // 2, generator=g)
            ref_video = their_vae.decode(z.clone(), num_frames=20)
            ours.options.frames = 20
            port_video = ours.components["vae"].decode(z.clone(), 20)
            results["vae_decode"] = max_abs(port_video, ref_video)
            results["vae_decode_scale"] = float(ref_video.abs().max())
            sub = ours.components["vae"].decode(z.clone(), 20, [2, 18])
            results["vae_decode_frames_2_18_alone"] = max_abs(sub, ref_video[:, :, [2, 18]])
            ours.options.frames = 17

            # --- full sample: official RFLOW.sample + decode vs vader's generate (core loop), same seed
            rflow = official["rf"].RFLOW(num_sampling_steps=STEPS, cfg_scale=GUIDANCE, use_timestep_transform=True)
            shape = ours.latent_shape(n)
            z0 = torch.randn(shape, generator=torch.Generator().manual_seed(SEED))
            info = {
                "height": torch.full((n,), float(H)),
                "width": torch.full((n,), float(W)),
                "num_frames": torch.full((n,), 17.0),
                "ar": torch.full((n,), H / W),
                "fps": torch.full((n,), float(FPS)),
            }
            ref_z = rflow.sample(
                theirs,
                their_text,
                z=z0.clone(),
                prompts=[official_prompt(p) for p in PROMPTS],
                device="cpu",
                additional_args=info,
                progress=False,
            )
            ref_sample = (their_vae.decode(ref_z, num_frames=17).clamp(-1, 1) + 1) / 2
            port_sample = generate(ours, PROMPTS, None, torch.Generator().manual_seed(SEED))  # (B, F, 3, H, W)
            results["sample_video"] = max_abs(port_sample.permute(0, 2, 1, 3, 4), ref_sample)
            # the latents alone, through the core's loop
            from vader_core.sampling import denoise, prepare_latents

            ts = ours.set_timesteps(STEPS)
            lat = prepare_latents(ours, n, torch.Generator().manual_seed(SEED), cond)
            port_z = denoise(ours, ours.encode_condition(PROMPTS), lat, ts, None)
            results["sample_latents"] = max_abs(port_z, ref_z)
            results["sample_latents_scale"] = float(ref_z.abs().max())

    print(f"vader-opensora vs official Open-Sora v1.2 (tiny random weights, {H}x{W}, fp32, CPU; max abs difference)")
    for k, v in results.items():
        print(f"  {k:32s} {v:.3e}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
