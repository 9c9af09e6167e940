"""Helpers for a plugin's tests: the ``vader`` CLI run in-process, the one-line-error assertion, a random
LoRA saved as the trainer saves it, planted pickles, procedural images, an offline Hugging Face cache.

Nothing here imports vader's engine or a plugin at import time; torch only where a helper needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch


def only_plugin(name: str) -> Any:
    """A ``vader_plugin_name`` fixture returning ``name``; assign it in a conftest to test that plugin alone.

    Args:
        name (`str`): the plugin's entry-point name in the group ``vader`` (``VADER_PLUGINS`` syntax;
            several comma-separated).
    """

    @pytest.fixture(name="vader_plugin_name", scope="session")
    def _name() -> str:
        return name

    return _name


@contextlib.contextmanager
def registry_of(plugin_names: str) -> Iterator[None]:
    """A fresh plugin registry that loads vader's built-ins and ``plugin_names`` only (``VADER_PLUGINS``
    syntax), for the duration of the block; the environment and the registry are restored after."""
    from .. import plugins

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VADER_PLUGINS", plugin_names)
        plugins.reset()
        try:
            yield
        finally:
            plugins.reset()


def plugin_package(
    root: str | Path,
    dist: str,
    source: str,
    *,
    module: str | None = None,
    entry_point: str | None = None,
    version: str = "0.1.0",
) -> Path:
    """Lay out an installed plugin distribution under ``root`` as pip would (the module and its ``.dist-info``
    with the ``vader`` entry point), without pip: put ``root`` on ``sys.path`` (``monkeypatch.syspath_prepend``)
    and name ``dist`` in ``VADER_PLUGINS`` (:func:`registry_of`), and the registry loads it like any plugin.

    Args:
        root (`str` or `Path`): a directory standing for site-packages.
        dist (`str`): the distribution name, e.g. ``"vader-bad-shape"``.
        source (`str`): the module's ``__init__.py``.
        module (`str`, *optional*): the import name; defaults to ``dist`` with ``_`` for ``-``.
        entry_point (`str`, *optional*): the entry-point name; defaults to the module name.
        version (`str`, *optional*, defaults to ``"0.1.0"``): the distribution's version.

    Returns:
        `Path`: ``root``.
    """
    root = Path(root)
    module = module or dist.replace("-", "_")
    pkg = root / module
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vader]\n{entry_point or module} = {module}\n")
    return root


def randomize_lora_b(module: torch.nn.Module, *, seed: int = 0, std: float = 0.2) -> None:
    """Draw every LoRA B matrix of ``module`` from ``N(0, std²)`` with a generator seeded ``seed``: peft starts B
    at zero, so a fresh LoRA changes no output and passes no gradient to A."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def save_random_lora(
    denoiser: torch.nn.Module,
    directory: str | Path,
    *,
    prefix: str = "unet",
    rank: int = 4,
    alpha: float = 8.0,
    targets: Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0"),
    seed: int = 0,
    std: float = 0.2,
) -> Path:
    """Add LoRA to ``denoiser`` with random B matrices (so that it changes the output; peft starts B at
    zero) and save it in ``directory`` as vader's trainer does, for round-trip tests against diffusers'
    ``load_lora_weights`` or another loader. Returns ``directory`` as a `pathlib.Path`; ``denoiser`` keeps
    the LoRA."""
    from ..lora import WEIGHTS_NAME, add_lora, config_metadata, lora_state_dict, save_lora

    config = add_lora(denoiser, rank, alpha, 0.0, list(targets))
    randomize_lora_b(denoiser, seed=seed, std=std)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_lora(d / WEIGHTS_NAME, lora_state_dict(denoiser, prefix), config_metadata(config, prefix))
    return d


class _CreatesFile:
    """An object whose unpickling creates a file (what a planted pickle could do, harmlessly)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def plant_pickle(path: str | Path, marker: str | Path, *, tensors: bool = True) -> Path:
    """Write a torch pickle at ``path`` whose unpickling (``weights_only=False``) creates ``marker``.

    Tests of every option that takes a file give this file and assert ``marker`` never appears without
    the explicit opt-in. ``tensors`` adds a tensor beside the payload, like a real checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj: dict[str, Any] = {"payload": _CreatesFile(str(marker))}
    if tensors:
        obj["weight"] = torch.zeros(2, 2)
    torch.save(obj, path)
    return path


def planted_pickle_works(tmp_path: str | Path) -> bool:
    """Check the payload really runs on a full unpickle (so a test of the refusal can fail)."""
    tmp_path = Path(tmp_path)
    marker = tmp_path / "control-marker"
    f = plant_pickle(tmp_path / "control.pt", marker)
    torch.load(f, weights_only=False)
    ok = marker.exists()
    marker.unlink(missing_ok=True)
    f.unlink()
    return ok


def run_cli(args: Sequence[str]) -> tuple[int, str, str]:
    """Run the real ``vader`` entry point in-process: (exit code, stdout, stderr) as a user sees them."""
    import contextlib
    import io

    from ..cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(result: tuple[int, str, str], *needles: str, code: int = 2) -> str:
    """The CLI failed with ``code``, printed one line on stderr (no traceback) holding every needle."""
    rc, _, err = result
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code, (rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


#: ``--set`` options of a quiet smoke training run: one micro-batch a step, no validation, logger or videos.
QUIET_TRAINING: dict[str, Any] = {
    "optim.grad_accum": 1,
    "validation.every": 0,
    "output.logger": "none",
    "validation.save_videos": "false",
    "validation.seeds": "[0]",
}


def set_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    """``["--set", "PREFIXkey=value", ...]`` for each item of ``options``, in order."""
    return [a for k, v in options.items() for a in ("--set", f"{prefix}{k}={v}")]


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``, one a step."""
    import json

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def lora_checkpoint(run_dir: str | Path, step: int) -> dict[str, torch.Tensor]:
    """The LoRA tensors a run saved at ``step`` (``checkpoints/step-N``), by key."""
    from safetensors.torch import load_file

    from ..lora import WEIGHTS_NAME

    return load_file(str(Path(run_dir) / "checkpoints" / f"step-{step}" / WEIGHTS_NAME))


def draw_image(h: int, w: int, seed: int = 0) -> Any:
    """An RGB PIL image ``w`` x ``h`` with smooth gradients and a few hard-edged shapes: a conditioning image
    whose content depends on ``seed`` (so two images condition two different videos)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.5 * np.sin(5 * xx + seed), 0.5 + 0.5 * np.cos(3 * yy + xx), (xx + yy) / 2], -1)
    im = Image.fromarray((base * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(im)
    for i in range(4):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if i % 2 else d.rectangle)((x0, y0, x0 + w // 3, y0 + h // 3), fill=colour)
    return im


def save_images(directory: str | Path, names: Sequence[str], h: int = 40, w: int = 48) -> list[Path]:
    """:func:`draw_image` (seed ``i`` for the ``i``-th name) saved as ``directory/NAME.png``; vader takes
    an image's name as its prompt (``a_red_kite.png``: "a red kite")."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"{name}.png" for name in names]
    for i, p in enumerate(paths):
        draw_image(h, w, seed=i).save(p)
    return paths


def save_video(path: str | Path, frames: int, h: int, w: int, seed: int = 0) -> Path:
    """A random video ``(F, H, W, 3)`` in [0, 1] saved as ``.npy``, the raw format ``vader score`` reads."""
    import numpy as np

    path = Path(path)
    np.save(path, np.random.default_rng(seed).random((frames, h, w, 3), dtype=np.float32))
    return path


class HubCache:
    """An empty Hugging Face cache at ``root`` that ``hf_hub_download`` and ``from_pretrained`` read, offline.

    Made by :func:`offline_hub_cache`; :meth:`put` fills a snapshot of a repository.
    """

    #: The commit every snapshot is filed under (``refs/main`` names it).
    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, repo_id: str, files: str | Path | dict[str, str | Path]) -> Path:
        """File ``files`` in the snapshot of ``repo_id`` exactly where the hub client looks for them.

        Args:
            repo_id (`str`): the hub id, e.g. ``"xswu/HPSv2"``.
            files (`str`, `Path` or `dict`): a directory whose files and folders all go in (a
                ``save_pretrained`` folder, or a repository's layout), or ``{name: file}`` (a file stored as
                ``name``, which may name folders: ``"checkpoint-1/model.pth"``) and ``{name: directory}`` (the
                directory's contents, under their own names).

        Returns:
            `Path`: the snapshot directory.
        """
        import shutil

        repo = self.root / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(self.commit)
        snap = repo / "snapshots" / self.commit
        snap.mkdir(parents=True, exist_ok=True)
        items = files.items() if isinstance(files, dict) else [("", files)]
        for name, src in items:
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, snap, dirs_exist_ok=True)
            else:
                (snap / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, snap / name)
        return snap


def offline_hub_cache(root: str | Path, monkeypatch: Any) -> HubCache:
    """Point the Hugging Face hub client at an empty cache in ``root`` and switch downloads off, for the
    rest of the test (``monkeypatch`` undoes both).

    The client reads ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` once, at import; both its constants and the
    environment (which vader's :func:`vader_core.hub.hub_offline` and subprocesses read) are set.
    """
    from huggingface_hub import constants

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return HubCache(root)
