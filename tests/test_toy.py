"""The bundled ``toy`` backbone: data, bundled weights, prompt following, alignment, training script."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vader_core import plugins
from vader_core.config import build_config
from vader_core.errors import MissingWeightsError
from vader_core.sampling import generate
from vader_core.testing import BackboneContractTests
from vader_core.trainer import Trainer
from vader_plugins.toy import ToyBackbone
from vader_plugins.toy.backbone import WEIGHTS_DIR, ToyOptions
from vader_plugins.toy.data import (
    HELDOUT_CAPTIONS,
    HELDOUT_SPECS,
    TRAIN_CAPTIONS,
    TRAIN_SPECS,
    ToyVideoDataset,
    parse_caption,
    render,
)
from vader_plugins.toy.quality import analyze_clip, direction_control, evaluate, score

needs_weights = pytest.mark.skipif(not (WEIGHTS_DIR / "unet").is_dir(), reason="bundled toy weights not built")


class TestToyContract(BackboneContractTests):
    backbone_cls = ToyBackbone
    options = {"frames": 3, "steps": 2}


@pytest.fixture(scope="module")
def toy():
    bb = ToyBackbone(ToyOptions(steps=10))
    bb.load("cpu", torch.float32)
    return bb


# ------------------------------------------------------------------ data
def test_dataset_is_deterministic_under_seed():
    a, b, c = ToyVideoDataset(seed=3), ToyVideoDataset(seed=3), ToyVideoDataset(seed=4)
    va, ca = a.batch(10, 4)
    vb, cb = b.batch(10, 4)
    vc, _ = c.batch(10, 4)
    assert va.shape == (4, 8, 3, 32, 32) and va.dtype == np.float32
    assert ca == cb and np.array_equal(va, vb)
    assert not np.array_equal(va, vc)
    assert 0.0 <= va.min() and va.max() <= 1.0


def test_heldout_split_is_disjoint_and_covers_every_word():
    assert not set(TRAIN_CAPTIONS) & set(HELDOUT_CAPTIONS)
    assert len(HELDOUT_CAPTIONS) >= 20
    for attr in ("shape", "color", "direction", "background"):
        assert {getattr(s, attr) for s in HELDOUT_SPECS} <= {getattr(s, attr) for s in TRAIN_SPECS}
    _, captions = ToyVideoDataset("heldout").batch(0, 16)
    assert set(captions) <= set(HELDOUT_CAPTIONS)
    train, heldout = ToyBackbone().default_prompts()
    assert train == list(TRAIN_CAPTIONS) and heldout == list(HELDOUT_CAPTIONS)


def test_captions_match_content():
    videos, captions = ToyVideoDataset(seed=0).batch(0, 48)
    res = score(torch.from_numpy(videos), captions)
    assert res["color_accuracy"] == 1.0 and res["direction_accuracy"] == 1.0
    spec = parse_caption("a green diamond moving up on a black background")
    clip = torch.from_numpy(render(spec, np.random.default_rng(0)))
    a = analyze_clip(clip)
    assert (a["color"], a["direction"]) == ("green", "up") and a["travel"][1] < -2
    with pytest.raises(ValueError):
        parse_caption("a cat playing chess")


# ------------------------------------------------------------------ bundled weights
def test_registered_and_missing_weights_error(tmp_path):
    assert plugins.get_backbone("toy") is ToyBackbone
    with pytest.raises(MissingWeightsError):
        ToyBackbone(ToyOptions(model=str(tmp_path))).load("cpu", torch.float32)


@needs_weights
def test_bundled_weights_generate_deterministically(toy):
    prompts = list(HELDOUT_CAPTIONS[:2])
    a = generate(toy, prompts, None, torch.Generator().manual_seed(0))
    b = generate(toy, prompts, None, torch.Generator().manual_seed(0))
    assert a.shape == (2, 8, 3, 32, 32)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (WEIGHTS_DIR / "MODEL_CARD.md").is_file()
    size = sum(f.stat().st_size for f in WEIGHTS_DIR.rglob("*") if f.is_file())
    assert size < 32e6, f"bundled weights are {size / 1e6:.1f} MB"


@needs_weights
def test_bundled_model_follows_heldout_prompts(toy):
    res = evaluate(toy, HELDOUT_CAPTIONS[:12], seeds=(0,))
    # The thresholds of the issue: the prompted colour in at least 80% of held-out clips, the prompted
    # direction in most (chance is 25%); the model card gives both over all 82 held-out clips.
    assert res["color_accuracy"] >= 0.8, res
    assert res["direction_accuracy"] > 0.5, res


def test_bundled_model_moves_as_the_direction_word_says(toy):
    """The direction word, not the initial noise, decides the motion: one seed, four direction words, and
    the clips of most prompts move in more than one direction, most of them the prompted way."""
    res = direction_control(toy, HELDOUT_CAPTIONS[:4], seeds=(0,))
    assert res["same_direction"] < 0.5 and res["distinct_directions"] >= 3.0, res
    assert res["direction_accuracy"] > 0.5, res


@needs_weights
def test_short_alignment_raises_heldout_reward(tmp_path):
    """The demo's configuration, shortened: a few steps already raise the held-out reward."""
    sets = [
        f"output.dir={tmp_path}",
        "train.max_steps=6",
        "output.logger=none",
        "validation.every=0",
        "validation.save_videos=false",
        "validation.seeds=[0]",
        "backbone.steps=4",
        "output.checkpoint_every=0",
        "optim.lr=1e-2",
    ]
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo-toy.yaml"
    cfg = build_config(demo, sets, {})
    summary = Trainer(cfg, progress=False).run()
    assert summary["heldout_reward_after"] > summary["heldout_reward_before"] + 0.05, summary
    # The demo's prompt-following check compares the model before and after the run's LoRA.
    from vader_plugins.toy.quality import main as quality_main

    out = quality_main(["--run", str(tmp_path), "--prompts", "4"])
    saved = json.loads((tmp_path / "prompt_following.json").read_text())
    assert saved["before"]["n"] == saved["after"]["n"] == 4 and saved["steps"] == 4
    assert out["checkpoint"].endswith("step-6")


# ------------------------------------------------------------------ training script
def test_training_script_tiny_budget(tmp_path):
    from vader_plugins.toy.train import main

    info = main(
        [
            "--out",
            str(tmp_path),
            "--size",
            "tiny",
            "--vae-steps",
            "2",
            "--vae-batch",
            "2",
            "--pool",
            "4",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--log-every",
            "0",
            "--no-quality",
        ]
    )
    assert info["denoiser_steps"] == 2
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / sub).is_dir()
    sched = json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "epsilon" and not sched["rescale_betas_zero_snr"]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "Parameters" in card or "parameters" in card
    assert json.loads((tmp_path / "training_info.json").read_text())["seed"] == 0
    bb = ToyBackbone(ToyOptions(model=str(tmp_path), frames=2, steps=2))
    bb.load("cpu", torch.float32)
    assert bb.components["vae"].config.scaling_factor == pytest.approx(info["scaling_factor"], rel=1e-3)
    video = generate(bb, ["a red circle moving left on a gray background"], None, torch.Generator().manual_seed(0))
    assert video.shape == (1, 2, 3, 32, 32) and torch.isfinite(video).all()
    # A second stage continues from the first: same VAE and scaling, fresh clips, history in the card.
    more = main(
        [
            "--out",
            str(tmp_path / "more"),
            "--init",
            str(tmp_path),
            "--size",
            "tiny",
            "--vae-steps",
            "0",
            "--pool",
            "4",
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--log-every",
            "0",
            "--no-quality",
            "--schedule",
            "zero-snr",
            "--terminal-share",
            "0.5",
            "--terminal-steps",
            "1",
        ]
    )
    sched = json.loads((tmp_path / "more" / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["prediction_type"], sched["rescale_betas_zero_snr"], sched["timestep_spacing"]) == (
        "v_prediction",
        True,
        "trailing",
    )
    assert (
        "| v MSE (the first 1 steps only at the last timestep against the caption's mean clip; then 50% of each "
        "batch at the last timestep against its caption's mean clip)"
    ) in (tmp_path / "more" / "MODEL_CARD.md").read_text()
    bb = ToyBackbone(ToyOptions(model=str(tmp_path / "more"), frames=2, steps=2))
    bb.load("cpu", torch.float32)
    video = generate(bb, ["a red circle moving left on a gray background"], None, torch.Generator().manual_seed(0))
    assert video.shape == (1, 2, 3, 32, 32) and torch.isfinite(video).all()
    # Sampling starts from the last timestep, where the zero-SNR input is pure noise.
    assert bb.scheduler.config.prediction_type == "v_prediction" and int(bb.scheduler.timesteps[0]) == 999
    assert more["scaling_factor"] == pytest.approx(info["scaling_factor"], rel=1e-3)
    assert more["data_end"] == info["data_end"] + 4 and len(more["history"]) == 1
    assert "continued (`--init`, same VAE)" in (tmp_path / "more" / "MODEL_CARD.md").read_text()
    assert info["unet_class"] == more["unet_class"] == "UNet3DConditionModel"
    # --fresh-denoiser keeps the VAE and starts another UNet (here AnimateDiff's UNetMotionModel) and text
    # encoder; the loss options are recorded in the card.
    other = main(
        [
            "--out",
            str(tmp_path / "motion"),
            "--init",
            str(tmp_path),
            "--fresh-denoiser",
            "--unet",
            "motion",
            "--object-weight",
            "5",
            "--high-noise-weight",
            "5",
            "--speed",
            "1.75",
            "2.5",
            "--size",
            "tiny",
            "--vae-steps",
            "0",
            "--pool",
            "4",
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--log-every",
            "0",
            "--no-quality",
        ]
    )
    assert other["unet_class"] == "UNetMotionModel" and set(other["caption_sensitivity"]) == {"color", "direction"}
    card = (tmp_path / "motion" / "MODEL_CARD.md").read_text()
    assert "UNet and text encoder trained from scratch" in card and "`UNetMotionModel` | blocks" in card
    assert "object cells weighted 5x; clips weighted clamp(1/SNR(t), 1, 5)" in card
    assert "(1.75 to 2.5 pixels per frame)" in card
    bb = ToyBackbone(ToyOptions(model=str(tmp_path / "motion"), frames=2, steps=2))
    bb.load("cpu", torch.float32)
    assert type(bb.denoiser).__name__ == "UNetMotionModel" and bb.text_per_frame
    video = generate(bb, ["a red circle moving left on a gray background"], None, torch.Generator().manual_seed(0))
    assert video.shape == (1, 2, 3, 32, 32) and torch.isfinite(video).all()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--fresh-denoiser"])


def test_training_targets_and_zero_terminal_snr():
    """The zero-SNR schedule leaves nothing of the clip at the last timestep (the caption alone must decide
    the layout there), unlike Stable Diffusion's; v-prediction's target is sqrt(a) eps - sqrt(1 - a) x0."""
    from diffusers import DDPMScheduler

    from vader_plugins.toy.backbone import SCHEDULES
    from vader_plugins.toy.train import _target

    g = torch.Generator().manual_seed(0)
    z0, noise = torch.randn(3, 4, 2, 8, 8, generator=g), torch.randn(3, 4, 2, 8, 8, generator=g)
    last = torch.full((3,), 999)
    zero, sd = (DDPMScheduler.from_config(SCHEDULES[k]) for k in ("zero-snr", "sd"))
    torch.testing.assert_close(zero.add_noise(z0, noise, last), noise)
    assert float(sd.alphas_cumprod[-1].sqrt()) == pytest.approx(0.068, abs=1e-3)
    assert not torch.allclose(sd.add_noise(z0, noise, last), noise, atol=1e-2)
    t = torch.tensor([0, 500, 999])
    a = zero.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(_target(zero, z0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * z0)
    assert _target(sd, z0, noise, t) is noise


def test_direction_control_tells_word_from_noise(monkeypatch):
    """``direction_control`` on two fake models: one that draws what the caption says, one that always
    moves the object left whatever the word (as a model whose noise decides would, for one seed)."""
    import vader_core.sampling

    def draw(caption, seed):
        return torch.from_numpy(render(parse_caption(caption), np.random.default_rng(seed)))[None]

    prompts = list(HELDOUT_CAPTIONS[:3])
    monkeypatch.setattr(vader_core.sampling, "generate", lambda bb, caps, image, g: draw(caps[0], g.initial_seed()))
    res = direction_control(None, prompts, seeds=(0, 1))
    assert res == {"n": 6, "same_direction": 0.0, "distinct_directions": 4.0, "direction_accuracy": 1.0}

    def ignore_word(bb, caps, image, g):
        spec = parse_caption(caps[0])
        return draw(caps[0].replace(f"moving {spec.direction} ", "moving left "), g.initial_seed())

    monkeypatch.setattr(vader_core.sampling, "generate", ignore_word)
    res = direction_control(None, prompts, seeds=(0,))
    assert res == {"n": 3, "same_direction": 1.0, "distinct_directions": 1.0, "direction_accuracy": 0.25}


@needs_weights
def test_reference_sensitivity_says_both_words_matter():
    """With pure noise in, the best prediction from the caption alone depends on colour and direction."""
    from vader_plugins.toy.train import load_components, reference_sensitivity

    ref = reference_sensitivity(load_components(WEIGHTS_DIR)["vae"], clips=600, heldout=24)
    assert ref["color"] > 0.3 and ref["direction"] > 0.2, ref


def test_terminal_share_trains_the_last_timestep_on_caption_means():
    """``terminal_share=1`` trains every clip at the last timestep (t=999), ``terminal_steps`` does so for the
    first steps only; both refuse a schedule whose terminal SNR is not zero, where the caption's mean clip
    is not the right target."""
    from vader_plugins.toy.backbone import SCHEDULES, toy_components
    from vader_plugins.toy.train import train_denoiser

    comps = toy_components("tiny", 0)
    g = torch.Generator().manual_seed(0)
    captions = ["a red circle moving left on a gray background", "a blue square moving up on a black background"]
    pool = {
        "mean": torch.randn(4, 4, 2, 8, 8, generator=g),
        "std": torch.zeros(4, 4, 2, 8, 8),
        "object": torch.ones(4, 1, 2, 8, 8),
        "captions": captions * 2,
    }
    with pytest.raises(ValueError, match="zero-snr"):
        train_denoiser(
            comps["unet"],
            comps["text_encoder"],
            comps["tokenizer"],
            pool,
            1.0,
            1,
            2,
            1e-3,
            0.0,
            0.9,
            0,
            None,
            terminal_share=0.5,
            scheduler_config=SCHEDULES["sd"],
        )
    calls = []
    unet = comps["unet"]
    original = unet.forward

    def spy(sample, timestep, **kw):
        calls.append(timestep.clone())
        return original(sample, timestep, **kw)

    unet.forward = spy
    train_denoiser(
        unet,
        comps["text_encoder"],
        comps["tokenizer"],
        pool,
        1.0,
        2,
        4,
        1e-3,
        0.0,
        0.9,
        0,
        None,
        terminal_share=1.0,
        scheduler_config=SCHEDULES["zero-snr"],
    )
    assert all((t == 999).all() for t in calls) and len(calls) == 2
    # terminal_steps: the whole batch at t=999 for the first steps only, then terminal_share (0 here).
    calls.clear()
    train_denoiser(
        unet,
        comps["text_encoder"],
        comps["tokenizer"],
        pool,
        1.0,
        4,
        8,
        1e-3,
        0.0,
        0.9,
        0,
        None,
        terminal_steps=2,
        scheduler_config=SCHEDULES["zero-snr"],
    )
    assert [bool((t == 999).all()) for t in calls] == [True, True, False, False]
    with pytest.raises(ValueError, match="zero-snr"):
        train_denoiser(
            comps["unet"],
            comps["text_encoder"],
            comps["tokenizer"],
            pool,
            1.0,
            1,
            2,
            1e-3,
            0.0,
            0.9,
            0,
            None,
            terminal_steps=1,
            scheduler_config=SCHEDULES["sd"],
        )


def test_lora_on_the_toy_unet_loads_into_animatediff_pipeline(tmp_path):
    """The toy UNet is AnimateDiff's ``UNetMotionModel``: a LoRA saved by vader loads into diffusers'
    ``AnimateDiffPipeline`` with ``load_lora_weights`` and gives the UNet vader trained."""
    from diffusers import AnimateDiffPipeline

    from vader_core.testing import save_random_lora

    bb = ToyBackbone(ToyOptions())
    bb.load_tiny("cpu", torch.float32)
    unet = bb.components["unet"]
    assert type(unet).__name__ == "UNetMotionModel"
    save_random_lora(unet, tmp_path)

    fresh = ToyBackbone(ToyOptions())
    fresh.load_tiny("cpu", torch.float32)
    c = fresh.components
    pipe = AnimateDiffPipeline(
        vae=c["vae"],
        text_encoder=c["text_encoder"],
        tokenizer=c["tokenizer"],
        unet=c["unet"],
        motion_adapter=None,
        scheduler=c["scheduler"],
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    t = torch.tensor(500)
    text = torch.randn(2, 16, c["text_encoder"].config.hidden_size, generator=g)  # once per frame
    with torch.no_grad():
        plain = pipe.unet(x, t, encoder_hidden_states=text).sample
        pipe.load_lora_weights(str(tmp_path))
        theirs = pipe.unet(x, t, encoder_hidden_states=text).sample
        ours = unet(x, t, encoder_hidden_states=text).sample
    torch.testing.assert_close(theirs, ours)
    assert (theirs - plain).abs().max() > 1e-3, "the LoRA had no effect"
