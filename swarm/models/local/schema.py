"""Rendering for the small model: AutoGen messages as ChatML chat, tool prompts, JSON schemas and grammars."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from autogen_core import Image
from autogen_core.models import AssistantMessage, FunctionExecutionResultMessage, LLMMessage, SystemMessage, UserMessage
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from ...errors import UserInputError

# ChatML framing per message: <|im_start|>role\n ... <|im_end|>\n  (role and newlines included)
PER_MESSAGE_OVERHEAD = 6
# <|im_start|>assistant\n opened by the template for the answer
REPLY_PRIMER = 4

# keys whose value maps names to schemas (their keys are names, not keywords)
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")

# llguidance JSON options: compact single-line JSON (fewer tokens, no runaway indentation), and
# unsupported keywords/formats ignored instead of failing the whole grammar.
_GUIDANCE_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": True}


# -- messages ------------------------------------------------------------------------------------


def render_messages(messages: Sequence[LLMMessage]) -> list[dict[str, str]]:
    """AutoGen messages -> ChatML chat messages (role + text) the small model understands."""
    chat: list[dict[str, str]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": message.content})
        elif isinstance(message, UserMessage):
            text = _user_text(message.content)
            if message.source and message.source != "user":
                text = f"{message.source}: {text}"
            chat.append({"role": "user", "content": text})
        elif isinstance(message, AssistantMessage):
            if isinstance(message.content, str):
                text = message.content
            else:
                text = "\n".join(_call_json(call.name, call.arguments) for call in message.content)
            chat.append({"role": "assistant", "content": text})
        elif isinstance(message, FunctionExecutionResultMessage):
            lines = [
                f"{'tool error' if result.is_error else 'tool result'} ({result.name}): {result.content}"
                for result in message.content
            ]
            chat.append({"role": "user", "content": "\n".join(lines)})
        else:
            raise UserInputError(f"unsupported message type for the local model: {type(message).__name__}")
    return chat


def _user_text(content: str | list[str | Image]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part if isinstance(part, str) else "[image omitted: this model cannot see images]" for part in content)


def _call_json(name: str, arguments: str) -> str:
    try:
        parsed: Any = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        parsed = arguments
    return json.dumps({"kind": "tool_call", "name": name, "arguments": parsed}, ensure_ascii=False)


def call_key(name: str, arguments: str | Mapping[str, Any]) -> tuple[str, str]:
    """A tool call's identity (name + canonical arguments), to spot repeated calls."""
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        return name, json.dumps(parsed, sort_keys=True)
    except (TypeError, ValueError):
        return name, str(arguments)


def with_system(chat: list[dict[str, str]], extra: str) -> list[dict[str, str]]:
    """A copy of ``chat`` with ``extra`` appended to the system message (or a new one first)."""
    chat = [dict(m) for m in chat]
    if chat and chat[0]["role"] == "system":
        chat[0]["content"] = f"{chat[0]['content']}\n\n{extra}" if chat[0]["content"] else extra
    else:
        chat.insert(0, {"role": "system", "content": extra})
    return chat


# -- tools ---------------------------------------------------------------------------------------


def tool_schema(tool: Tool | ToolSchema) -> ToolSchema:
    if isinstance(tool, Tool):
        return tool.schema
    if isinstance(tool, Mapping) and "name" in tool:
        return tool  # type: ignore[return-value]
    raise UserInputError(f"not a tool or tool schema: {tool!r}")


def parameters(schema: ToolSchema) -> dict[str, Any]:
    params = dict(schema.get("parameters") or {})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return params


def tool_prompt(tools: list[ToolSchema], choice: str | None) -> str:
    """The system-prompt addition describing the tools; ``choice``: None (may answer), "*" or a tool name."""
    lines = ["You can call tools. Available tools:"]
    for schema in tools:
        description = (schema.get("description") or "").strip()
        lines.append(f"- {schema['name']}: {description} Arguments (JSON schema): {compact_json(parameters(schema))}")
    lines.append("Answer with exactly one JSON object.")
    lines.append('To call a tool: {"kind": "tool_call", "name": "<tool name>", "arguments": {...}}')
    if choice is None:
        lines.append('To answer without a tool: {"kind": "message", "content": "<your answer>"}')
        lines.append("Call a tool when it helps; once you have the tool results you need, answer with a message.")
    elif choice == "*":
        lines.append("You must call one of the tools now.")
    else:
        lines.append(f"You must call the tool {choice} now.")
    return "\n".join(lines)


# -- JSON schemas --------------------------------------------------------------------------------


def compact_json(schema: Mapping[str, Any]) -> str:
    """A schema for the prompt: pydantic titles dropped, no whitespace."""
    return json.dumps(_strip_titles(schema), ensure_ascii=False, separators=(",", ":"))


def output_schema(json_output: bool | type[BaseModel] | None) -> dict[str, Any] | None:
    if isinstance(json_output, type) and issubclass(json_output, BaseModel):
        return json_output.model_json_schema()
    return None


def tool_call_branch(name: str | list[str], arguments: dict[str, Any]) -> dict[str, Any]:
    """``{"kind": "tool_call", "name": <name, or one of the names>, "arguments": ...}``."""
    name_schema = {"enum": name} if isinstance(name, list) else {"const": name}
    return _object({"kind": {"const": "tool_call"}, "name": name_schema, "arguments": arguments})


def message_branch(content: dict[str, Any]) -> dict[str, Any]:
    return _object({"kind": {"const": "message"}, "content": content})


def union(branches: list[dict[str, Any]], defs: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = dict(branches[0]) if len(branches) == 1 else {"anyOf": branches}
    if defs:
        root["$defs"] = defs
    return root


def embed(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Copy a schema for nesting: hoist its ``$defs`` to the root under unique names and fix refs."""
    schema = dict(schema)
    local = {**(schema.pop("$defs", None) or {}), **(schema.pop("definitions", None) or {})}
    if not local:
        return schema
    names = {name: f"{prefix}__{name}" for name in local}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    match = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", value)
                    if match and match.group(1) in names:
                        value = f"#/$defs/{names[match.group(1)]}"
                out[key] = fix(value)
            return out
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    for name, definition in local.items():
        defs[names[name]] = fix(definition)
    return fix(schema)


def grammar(schema: Mapping[str, Any]) -> str:
    """A JSON schema as an llguidance grammar (xllamacpp's ``json_schema`` field ignores x-guidance)."""
    return "%llguidance {}\nstart: %json " + json.dumps({**_tighten(schema), "x-guidance": _GUIDANCE_OPTIONS})


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _strip_titles(node: Any, in_map: bool = False) -> Any:
    """Drop pydantic's ``title`` annotations (prompt tokens only; property names are kept)."""
    if isinstance(node, dict):
        return {
            key: _strip_titles(value, in_map=not in_map and key in _SCHEMA_MAPS)
            for key, value in node.items()
            if in_map or key != "title" or not isinstance(value, str)
        }
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node


def _tighten(node: Any, in_map: bool = False) -> Any:
    """For generation only: objects with listed properties get no extra properties."""
    if isinstance(node, dict):
        out = {key: _tighten(value, in_map=not in_map and key in _SCHEMA_MAPS) for key, value in node.items()}
        if not in_map and "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_tighten(item) for item in node]
    return node
