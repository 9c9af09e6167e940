"""memory.offload_encoders: condition encoders wait off the run's device and come back only to encode."""

import torch

from vader_core.config import MemorySection, build_config
from vader_core.offload import EncoderOffload, offload_enabled
from vader_plugins.tiny import TinyBackbone


def test_default_is_on_for_cuda_only():
    assert offload_enabled(MemorySection(), "cuda") and offload_enabled(MemorySection(), torch.device("cuda:1"))
    assert not offload_enabled(MemorySection(), "cpu")
    assert offload_enabled(MemorySection(offload_encoders=True), "cpu")
    assert not offload_enabled(MemorySection(offload_encoders=False), "cuda")


def test_encoder_moves_in_only_while_encoding(monkeypatch):
    """Devices recorded by a spy on the encoder's `.to` (on a CPU-only machine both ends are the CPU): stored at
    install, on the run's device exactly during encode_condition, stored again after; same embeddings."""
    bb = TinyBackbone()
    bb.load("cpu", torch.float32)
    ref = bb.encode_condition(["a cat"])["encoder_hidden_states"]
    encoder = bb.components["text_encoder"]
    moves, where = [], ["run"]
    real_to = encoder.to

    def spy(device, *a, **k):
        moves.append(str(device))
        return real_to("cpu", *a, **k)

    monkeypatch.setattr(encoder, "to", spy)
    original_embed = bb._embed

    def embed(texts):
        where.append(moves[-1])  # where the encoder was last sent when it runs
        return original_embed(texts)

    monkeypatch.setattr(bb, "_embed", embed)
    off = EncoderOffload(bb, device="cuda", store="cpu").install()
    assert moves == ["cpu"]
    out = bb.encode_condition(["a cat"])["encoder_hidden_states"]
    assert moves == ["cpu", "cuda", "cpu"]
    assert set(where[1:]) == {"cuda"}, "the encoder ran away from the run's device"
    torch.testing.assert_close(out, ref)
    off.remove()
    assert "encode_condition" not in vars(bb) and moves[-1] == "cuda"


def test_trainer_installs_offload_when_asked(tmp_path):
    from vader_core.trainer import Trainer

    cfg = build_config(
        None,
        [f"output.dir={tmp_path}", "output.logger=none", "memory.offload_encoders=true"],
        {"device": "cpu", "train.max_steps": 0},
    )
    tr = Trainer(cfg, progress=False)
    tr._setup()
    assert tr.encoder_offload is not None and "encode_condition" in vars(tr.backbone)
    tr.backbone.encode_condition(["a cat"])  # still works (both ends are the CPU here)


def test_module_offload_releases_once_the_backward_has_gone_through(monkeypatch):
    """A model in the backward path (a reward): fetched for its forward, kept on the run's device until the
    gradient has reached its inputs (its backward, checkpoint recomputation included, is then over), stored
    right after; without a backward, stored at once."""
    from vader_core.offload import ModuleOffload

    m = torch.nn.Linear(3, 2).requires_grad_(False)
    moves = []
    real_to = m.to

    def spy(device, *a, **k):
        moves.append(str(device))
        return real_to("cpu", *a, **k)

    monkeypatch.setattr(m, "to", spy)
    off = ModuleOffload([m], device="cuda", store="cpu")
    x = torch.randn(4, 3, requires_grad=True)
    off.fetch()
    y = m(x)
    off.release_after_backward(x, y)
    assert moves == ["cuda"], "released before the backward"
    y.square().sum().backward()
    assert moves == ["cuda", "cpu"] and x.grad is not None
    off.fetch()
    with torch.no_grad():
        off.release_after_backward(x, m(x))
    assert moves == ["cuda", "cpu", "cuda", "cpu"]
