"""Strict numbers for every options model: the coercions that hide a mistake are refused.

pydantic's lax mode turns ``true`` into ``1.0`` for a float field and ``2.0`` into ``2`` for an int
field. A user who writes ``--set rewards.0.scale=true`` meant something else; so does a config file
holding ``steps: 2.5`` or ``steps: 2.0``. Strict mode would also refuse what must stay accepted (a
string for a ``Path``, a list for a ``tuple``, an int for a float), so only these two are refused, by a
``before`` validator every options base class inherits. ``--set`` values are parsed as YAML first, so
``--set backbone.steps=4`` is an int and ``--set optim.lr=1e-4`` a float, as before.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def _plain_types(annotation: Any) -> set[Any]:
    """The types a field accepts at its top level (``Optional``, unions and ``Annotated`` unwrapped)."""
    found: set[Any] = set()
    stack = [annotation]
    while stack:
        a = stack.pop()
        origin = typing.get_origin(a)
        if origin is typing.Annotated:
            stack.append(typing.get_args(a)[0])
        elif origin in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(a))
        else:
            found.add(a)
    return found


def refuse_hidden_coercion(model: type[BaseModel], field_name: str | None, value: Any) -> Any:
    """``value`` unchanged, or a validation error when it is a bool for a number field or a float for an
    int field (``2.0`` too: an integer option written as a float is a mistake more often than not)."""
    field = model.model_fields.get(field_name or "")
    if field is None:
        return value
    accepted = _plain_types(field.annotation)
    if isinstance(value, bool) and bool not in accepted and accepted & {int, float}:
        kind = "an integer" if float not in accepted else "a number"
        raise PydanticCustomError("strict_number", f"expected {kind}, not a boolean")
    if isinstance(value, float) and int in accepted and float not in accepted:
        raise PydanticCustomError("strict_int", "expected an integer, not a number with a decimal point")
    return value


class StrictNumbers(BaseModel):
    """Mixin of options models: bools are not numbers and floats are not ints (see the module docstring)."""

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_hidden_coercion(cls, info.field_name, value)
