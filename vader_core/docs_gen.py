"""Regenerate the command reference in ``docs/cli.md`` from the CLI itself.

``python -m vader_core.docs_gen docs/cli.md`` rewrites the part between the markers; a test checks
that the committed file matches, so the docs never drift from ``--help``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"
WIDTH = 100


def command_help(name: str | None = None) -> str:
    import typer

    from .cli import app

    root = typer.main.get_command(app)
    # the click that typer drives (its own copy in recent typer) makes the contexts
    parent = root.context_class(root, info_name="vader", terminal_width=WIDTH, max_content_width=WIDTH)
    if name is None:
        return root.get_help(parent).rstrip()
    cmd = root.get_command(parent, name)  # type: ignore[attr-defined]
    ctx = cmd.context_class(cmd, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return cmd.get_help(ctx).rstrip()


def command_names() -> list[str]:
    from .cli import app

    return [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


def reference() -> str:
    parts = [START, "", "### `vader`", "", "```text", command_help(), "```", ""]
    for name in command_names():
        parts += [f"### `vader {name}`", "", "```text", command_help(name), "```", ""]
    parts.append(END)
    return "\n".join(parts)


CONFIG_START = "<!-- config-reference:start -->"
CONFIG_END = "<!-- config-reference:end -->"


def config_reference() -> str:
    """Every configuration key with its type, default and description, from the pydantic models."""
    import json

    from pydantic import BaseModel

    from .config import VaderConfig

    lines = [CONFIG_START, ""]
    defaults = json.loads(VaderConfig().model_dump_json())
    for section, field in VaderConfig.model_fields.items():
        ann = field.annotation
        inner: Any = getattr(ann, "__args__", (ann,))[0] if section == "rewards" else ann
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            title = f"`{section}`" + (" (a list; one item per reward)" if section == "rewards" else "")
            lines += [f"### {title}", "", "| key | default | meaning |", "| --- | --- | --- |"]
            sub_defaults = defaults[section][0] if section == "rewards" else defaults[section]
            for name, f in inner.model_fields.items():
                d = sub_defaults.get(name, "required") if isinstance(sub_defaults, dict) else ""
                desc = (f.description or "").replace("|", "\\|")
                lines.append(f"| `{section}.{name}` | `{json.dumps(d)}` | {desc} |")
            lines.append("")
        else:
            lines += [
                f"### `{section}`",
                "",
                f"Default `{json.dumps(defaults[section])}`. {field.description or ''}",
                "",
            ]
    lines.append(CONFIG_END)
    return "\n".join(lines)


def _replace(text: str, start: str, end: str, body: str) -> str:
    if start not in text:
        return text
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + body + tail


def update(path: str | Path) -> bool:
    """Rewrite the generated references in ``path``; returns True when it changed."""
    p = Path(path)
    text = p.read_text()
    if START not in text and CONFIG_START not in text:
        raise SystemExit(f"{p} has no reference markers")
    new = _replace(text, START, END, reference()) if START in text else text
    new = _replace(new, CONFIG_START, CONFIG_END, config_reference())
    if new != text:
        p.write_text(new)
        return True
    return False


if __name__ == "__main__":
    os.environ["VADER_PLUGINS"] = ""
    for target in sys.argv[1:] or ["docs/cli.md", "docs/configuration.md"]:
        print(target, "updated" if update(target) else "up to date")
