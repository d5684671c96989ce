"""Tools' schemas and hand-off tools, built once per process instead of per session and per model call.

autogen derives a tool's JSON schema from its argument model on every read of ``BaseTool.schema`` (pydantic's
``model_json_schema``, 1-3 ms a tool), and an agent reads the schema of each of its tools, hand-offs included, on every
model call; ``Handoff.handoff_tool`` builds a new ``FunctionTool`` (a new pydantic model class) on every read, and a
swarm reads it for every hand-off of every agent when a session's team is built. Both are pure functions of the tool's
name, description and signature, so one process computes each once.
"""

from __future__ import annotations

from typing import Any, Sequence
from weakref import WeakKeyDictionary

from autogen_agentchat.base import Handoff
from autogen_core.tools import BaseTool, Tool, ToolSchema

LIMIT = 2048
"""Schemas kept at most (tools differ by name, description and signature; a process has a few dozen)."""

_schemas: dict[tuple[Any, ...], ToolSchema] = {}
_by_tool: "WeakKeyDictionary[Any, ToolSchema]" = WeakKeyDictionary()
"""The schema of a tool object already seen (shared hand-off tools are read on every call): no key to compute."""
_handoff_tools: dict[tuple[str, str, str, str], BaseTool[Any, Any]] = {}


def _key(tool: Tool) -> tuple[Any, ...] | None:
    """What a tool's schema depends on, or None when it cannot be told cheaply (then it is not cached)."""
    if not isinstance(tool, BaseTool):
        return None
    args = tool.args_type()
    fields = tuple((name, repr(f.annotation), repr(f.default), f.description) for name, f in args.model_fields.items())
    return type(tool), tool.name, tool.description, getattr(tool, "_strict", None), args.__name__, fields


def schema_of(tool: Tool | ToolSchema) -> ToolSchema:
    """``tool.schema``, computed once per kind of tool; a schema given as a dict is returned as it is.

    The result is a fresh top-level dict over shared nested values: read it, do not change it in place."""
    if isinstance(tool, dict):
        return tool
    try:
        return ToolSchema(**_by_tool[tool])  # type: ignore[typeddict-item]
    except (KeyError, TypeError):
        pass
    key = _key(tool)
    if key is None:
        return tool.schema
    found = _schemas.get(key)
    if found is None:
        if len(_schemas) >= LIMIT:
            _schemas.clear()
        found = _schemas[key] = tool.schema
    try:
        _by_tool[tool] = found
    except TypeError:  # (not weakly referable)
        pass
    return ToolSchema(**found)  # type: ignore[typeddict-item]


def schemas_of(tools: Sequence[Tool | ToolSchema]) -> list[ToolSchema]:
    return [schema_of(t) for t in tools]


class SharedHandoff(Handoff):
    """A ``Handoff`` whose tool is built once per process (its ``FunctionTool`` only returns the hand-off message)."""

    @property
    def handoff_tool(self) -> BaseTool[Any, Any]:
        key = (self.name, self.description, self.target, self.message)
        tool = _handoff_tools.get(key)
        if tool is None:
            if len(_handoff_tools) >= LIMIT:
                _handoff_tools.clear()
            tool = _handoff_tools[key] = Handoff.handoff_tool.fget(self)  # type: ignore[attr-defined]  # (its schema: schema_of)
        return tool
