"""Loading through the real code paths: tiny random weights saved in the layout of the published files
(local path options, and an offline Hugging Face cache), and one-line errors when weights are missing."""

import argparse

import pytest
import torch
from safetensors.torch import save_file
from vader_clip_rewards import HPS, Aesthetic, ClipScore, PickScore
from vader_clip_rewards import clip_score as clip_score_mod
from vader_clip_rewards import hps as hps_mod
from vader_clip_rewards import pickscore as pickscore_mod
from vader_clip_rewards._common import TINY_CLIP
from vader_clip_rewards.aesthetic import MLP_FILE, MLP_HUB_FILE, MLP_HUB_REPO, tiny_components

from vader_core.errors import CheckpointError, ConfigError, MissingWeightsError

SEED = 3
VIDEO = torch.rand(2, 2, 3, 48, 80, generator=torch.Generator().manual_seed(0))
PROMPTS = ["a cat playing chess", "a dog surfing a wave"]


def _scores(r):
    with torch.no_grad():
        return r(VIDEO, PROMPTS)


def _in_memory(cls, **opts):
    r = cls(cls.Options(**opts))
    r.load_tiny("cpu", torch.float32, seed=SEED)
    return r


def _loaded(cls, **opts):
    r = cls(cls.Options(**opts))
    r.load("cpu", torch.float32)
    return r


def _same(a, b):
    torch.testing.assert_close(_scores(a), _scores(b), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ aesthetic
def _save_aesthetic(tmp_path):
    clip, mlp = tiny_components(SEED)
    clip_file = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(clip_file))
    mlp_file = tmp_path / MLP_FILE
    torch.save(mlp.state_dict(), mlp_file)
    return clip_file, mlp_file


def test_aesthetic_mlp_file_has_the_published_keys(tmp_path):
    _, mlp_file = _save_aesthetic(tmp_path)
    sd = torch.load(mlp_file, weights_only=True)
    assert sorted(sd) == sorted(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))
    assert [tuple(sd[f"layers.{i}.weight"].shape)[0] for i in (0, 2, 4, 6, 7)] == [1024, 128, 64, 16, 1]


def test_aesthetic_loads_local_files(tmp_path, hub_cache):
    clip_file, mlp_file = _save_aesthetic(tmp_path)
    r = _loaded(Aesthetic, clip_model=TINY_CLIP, clip_pretrained=str(clip_file), mlp_path=str(mlp_file))
    _same(r, _in_memory(Aesthetic))


def test_aesthetic_mlp_from_the_hub_cache(tmp_path, hub_cache):
    clip_file, mlp_file = _save_aesthetic(tmp_path)
    hub_cache.put(MLP_HUB_REPO, {MLP_HUB_FILE: mlp_file})
    clip_bin = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(tiny_components(SEED)[0].state_dict(), clip_bin)
    r = _loaded(Aesthetic, clip_model=TINY_CLIP, clip_pretrained=str(clip_bin))
    _same(r, _in_memory(Aesthetic))


def test_aesthetic_rejects_a_foreign_mlp(tmp_path):
    clip_file, _ = _save_aesthetic(tmp_path)
    bad = tmp_path / "bad.pth"
    torch.save({"layers.0.weight": torch.zeros(1024, 32), "layers.0.bias": torch.zeros(1024)}, bad)
    with pytest.raises(CheckpointError, match="missing keys") as e:
        _loaded(Aesthetic, clip_model=TINY_CLIP, clip_pretrained=str(clip_file), mlp_path=str(bad))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ hps
@pytest.mark.parametrize("layout", ["state_dict", "bare", "ddp", "extra_objects"])
def test_hps_loads_the_checkpoint_layouts(tmp_path, layout):
    sd = hps_mod.tiny_model(SEED).state_dict()
    obj = {
        "state_dict": {"state_dict": sd},
        "bare": sd,
        "ddp": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "extra_objects": {"state_dict": sd, "epoch": 3, "args": argparse.Namespace(lr=1e-5)},
    }[layout]
    path = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save(obj, path)
    opts = {}
    if layout == "extra_objects":  # Python objects besides tensors: unpickled only with the opt-in
        with pytest.raises(CheckpointError, match="allow_pickle"):
            _loaded(HPS, checkpoint=str(path), clip_model=TINY_CLIP)
        opts = {"allow_pickle": True}
    _same(_loaded(HPS, checkpoint=str(path), clip_model=TINY_CLIP, **opts), _in_memory(HPS))


@pytest.mark.parametrize("version,filename", [("v2", "HPS_v2_compressed.pt"), ("v2.1", "HPS_v2.1_compressed.pt")])
def test_hps_from_the_hub_cache(tmp_path, hub_cache, version, filename):
    path = tmp_path / filename
    torch.save({"state_dict": hps_mod.tiny_model(SEED).state_dict()}, path)
    hub_cache.put(hps_mod.HPS_REPO, {filename: path})
    _same(_loaded(HPS, version=version, clip_model=TINY_CLIP), _in_memory(HPS))


def test_hps_rejects_a_checkpoint_of_another_model(tmp_path):
    path = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="unexpected keys") as e:
        _loaded(HPS, checkpoint=str(path), clip_model=TINY_CLIP)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ pickscore
def test_pickscore_loads_a_save_pretrained_directory(tmp_path):
    pickscore_mod.tiny_model(SEED).save_pretrained(tmp_path / "pick")
    _same(_loaded(PickScore, model=str(tmp_path / "pick")), _in_memory(PickScore))


def test_pickscore_from_the_hub_cache(tmp_path, hub_cache):
    pickscore_mod.tiny_model(SEED).save_pretrained(tmp_path / "pick")
    hub_cache.put(pickscore_mod.PICKSCORE_REPO, {"": tmp_path / "pick"})
    _same(_loaded(PickScore), _in_memory(PickScore))


# ----------------------------------------------------------------------------------------- clip_score
@pytest.mark.parametrize("quick_gelu", [False, True])
def test_clip_score_loads_an_open_clip_checkpoint(tmp_path, quick_gelu):
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(clip_score_mod.tiny_model(SEED, quick_gelu).state_dict(), path)
    loaded = _loaded(ClipScore, clip_model=TINY_CLIP, clip_pretrained=str(path), quick_gelu=quick_gelu)
    _same(loaded, _in_memory(ClipScore, quick_gelu=quick_gelu))
    if quick_gelu:  # the activation matters: the same weights under GELU score differently
        other = _loaded(ClipScore, clip_model=TINY_CLIP, clip_pretrained=str(path), quick_gelu=False)
        assert not torch.allclose(_scores(loaded), _scores(other))


# ------------------------------------------------------------------------------------- missing weights
def _missing(cls, **opts):
    with pytest.raises(MissingWeightsError) as e:
        _loaded(cls, **opts)
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_weights_offline_name_file_source_and_option(tmp_path, hub_cache):
    msg = _missing(Aesthetic)
    assert MLP_FILE in msg and MLP_HUB_REPO in msg and "`mlp_path`" in msg and "HF_HUB_OFFLINE" in msg

    _, mlp_file = _save_aesthetic(tmp_path)
    msg = _missing(Aesthetic, mlp_path=str(mlp_file))
    assert "timm/vit_large_patch14_clip_224.openai" in msg and "open_clip_model.safetensors" in msg
    assert "`clip_pretrained`" in msg

    msg = _missing(HPS)
    assert "HPS_v2.1_compressed.pt" in msg and "xswu/HPSv2" in msg and "`checkpoint`" in msg
    assert "HPS_v2_compressed.pt" in _missing(HPS, version="v2")

    msg = _missing(PickScore)
    assert "yuvalkirstain/PickScore_v1" in msg and "`model`" in msg and "HF_HUB_OFFLINE" in msg

    msg = _missing(ClipScore, clip_model="ViT-B-32", clip_pretrained="openai")
    assert "timm/vit_base_patch32_clip_224.openai" in msg and "`clip_pretrained`" in msg


def test_missing_local_paths(tmp_path, hub_cache):
    msg = _missing(HPS, checkpoint=str(tmp_path / "nope" / "HPS_v2.1_compressed.pt"))
    assert "no such file" in msg and "`checkpoint`" in msg and "xswu/HPSv2" in msg
    assert "no such directory" in _missing(PickScore, model=str(tmp_path / "no-dir"))
    assert "no such file" in _missing(Aesthetic, mlp_path=str(tmp_path / "mlp.pth"))
    assert "no such file" in _missing(ClipScore, clip_model=TINY_CLIP, clip_pretrained=str(tmp_path / "w.bin"))
    with pytest.raises(ConfigError, match="pretrained tag"):
        _loaded(ClipScore, clip_pretrained="no_such_tag")
    with pytest.raises(ConfigError, match="unknown open_clip architecture `ViT-L-41`; did you mean"):
        _loaded(ClipScore, clip_model="ViT-L-41")


def test_cli_score_without_weights_is_one_line(tmp_path, hub_cache, capsys):
    import numpy as np

    from vader_core.cli import main

    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(SystemExit) as e:
        main(["score", str(tmp_path / "v.npy"), "--reward", "hps", "--prompt", "a cat", "--device", "cpu"])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "HPS_v2.1_compressed.pt" in err[0] and "--set checkpoint=PATH" in err[0]
