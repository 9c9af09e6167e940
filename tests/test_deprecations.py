"""Paths that moved keep working for a release, each with a DeprecationWarning that names the new home."""

import importlib
import sys

import pytest

from vader_core.config import build_config


def test_config_resolve_is_resolve_config():
    from vader_core.config import resolve
    from vader_core.resolve import resolve_config

    cfg = build_config(None, ["backbone.frames=2"], {"rewards": ["saturation"]})
    with pytest.warns(DeprecationWarning, match="vader_core.resolve.resolve_config"):
        old = resolve(cfg)
    assert old == resolve_config(cfg)


def test_objective_from_config_is_build_objective():
    from vader_core.objective import Objective

    with pytest.warns(DeprecationWarning, match="vader_core.resolve.build_objective"):
        objective = Objective.from_config(build_config(None, [], {"rewards": ["saturation=2"]}).rewards)
    assert [(t.name, t.weight) for t in objective.terms] == [("saturation", 2.0)]


@pytest.mark.parametrize("name", ["build_metrics", "metric_kind", "resolve_validation"])
def test_guard_names_moved_to_resolve(name):
    import vader_core.guard
    import vader_core.resolve

    with pytest.warns(DeprecationWarning, match=f"vader_core.resolve.{name}"):
        assert getattr(vader_core.guard, name) is getattr(vader_core.resolve, name)
    with pytest.raises(AttributeError):
        vader_core.guard.no_such_name  # noqa: B018


def test_sanity_module_moved():
    sys.modules.pop("vader_core.sanity", None)
    with pytest.warns(DeprecationWarning, match="vader_core.errors.warn"):
        sanity = importlib.import_module("vader_core.sanity")
    from vader_core import config, errors, resolve

    assert (sanity.warn, sanity.check_finite, sanity.check_resolved) == (
        errors.warn,
        config.check_finite,
        resolve.check_resolved,
    )


def test_trainer_names_stay_importable():
    from vader_core import resolve
    from vader_core.trainer import RunState, Trainer, derive_seed, resolve_precision, schedule_change_note  # noqa: F401

    assert resolve_precision is resolve.resolve_precision
