"""``vader-vlm-convert videoreward SRC DST --allow-pickle``: the VideoReward release with its pickled
``model.pth`` rewritten as ``model.safetensors``, so that loading it needs no pickle from then on.

SRC is the hub id (default ``KwaiVGI/VideoReward``, read through the Hugging Face cache) or a local
copy; DST gets ``model_config.json``, ``checkpoint-N/model.safetensors`` (the same tensors under the
same names, the tied ``lm_head`` copy of the embeddings left out: the reward never reads it) and
``checkpoint-N/tokenizer/``. Reading ``model.pth`` is a pickle load (tensors only,
``torch.load(weights_only=True)``), hence ``--allow-pickle``: the user's consent for that file.
Give DST to the reward option ``model``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vader_core.errors import VaderError


def convert_videoreward(src: str, dst: str | Path, allow_pickle: bool) -> Path:
    """Write the safetensors copy of the VideoReward checkpoint ``src`` into ``dst``; returns the weights file."""
    from safetensors.torch import save_file

    from ._files import read_tensors, snapshot
    from .video_reward import CHECKPOINT_FILES, VIDEOREWARD_REPO, _latest_checkpoint

    root, _ = snapshot(
        src,
        CHECKPOINT_FILES,
        reward="vader-vlm-convert",
        what="VideoReward checkpoint",
        files="model_config.json + checkpoint-*/model.pth",
        option="SRC",
        repo=VIDEOREWARD_REPO,
    )
    step = _latest_checkpoint(root)
    if step is None or not (root / "model_config.json").is_file() or not (step / "model.pth").is_file():
        raise VaderError(f"{src} is not a VideoReward release: it needs model_config.json and checkpoint-*/model.pth")
    state = read_tensors(
        step / "model.pth",
        reward="vader-vlm-convert",
        what="VideoReward weights",
        allow_pickle=allow_pickle,
        convert_hint="; pass --allow-pickle to this command",
    )
    state = {k: v.contiguous() for k, v in state.items() if not k.endswith("lm_head.weight")}
    out = Path(dst).expanduser()
    target = out / (step.name if step != root else "")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "model_config.json", out / "model_config.json")
    if (step / "tokenizer").is_dir():
        shutil.copytree(step / "tokenizer", target / "tokenizer", dirs_exist_ok=True)
    weights = target / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt", "source": f"{src} {step.name}/model.pth"})
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vader-vlm-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=["videoreward"], help="which checkpoint to convert")
    parser.add_argument("src", help="hub id or local directory of the release (e.g. KwaiVGI/VideoReward)")
    parser.add_argument("dst", help="directory to write")
    parser.add_argument("--allow-pickle", action="store_true", help="consent to read the pickled model.pth")
    args = parser.parse_args(argv)
    try:
        weights = convert_videoreward(args.src, args.dst, args.allow_pickle)
    except VaderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {weights}; use it with --set rewards.N.model={Path(args.dst)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
