"""The bad-input matrix of issue 18: every command, every kind of mistake a user makes.

Each case runs the real entry point (``vader_core.cli.main``) in-process and asserts the exit code, no
traceback, exactly one line on stderr (an ``error:`` line, or one ``warning:`` line for a run that
goes on), the words that say what to do, and that no file that existed before the case changed.
Signals and kill -9 need real processes: tests/test_preemption.py. Planted pickles:
tests/test_untrusted_files.py and each plugin's ``*_planted.py``.
"""

import hashlib
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vader_core.testing import run_cli

FAST = [
    "--set",
    "optim.grad_accum=1",
    "--set",
    "output.logger=none",
    "--set",
    "validation.every=0",
    "--set",
    "validation.save_videos=false",
    "--set",
    "validation.seeds=[0]",
    "--set",
    "backbone.steps=2",
    "--device",
    "cpu",
    "-q",
]
GEN = ["--set", "backbone.steps=1", "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files a user has lying around: an earlier run, its broken copies, odd files of every kind."""
    w = tmp_path_factory.mktemp("world")
    code, _, err = run_cli(["train", "--max-steps", "1", "--output-dir", w / "run", *FAST])
    assert code == 0, err
    (w / "afile").write_text("not a directory\n")
    (w / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (w / "bad.yaml").write_text("optim: {lr: [\n")
    (w / "list.yaml").write_text("- optim\n- lr\n")
    (w / "tag.yaml").write_text("optim: !!python/object/apply:os.getcwd []\n")
    (w / "empty_prompts.txt").write_text("# only a comment\n\n")
    (w / "adir.npy").mkdir()
    np.save(w / "v.npy", np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32))
    (w / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (w / "v.xyz").write_bytes(b"x")
    (w / "an_eval").mkdir()
    (w / "an_eval" / "eval.json").write_text("{}\n")
    (w / "metrics_only").mkdir()
    (w / "metrics_only" / "metrics.jsonl").write_text('{"step": 1}\n')
    (w / "metrics_only" / "summary.json").write_text("{}\n")
    for name in ("corrupt_lora", "corrupt_opt", "incomplete"):
        shutil.copytree(w / "run", w / name)
    (w / "corrupt_lora" / "checkpoints" / "step-1" / "pytorch_lora_weights.safetensors").write_bytes(b"xx")
    (w / "corrupt_opt" / "checkpoints" / "step-1" / "optimizer.safetensors").write_bytes(b"xx")
    (w / "incomplete" / "checkpoints" / "step-1" / "rng.safetensors").unlink()
    return w


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


E, W = "error", "warning"
#: (id, arguments ({w} = the world folder), exit code, kind of the one line, words it must hold)
CASES = [
    # ------------------------------------------------------------------ usage errors (typer/click)
    (
        "flag-typo",
        ["train", "--max-step", "3"],
        2,
        E,
        ["--max-step", "did you mean `--max-steps`", "vader train --help"],
    ),
    ("flag-typo-random", ["train", "--random-weight"], 2, E, ["did you mean `--random-weights`"]),
    ("bad-int", ["train", "--max-steps", "ten"], 2, E, ["Invalid value for '--max-steps'", "vader train --help"]),
    ("bad-int-generate", ["generate", "--seed", "abc", "--out", "{w}/o.npy"], 2, E, ["Invalid value for '--seed'"]),
    ("bad-int-fps", ["generate", "--fps", "1.5", "--out", "{w}/o.npy"], 2, E, ["Invalid value for '--fps'"]),
    ("unknown-command", ["trian"], 2, E, ["no such command `trian`", "did you mean `vader train`"]),
    ("unknown-command-far", ["frobnicate"], 2, E, ["no such command `frobnicate`", "vader --help"]),
    ("missing-out", ["generate", "--prompt", "a cat"], 2, E, ["Missing option '--out'", "vader generate --help"]),
    ("missing-video", ["score", "--reward", "brightness"], 2, E, ["Missing argument", "vader score --help"]),
    ("missing-reward", ["score", "{w}/v.npy"], 2, E, ["Missing option '--reward'"]),
    ("missing-value", ["train", "--backbone"], 2, E, ["requires an argument"]),
    ("plugins-typo", ["plugins", "--jsn"], 2, E, ["did you mean `--json`"]),
    ("config-typo", ["config", "--rewrd", "x"], 2, E, ["No such option: --rewrd", "did you mean `--reward`"]),
    ("extra-argument", ["config", "surplus"], 2, E, ["unexpected extra argument", "vader config --help"]),
    # ------------------------------------------------------------------ output locations
    ("outdir-is-file", ["train", "--output-dir", "{w}/afile", *FAST], 2, E, ["is a file"]),
    ("outdir-under-file", ["train", "--output-dir", "{w}/afile/sub", *FAST], 2, E, ["lies under", "which is a file"]),
    ("outdir-not-writable", ["train", "--output-dir", "/sys/vader-matrix", *FAST], 2, E, ["is not writable"]),
    (
        "outdir-has-checkpoints",
        ["train", "--output-dir", "{w}/run", *FAST],
        2,
        E,
        ["already holds checkpoints", "--resume latest"],
    ),
    (
        "outdir-has-metrics",
        ["train", "--output-dir", "{w}/metrics_only", *FAST],
        2,
        E,
        ["earlier run's metrics.jsonl, summary.json", "another --output-dir"],
    ),
    ("out-under-file", ["generate", "--prompt", "a", "--out", "{w}/afile/x.npy", *GEN], 2, E, ["lies under"]),
    ("out-is-dir", ["generate", "--prompt", "a", "--out", "{w}/adir.npy", *GEN], 2, E, ["is a directory"]),
    (
        "out-not-writable",
        ["generate", "--prompt", "a", "--out", "/sys/vader-matrix/x.npy", *GEN],
        2,
        E,
        ["cannot write"],
    ),
    (
        "out-bad-suffix",
        ["generate", "--prompt", "a", "--out", "{w}/x.avi", *GEN],
        2,
        E,
        ["must end in .mp4, .gif or .npy"],
    ),
    # ------------------------------------------------------------------ configuration values
    ("inf-lr", ["config", "--set", "optim.lr=.inf"], 2, E, ["`optim.lr` must be a finite number, got inf"]),
    ("neg-inf-lr", ["config", "--set", "optim.lr=-.inf"], 2, E, ["`optim.lr` must be a finite number"]),
    ("nan-lr", ["config", "--set", "optim.lr=.nan"], 2, E, ["`optim.lr` must be a finite number, got nan"]),
    (
        "inf-plugin-option",
        ["config", "--set", "backbone.guidance=.inf"],
        2,
        E,
        ["`backbone.guidance` must be a finite"],
    ),
    ("inf-train", ["train", "--set", "optim.lr=.inf", "--output-dir", "{w}/new-inf", *FAST], 2, E, ["finite number"]),
    (
        "inf-score-option",
        ["score", "{w}/v.npy", "-r", "target_color", "--set", "color=[.inf, 0, 0]"],
        2,
        E,
        ["must be a finite number"],
    ),
    (
        "unknown-key",
        ["config", "--set", "optim.lrr=1"],
        2,
        E,
        ["unknown option `optim.lrr`", "did you mean `optim.lr`"],
    ),
    ("unknown-section", ["config", "--set", "optimm.lr=1"], 2, E, ["unknown option `optimm`", "did you mean `optim`"]),
    ("unknown-backbone-key", ["config", "--set", "backbone.heigth=32"], 2, E, ["did you mean `backbone.height`"]),
    (
        "unknown-reward-key",
        ["config", "--reward", "target_color", "--set", "rewards.0.colr=red"],
        2,
        E,
        ["did you mean `rewards.0.color`"],
    ),
    ("unknown-train-key", ["config", "--set", "train.max_step=3"], 2, E, ["did you mean `train.max_steps`"]),
    (
        "unknown-score-key",
        ["score", "{w}/v.npy", "-r", "target_color", "--set", "colr=red"],
        2,
        E,
        ["did you mean `target_color.color`"],
    ),
    ("set-without-equals", ["config", "--set", "optim.lr"], 2, E, ["--set expects key=value"]),
    ("bad-precision", ["config", "--set", "precision=fp64"], 2, E, ["`precision`", "fp64"]),
    ("bad-reward-weight", ["config", "--reward", "brightness=abc"], 2, E, ["weight must be a number"]),
    ("unknown-backbone", ["config", "--backbone", "tinyy"], 2, E, ["unknown backbone `tinyy`", "did you mean `tiny`"]),
    ("unknown-reward", ["config", "--reward", "brightnes"], 2, E, ["did you mean `brightness`"]),
    ("unknown-method", ["config", "--method", "vaderr"], 2, E, ["vaderr"]),
    ("truncation-too-long", ["config", "--set", "truncation.k=99"], 2, E, ["`truncation.k` must be <="]),
    ("height-multiple", ["config", "--set", "backbone.height=33"], 2, E, ["multiple of 2", "use 32 or 34"]),
    ("width-multiple", ["config", "--set", "backbone.width=31"], 2, E, ["`backbone.width` must be a multiple of 2"]),
    (
        "toy-height-multiple",
        ["config", "--backbone", "toy", "--set", "backbone.height=30"],
        2,
        E,
        ["multiple of 4", "use 28 or 32"],
    ),
    ("weight-zero-only", ["config", "--reward", "brightness=0"], 2, E, ["reward weights sum to 0"]),
    (
        "weights-sum-zero",
        ["config", "--reward", "brightness=1", "--reward", "saturation=-1"],
        2,
        E,
        ["sum to 0", "brightness=1, saturation=-1"],
    ),
    (
        "weight-zero-warns",
        ["config", "--reward", "brightness=1", "--reward", "saturation=0"],
        0,
        W,
        ["reward `saturation` has weight 0"],
    ),
    ("empty-prompts", ["config", "--set", "train.prompts=[]"], 2, E, ["`train.prompts` is an empty list"]),
    ("empty-val-prompts", ["config", "--set", "validation.prompts=[]"], 2, E, ["`validation.prompts` is an empty"]),
    ("empty-seeds", ["config", "--set", "validation.seeds=[]"], 2, E, ["`validation.seeds` is an empty list"]),
    (
        "decoded-frames-warns",
        ["config", "--set", "memory.decoded_frames=9"],
        0,
        W,
        ["`memory.decoded_frames` is 9, above the 4 frames"],
    ),
    # ------------------------------------------------------------------ configuration files
    (
        "config-missing",
        ["config", "--config", "{w}/nope.yaml"],
        2,
        E,
        ["config file not found", "vader config > run.yaml"],
    ),
    ("config-is-dir", ["config", "--config", "{w}/adir.npy"], 2, E, ["that is a directory"]),
    ("config-binary", ["config", "--config", "{w}/binary.yaml"], 2, E, ["not a text file"]),
    ("config-bad-yaml", ["config", "--config", "{w}/bad.yaml"], 2, E, ["cannot parse"]),
    ("config-list", ["config", "--config", "{w}/list.yaml"], 2, E, ["must hold a mapping"]),
    ("config-python-tag", ["config", "--config", "{w}/tag.yaml"], 2, E, ["cannot parse"]),
    (
        "train-config-binary",
        ["train", "--config", "{w}/binary.yaml", "--output-dir", "{w}/new-bin"],
        2,
        E,
        ["not a text file"],
    ),
    # ------------------------------------------------------------------ training inputs
    (
        "prompt-file-missing",
        ["train", "--set", "train.prompt_file={w}/nope.txt", "--output-dir", "{w}/new-pf", *FAST],
        2,
        E,
        ["prompt file not found", "one prompt per line"],
    ),
    (
        "prompt-file-empty",
        ["train", "--set", "train.prompt_file={w}/empty_prompts.txt", "--output-dir", "{w}/new-pe", *FAST],
        2,
        E,
        ["has no prompts"],
    ),
    # ------------------------------------------------------------------ resume
    (
        "resume-missing",
        ["train", "--resume", "{w}/nockpt", "--output-dir", "{w}/new-r1", *FAST],
        2,
        E,
        ["checkpoint directory not found"],
    ),
    (
        "resume-latest-none",
        ["train", "--resume", "latest", "--output-dir", "{w}/new-r2", *FAST],
        2,
        E,
        ["no checkpoint under"],
    ),
    (
        "resume-incomplete",
        ["train", "--resume", "{w}/incomplete/checkpoints/step-1", "--output-dir", "{w}/incomplete", *FAST],
        2,
        E,
        ["not a complete checkpoint", "rng.safetensors"],
    ),
    (
        "resume-corrupt-optimizer",
        ["train", "--resume", "latest", "--output-dir", "{w}/corrupt_opt", "--max-steps", "2", *FAST],
        2,
        E,
        ["corrupt", "optimizer.safetensors", "resume from an earlier checkpoint"],
    ),
    (
        "resume-corrupt-lora",
        [
            "train",
            "--resume",
            "{w}/corrupt_lora/checkpoints/step-1",
            "--output-dir",
            "{w}/corrupt_lora",
            "--max-steps",
            "2",
            *FAST,
        ],
        2,
        E,
        ["cannot read LoRA weights", "step 1 of run", "train again"],
    ),
    # ------------------------------------------------------------------ generate inputs
    (
        "lora-other-backbone",
        [
            "generate",
            "--backbone",
            "toy",
            "--prompt",
            "a",
            "--lora",
            "{w}/run/checkpoints/step-1",
            "--out",
            "{w}/o-toy.npy",
            *GEN,
        ],
        2,
        E,
        ["does not fit backbone `toy`", "trained with backbone `tiny`", "--backbone toy"],
    ),
    (
        "lora-corrupt",
        ["generate", "--prompt", "a", "--lora", "{w}/corrupt_lora/checkpoints/step-1", "--out", "{w}/o-c.npy", *GEN],
        2,
        E,
        ["cannot read LoRA weights", "step 1 of run", "corrupt"],
    ),
    (
        "lora-missing",
        ["generate", "--prompt", "a", "--lora", "{w}/nolora", "--out", "{w}/o-m.npy", *GEN],
        2,
        E,
        ["no LoRA weights at"],
    ),
    (
        "image-missing",
        ["generate", "--prompt", "a", "--image", "{w}/nope.png", "--out", "{w}/o-i.npy", *GEN],
        2,
        E,
        ["--image", "no such file"],
    ),
    # ------------------------------------------------------------------ score inputs
    ("score-missing-video", ["score", "{w}/nope.mp4", "-r", "brightness"], 2, E, ["video file not found"]),
    ("score-garbage-video", ["score", "{w}/garbage.npy", "-r", "brightness"], 2, E, ["cannot read video"]),
    ("score-bad-format", ["score", "{w}/v.xyz", "-r", "brightness"], 2, E, ["unsupported video format"]),
    (
        "score-unknown-option",
        ["score", "{w}/v.npy", "-r", "brightness", "--set", "gain=2"],
        2,
        E,
        ["unknown option `brightness.gain`"],
    ),
    ("score-unknown-reward", ["score", "{w}/v.npy", "-r", "nope"], 2, E, ["unknown reward `nope`"]),
    # ------------------------------------------------------------------ eval inputs
    ("eval-out-is-file", ["eval", "--prompt", "a", "--out", "{w}/afile", *GEN], 2, E, ["--out {w}/afile is a file"]),
    (
        "eval-out-under-file",
        ["eval", "--prompt", "a", "--out", "{w}/afile/sub", *GEN],
        2,
        E,
        ["lies under", "which is a file"],
    ),
    (
        "eval-earlier-eval",
        ["eval", "--prompt", "a", "--out", "{w}/an_eval", *GEN],
        2,
        E,
        ["holds an earlier evaluation", "pick another --out"],
    ),
    (
        "eval-lora-missing",
        ["eval", "--prompt", "a", "--lora", "{w}/nolora", "--out", "{w}/e1", *GEN],
        2,
        E,
        ["no LoRA weights at"],
    ),
    (
        "eval-lora-corrupt",
        ["eval", "--prompt", "a", "--lora", "{w}/corrupt_lora/checkpoints/step-1", "--out", "{w}/e2", *GEN],
        2,
        E,
        ["cannot read LoRA weights", "corrupt"],
    ),
    ("eval-bad-scale", ["eval", "--lora-scale", "half"], 2, E, ["Invalid value for '--lora-scale'"]),
    (
        "eval-unknown-metric",
        ["eval", "--prompt", "a", "--metric", "nope", "--out", "{w}/e3", *GEN],
        2,
        E,
        ["unknown metric or reward `nope`"],
    ),
    ("eval-nothing", ["eval", "--prompt", "a", "--no-base", "--out", "{w}/e4", *GEN], 2, E, ["nothing to evaluate"]),
    (
        "eval-bad-frames",
        ["eval", "--prompt", "a", "--frames", "x", "--out", "{w}/e5", *GEN],
        2,
        E,
        ["--frames takes comma-separated frame indices"],
    ),
    (
        "eval-missing-prompt-file",
        ["eval", "--prompt-file", "{w}/nope.txt", "--out", "{w}/e6", *GEN],
        2,
        E,
        ["prompt file not found"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(world, case):
    _, args, code, kind, needles = case
    before = _snapshot(world)
    rc, out, err = run_cli([a.format(w=world) for a in args])
    after = _snapshot(world)
    assert rc == code, (rc, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    # tqdm bars of library loaders (toy's text encoder) are not vader's lines
    lines = [ln for ln in err.splitlines() if ln.strip() and "it/s]" not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{kind}: "), lines[0]
    for n in needles:
        assert n.format(w=world) in lines[0], lines[0]
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"earlier files changed or removed: {changed}"


def test_plugin_exiting_at_import_is_listed_broken(tmp_path, monkeypatch):
    """A plugin that calls sys.exit (or raises any BaseException but KeyboardInterrupt) while importing."""
    import importlib.metadata as md

    from vader_core import plugins

    (tmp_path / "vader_exits_at_import.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "vader_base_exc_at_import.py").write_text("raise GeneratorExit('odd')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = md.entry_points
    extra = [
        md.EntryPoint("exits", "vader_exits_at_import", "vader"),
        md.EntryPoint("baseexc", "vader_base_exc_at_import", "vader"),
    ]

    def entry_points(**kw):
        found = list(real(**kw))
        return found + extra if kw.get("group") == "vader" else found

    monkeypatch.setattr(plugins.md, "entry_points", entry_points)
    monkeypatch.setenv("VADER_PLUGINS", "exits,baseexc")
    plugins.reset()
    rc, out, err = run_cli(["plugins", "--json"])
    assert rc == 0 and "Traceback" not in err, err
    import json

    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["exits"]["status"] == "broken" and "SystemExit" in rows["exits"]["summary"]
    assert rows["baseexc"]["status"] == "broken" and "GeneratorExit" in rows["baseexc"]["summary"]
    assert rows["brightness"]["status"] == "ok"  # everything else works
    rc, out, err = run_cli(["score", tmp_path / "missing.npy", "-r", "brightness"])
    assert rc == 2 and "video file not found" in err
    for m in ("vader_exits_at_import", "vader_base_exc_at_import"):
        sys.modules.pop(m, None)


def test_random_weights_picks_small_sizes_unless_set(monkeypatch):
    from pydantic import Field

    from vader_core import plugins
    from vader_core.backbone import BackboneOptions, BackbonePlugin
    from vader_core.cli_errors import random_weight_sets

    class BigOptions(BackboneOptions):
        height: int = Field(576)
        width: int = Field(1024)
        frames: int = Field(25)
        steps: int = Field(25)

    class Big(BackbonePlugin):
        name = "big-released"
        Options = BigOptions

    from vader_core import hookimpl

    mod = types.ModuleType("big_plugin")

    @hookimpl
    def register_backbones(register):
        register(Big)

    mod.register_backbones = register_backbones
    plugins.register_plugin(mod, name="big")
    try:
        assert random_weight_sets("big-released", None, []) == [
            "optim.grad_accum=1",  # a smoke run steps once per micro-batch
            "backbone.height=64",
            "backbone.width=64",
            "backbone.frames=4",
            "backbone.steps=4",
        ]
        assert random_weight_sets("big-released", None, ["backbone.height=128", "sampling.steps=9"]) == [
            "optim.grad_accum=1",
            "backbone.width=64",
            "backbone.frames=4",
        ]
        assert random_weight_sets("tiny", None, []) == ["optim.grad_accum=1"]  # sizes already smaller
        assert random_weight_sets("tiny", None, ["optim.grad_accum=4"]) == []
    finally:
        plugins.unregister_plugin(mod)


def test_the_matrix_is_large_enough():
    commands = {c[1][0] for c in CASES}
    assert len(CASES) >= 60 and {"train", "generate", "score", "config", "plugins", "eval"} <= commands


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]"])
def test_lora_with_bad_metadata_is_one_line(tmp_path, meta):
    """A .safetensors LoRA whose adapter metadata is not a JSON object: one line, not a JSONDecodeError."""
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"unet.x.lora_A.weight": torch.zeros(2, 2)}, str(bad), metadata={"lora_adapter_metadata": meta})
    rc, out, err = run_cli(["generate", "--prompt", "a", "--lora", str(bad), "--out", str(tmp_path / "o.npy"), *GEN])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "metadata is not a JSON object" in lines[0]
