"""The layers of vader_core, checked: each module imports only from its own layer or those below, and no
package of the repository (the core, the built-in plugins, every plugin distribution) has an import circle.

Every import counts: top-level ones, those inside functions and those under ``TYPE_CHECKING``, because a
circle hidden in a function is still a circle (docs/architecture.md draws the layers).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The layers of vader_core from the bottom up: top-level module (or package) names.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"errors", "lazy", "hub", "media", "modules", "tokenizers", "options"}),
    ("contracts and schema", {"backbone", "reward", "metric", "method", "objective", "hookspecs", "config"}),
    ("registry", {"plugins", "__init__"}),
    ("resolution", {"resolve", "sanity"}),
    (
        "engine",
        {
            "sampling",
            "speed",
            "checkpointing",
            "lora",
            "checkpoint",
            "regularization",
            "guard",
            "offload",
            "estimate",
            "data",
            "faults",
            "official_lora",
            "unet_t2v",
            "dit_t2v",
            "trainer",
            "run",
        },
    ),
    ("apps", {"cli", "cli_errors", "evaluate", "docs_gen", "testing", "scaffold"}),
]

#: Imports that break the rules on purpose, each with its reason; an entry no longer needed fails too.
#: Deprecation aliases import their new home when they are used (never at import time), for one release.
ALLOWED: dict[tuple[str, str], str] = {
    ("vader_core.config", "vader_core.resolve"): "deprecated alias `vader_core.config.resolve`",
    ("vader_core.objective", "vader_core.resolve"): "deprecated alias `Objective.from_config`",
}

#: Where the packages of the repository live: source root -> top-level package names found there.
SOURCE_ROOTS = [ROOT, *sorted((ROOT / "plugins").glob("*/src"))]


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    file: Path
    line: int
    in_function: bool


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every package of the repository."""
    found: dict[str, Path] = {}
    for root in SOURCE_ROOTS:
        for pkg in sorted(p.parent for p in root.glob("*/__init__.py")):
            if not pkg.name.startswith("vader"):
                continue
            for f in sorted(pkg.rglob("*.py")):
                rel = f.relative_to(root).with_suffix("")
                parts = list(rel.parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = f
    return found


def _is_package(file: Path) -> bool:
    return file.name == "__init__.py"


def _imports(name: str, file: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a module within the repository's packages, resolved to module names."""
    tree = ast.parse(file.read_text(), str(file))
    package = name if _is_package(file) else name.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod itself.
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in child.names]
            for t in targets:
                # ``import a.b.c`` of a name that is not a module of ours: its longest module prefix.
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    out.append(Import(name, t, file, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "vader_core":
        return None
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(
        f"`{module}` is in no layer of tests/test_layers.py: add it to LAYERS (and to docs/architecture.md)"
    )


def _all_imports() -> list[Import]:
    modules = _modules()
    return [imp for name, f in modules.items() for imp in _imports(name, f, modules)]


def _rel(p: Path, root: Path) -> str:
    return str(p.relative_to(root))


def upward_imports(imports: list[Import], root: Path = ROOT) -> list[str]:
    """One line for each import of a module from a layer above the importer's."""
    bad = []
    for imp in imports:
        if (imp.importer, imp.target) in ALLOWED:
            continue
        low, high = _layer_of(imp.importer), _layer_of(imp.target)
        if low is None or high is None or high <= low:
            continue
        bad.append(
            f"{_rel(imp.file, root)}:{imp.line}: `{imp.importer}` ({LAYERS[low][0]}) imports `{imp.target}` "
            f"({LAYERS[high][0]}), a layer above it"
        )
    return bad


def cycles(imports: list[Import], root: Path = ROOT) -> list[str]:
    """One line per import circle (strongly connected component), naming each link's file and line."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if (imp.importer, imp.target) not in ALLOWED:
            graph.setdefault(imp.importer, {}).setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    lines = []
    for comp in found:
        members = set(comp)
        links = [graph[a][b] for a in comp for b in sorted(graph.get(a, {})) if b in members]
        where = "; ".join(f"{_rel(i.file, root)}:{i.line} {i.importer} -> {i.target}" for i in links)
        lines.append(f"import circle {' <-> '.join(comp)}: {where}")
    return lines


def test_every_core_module_is_in_a_layer():
    for name in _modules():
        _layer_of(name)


def test_no_upward_import():
    bad = upward_imports(_all_imports())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_circle():
    bad = cycles(_all_imports())
    assert not bad, "\n".join(bad)


def test_allowed_exceptions_are_deprecation_aliases_used_lazily():
    """Each allowed exception still exists (else it is stale) and is inside a function (never at import time)."""
    imports = _all_imports()
    for key, why in ALLOWED.items():
        hits = [i for i in imports if (i.importer, i.target) == key]
        assert hits, f"ALLOWED lists {key} ({why}) but no such import exists any more: remove it"
        assert all(i.in_function for i in hits), f"{key} ({why}) must be imported inside a function"


#: Where a name may become a plugin class or instance: the registry and the resolution module. The contract
#: mixins of vader_core.testing validate a given class's ``Options`` on purpose (that is what they test).
BUILDERS = {"vader_core/plugins.py", "vader_core/resolve.py", "vader_core/__init__.py"}
_LOOKUPS = {"get_backbone", "get_reward", "get_method", "get_metric"}


def hand_built_plugins(files: list[Path], root: Path = ROOT) -> list[str]:
    """One line per registry lookup (``plugins.get_reward(name)``) or ``cls(cls.Options.model_validate(...))``
    outside :data:`BUILDERS`."""
    bad = []
    for f in files:
        rel = _rel(f, root)
        if rel in BUILDERS or rel.startswith("vader_core/testing"):
            continue
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            fn = node.func
            if fn.attr in _LOOKUPS:
                bad.append(f"{rel}:{node.lineno}: `{fn.attr}` looks a plugin up by name; use vader_core.resolve")
            elif fn.attr == "model_validate" and isinstance(fn.value, ast.Attribute) and fn.value.attr == "Options":
                bad.append(f"{rel}:{node.lineno}: a plugin's options validated by hand; use vader_core.resolve")
    return bad


def test_plugins_are_built_only_in_resolve():
    files = sorted((ROOT / "vader_core").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    bad = hand_built_plugins(files)
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------- the checker checks itself
def _fake_tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    out = {}
    for name, text in files.items():
        f = tmp_path / (name.replace(".", "/") + ("/__init__.py" if name == "vader_core" else ".py"))
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        out[name] = f
    return out


def test_checker_finds_an_upward_import_inside_a_function_and_under_type_checking(tmp_path):
    files = _fake_tree(
        tmp_path,
        {
            "vader_core": "",
            "vader_core.errors": "def f():\n    from .trainer import Trainer\n",
            "vader_core.config": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import plugins\n",
            "vader_core.plugins": "",
            "vader_core.trainer": "from .config import VaderConfig\n",
        },
    )
    imports = [i for n, f in files.items() for i in _imports(n, f, files)]
    bad = upward_imports(imports, tmp_path)
    assert any(
        b.startswith("vader_core/errors.py:2: `vader_core.errors` (base) imports `vader_core.trainer` (engine)")
        for b in bad
    ), bad
    assert any(
        "vader_core/config.py:3: `vader_core.config` (contracts and schema) imports `vader_core.plugins` "
        "(registry)" in b
        for b in bad
    ), bad
    assert len(bad) == 2


def test_checker_finds_a_circle(tmp_path):
    files = _fake_tree(
        tmp_path,
        {
            "vader_core": "",
            "vader_core.sampling": "from . import lora\n",
            "vader_core.lora": "def f():\n    import vader_core.sampling\n",
        },
    )
    imports = [i for n, f in files.items() for i in _imports(n, f, files)]
    (line,) = cycles(imports, tmp_path)
    assert line.startswith("import circle vader_core.lora <-> vader_core.sampling: ")
    assert "vader_core/lora.py:2 vader_core.lora -> vader_core.sampling" in line


def test_checker_finds_a_hand_built_plugin(tmp_path):
    f = tmp_path / "vader_core" / "cli.py"
    f.parent.mkdir()
    f.write_text("def f(name, o):\n    cls = plugins.get_reward(name)\n    return cls(cls.Options.model_validate(o))\n")
    assert hand_built_plugins([f], tmp_path) == [
        "vader_core/cli.py:2: `get_reward` looks a plugin up by name; use vader_core.resolve",
        "vader_core/cli.py:3: a plugin's options validated by hand; use vader_core.resolve",
    ]


if __name__ == "__main__":  # pragma: no cover - `python tests/test_layers.py` prints every finding
    found = _all_imports()
    files = sorted((ROOT / "vader_core").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    for line in upward_imports(found) + cycles(found) + hand_built_plugins(files):
        print(line)
