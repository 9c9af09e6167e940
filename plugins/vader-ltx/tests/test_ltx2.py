"""``ltx2`` (the video branch of LTX-2): the backbone and CLI contracts, ``vader generate`` against diffusers'
LTX2Pipeline on the same weights at the released default guidance (classifier-free, spatio-temporal and
modality-isolation guidance, rescale, audio stepped jointly), LoRA through the stock ``load_lora_weights``."""

import math

import numpy as np
import pytest
import torch
from vader_ltx import LTX_2, LTX2Backbone, LTX2I2VBackbone, LTX2Options
from vader_ltx.tiny_ltx2 import save_tiny

from vader_core.cli import main as vader
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.testing import (
    QUIET_TRAINING,
    BackboneCLIContractTests,
    BackboneContractTests,
    assert_frames_match,
    read_metrics,
    set_options,
    stock_frames,
    vader_frames,
)

SIZE = {"height": 32, "width": 32, "frames": 9, "steps": 2, "max_sequence_length": 16, "stg_blocks": [1]}
STEPS = 3


@pytest.fixture(scope="module")
def tiny_ltx2_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-ltx2"))


class TestLTX2(BackboneContractTests):
    """The released guidance (CFG + STG + modality isolation, rescale): three transformer calls a step."""

    backbone_cls = LTX2Backbone
    options = SIZE
    invalid_options = [{"frames": 8}, {"no_such_option_xyz": 1}, {"guidance_rescale": 2.0}]


class TestLTX2NoGuidance(BackboneContractTests):
    """No guidance at all (one call a step), 17 frames, the stochastic SDE step (ddpo's policy)."""

    backbone_cls = LTX2Backbone
    options = {
        **SIZE,
        "frames": 17,
        "guidance": 1.0,
        "audio_guidance": 1.0,
        "stg_scale": 0.0,
        "audio_stg_scale": 0.0,
        "modality_scale": 1.0,
        "audio_modality_scale": 1.0,
        "eta": 0.7,
    }


class TestLTX2I2V(BackboneContractTests):
    """Image-to-video: the image's latents at latent frame 0, timestep 0 there, not stepped; with SDE steps."""

    backbone_cls = LTX2I2VBackbone
    options = {**SIZE, "eta": 0.5}


class TestLTX2Commands(BackboneCLIContractTests):
    backbone_cls = LTX2Backbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_ltx2_dir):
        return {"model": tiny_ltx2_dir}


class TestLTX2I2VCommands(BackboneCLIContractTests):
    """The CLI contract for image-to-video: training on tiny weights with `train.images`, generate --lora, missing
    weights in one line."""

    backbone_cls = LTX2I2VBackbone
    options = {**SIZE, "image_crf": 0}

    @pytest.fixture
    def saved_weights(self, tiny_ltx2_dir):
        return {"model": tiny_ltx2_dir}


def _report(capsys, what, diff):
    with capsys.disabled():
        print(f"\n[{what}] max abs diff {diff:.3g}")


# id: (tiny layout, vader options, the same for LTX2Pipeline)
CONFIGS = {
    "a-released-guidance": ("a", {"height": 32, "width": 32, "frames": 9}, {}),
    "b-released-guidance-17-frames": ("b", {"height": 64, "width": 32, "frames": 17, "frame_rate": 25.0}, {}),
    "b-ltx2.0-cross-timestep-other-scales": (
        "b",
        {
            "height": 32,
            "width": 64,
            "frames": 9,
            "guidance": 4.0,
            "audio_guidance": 0.0,
            "stg_scale": 0.5,
            "modality_scale": 1.0,
            "audio_modality_scale": 2.0,
            "guidance_rescale": 0.0,
            "use_cross_timestep": False,
        },
        {
            "audio_guidance_scale": 0.0,
            "stg_scale": 0.5,
            "modality_scale": 1.0,
            "audio_modality_scale": 2.0,
            "guidance_rescale": 0.0,
            "use_cross_timestep": False,
        },
    ),
    "a-no-guidance": (
        "a",
        {
            "height": 32,
            "width": 32,
            "frames": 9,
            "guidance": 1.0,
            "audio_guidance": 1.0,
            "stg_scale": 0.0,
            "audio_stg_scale": 0.0,
            "modality_scale": 1.0,
            "audio_modality_scale": 1.0,
        },
        {
            "audio_guidance_scale": 1.0,
            "stg_scale": 0.0,
            "audio_stg_scale": 0.0,
            "modality_scale": 1.0,
            "audio_modality_scale": 1.0,
        },
    ),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_generate_matches_stock_pipeline(tmp_path, config, capsys):
    layout, options, stock = CONFIGS[config]
    d = save_tiny(tmp_path / "model", seed=1, layout=layout)
    options = {"guidance": 3.0, **options, "steps": STEPS, "max_sequence_length": 16, "stg_blocks": [1]}
    ours = vader_frames(tmp_path, "ltx2", d, prompt="a panda riding a bike", seed=3, options=options)
    ref = stock_frames(
        d,
        "LTX2Pipeline",
        prompt="a panda riding a bike",
        seed=3,
        steps=STEPS,
        guidance=options["guidance"],
        height=options["height"],
        width=options["width"],
        frames=options["frames"],
        max_sequence_length=16,
        spatio_temporal_guidance_blocks=[1],
        frame_rate=options.get("frame_rate", 24.0),
        **stock,
    )
    assert ours.shape == (options["frames"], options["height"], options["width"], 3)
    diff = assert_frames_match(ours, ref, what=f"ltx2 {config}")
    _report(capsys, f"ltx2 {config} vs LTX2Pipeline", diff)
    if config == "a-released-guidance":
        other = vader_frames(tmp_path, "ltx2", d, prompt="a panda riding a bike", seed=4, options=options)
        assert np.abs(other - ours).max() > 1e-3  # the seed matters


def test_audio_latents_steer_the_video(tmp_path):
    """The audio stream is stepped with the video (not dropped): isolating the modalities changes the frames."""
    d = save_tiny(tmp_path / "model")
    options = {**SIZE, "steps": STEPS}
    joint = vader_frames(tmp_path, "ltx2", d, prompt="a cat", seed=0, options=options)
    isolated = vader_frames(tmp_path, "ltx2", d, prompt="a cat", seed=0, options={**options, "modality_scale": 5.0})
    assert np.abs(joint - isolated).max() > 1e-3


def test_lora_loads_into_the_stock_pipeline(tmp_path, capsys):
    """A LoRA saved by vader loads with LTX2Pipeline.load_lora_weights and gives vader generate --lora's frames."""
    from diffusers import LTX2VideoTransformer3DModel

    from vader_core.testing import save_random_lora

    d = save_tiny(tmp_path / "model")
    lora_dir = save_random_lora(
        LTX2VideoTransformer3DModel.from_pretrained(d, subfolder="transformer"),
        tmp_path / "lora",
        prefix="transformer",
        std=0.5,
    )
    options = {**SIZE, "steps": STEPS}
    size = {"steps": STEPS, "guidance": 3.0, "height": 32, "width": 32, "frames": 9}
    stock = {"max_sequence_length": 16, "spatio_temporal_guidance_blocks": [1]}
    ours = vader_frames(tmp_path, "ltx2", d, prompt="a dog surfing", seed=0, options=options, lora=lora_dir)
    ref = stock_frames(d, "LTX2Pipeline", prompt="a dog surfing", seed=0, lora=lora_dir, **size, **stock)
    plain = stock_frames(d, "LTX2Pipeline", prompt="a dog surfing", seed=0, **size, **stock)
    changed = float(np.abs(ref - plain).max())
    diff = assert_frames_match(ours, ref, what="LoRA")
    _report(capsys, f"ltx2 + LoRA vs LTX2Pipeline.load_lora_weights; LoRA changed frames by {changed:.3g}", diff)
    assert changed > 1e-3, "the LoRA had no effect"


@pytest.mark.parametrize("backbone", ["ltx2", "ltx2-i2v"])
def test_ddpo_smoke_from_the_cli(tmp_path, backbone):
    """ddpo with the stochastic step; image-to-video steps everything after latent frame 0."""
    from vader_core.testing import save_images

    out = tmp_path / "run"
    images = []
    if backbone == "ltx2-i2v":
        save_images(tmp_path / "images", ["a_red_kite", "a_boat_at_sea"])
        images = ["--set", f"train.images={tmp_path / 'images'}", "--set", "backbone.image_crf=0"]
    vader(
        [
            "train",
            "--backbone",
            backbone,
            "--random-weights",
            "--reward",
            "brightness",
            "--method",
            "ddpo",
            "--max-steps",
            "2",
            *set_options(QUIET_TRAINING),
            *set_options({**SIZE, "guidance": 1.0, "audio_guidance": 1.0}, "backbone."),
            *images,
            "--set",
            "lora.rank=4",
            "--set",
            "sampling.eta=0.7",
            "--set",
            "method.sample_batches=2",
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "-q",
        ]
    )
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_defaults_are_the_pipeline_s():
    o = LTX2Options()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.frame_rate, o.max_sequence_length) == (
        LTX_2,
        512,
        768,
        121,
        30,
        24.0,
        1024,
    )
    assert (o.guidance, o.stg_scale, o.stg_blocks, o.modality_scale, o.guidance_rescale) == (3.0, 1.0, [28], 3.0, 0.7)
    assert (o.audio_guidance, o.audio_stg_scale, o.audio_modality_scale, o.audio_guidance_rescale) == (
        7.0,
        1.0,
        3.0,
        0.7,
    )
    assert o.use_cross_timestep and o.scheduler == "auto" and o.flow_shift is None


def test_stg_blocks_must_exist(tiny_ltx2_dir):
    bb = LTX2Backbone(LTX2Options(**{**SIZE, "stg_blocks": [5]}, model=str(tiny_ltx2_dir)))
    with pytest.raises(ConfigError, match="stg_blocks"):
        bb.load("cpu", torch.float32)


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, audio_vae/, text_encoder/"):
        LTX2Backbone(LTX2Options(model=str(tmp_path))).load("cpu", torch.float32)


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("ltx2") is LTX2Backbone
    assert plugins.get_backbone("ltx2-i2v") is LTX2I2VBackbone


@pytest.mark.parametrize("crf", [0, None], ids=["crf0", "default-crf33"])
def test_image_to_video_matches_stock_pipeline(tmp_path, image_file, crf, capsys):
    """``vader generate --backbone ltx2-i2v`` against LTX2ImageToVideoPipeline on the same weights and image: the
    image's latents at frame 0 held at timestep 0, the released guidance, the image re-compressed with H.264 as the
    pipeline does (its default CRF) or not."""
    d = save_tiny(tmp_path / "model", seed=2, layout="b")
    options = {"height": 32, "width": 64, "frames": 17, "guidance": 3.0, "steps": STEPS, "max_sequence_length": 16}
    options = {**options, "stg_blocks": [1], **({"image_crf": crf} if crf is not None else {})}
    ours = vader_frames(tmp_path, "ltx2-i2v", d, prompt="a lighthouse", seed=5, options=options, image=image_file)
    stock = {"image_crf": crf} if crf is not None else {}
    ref = stock_frames(
        d,
        "LTX2ImageToVideoPipeline",
        prompt="a lighthouse",
        seed=5,
        steps=STEPS,
        guidance=3.0,
        height=32,
        width=64,
        frames=17,
        image=image_file,
        max_sequence_length=16,
        spatio_temporal_guidance_blocks=[1],
        **stock,
    )
    diff = assert_frames_match(ours, ref, what=f"ltx2-i2v crf {crf}")
    _report(capsys, f"ltx2-i2v (crf {crf}) vs LTX2ImageToVideoPipeline", diff)
    t2v = vader_frames(tmp_path, "ltx2", d, prompt="a lighthouse", seed=5, options=options)
    assert np.abs(t2v - ours).max() > 1e-3  # the image matters


def test_image_to_video_lora_loads_into_the_stock_pipeline(tmp_path, image_file, capsys):
    from diffusers import LTX2VideoTransformer3DModel

    from vader_core.testing import save_random_lora

    d = save_tiny(tmp_path / "model")
    lora_dir = save_random_lora(
        LTX2VideoTransformer3DModel.from_pretrained(d, subfolder="transformer"),
        tmp_path / "lora",
        prefix="transformer",
        std=0.5,
    )
    options = {**SIZE, "steps": STEPS, "image_crf": 0}
    size = {"steps": STEPS, "guidance": 3.0, "height": 32, "width": 32, "frames": 9, "image": image_file}
    stock = {"max_sequence_length": 16, "spatio_temporal_guidance_blocks": [1], "image_crf": 0}
    ours = vader_frames(
        tmp_path, "ltx2-i2v", d, prompt="a dog", seed=0, options=options, image=image_file, lora=lora_dir
    )
    ref = stock_frames(d, "LTX2ImageToVideoPipeline", prompt="a dog", seed=0, lora=lora_dir, **size, **stock)
    plain = stock_frames(d, "LTX2ImageToVideoPipeline", prompt="a dog", seed=0, **size, **stock)
    changed = float(np.abs(ref - plain).max())
    diff = assert_frames_match(ours, ref, what="LoRA")
    _report(capsys, f"ltx2-i2v + LoRA vs load_lora_weights; LoRA changed frames by {changed:.3g}", diff)
    assert changed > 1e-3


def test_image_to_video_needs_an_image(tiny_ltx2_dir):
    bb = LTX2I2VBackbone(LTX2Options(**SIZE, model=str(tiny_ltx2_dir)))
    bb.load("cpu", torch.float32)
    with pytest.raises(ConfigError, match="image-to-video"):
        bb.encode_condition(["a cat"], None)
    assert LTX2I2VBackbone.conditioning == "text+image"
