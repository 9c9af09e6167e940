"""Loading through the real code paths: ``from_pretrained`` of ``save_pretrained`` directories and of an
offline Hugging Face cache, detector auto-detection, the processor's normalisation, and one-line errors
for a bad target, a wrong detector and missing weights."""

import json
import shutil

import pytest
import torch
from vader_detection_rewards import ObjectRemoval

from vader_core.errors import ConfigError, MissingWeightsError

VIDEO = torch.rand(2, 2, 3, 48, 80, generator=torch.Generator().manual_seed(0))


def _loaded(**opts):
    r = ObjectRemoval(ObjectRemoval.Options(**opts))
    r.load("cpu", torch.float32)
    return r


def _tiny(**opts):
    r = ObjectRemoval(ObjectRemoval.Options(**opts))
    r.load_tiny("cpu", torch.float32, seed=0)
    return r


def _scores(r):
    with torch.no_grad():
        return r.confidence(VIDEO.flatten(0, 1))


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def test_save_pretrained_directories_give_the_in_memory_scores(saved):
    opts = {"top_class_only": False, "threshold": 0.005}
    a, b = _loaded(model=str(saved.yolos_coco), **opts), _tiny(**opts)
    assert a.kind == b.kind == "yolos"
    torch.testing.assert_close(_scores(a), _scores(b), rtol=1e-6, atol=1e-6)
    a = _loaded(model=str(saved.owlvit), target="a photo of a book")
    b = _tiny(detector="owlvit", target="a photo of a book")
    assert a.kind == b.kind == "owlvit"  # detected from config.model_type
    torch.testing.assert_close(_scores(a), _scores(b), rtol=1e-6, atol=1e-6)
    assert _scores(a).abs().sum() > 0


def test_default_models_from_the_offline_hub_cache(saved, hub_cache):
    hub_cache.put("hustvl/yolos-base", saved.yolos_coco)
    hub_cache.put("google/owlvit-base-patch32", saved.owlvit)
    r = _loaded()
    assert r.kind == "yolos" and r.detector.target_id == 84  # `book` in the COCO label set
    assert _loaded(detector="owlvit", target="a red umbrella").kind == "owlvit"
    hub_cache.put("hustvl/yolos-tiny", saved.yolos_small)
    assert _loaded(model="hustvl/yolos-tiny", target="dog").detector.target_id == 2


def test_target_names_are_matched_exactly_then_ignoring_case(saved):
    assert _loaded(model=str(saved.yolos_coco), target="Teddy Bear").detector.target_id == 88
    assert _loaded(model=str(saved.yolos_small), target="red umbrella").detector.target_id == 3


def test_bad_target_did_you_mean_before_any_weights_are_read(saved, tmp_path):
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(saved.yolos_coco / "config.json", config_only / "config.json")
    with pytest.raises(ConfigError) as e:
        _loaded(model=str(config_only), target="bok")
    msg = _one_line(e)
    assert "did you mean `book`" in msg and "config.id2label" in msg and "detector: owlvit" in msg
    with pytest.raises(ConfigError, match="did you mean `teddy bear`"):
        _loaded(model=str(saved.yolos_coco), target="teddybear")
    with pytest.raises(ConfigError) as e:
        _loaded(model=str(saved.yolos_coco), target="N/A")  # the placeholder of unused COCO ids
    assert "not a class" in _one_line(e)
    with pytest.raises(ConfigError, match="did you mean `book`"):
        _tiny(target="books")
    with pytest.raises(ConfigError, match="not a class"):
        _loaded(model=str(saved.yolos_coco), target="a red umbrella")


def test_detector_must_match_the_model(saved, tmp_path):
    with pytest.raises(ConfigError) as e:
        _loaded(model=str(saved.owlvit), detector="yolos")
    assert "`owlvit` model" in _one_line(e) and "detector: owlvit" in str(e.value)
    with pytest.raises(ConfigError, match="detector: yolos"):
        _loaded(model=str(saved.yolos_coco), detector="owlvit")
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        tmp_path / "vit"
    )
    with pytest.raises(ConfigError) as e:
        _loaded(model=str(tmp_path / "vit"))
    assert "`vit` model" in _one_line(e) and "hustvl/yolos-base" in str(e.value)


def test_processor_normalisation_is_read_when_present(saved, tmp_path):
    d = tmp_path / "yolos"
    shutil.copytree(saved.yolos_small, d)
    assert _loaded(model=str(d)).detector.norm == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    (d / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "YolosImageProcessor",
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.5, 1.0],
            }
        )
    )
    r = _loaded(model=str(d))
    assert r.detector.norm == ((0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    (d / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    assert _loaded(model=str(d)).detector.norm is None


def test_missing_weights_are_one_line(saved, hub_cache, tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        _loaded()
    msg = _one_line(e)
    assert "hustvl/yolos-base" in msg and "HF_HUB_OFFLINE" in msg and "`model`" in msg and "--set model=DIR" in msg
    with pytest.raises(MissingWeightsError) as e:
        _loaded(detector="owlvit", target="a cat")
    assert "google/owlvit-base-patch32" in _one_line(e)
    with pytest.raises(MissingWeightsError) as e:
        _loaded(model=str(tmp_path / "nowhere"))
    assert "no such directory" in _one_line(e)
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(saved.yolos_coco / "config.json", config_only / "config.json")
    with pytest.raises(MissingWeightsError) as e:
        _loaded(model=str(config_only))
    assert str(config_only) in _one_line(e)
    no_tokenizer = tmp_path / "owlvit-no-tokenizer"
    no_tokenizer.mkdir()
    for f in saved.owlvit.iterdir():
        if f.name in ("config.json", "model.safetensors"):
            shutil.copy(f, no_tokenizer / f.name)
    with pytest.raises(MissingWeightsError) as e:
        _loaded(model=str(no_tokenizer), target="a cat")
    assert "tokenizer" in _one_line(e)


def test_cli_score_without_weights_is_one_line(tmp_path, hub_cache, capsys):
    import numpy as np

    from vader_core.cli import main

    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(SystemExit) as e:
        main(["score", str(tmp_path / "v.npy"), "--reward", "object_removal", "--device", "cpu"])
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "hustvl/yolos-base" in err[0] and "--set model=DIR" in err[0]
