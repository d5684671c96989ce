"""Tool arguments: their JSON schema (for tools/list) and their strict model (for calls), from a signature.

The schema is written directly from the parameters' ``Annotated[type, Field(...)]`` (the few shapes
the tools use: strings, integers, literals, lists of strings, an optional model, each optionally
``| None``) - it is what pydantic would publish, without building 13 models and their schemas on the
start-up path. The strict pydantic model that checks a call's arguments is built on the tool's first
call. tests/server/test_arguments.py checks both against pydantic.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import inspect
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Callable, Literal

import annotated_types as at
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, create_model
from pydantic_core import PydanticCustomError
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
    description, and no more - no titles, no length limits or patterns on strings (the call is checked against the
    full schema anyway), no ``minimum``/``maximum`` (or ``minItems``/``maxItems``) when the description already says
    the range ("1-10"), an enum without its redundant ``type``, an optional argument as its type (not ``anyOf`` with
    null: it may be left out) and without ``default: null``, a nested object as an object (its description says its
    shape; the full check runs on the call). ``required`` stays; ``additionalProperties: false`` does not: the server
    refuses an unknown argument itself, naming the ones it takes, and a tool that groups arguments in ``options``
    still accepts them at top level. A client pays for every token of every tool's schema in every conversation,
    so the published schema is kept small."""
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
        elif prop.get("type") == "string":  # free text or a checked word: its limits are left to the call's check
            prop = {k: v for k, v in prop.items() if k not in ("minLength", "maxLength", "pattern")}
        props[name] = prop
    return {k: (props if k == "properties" else v) for k, v in schema.items() if k not in ("title", "additionalProperties")}


# ---- options: secondary arguments in one object argument ---------------------------------------------------

OPTIONS = "options"
"""The object argument a tool publishes its secondary arguments in (a phase's knobs: max_plan_steps, ...)."""


class ArgumentsError(ValueError):
    """The call's arguments are wrong; the message says which and what is allowed."""


def grouped(schema: dict[str, Any], keys: Collection[str]) -> dict[str, Any]:
    """The schema with the arguments ``keys`` moved into one optional object argument, ``options``, where the first of
    them was: its description lists each key with its range and default ("max_plan_steps 1-10 (3), ..."), its
    properties keep their full schemas. A call may give them in ``options`` or, as before, at top level (ungroup)."""
    props: dict[str, Any] = {}
    inner: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name in keys:
            inner[name] = prop
            props.setdefault(OPTIONS, None)  # its place
        else:
            props[name] = prop
    if OPTIONS in schema["properties"] or set(keys) - set(inner):
        raise TypeError(f"{schema.get('title')}: cannot group {sorted(keys)} in {OPTIONS!r} (a missing key, or an argument named {OPTIONS!r})")
    props[OPTIONS] = {"type": "object", "properties": inner, "description": describe_options(inner), "title": OPTIONS.title()}
    return {**schema, "properties": props}


def describe_options(props: Mapping[str, Any]) -> str:
    """Each option with its range and default: "max_plan_steps 1-10 (3), improve_task (false)"."""
    parts = []
    for name, prop in props.items():
        bounds = f" {prop['minimum']}-{prop['maximum']}" if "minimum" in prop and "maximum" in prop else ""
        parts.append(f"{name}{bounds} ({json.dumps(prop.get('default'))})")
    return ", ".join(parts)


def ungroup(tool: str, arguments: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    """The arguments with the keys given in ``options`` at top level, where the tool's strict model checks them.
    Raises ArgumentsError for ``options`` that is no object, a key in it the tool has no option for, and a key given
    both in ``options`` and at top level."""
    options = arguments.get(OPTIONS)
    flat = {k: v for k, v in arguments.items() if k != OPTIONS}
    if options is None:
        return flat
    allowed = ", ".join(keys)
    if not isinstance(options, Mapping):
        raise ArgumentsError(f"Invalid arguments for {tool}: argument {OPTIONS!r} must be an object of {allowed}, got {type(options).__name__}.")
    unknown = [k for k in options if k not in keys]
    if unknown:
        raise ArgumentsError(f"Invalid arguments for {tool}: unknown option{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(repr(k) for k in unknown)} in {OPTIONS!r} (the options are: {allowed}).")
    twice = [k for k in options if k in flat]
    if twice:
        raise ArgumentsError(f"Invalid arguments for {tool}: {', '.join(repr(k) for k in twice)} given both at top level and in "
                             f"{OPTIONS!r}; give {'it' if len(twice) == 1 else 'each'} once.")
    return {**flat, **options}


class UngroupOptions:
    """Server middleware, outside the argument check: a tools/call of a tool that groups arguments in ``options`` gets
    them at top level (the strict check then names a bad one); a bad ``options`` is an ``isError`` result."""

    def __init__(self) -> None:
        self.tools: dict[str, tuple[str, ...]] = {}

    def add(self, tool: str, keys: Collection[str]) -> None:
        self.tools[tool] = tuple(keys)

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            name = ctx.params.get("name")
            keys = self.tools.get(name) if isinstance(name, str) else None
            arguments = ctx.params.get("arguments")
            if keys is not None and isinstance(arguments, Mapping) and OPTIONS in arguments:
                try:
                    flat = ungroup(name, arguments, keys)
                except ArgumentsError as exc:
                    from .edge import error_result

                    return error_result(str(exc), "invalid_arguments")
                ctx = dataclasses.replace(ctx, params={**ctx.params, "arguments": flat})
        return await call_next(ctx)


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
    """FuncMetadata whose strict argument model is built when the tool is first called; a tool's ``options`` are
    ungrouped here too (a call that skips the server's middleware, e.g. ``MCPServer.call_tool``)."""

    _build: Callable[[], type[ArgModelBase]] = PrivateAttr()
    _ungroup: Callable[[dict[str, Any]], dict[str, Any]] | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, build: Callable[[], type[ArgModelBase]], output_schema: dict[str, Any] | None,
           ungroup: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> "LazyArguments":
        meta = cls(arg_model=StrictArguments, output_schema=output_schema, output_model=None)
        meta._build = build
        meta._ungroup = ungroup
        return meta

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        if self.arg_model is StrictArguments:
            self.arg_model = self._build()
        if self._ungroup is not None and OPTIONS in arguments_to_validate:
            try:
                arguments_to_validate = self._ungroup(arguments_to_validate)
            except ArgumentsError as exc:  # reported like any argument the model refuses
                error = PydanticCustomError("options", "{message}", {"message": str(exc)})
                raise ValidationError.from_exception_data(self.arg_model.__name__, [
                    {"type": error, "loc": (OPTIONS,), "input": arguments_to_validate.get(OPTIONS)}]) from None
        return super().validate_arguments(arguments_to_validate)
