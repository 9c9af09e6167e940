"""Parity with a stock diffusers pipeline: ``vader generate`` and the pipeline on the same saved tiny weights.

The recipe every diffusers family's tests follow (Wan, CogVideoX, LTX-Video, HunyuanVideo)::

    from vader_core.testing import assert_frames_match, save_pipeline, stock_frames, vader_frames

    model_dir = save_pipeline("CogVideoXPipeline", tiny_components(seed=0), tmp_path / "tiny")
    opts = {"height": 32, "width": 32, "frames": 9, "steps": 3, "guidance": 6.0}
    ours = vader_frames(tmp_path, "cogvideox", model_dir, prompt="a cat", seed=3, options=opts)
    ref = stock_frames(model_dir, "CogVideoXPipeline", prompt="a cat", seed=3, steps=3, guidance=6.0,
                       height=32, width=32, frames=9)
    assert_frames_match(ours, ref, atol=1e-4, what="cogvideox vs CogVideoXPipeline")

Both run in float32 on the CPU from the same ``save_pretrained`` directory and draw their noise from a
``torch.Generator`` seeded alike; the frames come back as ``(F, H, W, 3)`` float arrays in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .helpers import run_cli


def _pipeline_class(pipeline: str | type) -> Any:
    if isinstance(pipeline, str):
        import diffusers

        return getattr(diffusers, pipeline)
    return pipeline


def save_pipeline(pipeline: str | type, components: dict[str, Any], directory: str | Path, **extra: Any) -> Path:
    """``pipeline(**components, **extra).save_pretrained(directory)``: tiny weights in the diffusers layout
    (``model_index.json`` and one folder per component), loadable by the stock pipeline and by a backbone's
    ``load``. ``pipeline`` is a diffusers pipeline class or its name; ``extra`` its other constructor arguments
    (``boundary_ratio``, ``expand_timesteps`` ...). Returns ``directory`` as a `pathlib.Path`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _pipeline_class(pipeline)(**components, **extra).save_pretrained(d)
    return d


def stock_frames(
    model_dir: str | Path,
    pipeline: str | type,
    *,
    prompt: str,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
    frames: int,
    image: str | Path | None = None,
    lora: str | Path | None = None,
    lora_kwargs: dict[str, Any] | None = None,
    scheduler: Any = None,
    frames_arg: str = "num_frames",
    **call_kwargs: Any,
) -> Any:
    """The frames the stock ``pipeline`` generates from ``model_dir`` (float32, CPU): ``(F, H, W, 3)`` in [0, 1].

    Args:
        scheduler: a scheduler instance that replaces the saved one (another sampler the backbone offers).
        image: a conditioning image file, opened as an RGB PIL image and passed as ``image``.
        lora: a LoRA directory or file loaded with the pipeline's own ``load_lora_weights(lora, **lora_kwargs)``.
        frames_arg: the name of the pipeline's frame-count argument (``num_frames`` for the video pipelines).
        call_kwargs: any other argument of the pipeline call (``negative_prompt``, ``max_sequence_length`` ...).
    """
    import numpy as np
    import torch

    pipe = _pipeline_class(pipeline).from_pretrained(str(model_dir), torch_dtype=torch.float32)
    if scheduler is not None:
        pipe.scheduler = scheduler
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora), **(lora_kwargs or {}))
    if image is not None:
        from PIL import Image

        call_kwargs["image"] = Image.open(image).convert("RGB")
    out = pipe(
        prompt=prompt,
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **{frames_arg: frames},
        **call_kwargs,
    ).frames
    return np.asarray(out[0], dtype=np.float32)


def vader_frames(
    out_dir: str | Path,
    backbone: str,
    model_dir: str | Path,
    *,
    prompt: str,
    seed: int,
    options: dict[str, Any] | None = None,
    image: str | Path | None = None,
    lora: str | Path | None = None,
    extra: Sequence[str] = (),
) -> Any:
    """The frames ``vader generate`` writes (``--device cpu --precision fp32``, ``--set backbone.model=model_dir``
    and ``--set backbone.KEY=VALUE`` for each of ``options``; ``--image``, ``--lora`` and further ``extra``
    arguments): ``(F, H, W, 3)`` in [0, 1]. The command must succeed."""
    import numpy as np

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"vader-{backbone}-{seed}-{abs(hash((str(model_dir), prompt, str(lora), tuple(extra)))) % 10**8}.npy"
    args: list[str] = ["generate", "--backbone", backbone, "--set", f"backbone.model={model_dir}"]
    for k, v in (options or {}).items():
        args += ["--set", f"backbone.{k}={v}"]
    args += ["--prompt", prompt, "--seed", str(seed), "--out", str(out), "--device", "cpu", "--precision", "fp32"]
    if image is not None:
        args += ["--image", str(image)]
    if lora is not None:
        args += ["--lora", str(lora)]
    args += [str(a) for a in extra]
    rc, _, err = run_cli(args)
    assert rc == 0, f"`vader {' '.join(args)}` exited {rc}: {err[-2000:]}"
    return np.load(out)


def assert_frames_match(ours: Any, ref: Any, *, atol: float = 1e-4, what: str = "") -> float:
    """``ours`` and ``ref`` have the same shape and differ by at most ``atol`` anywhere; returns the largest
    difference (print it, or quote it in the README)."""
    import numpy as np

    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shapes {ours.shape} and {ref.shape}"
    diff = float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max())
    assert diff <= atol, f"{what}: frames differ by {diff:.3g} (allowed {atol:g})"
    return diff
