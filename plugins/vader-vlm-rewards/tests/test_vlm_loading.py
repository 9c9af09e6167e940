"""Loading the releases' formats through the real code path (tiny random models saved as the authors save
them: HPSv3.safetensors in transformers 4.45 key names; VideoReward's pickled PEFT model.pth with an
un-merged LoRA), from local paths and an offline Hugging Face cache; the pickle opt-in, the conversion
command, and the one-line errors."""

import json
import shutil
import warnings

import pytest
import torch
from vader_vlm_rewards import HPSv3, VideoReward, convert, hpsv3, video_reward

from vader_core.errors import CheckpointError, ConfigError, MissingWeightsError
from vader_core.testing import plant_pickle

FRAMES = torch.rand(2, 1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
CLIP = torch.rand(1, 8, 3, 32, 48, generator=torch.Generator().manual_seed(1))
PROMPTS = ["a red kite over a beach", "a dog surfing a wave"]
TINY = {"min_pixels": video_reward.TINY_PIXELS[0]}


def _score(r, video, prompts):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return r(video, prompts)


def _tiny(cls, seed, **options):
    r = cls(cls.Options(**options))
    r.load_tiny("cpu", torch.float32, seed=seed)
    return r


def _loaded(cls, **options):
    r = cls(cls.Options(**options))
    r.load("cpu", torch.float32)
    return r


def _merged_tiny_videoreward(release):
    r = _tiny(VideoReward, release.seed)
    with torch.no_grad():
        params = dict(r.model.model.named_parameters())
        for key, delta in release.lora.items():
            params[key] += delta
    return r


# -- hpsv3 ---------------------------------------------------------------------------------------------


def test_hpsv3_loads_the_release_file_and_a_local_base(hpsv3_release):
    r = _loaded(
        HPSv3, checkpoint=str(hpsv3_release.checkpoint), base=str(hpsv3_release.base), min_pixels=3136, max_pixels=3136
    )
    expected = _score(_tiny(HPSv3, hpsv3_release.seed), FRAMES, PROMPTS)
    torch.testing.assert_close(_score(r, FRAMES, PROMPTS), expected, rtol=1e-5, atol=1e-6)
    assert r.model.head[0].weight.dtype == torch.float32 and not any(p.requires_grad for p in r.model.parameters())
    assert r.runtime.prompter.ids["<|Reward|>"] == len(r.runtime.prompter.tokenizer) - 1


def test_hpsv3_loads_the_default_repos_from_the_hub_cache(hub_cache, hpsv3_release):
    hub_cache.put(hpsv3.HPSV3_REPO, hpsv3_release.dir)
    hub_cache.put(hpsv3.HPSV3_BASE, hpsv3_release.base)
    r = _loaded(HPSv3, min_pixels=3136, max_pixels=3136)
    expected = _score(_tiny(HPSv3, hpsv3_release.seed), FRAMES, PROMPTS)
    torch.testing.assert_close(_score(r, FRAMES, PROMPTS), expected, rtol=1e-5, atol=1e-6)


def test_hpsv3_missing_weights_offline_is_one_line(hub_cache, hpsv3_release):
    hub_cache.put(hpsv3.HPSV3_BASE, hpsv3_release.base)
    with pytest.raises(MissingWeightsError) as e:
        _loaded(HPSv3)
    msg = str(e.value)
    assert "\n" not in msg and hpsv3.HPSV3_REPO in msg and "HF_HUB_OFFLINE" in msg and "`checkpoint`" in msg


def test_hpsv3_rejects_a_plain_qwen2vl(tmp_path, hub_cache, hpsv3_release):
    from safetensors.torch import load_file, save_file

    plain = tmp_path / "plain"
    shutil.copytree(hpsv3_release.base, plain)
    state = {k: v for k, v in load_file(hpsv3_release.checkpoint).items() if not k.startswith("rm_head.")}
    save_file(state, str(plain / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"holds no reward head \(`rm_head\.\*`\).*a plain Qwen2-VL"):
        _loaded(HPSv3, checkpoint=str(plain), base=str(hpsv3_release.base))
    hub_cache.put("Qwen/Qwen2-VL-2B-Instruct", {"config.json": plain / "config.json"})
    with pytest.raises(ConfigError, match="is a Qwen2-VL model without HPSv3's reward head") as e:
        _loaded(HPSv3, checkpoint="Qwen/Qwen2-VL-2B-Instruct", base=str(hpsv3_release.base))
    assert "\n" not in str(e.value)


def test_hpsv3_rejects_a_base_of_another_architecture(tmp_path, hpsv3_release):
    from transformers import CLIPConfig

    CLIPConfig().save_pretrained(tmp_path / "clip")
    with pytest.raises(ConfigError, match="is a `clip` model, not Qwen2-VL"):
        _loaded(HPSv3, checkpoint=str(hpsv3_release.checkpoint), base=str(tmp_path / "clip"))


def test_a_pth_checkpoint_needs_the_opt_in_and_holds_tensors_only(tmp_path, hpsv3_release):
    from safetensors.torch import load_file

    pth = tmp_path / "HPSv3.pth"
    torch.save({"model": load_file(hpsv3_release.checkpoint)}, pth)  # the authors' loader unwraps "model"
    with pytest.raises(CheckpointError, match="allow_pickle: true"):
        _loaded(HPSv3, checkpoint=str(pth), base=str(hpsv3_release.base))
    r = _loaded(
        HPSv3, checkpoint=str(pth), base=str(hpsv3_release.base), allow_pickle=True, min_pixels=3136, max_pixels=3136
    )
    expected = _score(_tiny(HPSv3, hpsv3_release.seed), FRAMES, PROMPTS)
    torch.testing.assert_close(_score(r, FRAMES, PROMPTS), expected, rtol=1e-5, atol=1e-6)
    marker = tmp_path / "pwned"
    planted = plant_pickle(tmp_path / "planted.pth", marker)
    with pytest.raises(CheckpointError, match="does not hold only tensors"):
        _loaded(HPSv3, checkpoint=str(planted), base=str(hpsv3_release.base), allow_pickle=True)
    assert not marker.exists()


# -- video_reward ----------------------------------------------------------------------------------------


def test_videoreward_release_needs_the_pickle_opt_in(videoreward_release):
    with pytest.raises(CheckpointError) as e:
        _loaded(VideoReward, model=str(videoreward_release.repo), **TINY)
    msg = str(e.value)
    assert "\n" not in msg and "allow_pickle: true" in msg and "vader-vlm-convert videoreward" in msg


def test_videoreward_merges_the_lora_of_the_release(videoreward_release):
    r = _loaded(VideoReward, model=str(videoreward_release.repo), allow_pickle=True, **TINY)
    expected = _score(_merged_tiny_videoreward(videoreward_release), CLIP, PROMPTS[:1])
    torch.testing.assert_close(_score(r, CLIP, PROMPTS[:1]), expected, rtol=1e-5, atol=1e-5)
    unmerged = _score(_tiny(VideoReward, videoreward_release.seed), CLIP, PROMPTS[:1])
    assert not torch.allclose(unmerged, expected, atol=1e-3), "the LoRA does not change the tiny model's score"
    assert r.output_dim == 1 and r.norm == video_reward.RELEASE_NORM


def test_videoreward_converted_to_safetensors_loads_without_pickle(tmp_path, capsys, videoreward_release):
    out = tmp_path / "converted"
    assert convert.main(["videoreward", str(videoreward_release.repo), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "--allow-pickle" in err
    assert convert.main(["videoreward", str(videoreward_release.repo), str(out), "--allow-pickle"]) == 0
    assert (out / "checkpoint-7" / "model.safetensors").is_file() and not list(out.rglob("*.pth"))
    r = _loaded(VideoReward, model=str(out), **TINY)
    expected = _score(
        _loaded(VideoReward, model=str(videoreward_release.repo), allow_pickle=True, **TINY), CLIP, PROMPTS[:1]
    )
    torch.testing.assert_close(_score(r, CLIP, PROMPTS[:1]), expected, rtol=0, atol=0)


def test_videoreward_from_the_hub_cache(hub_cache, tmp_path, videoreward_release):
    repo = tmp_path / "repo"
    shutil.copytree(videoreward_release.repo, repo)
    meta = json.loads((repo / "model_config.json").read_text())
    meta["model_config"]["model_name_or_path"] = video_reward.VIDEOREWARD_BASE
    (repo / "model_config.json").write_text(json.dumps(meta))
    hub_cache.put(video_reward.VIDEOREWARD_REPO, repo)
    with pytest.raises(MissingWeightsError, match=r"Qwen/Qwen2-VL-2B-Instruct.*HF_HUB_OFFLINE"):
        _loaded(VideoReward, allow_pickle=True, **TINY)
    hub_cache.put(video_reward.VIDEOREWARD_BASE, videoreward_release.base)
    r = _loaded(VideoReward, allow_pickle=True, **TINY)
    expected = _score(_merged_tiny_videoreward(videoreward_release), CLIP, PROMPTS[:1])
    torch.testing.assert_close(_score(r, CLIP, PROMPTS[:1]), expected, rtol=1e-5, atol=1e-5)


def test_videoreward_missing_and_foreign_checkpoints_are_one_line(tmp_path, hub_cache, videoreward_release):
    with pytest.raises(MissingWeightsError) as e:
        _loaded(VideoReward)
    assert (
        "\n" not in str(e.value) and video_reward.VIDEOREWARD_REPO in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)
    )
    plain = tmp_path / "plain"
    shutil.copytree(videoreward_release.base, plain)
    (plain / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="has no model_config.json: it is a plain model"):
        _loaded(VideoReward, model=str(plain))
    with pytest.raises(MissingWeightsError, match="no such path"):
        _loaded(VideoReward, model=str(tmp_path / "nope"))


def test_videoreward_refuses_another_prompt_template(tmp_path, videoreward_release):
    repo = tmp_path / "repo"
    shutil.copytree(videoreward_release.repo, repo)
    meta = json.loads((repo / "model_config.json").read_text())
    meta["data_config"]["prompt_template_type"] = "simple"
    (repo / "model_config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="prompt template 'simple'"):
        _loaded(VideoReward, model=str(repo), allow_pickle=True)
