"""The plugin registry: a thin typed wrapper around pluggy and the ``vader`` entry-point group.

Built-in plugins (``vader_plugins``) come through the root distribution's own entry point, exactly
like third-party ones. ``VADER_PLUGINS`` limits loading: a comma list of entry-point or distribution
names loads only those external plugins (built-ins always load); an empty string loads built-ins
only. A plugin that fails to import or register is recorded as broken and never stops the others.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .errors import PluginConflictError, PluginNotFoundError

if TYPE_CHECKING:
    from .backbone import BackbonePlugin
    from .method import MethodPlugin
    from .metric import MetricPlugin
    from .reward import RewardPlugin

Kind = Literal["backbone", "reward", "method", "metric"]
KINDS: tuple[Kind, ...] = ("backbone", "reward", "method", "metric")
_HOOKS: dict[Kind, str] = {
    "backbone": "register_backbones",
    "reward": "register_rewards",
    "method": "register_methods",
    "metric": "register_metrics",
}
BUILTIN_DIST = "vader"

#: Official plugins that live in their own distributions: name -> pip requirement.
KNOWN_PLUGINS: dict[str, str] = {
    "svd": "vader-svd",
    "modelscope": "vader-modelscope",
    "videocrafter2": "vader-videocrafter",
    "aesthetic": "vader-clip-rewards",
    "hps": "vader-clip-rewards",
    "pickscore": "vader-clip-rewards",
    "clip_score": "vader-clip-rewards",
    "mps": "vader-clip-rewards",
    "image_reward": "vader-clip-rewards",
    "object_removal": "vader-detection-rewards",
    "vjepa": "vader-video-rewards",
    "action": "vader-video-rewards",
    "motion": "vader-video-rewards",
    "dynamic_degree": "vader-video-rewards",
    "diversity": "vader-video-rewards",
    "hpsv3": "vader-vlm-rewards",
    "video_reward": "vader-vlm-rewards",
}


@dataclass
class PluginInfo:
    name: str
    kind: Kind
    cls: type[Any] | None
    package: str
    version: str
    summary: str
    status: str = "ok"
    plugin: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row ``vader plugins --json`` prints: who provides it, and every option with its type, default
        and description (the schema ``vader plugins NAME`` shows)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
            "summary": self.summary,
            "status": self.status,
            "details": details(self.cls) if self.cls is not None else {},
            "options": options_schema(self.cls) if self.cls is not None else [],
        }


def type_name(annotation: Any) -> str:
    """A field's type as a person reads it: ``float``, ``str | None``, ``'red' | 'green'``, ``list[str]``."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def options_schema(cls: type) -> list[dict[str, Any]]:
    """One ``{name, type, default, description}`` per field of ``cls.Options`` (defaults as JSON values;
    ``required`` where there is none)."""
    from pydantic_core import PydanticUndefined, to_jsonable_python

    out = []
    options: type[BaseModel] = getattr(cls, "Options")  # noqa: B009 - every plugin class has one
    for fname, f in options.model_fields.items():
        if f.default is PydanticUndefined and f.default_factory is None:
            default: Any = "required"
        else:
            try:
                default = to_jsonable_python(f.get_default(call_default_factory=True))
            except Exception:  # noqa: BLE001 - a default that is not JSON is shown as text
                default = str(f.get_default(call_default_factory=True))
        out.append(
            {"name": fname, "type": type_name(f.annotation), "default": default, "description": f.description or ""}
        )
    return out


def details(cls: type) -> dict[str, Any]:
    """What else a user of the plugin needs: what a reward or metric scores and its range, what a backbone
    is conditioned on."""
    keys = ("scores", "value_range", "conditioning")
    return {k: getattr(cls, k) for k in keys if getattr(cls, k, None) is not None}


@dataclass
class BrokenPlugin:
    name: str
    package: str
    version: str
    reason: str


@dataclass
class Registry:
    manager: pluggy.PluginManager
    entries: dict[Kind, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: list[BrokenPlugin] = field(default_factory=list)
    conflicts: dict[tuple[str, str], str] = field(default_factory=dict)

    def all(self) -> list[PluginInfo]:
        return [info for k in KINDS for info in sorted(self.entries[k].values(), key=lambda i: i.name)]


_registry: Registry | None = None
_lock = threading.Lock()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _selected(ep: md.EntryPoint, dist: str) -> bool:
    if dist == BUILTIN_DIST:
        return True
    allow = os.environ.get("VADER_PLUGINS")
    if allow is None:
        return True
    names = {n.strip() for n in allow.split(",") if n.strip()}
    return ep.name in names or dist in names


def _dist_of(ep: md.EntryPoint) -> tuple[str, str]:
    d = getattr(ep, "dist", None)
    if d is None:
        return "unknown", "?"
    return d.metadata["Name"], d.version


def _build() -> Registry:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    reg = Registry(pm)
    seen: set[str] = set()
    # The built-ins first: a third-party plugin that takes a built-in's name is the newcomer, and is the one
    # marked broken (the default reward must keep working for everyone in that environment).
    eps = sorted(
        md.entry_points(group=hookspecs.PROJECT), key=lambda e: (_dist_of(e)[0] != BUILTIN_DIST, e.name, e.value)
    )
    for ep in eps:
        dist, version = _dist_of(ep)
        key = f"{dist}:{ep.name}:{ep.value}"
        if key in seen or not _selected(ep, dist):
            continue
        seen.add(key)
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a broken plugin (even one calling sys.exit) must not break vader
            reg.broken.append(BrokenPlugin(ep.name, dist, version, f"import failed: {_one_line(e)}"))
            continue
        _register_module(reg, module, ep.name, dist, version)
    return reg


def _hook_typos(module: Any) -> str:
    """``; did you mean `register_rewards`?`` for hook implementations (or plain functions) of ``module`` whose
    names are close to a hook's but not one; empty when there is none."""
    hooks = list(_HOOKS.values())
    names = [n for n in dir(module) if not n.startswith("_") and n not in hooks and callable(getattr(module, n, None))]
    for n in names:
        close = difflib.get_close_matches(n, hooks, n=1, cutoff=0.8)
        if close:
            return f"; did you mean `{close[0]}` (not `{n}`)?"
    return ""


class _BadClass(Exception):
    """A registered class that breaks its contract; the message is the whole reason."""


def _register_module(reg: Registry, module: Any, plugin_name: str, dist: str, version: str) -> None:
    """Register one plugin object with pluggy and collect the classes its hooks register."""
    pm = reg.manager
    try:
        pm.register(module, name=f"{dist}:{plugin_name}")
        pm.check_pending()
    except Exception as e:  # noqa: BLE001
        try:
            pm.unregister(module)
        except Exception:  # noqa: BLE001
            pass
        reg.broken.append(
            BrokenPlugin(plugin_name, dist, version, f"invalid hooks: {_one_line(e)}{_hook_typos(module)}")
        )
        return
    if not pm.get_hookcallers(module):
        pm.unregister(module)
        hooks = ", ".join(_HOOKS.values())
        reg.broken.append(
            BrokenPlugin(
                plugin_name,
                dist,
                version,
                f"no hook implementations: forgot @hookimpl? (the entry point's module must define one of {hooks}, "
                f"decorated with vader_core.hookimpl){_hook_typos(module)}",
            )
        )
        return
    collected: list[PluginInfo] = []
    try:
        for kind, hook_name in _HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin is not module:
                    continue

                def register(cls: type, _kind: Kind = kind) -> None:
                    info = _info(cls, _kind, dist, version)
                    info.plugin = f"{dist}:{plugin_name}"
                    collected.append(info)

                impl.function(**{a: register for a in impl.argnames if a == "register"})
    except KeyboardInterrupt:
        raise
    except _BadClass as e:
        pm.unregister(module)
        reg.broken.append(BrokenPlugin(plugin_name, dist, version, str(e)))
        return
    except BaseException as e:  # noqa: BLE001 - SystemExit in a hook too
        pm.unregister(module)
        reg.broken.append(BrokenPlugin(plugin_name, dist, version, f"registration failed: {_one_line(e)}"))
        return
    if not collected:
        reg.broken.append(
            BrokenPlugin(plugin_name, dist, version, "its hooks registered nothing: call register(YourClass) in them")
        )
        return
    for info in collected:
        existing = reg.entries[info.kind].get(info.name)
        if existing is not None and existing.package == BUILTIN_DIST and info.package != BUILTIN_DIST:
            # The built-in keeps its name; the newcomer is what the user can change.
            reg.broken.append(
                BrokenPlugin(
                    plugin_name,
                    dist,
                    version,
                    f"its {info.kind} `{info.name}` ({_qual(info.cls)}) takes the name of vader's built-in "
                    f'{info.kind} ({_qual(existing.cls)}); the built-in keeps it: rename yours (name = "...") and reinstall {dist}',
                )
            )
            continue
        try:
            _add(reg, info)
        except PluginConflictError as e:
            reg.conflicts[(info.kind, info.name)] = str(e)
            reg.broken.append(BrokenPlugin(plugin_name, dist, version, str(e)))


def _info(cls: type, kind: Kind, dist: str, version: str) -> PluginInfo:
    from .backbone import BackbonePlugin
    from .method import MethodPlugin
    from .metric import MetricPlugin
    from .reward import RewardPlugin

    base = {"backbone": BackbonePlugin, "reward": RewardPlugin, "method": MethodPlugin, "metric": MetricPlugin}[kind]
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise TypeError(f"{kind} hooks must register subclasses of {base.__name__}, got {cls!r}")
    name = getattr(cls, "name", "")
    if not name:
        raise TypeError(f"{cls.__qualname__} has no `name`")
    from . import metric, reward

    problem = None
    if kind == "reward" and issubclass(cls, reward.RewardPlugin):
        problem = reward.contract_problem(cls)
    elif kind == "metric" and issubclass(cls, metric.MetricPlugin):
        problem = metric.contract_problem(cls)
    if problem:
        raise _BadClass(problem)
    summary = getattr(cls, "summary", "") or (cls.__doc__ or "").strip().split("\n")[0]
    return PluginInfo(name, kind, cls, dist, version, summary)


def _add(reg: Registry, info: PluginInfo) -> None:
    existing = reg.entries[info.kind].get(info.name)
    if existing is not None and existing.cls is not info.cls:
        raise PluginConflictError(
            f"{info.kind} `{info.name}` is registered twice: {_qual(existing.cls)} (package {existing.package}) "
            f"and {_qual(info.cls)} (package {info.package}); uninstall one of them or set VADER_PLUGINS"
        )
    reg.entries[info.kind][info.name] = info


def _qual(cls: type | None) -> str:
    return f"{cls.__module__}.{cls.__qualname__}" if cls is not None else "?"


def registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = _build()
        return _registry


def reset() -> None:
    """Forget the registry so the next call re-reads entry points (tests, after pip install)."""
    global _registry
    with _lock:
        _registry = None
    cache_clear = getattr(md.distributions, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()


def register_plugin(module: Any, name: str = "local", package: str = "local", version: str = "0") -> None:
    """Register a plugin object (module or class with hookimpls) directly, without an entry point.

    Used by tests and notebooks; the registry is built first if needed.
    """
    reg = registry()
    before = len(reg.broken)
    _register_module(reg, module, name, package, version)
    if len(reg.broken) > before:
        b = reg.broken.pop()
        for key in [k for k, v in reg.conflicts.items() if v == b.reason]:
            del reg.conflicts[key]
        if reg.manager.is_registered(module):
            unregister_plugin(module)
        raise PluginConflictError(
            b.reason if "registered twice" in b.reason else f"plugin `{name}` ({package}) is broken: {b.reason}"
        )


def unregister_plugin(module: Any) -> None:
    """Remove a plugin registered with :func:`register_plugin` and every class it registered."""
    reg = registry()
    plugin_name = reg.manager.get_name(module)
    if plugin_name is None:
        return
    reg.manager.unregister(module)
    for kind in KINDS:
        for n, info in list(reg.entries[kind].items()):
            if info.plugin == plugin_name:
                del reg.entries[kind][n]


def _get(kind: Kind, name: str) -> Any:
    reg = registry()
    if (kind, name) in reg.conflicts:
        raise PluginConflictError(reg.conflicts[(kind, name)])
    info = reg.entries[kind].get(name)
    if info is not None and info.cls is not None:
        return info.cls
    installed = sorted(reg.entries[kind])
    msg = f"unknown {kind} `{name}`; installed: {', '.join(installed) or 'none'}"
    close = difflib.get_close_matches(name, installed, n=1)
    if close:
        msg += f"; did you mean `{close[0]}`?"
    if name in KNOWN_PLUGINS:
        msg += f"; `{name}` comes with `pip install {KNOWN_PLUGINS[name]}`"
    msg += broken_note(name)
    raise PluginNotFoundError(msg)


def broken_note(name: str = "") -> str:
    """``; installed but broken: PACKAGE (reason)``: every broken plugin, the one that may provide ``name``
    first, so an unknown name never hides the plugin that failed to load (empty when none is broken)."""
    reg = registry()
    if not reg.broken:
        return ""
    likely = [b for b in reg.broken if name and (b.name == name or b.package == KNOWN_PLUGINS.get(name))]
    rest = [b for b in reg.broken if b not in likely]
    shown = "; ".join(f"{b.package} ({b.reason})" for b in [*likely, *rest][:3])
    more = f"; and {len(reg.broken) - 3} more (see `vader plugins`)" if len(reg.broken) > 3 else ""
    return f"; installed but broken: {shown}{more}"


def get_backbone(name: str) -> type[BackbonePlugin]:
    """The backbone class registered as ``name``."""
    return _get("backbone", name)


def get_reward(name: str) -> type[RewardPlugin]:
    """The reward class registered as ``name``."""
    return _get("reward", name)


def get_method(name: str) -> type[MethodPlugin]:
    """The training method class registered as ``name``."""
    return _get("method", name)


def get_metric(name: str) -> type[MetricPlugin]:
    """The metric class registered as ``name``."""
    return _get("metric", name)


def has(kind: Kind, name: str) -> bool:
    """Whether a plugin of ``kind`` is registered as ``name`` (no error either way)."""
    return name in registry().entries[kind]


def list_plugins() -> tuple[list[PluginInfo], list[BrokenPlugin]]:
    reg = registry()
    return reg.all(), list(reg.broken)
