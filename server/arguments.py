"""Tool arguments: their JSON schema (for tools/list) and their strict model (for calls), from a signature.

The schema is written directly from the parameters' ``Annotated[type, Field(...)]`` (the few shapes
the tools use: strings, integers, literals, lists of strings, an optional model, each optionally
``| None``) - it is what pydantic would publish, without building 13 models and their schemas on the
start-up path. The strict pydantic model that checks a call's arguments is built on the tool's first
call. tests/server/test_arguments.py checks both against pydantic.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import types
import typing
from typing import Any, Callable, Literal

import annotated_types as at
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model
from pydantic.fields import FieldInfo


class StrictArguments(ArgModelBase):
    """Tool arguments as declared: no coercion ("3" is not an integer), no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)


def parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """(name, annotation, default) of a tool function's arguments; the Context parameter left out."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, Any)
        if _is_context(annotation):
            continue
        out.append((param.name, annotation, ... if param.default is inspect.Parameter.empty else param.default))
    return out


def _is_context(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Context)


def arguments_model(name: str, fn: Callable[..., Any]) -> type[ArgModelBase]:
    """The strict model of a tool's arguments, from its signature."""
    return create_model(f"{name}_arguments", __base__=StrictArguments, **{n: (a, d) for n, a, d in parameters(fn)})


# ---- the JSON schema ---------------------------------------------------------------------------------


def arguments_schema(name: str, fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (``additionalProperties: false``: unknown arguments are refused)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for arg, annotation, default in parameters(fn):
        kind, fields = _unpack(annotation)
        prop = _typed(kind, fields)
        for field in fields:
            if field.description:
                prop["description"] = field.description
        prop.setdefault("title", arg.replace("_", " ").title())
        if default is ...:
            required.append(arg)
        else:
            prop["default"] = default
        props[arg] = prop
    schema: dict[str, Any] = {"additionalProperties": False, "properties": props, "title": f"{name}_arguments", "type": "object"}
    if required:
        schema["required"] = required
    return schema


def published_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """The arguments schema a tool publishes in tools/list: every argument with its type, bounds, default and
    description, and no more - no titles, no length limits on strings (free text: a caller never gets near them, and
    the call is checked against the full schema anyway), no ``minimum``/``maximum`` (or ``minItems``/``maxItems``)
    when the description already says the range ("1-10"), an enum without its redundant ``type``, an optional argument
    as its type (not ``anyOf`` with null: it may be left out), a nested object as an object (its description says its
    shape; the full check runs on the call). ``required`` and ``additionalProperties: false`` stay. A client pays for
    every token of every tool's schema in every conversation, so the published schema is kept small."""
    props: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        branches = prop.pop("anyOf", None)
        if branches:
            (typed,) = [b for b in branches if b.get("type") != "null"]
            prop = {**typed, **prop}
            if prop.get("default", ...) is None:
                del prop["default"]
        if prop.get("type") == "object" or "properties" in prop:
            prop = {"type": "object", **({"description": prop["description"]} if "description" in prop else {})}
        elif prop.get("type") == "array" and isinstance(prop.get("items"), dict) and "properties" in prop["items"]:
            prop = {**{k: v for k, v in prop.items() if k != "items"}, "items": {"type": "object"}}
        for low, high in (("minimum", "maximum"), ("minItems", "maxItems")):  # bounds the description states ("1-10")
            if low in prop and high in prop and re.search(rf"(?<![\d.]){prop[low]}-{prop[high]}(?!\d)", prop.get("description", "")):
                prop = {k: v for k, v in prop.items() if k not in (low, high)}
        if "enum" in prop:  # the values say the type
            prop = {k: v for k, v in prop.items() if k != "type"}
        elif prop.get("type") == "string":  # free text: its length limits are left to the call's check
            prop = {k: v for k, v in prop.items() if k not in ("minLength", "maxLength")}
        props[name] = prop
    return {k: (props if k == "properties" else v) for k, v in schema.items() if k != "title"}


def _unpack(annotation: Any) -> tuple[Any, list[FieldInfo]]:
    if typing.get_origin(annotation) is typing.Annotated:
        kind, *meta = typing.get_args(annotation)
        return kind, [m for m in meta if isinstance(m, FieldInfo)]
    return annotation, []


def _typed(kind: Any, fields: list[FieldInfo]) -> dict[str, Any]:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        body = _constrained(_plain(inner), fields)
        return {"anyOf": [body, {"type": "null"}]}
    return _constrained(_plain(kind), fields)


def _plain(kind: Any) -> dict[str, Any]:
    if kind is str:
        return {"type": "string"}
    if kind is int:
        return {"type": "integer"}
    if kind is bool:
        return {"type": "boolean"}
    if typing.get_origin(kind) is Literal:
        values = list(typing.get_args(kind))
        return {"enum": values, "type": "string"} if all(isinstance(v, str) for v in values) else {"enum": values}
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return {"items": _plain(item), "type": "array"}
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return copy.deepcopy(_model_schema(kind))
    raise TypeError(f"no JSON schema for argument type {kind!r}: add it to server.arguments")


@functools.lru_cache(maxsize=None)
def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return _inline(model.model_json_schema())


def _constrained(body: dict[str, Any], fields: list[FieldInfo]) -> dict[str, Any]:
    array = body.get("type") == "array"
    for field in fields:
        for item in field.metadata:
            if isinstance(item, at.Ge):
                body["minimum"] = item.ge
            elif isinstance(item, at.Le):
                body["maximum"] = item.le
            elif isinstance(item, at.MinLen):
                body["minItems" if array else "minLength"] = item.min_length
            elif isinstance(item, at.MaxLen):
                body["maxItems" if array else "maxLength"] = item.max_length
            elif getattr(item, "pattern", None) is not None:
                body["pattern"] = item.pattern
    return body


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's schema with its ``$defs`` inlined (the argument schema carries no definitions)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk(dict(defs[node["$ref"].rsplit("/", 1)[-1]]))
        return {k: walk(v) for k, v in node.items()}

    return walk(schema)


# ---- the SDK's view ---------------------------------------------------------------------------------


class LazyArguments(FuncMetadata):
    """FuncMetadata whose strict argument model is built when the tool is first called."""

    _build: Callable[[], type[ArgModelBase]] = PrivateAttr()

    @classmethod
    def of(cls, build: Callable[[], type[ArgModelBase]], output_schema: dict[str, Any] | None) -> "LazyArguments":
        meta = cls(arg_model=StrictArguments, output_schema=output_schema, output_model=None)
        meta._build = build
        return meta

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        if self.arg_model is StrictArguments:
            self.arg_model = self._build()
        return super().validate_arguments(arguments_to_validate)
