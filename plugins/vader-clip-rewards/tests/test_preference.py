"""``mps`` and ``image_reward``: the reward contract on tiny random models of the real classes, their scoring
rules, and loading through the real code paths from files in the released layouts (a safetensors state dict,
a pickled whole model, ``ImageReward.pt``), with one-line errors."""

import sys
import types

import pytest
import torch
from safetensors.torch import save_file
from vader_clip_rewards import MPS, ImageReward
from vader_clip_rewards import image_reward as ir_mod
from vader_clip_rewards import mps as mps_mod

from vader_core.errors import CheckpointError, ConfigError, MissingWeightsError
from vader_core.testing import (
    RewardContractTests,
    assert_one_line_error,
    plant_pickle,
    planted_pickle_works,
    run_cli,
    save_video,
)

SEED = 3
VIDEO = torch.rand(2, 2, 3, 48, 80, generator=torch.Generator().manual_seed(0))
PROMPTS = ["a cat playing chess", "a dog surfing a wave"]


def _scores(r, video=VIDEO, prompts=PROMPTS):
    with torch.no_grad():
        return r(video, prompts)


def _tiny(cls, seed=SEED, **opts):
    r = cls(cls.Options(**opts))
    r.load_tiny("cpu", torch.float32, seed=seed)
    return r


def _loaded(cls, **opts):
    r = cls(cls.Options(architecture="tiny", **opts))
    r.load("cpu", torch.float32)
    return r


def _same(a, b, tol=1e-5):
    torch.testing.assert_close(_scores(a), _scores(b), rtol=tol, atol=tol)


class TestMPSContract(RewardContractTests):
    reward_cls = MPS
    video_size = (2, 2, 40, 24)
    invalid_options = [{"no_such_option_xyz": 1}, {"threshold": 1.0}, {"resize_mode": "crop"}]


class TestImageRewardContract(RewardContractTests):
    reward_cls = ImageReward
    video_size = (2, 2, 24, 40)
    invalid_options = [{"no_such_option_xyz": 1}, {"resize_mode": "crop"}, {"architecture": "ViT-B"}]


# ----------------------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("cls", [MPS, ImageReward], ids=lambda c: c.name)
def test_frozen_in_the_run_dtype_and_prompt_aware(cls):
    r = _tiny(cls)
    r16 = cls()
    r16.load_tiny("cpu", torch.bfloat16, seed=SEED)
    for m in (m for m in vars(r16).values() if isinstance(m, torch.nn.Module)):
        assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in m.parameters())
        assert not any(sub.training for sub in m.modules() if isinstance(sub, torch.nn.Dropout))
    torch.testing.assert_close(_scores(r16), _scores(r), atol=0.1 * _scores(r).abs().max().item() + 0.05, rtol=0)
    v = VIDEO[:1].expand(3, -1, -1, -1, -1)
    out = _scores(r, v, ["a cat", "a photo of a dog on the beach", "a cat"])
    torch.testing.assert_close(out[0], out[2])
    assert not torch.isclose(out[0], out[1], atol=1e-4)
    assert not torch.allclose(_scores(r), _scores(_tiny(cls, seed=SEED + 1)))


def test_mps_masks_prompt_tokens_by_their_similarity_to_the_condition():
    """A token is kept when its best similarity to a condition token, over the prompt's largest, is above the
    threshold; raising the threshold masks more tokens and changes the score; the prompt's maximum token is
    always kept (so no row of the attention is empty)."""
    low, high = _tiny(MPS, threshold=0.0), _tiny(MPS, threshold=0.9)
    *_, m_low = low.prompt_context(PROMPTS)
    tokens, _, m_high = high.prompt_context(PROMPTS)
    sim = torch.einsum("pid,jd->pij", tokens, high._condition).amax(-1)
    sim = sim / sim.amax(-1, keepdim=True)
    torch.testing.assert_close((m_high == 0), sim > 0.9)
    assert (m_high == 0).sum() < (m_low == 0).sum() and ((m_high == 0).sum(-1) >= 1).all()
    assert not torch.allclose(_scores(low), _scores(high))


def test_mps_score_is_the_batch_of_one_official_formula():
    """The official ``infer_one_sample`` on one image: the cross-attended CLS token against the EOS embedding,
    with the similarities normalised by their maximum (over the batch tensor, which at batch 1 is this prompt's)."""
    r = _tiny(MPS)
    frame, prompt = VIDEO[0, :1], PROMPTS[0]
    m = r.model
    with torch.no_grad():
        ids = r.tokenizer([prompt], padding="max_length", truncation=True, max_length=77, return_tensors="pt")
        cond = r.tokenizer(
            [r.options.condition], padding="max_length", truncation=True, max_length=77, return_tensors="pt"
        )
        text = m.text_model(input_ids=ids["input_ids"])
        text_f, eos = m.text_projection(text.last_hidden_state), m.text_projection(text.pooler_output)
        cond_f = m.text_projection(m.text_model(input_ids=cond["input_ids"]).last_hidden_state)
        s = torch.einsum("bid,bjd->bji", text_f, cond_f).max(dim=1, keepdim=True)[0]
        s = s / s.max()
        mask = torch.where(s > 0.3, 0.0, float("-inf"))[:, 0]
        from vader_clip_rewards.preprocess import preprocess

        image_f = m.visual_projection(m.vision_model(pixel_values=preprocess(frame, r.spec)).last_hidden_state)
        img = r.cross(image_f, text_f, mask)[:, 0]
        img, eos = img / img.norm(dim=-1, keepdim=True), eos / eos.norm(dim=-1, keepdim=True)
        ref = (m.logit_scale.exp() * (eos @ img.T))[0, 0]
        ours = r.score_frames(frame, [prompt])[0]
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", ["mps", "image_reward"])
def test_frames_too_small_are_one_line_through_the_cli(tmp_path, name):
    video = save_video(tmp_path / "v.npy", 2, 8, 64)
    res = run_cli(["score", video, "--reward", name, "--prompt", "a cat", "--device", "cpu", "--random-weights"])
    assert_one_line_error(res, f"{name}: frames of 8x64 pixels are too small", "backbone.height")


def test_image_reward_truncates_the_prompt_to_35_tokens():
    r = _tiny(ImageReward)
    long = " ".join(["a cat playing chess"] * 20)
    longer = long + " on the beach at sunset"
    torch.testing.assert_close(_scores(r, VIDEO[:1], [long]), _scores(r, VIDEO[:1], [longer]))


# ------------------------------------------------------------------------------------------ mps weights
def _mps_state(seed=SEED):
    clip, cross = mps_mod.tiny_model(seed)
    state = {f"model.{k}": v for k, v in clip.state_dict().items()}
    return state | {f"cross_model.{k}": v for k, v in cross.state_dict().items()}, clip, cross


def test_mps_loads_the_safetensors_repack_from_a_file_a_directory_and_the_hub_cache(tmp_path, hub_cache):
    state, *_ = _mps_state()
    # transformers < 4.31 kept the position ids as persistent buffers; DiffSynth's re-pack may hold them
    state["model.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    d = tmp_path / "MPS_overall_checkpoint"
    d.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / mps_mod.MPS_SAFETENSORS))
    ref = _tiny(MPS)
    _same(_loaded(MPS, checkpoint=str(d / mps_mod.MPS_SAFETENSORS)), ref)
    _same(_loaded(MPS, checkpoint=str(tmp_path)), ref)  # the ModelScope download's folder
    hub_cache.put("someone/mps-mirror", {mps_mod.MPS_SAFETENSORS: d / mps_mod.MPS_SAFETENSORS})
    _same(_loaded(MPS, checkpoint="someone/mps-mirror"), ref)


def _pickle_whole_model(path, clip, cross, half=False):
    """``torch.save(model)`` of a model whose classes live in the authors' module, then gone (as for a user
    who has not installed the authors' repository): the file names classes that cannot be imported."""
    mod = types.ModuleType("trainer.models.clip_model")

    class CLIPModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.cross_model = clip, cross

    CLIPModel.__module__, CLIPModel.__qualname__ = mod.__name__, "CLIPModel"
    mod.CLIPModel = CLIPModel
    names = ["trainer", "trainer.models", "trainer.models.clip_model"]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update({n: types.ModuleType(n) for n in names[:2]} | {names[2]: mod})
    try:
        model = CLIPModel()
        torch.save(model.half() if half else model, path)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_mps_reads_the_pickled_whole_model_only_with_the_opt_in(tmp_path, half):
    _, clip, cross = _mps_state()
    path = tmp_path / mps_mod.MPS_PICKLE
    _pickle_whole_model(path, clip, cross, half=half)
    with pytest.raises(CheckpointError, match="allow_pickle") as e:
        _loaded(MPS, checkpoint=str(path))
    assert "\n" not in str(e.value)
    _same(_loaded(MPS, checkpoint=str(path), allow_pickle=True), _tiny(MPS), tol=0.05 if half else 1e-5)


def test_mps_opt_in_runs_nothing_a_planted_pickle_names(tmp_path):
    assert planted_pickle_works(tmp_path)
    marker = tmp_path / "marker"
    path = plant_pickle(tmp_path / mps_mod.MPS_PICKLE, marker)
    with pytest.raises(CheckpointError):
        _loaded(MPS, checkpoint=str(path))
    with pytest.raises(CheckpointError, match="does not fit"):  # read inertly: no model keys, no payload run
        _loaded(MPS, checkpoint=str(path), allow_pickle=True)
    assert not marker.exists()


def test_mps_errors_are_one_line(tmp_path, hub_cache):
    with pytest.raises(MissingWeightsError, match="no `checkpoint` given") as e:
        MPS().load("cpu", torch.float32)
    assert "\n" not in str(e.value) and "Kwai-Kolors/MPS" in str(e.value) and "modelscope" in str(e.value)
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE"):
        _loaded(MPS, checkpoint="someone/not-cached")
    pickscore = tmp_path / "pick"
    from vader_clip_rewards.pickscore import tiny_model as pick_tiny

    pick_tiny(0).save_pretrained(pickscore)
    hub_cache.put("yuvalkirstain/PickScore_v1", {"": pickscore})
    for ref in (str(pickscore), "yuvalkirstain/PickScore_v1"):
        with pytest.raises(ConfigError, match="is a `clip` model, not MPS") as e:
            _loaded(MPS, checkpoint=ref)
        assert "\n" not in str(e.value)
    bad = tmp_path / "other.safetensors"
    save_file({"model.foo": torch.zeros(2)}, str(bad))
    with pytest.raises(CheckpointError, match="does not fit the MPS CLIP"):
        _loaded(MPS, checkpoint=str(bad))


def test_mps_missing_weights_through_the_cli(tmp_path):
    video = save_video(tmp_path / "v.npy", 2, 32, 32)
    res = run_cli(["score", video, "--reward", "mps", "--prompt", "a cat", "--device", "cpu"])
    assert_one_line_error(res, "mps:", "checkpoint", "MPS_overall_checkpoint")


# ---------------------------------------------------------------------------------- image_reward weights
@pytest.fixture
def image_reward_files(tmp_path):
    vision, text, mlp = ir_mod.tiny_model(SEED)
    d = tmp_path / "ImageReward"
    d.mkdir()
    state = ir_mod.official_state_dict(vision, text, mlp)
    # parts of BLIP_Pretrain the score does not use, as the released file holds them
    state |= {"blip.vision_proj.weight": torch.zeros(256, 32), "blip.text_proj.weight": torch.zeros(256, 32)}
    torch.save(state, d / "ImageReward.pt")
    tok = tmp_path / "bert"
    ir_mod.tiny_tokenizer().save_pretrained(tok)
    return d, tok


def test_image_reward_loads_the_released_layout(tmp_path, hub_cache, image_reward_files):
    d, tok = image_reward_files
    ref = _tiny(ImageReward)
    _same(_loaded(ImageReward, model=str(d / "ImageReward.pt"), tokenizer=str(tok)), ref)
    _same(_loaded(ImageReward, model=str(d), tokenizer=str(tok)), ref)
    hub_cache.put(ir_mod.IMAGE_REWARD_REPO, {"ImageReward.pt": d / "ImageReward.pt"})
    hub_cache.put(ir_mod.TOKENIZER_REPO, {"": tok})
    _same(_loaded(ImageReward), ref)


def test_image_reward_errors_are_one_line(tmp_path, hub_cache, image_reward_files):
    d, tok = image_reward_files
    with pytest.raises(MissingWeightsError, match="THUDM/ImageReward") as e:
        _loaded(ImageReward)
    assert "\n" not in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)
    with pytest.raises(MissingWeightsError, match="tokenizer"):
        _loaded(ImageReward, model=str(d))
    clip_dir = tmp_path / "pick"
    from vader_clip_rewards.pickscore import tiny_model as pick_tiny

    pick_tiny(0).save_pretrained(clip_dir)
    with pytest.raises(ConfigError, match="is a `clip` model, not an ImageReward checkpoint"):
        _loaded(ImageReward, model=str(clip_dir), tokenizer=str(tok))
    torch.save({"blip.text_encoder.foo": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not fit the BLIP ViT-L/16") as e:
        _loaded(ImageReward, model=str(tmp_path / "bad.pt"), tokenizer=str(tok))
    assert "\n" not in str(e.value)
    marker = tmp_path / "marker"
    planted = plant_pickle(tmp_path / "planted.pt", marker)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        _loaded(ImageReward, model=str(planted), tokenizer=str(tok))
    assert not marker.exists()
