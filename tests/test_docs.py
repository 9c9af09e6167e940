from pathlib import Path

from vader_core import docs_gen, hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_hook_documented():
    text = (DOCS / "plugins.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert hooks == ["register_backbones", "register_methods", "register_metrics", "register_rewards"]
    for h in hooks:
        assert f"`{h}(register)`" in text, h


def test_every_cli_command_documented_and_current():
    text = (DOCS / "cli.md").read_text()
    for name in docs_gen.command_names():
        assert f"`vader {name}`" in text
    assert docs_gen.reference() in text, "docs/cli.md is stale: run `make docs`"


def test_configuration_reference_current():
    assert docs_gen.config_reference() in (DOCS / "configuration.md").read_text(), "run `make docs`"
