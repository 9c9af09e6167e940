"""Reading and writing videos: mp4 (ffmpeg via imageio-ffmpeg), gif (Pillow), npy (raw floats)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MediaError

VIDEO_SUFFIXES = (".mp4", ".gif", ".npy", ".webm", ".mov", ".avi", ".mkv")


def slug(text: str, keep: str = "", lower: bool = False, max_len: int | None = None, fallback: str = "video") -> str:
    """``text`` as a file name: every run of characters other than ASCII letters, digits and ``keep`` becomes
    one ``_``, with none at either end.

    Args:
        text (`str`): a prompt, a model label ...
        keep (`str`, *optional*, defaults to `""`): other characters kept as they are (``"._@-"`` for
            ``vader eval``'s model folders, e.g. ``demo-toy_step-30@0.75``).
        lower (`bool`, *optional*, defaults to `False`): lower-case first (validation samples' file names).
        max_len (`int`, *optional*): cut to this many characters.
        fallback (`str`, *optional*, defaults to `"video"`): the name when nothing is left.
    """
    s = re.sub(f"[^A-Za-z0-9{re.escape(keep)}]+", "_", text.lower() if lower else text).strip("_")
    return s[:max_len] or fallback


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _as_numpy(frames: Any) -> np.ndarray:
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4:
        raise MediaError(f"a video must be (frames, H, W, 3) or (frames, 3, H, W), got shape {arr.shape}")
    if arr.shape[-1] != 3 and arr.shape[1] == 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] != 3:
        raise MediaError(f"a video needs 3 colour channels, got shape {arr.shape}")
    return arr


def write_video(path: str | Path, frames, fps: int = 8) -> Path:  # noqa: ANN001
    """Write ``frames`` (``(F, H, W, 3)`` or ``(F, 3, H, W)`` in [0, 1]) to mp4, gif or npy by suffix."""
    path = Path(path)
    arr = _as_numpy(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, arr.astype(np.float32))
    elif suffix == ".gif":
        from PIL import Image

        imgs = [Image.fromarray(f) for f in to_uint8(arr)]
        imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=max(1, int(1000 / fps)), loop=0)
    elif suffix in (".mp4", ".webm", ".mov", ".avi", ".mkv"):
        import imageio.v2 as iio

        u8 = to_uint8(arr)
        h, w = u8.shape[1:3]
        if h % 2 or w % 2:  # yuv420p needs even sizes
            u8 = np.pad(u8, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        try:
            # imageio annotates the base class only: the ffmpeg plugin's writer appends frames
            writer: Any = iio.get_writer(path, fps=fps, macro_block_size=1, quality=8, ffmpeg_log_level="error")
            with writer:
                for f in u8:
                    writer.append_data(f)
        except Exception as e:  # noqa: BLE001
            raise MediaError(f"cannot write {path}: {str(e).splitlines()[0]}") from None
    else:
        raise MediaError(f"unsupported video format `{suffix}`; use .mp4, .gif or .npy")
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Read a video file to ``(F, H, W, 3)`` float32 in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm"):
        raise MediaError(f"unsupported video format `{suffix or path.name}` of {path}; give an .mp4, .gif or .npy file")
    try:
        if suffix == ".npy":
            arr = _as_numpy(np.load(path))
            return np.clip(arr, 0.0, 1.0)
        if suffix == ".gif":
            from PIL import Image, ImageSequence

            with Image.open(path) as im:
                frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
            return np.stack(frames).astype(np.float32) / 255.0
        import imageio.v2 as iio

        reader: Any = iio.get_reader(path)  # imageio annotates the base class only: the reader yields frames
        with reader:
            frames = [np.asarray(f)[..., :3] for f in reader]
        return np.stack(frames).astype(np.float32) / 255.0
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001
        raise MediaError(
            f"cannot read video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None


def read_image(path: str | Path) -> object:
    """Open an image as RGB PIL image."""
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"image file not found: {p}")
    try:
        return Image.open(p).convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise MediaError(f"cannot read image {p}: {type(e).__name__}") from None


def side_by_side(videos: Sequence[Any], gap: int = 2) -> np.ndarray:
    """Concatenate videos ``(F, H, W, 3)`` horizontally (same F and H) with a white gap."""
    arrs = [_as_numpy(v) for v in videos]
    f = min(a.shape[0] for a in arrs)
    h = max(a.shape[1] for a in arrs)
    parts = []
    for i, a in enumerate(arrs):
        a = a[:f]
        if a.shape[1] < h:
            a = np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, 0), (0, 0)), constant_values=1.0)
        parts.append(a)
        if i < len(arrs) - 1 and gap:
            parts.append(np.ones((f, h, gap, 3), dtype=np.float32))
    return np.concatenate(parts, axis=2)
