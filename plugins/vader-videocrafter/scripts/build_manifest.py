"""Regenerate ``src/vader_videocrafter/manifest/videocrafter2_512.json`` from the official source.

    python plugins/vader-videocrafter/scripts/build_manifest.py --official /path/to/VideoCrafter \
        --ref-path /path/to/reference-deps

Builds the official ``LatentDiffusion`` of ``configs/inference_t2v_512_v2.0.yaml`` on the meta device
(no memory, about a second) and writes the name, shape and dtype of every tensor of its state dict:
the keys of VideoCrafter2's ``model.ckpt``, which the official loader loads with ``strict=True``.
``--ref-path`` holds what only the official code needs (einops, omegaconf and the open_clip_torch
2.22.0 it pins). Modules the official package imports but building the model does not use are
replaced by empty stand-ins (``pytorch_lightning.LightningModule`` -> ``torch.nn.Module``, ``cv2``,
``kornia``); the schedule buffers are computed on the CPU (they go through numpy), and open_clip is
asked for a meta-device model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "vader_videocrafter" / "manifest" / "videocrafter2_512.json"
SHIMS = {
    "pytorch_lightning/__init__.py": "import torch\n\nclass LightningModule(torch.nn.Module):\n    pass\n",
    "cv2.py": "",
    "kornia.py": "",
}


def build(official: Path) -> dict[str, list]:
    import lvdm.models.ddpm3d as ddpm3d
    import open_clip
    import torch
    from omegaconf import OmegaConf
    from utils.utils import instantiate_from_config

    register_schedule = ddpm3d.DDPM.register_schedule

    def on_cpu(self, *a, **k):  # noqa: ANN001, ANN002, ANN003
        with torch.device("cpu"):
            return register_schedule(self, *a, **k)

    ddpm3d.DDPM.register_schedule = on_cpu
    create = open_clip.create_model_and_transforms
    open_clip.create_model_and_transforms = lambda *a, device=None, **k: create(*a, device="meta", **k)
    cfg = OmegaConf.load(official / "configs" / "inference_t2v_512_v2.0.yaml")
    with torch.device("meta"):
        model = instantiate_from_config(cfg.model)
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of github.com/AILab-CVC/VideoCrafter")
    ap.add_argument("--ref-path", type=Path, default=None, help="folder of reference-only packages")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--phase", choices=["build"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "build":
        sys.path[:0] = [str(args.official)]
        json.dump(build(args.official), sys.stdout)
        return
    commit = (
        subprocess.run(
            ["git", "-C", str(args.official), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SHIMS.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        paths = [str(args.official)] + ([str(args.ref_path)] if args.ref_path else []) + [tmp]
        import os

        out = subprocess.run(
            [sys.executable, __file__, "--phase", "build", "--official", str(args.official)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
            cwd=args.official,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    tensors = json.loads(out.strip().splitlines()[-1])
    header = {
        "checkpoint": "VideoCrafter/VideoCrafter2 model.ckpt (state_dict)",
        "gathered_from": f"github AILab-CVC/VideoCrafter commit {commit}, configs/inference_t2v_512_v2.0.yaml, "
        "LatentDiffusion built with random weights (meta device), open_clip_torch 2.22.0; dtypes are those of that "
        "build, not read from the released file",
    }
    lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in tensors.items())
    text = "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in header.items())
    text += '  "tensors": {\n' + lines + "\n  }\n}\n"
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
