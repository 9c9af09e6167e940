import json
import subprocess
import sys
import types

import pytest

from vader_core import hookimpl, plugins
from vader_core.errors import PluginConflictError, PluginNotFoundError
from vader_core.reward import RewardPlugin


def test_builtins_registered_through_entry_point():
    infos, broken = plugins.list_plugins()
    names = {(i.kind, i.name) for i in infos}
    for n in ("brightness", "saturation", "contrast", "sharpness", "temporal_smoothness", "target_color"):
        assert ("reward", n) in names
    assert ("backbone", "tiny") in names and ("method", "vader") in names
    assert all(i.package == "vader" for i in infos)
    assert broken == []


def test_unknown_name_suggests_and_names_package():
    with pytest.raises(PluginNotFoundError) as e:
        plugins.get_reward("brightnes")
    assert "did you mean `brightness`" in str(e.value) and "installed:" in str(e.value)
    with pytest.raises(PluginNotFoundError) as e:
        plugins.get_reward("aesthetic")
    assert "pip install vader-clip-rewards" in str(e.value)
    with pytest.raises(PluginNotFoundError) as e:
        plugins.get_backbone("svd")
    assert "pip install vader-svd" in str(e.value)


def _module_registering(name, cls):
    mod = types.ModuleType(name)

    @hookimpl
    def register_rewards(register):
        register(cls)

    mod.register_rewards = register_rewards
    return mod


def test_duplicate_name_names_both_classes():
    class Brightness2(RewardPlugin):
        name = "brightness"
        summary = "dup"

        def score_frames(self, frames, prompts):
            return frames.mean(dim=(1, 2, 3))

    mod = _module_registering("dup_plugin", Brightness2)
    with pytest.raises(PluginConflictError) as e:
        plugins.register_plugin(mod, name="dup", package="vader-dup")
    msg = str(e.value)
    assert "vader_plugins.rewards.Brightness" in msg and "Brightness2" in msg and "vader-dup" in msg
    assert "the built-in keeps it: rename yours" in msg
    # the registry still works and still has the original
    assert plugins.get_reward("brightness").__module__ == "vader_plugins.rewards"


def test_register_and_unregister_local_plugin():
    class Local(RewardPlugin):
        name = "local_reward"
        summary = "local"

        def score_frames(self, frames, prompts):
            return frames.mean(dim=(1, 2, 3))

    mod = _module_registering("local_plugin", Local)
    plugins.register_plugin(mod, name="local")
    assert plugins.get_reward("local_reward") is Local
    plugins.unregister_plugin(mod)
    with pytest.raises(PluginNotFoundError):
        plugins.get_reward("local_reward")


def test_registering_non_plugin_class_is_reported():
    mod = _module_registering("bad_plugin", int)
    with pytest.raises(PluginConflictError, match="subclasses of RewardPlugin"):
        plugins.register_plugin(mod, name="bad")


def test_plugins_command_is_instant_and_does_not_import_torch():
    code = (
        "import sys; from vader_core.cli import main\n"
        "try:\n    main(['plugins', '--json'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'vader plugins imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {"name", "kind", "package", "version", "summary", "status"} <= set(rows[0])
