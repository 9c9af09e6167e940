"""vader_core.hub (hub id or local directory, HF_HUB_OFFLINE, one-line errors) and vader_core.modules."""

import subprocess
import sys

import pytest

from vader_core.errors import MissingWeightsError
from vader_core.hub import (
    OFFLINE_REASON,
    first_line,
    hub_offline,
    looks_local,
    missing_model,
    missing_weights,
    resolve_model,
    unavailable_reason,
)


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), (" ON ", True), ("yes", True), ("0", False), ("", False), ("no", False)],
)
def test_hub_offline_reads_the_environment_at_each_call(monkeypatch, value, expected):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is expected


def test_hub_offline_follows_huggingface_hub_constants(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_offline()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert not hub_offline()


@pytest.mark.parametrize(
    "ref, local",
    [
        ("owner/name", False),
        ("name", False),
        ("./name", True),
        ("/abs/dir", True),
        ("~/models/x", True),
        ("a/b/c", True),
        ("C:\\models\\x", True),
    ],
)
def test_looks_local_tells_directories_from_hub_ids(ref, local):
    assert looks_local(ref) is local


def test_looks_local_an_existing_relative_directory(tmp_path, monkeypatch):
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert looks_local("owner/name")  # exists here: local, though it has the shape of a hub id


def test_resolve_model_hub_id_and_local_directory(tmp_path, monkeypatch):
    assert resolve_model("owner/name", reward="r", repo="owner/name") == ("owner/name", False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ckpt").mkdir()
    assert resolve_model("~/ckpt", reward="r", repo="owner/name") == (str(tmp_path / "ckpt"), True)


def test_resolve_model_missing_directory_is_one_actionable_line(tmp_path):
    ref = str(tmp_path / "nope")
    with pytest.raises(MissingWeightsError) as e:
        resolve_model(ref, reward="pickscore", repo="yuvalkirstain/PickScore_v1")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"pickscore: model `{ref}` (config.json + model.safetensors) not available: no such directory {ref!r}."
    )
    assert "`hf download yuvalkirstain/PickScore_v1`" in msg
    assert "`--set rewards.N.model=DIR` in `vader train`" in msg and "`--set model=DIR` in `vader score`" in msg


def test_a_file_is_not_a_model_directory(tmp_path):
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"")
    with pytest.raises(MissingWeightsError, match="no such directory"):
        resolve_model(str(f), reward="r", repo="o/n")


def test_unavailable_reason_offline_only_for_hub_ids(monkeypatch):
    err = OSError("We couldn't connect to 'https://huggingface.co'\nsecond line")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert unavailable_reason(err, local=False) == OFFLINE_REASON
    assert unavailable_reason(err, local=True) == "We couldn't connect to 'https://huggingface.co'"
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert unavailable_reason(err, local=False) == "We couldn't connect to 'https://huggingface.co'"


def test_first_line():
    assert first_line(ValueError("  a\nb")) == "a"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("x" * 300), limit=10) == "x" * 10


def test_missing_model_wording_options():
    e = missing_model(
        "objects", "a/b", "why", repo="hustvl/yolos-base", what="detector", files="config.json", option="detector_model"
    )
    assert isinstance(e, MissingWeightsError)
    assert str(e).startswith("objects: detector `a/b` (config.json) not available: why. ")
    assert "reward option `detector_model` (config `detector_model: DIR`" in str(e)


def test_missing_weights_is_the_one_backbone_wording(monkeypatch):
    """What failed (first sentence), whether downloads are off, the `hf download` command, the option."""
    err = OSError("owner/name does not appear to have a file named config.json. Check out https://...\nmore")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = missing_weights("owner/name", err, option="backbone.model", what="Wan weights")
    assert isinstance(e, MissingWeightsError)
    assert str(e) == (
        "cannot load Wan weights `owner/name` (HF_HUB_OFFLINE is set): owner/name does not appear to "
        "have a file named config.json; download it with `hf download owner/name` or set "
        "`backbone.model` to a local diffusers directory (--set backbone.model=/path/to/name)"
    )
    e = missing_weights(
        "o/vc",
        KeyError(),
        option="backbone.model",
        filename="model.ckpt",
        files=["model.ckpt"],
        local="a local model.ckpt",
    )
    assert str(e).startswith("cannot load `o/vc` file `model.ckpt` (HF_HUB_OFFLINE is set): KeyError; ")
    assert str(e).endswith(
        "`hf download o/vc model.ckpt` or set `backbone.model` to a local model.ckpt "
        "(--set backbone.model=/path/to/model.ckpt)"
    )
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert "HF_HUB_OFFLINE" not in str(missing_weights("o/n", err, option="backbone.vae"))


def test_from_pretrained_offline_error_with_a_real_loader(tmp_path, monkeypatch):
    """The rules around a real transformers loader: an empty cache and HF_HUB_OFFLINE give the offline reason."""
    transformers = pytest.importorskip("transformers")
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    source, local = resolve_model("someone/not-cached-model", reward="r", repo="someone/not-cached-model")
    with pytest.raises(OSError) as e:
        transformers.AutoConfig.from_pretrained(source, cache_dir=str(tmp_path / "cache"))
    assert unavailable_reason(e.value, local) == OFFLINE_REASON

    d = tmp_path / "saved"
    transformers.BertConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    ).save_pretrained(d)
    source, local = resolve_model(str(d), reward="r", repo="o/n")
    assert local and transformers.AutoConfig.from_pretrained(source).model_type == "bert"


def test_seeded_is_reproducible_and_restores_the_callers_stream():
    import torch

    from vader_core.modules import seeded

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.rand(2)
    after = torch.rand(3)
    with seeded(7):
        b = torch.rand(2)
    assert torch.equal(a, b) and torch.equal(after, expected)


def test_freeze():
    import torch

    from vader_core.modules import freeze

    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    out = freeze(m, "cpu", torch.float64)
    assert out is m and not m.training and not any(p.requires_grad for p in m.parameters())
    assert all(p.dtype == torch.float64 for p in m.parameters())


def test_importing_the_helpers_is_cheap():
    code = (
        "import sys, vader_core.hub, vader_core.modules; "
        "print([m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
