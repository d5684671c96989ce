"""A prepared request (``Job``): how tools and ``json_output`` constrain the answer, and how it is read back.

The 135M model cannot do native tool calls. With tools, the output is constrained (JSON schema, via
llguidance) to either ``{"kind": "message", "content": "..."}`` or ``{"kind": "tool_call", "name":
<tool>, "arguments": {...}}``, one ``anyOf`` branch per tool with that tool's own parameter schema;
``tool_choice`` shapes the schema. ``json_output`` (``True`` or a pydantic model) constrains it likewise.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from autogen_core import FunctionCall
from autogen_core.models import AssistantMessage, CreateResult, LLMMessage, RequestUsage
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from ...errors import ModelBehaviourError, UserInputError
from .output import RawOutput
from .schema import (
    call_key,
    compact_json,
    embed,
    message_branch,
    output_schema,
    parameters,
    render_messages,
    tool_call_branch,
    tool_prompt,
    tool_schema,
    union,
    with_system,
)

logger = logging.getLogger("swarm.models.local")

ToolChoice = Tool | Literal["auto", "required", "none"]


@dataclass
class Job:
    """A prepared request: chat messages, constraint and parse instructions."""

    chat: list[dict[str, str]]
    max_tokens: int
    n_ctx: int
    sampling: dict[str, Any]
    timeout: float  # wall-clock seconds for the whole call
    schema: dict[str, Any] | None = None
    fallback_schema: dict[str, Any] | None = None
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> parameters schema
    tool_mode: bool = False
    output_model: type[BaseModel] | None = None
    # repeat guard: calls already made in the conversation, and the message-only schema to fall back to
    done_calls: set[tuple[str, str]] = field(default_factory=set)
    message_schema: dict[str, Any] | None = None


def build_job(
    messages: Sequence[LLMMessage],
    tools: Sequence[Tool | ToolSchema],
    tool_choice: ToolChoice,
    json_output: Optional[bool | type[BaseModel]],
    *,
    max_tokens: int,
    n_ctx: int,
    sampling: dict[str, Any],
    timeout: float,
) -> Job:
    tool_schemas = [tool_schema(t) for t in tools]
    names = [s["name"] for s in tool_schemas]
    if len(set(names)) != len(names):
        raise UserInputError(f"duplicate tool names: {names}")
    # tool_choice shapes which tools may be called and whether a message is allowed
    callable_tools, allow_message, prompt_choice = tool_schemas, True, None
    if isinstance(tool_choice, Tool) or (isinstance(tool_choice, Mapping) and "name" in tool_choice):
        chosen = tool_schema(tool_choice)  # type: ignore[arg-type]
        if chosen["name"] not in names:
            raise UserInputError(f"tool_choice names tool {chosen['name']!r}, which is not among tools {names}")
        callable_tools = [s for s in tool_schemas if s["name"] == chosen["name"]]
        allow_message, prompt_choice = False, chosen["name"]
    elif tool_choice == "none":
        callable_tools = []
    elif tool_choice == "required":
        if not tool_schemas:
            raise UserInputError("tool_choice='required' needs at least one tool")
        allow_message, prompt_choice = False, "*"
    elif tool_choice != "auto":
        raise UserInputError(f"tool_choice must be 'auto', 'required', 'none' or a Tool, got {tool_choice!r}")

    chat = render_messages(messages)
    output_model = json_output if isinstance(json_output, type) and issubclass(json_output, BaseModel) else None
    out_schema = output_schema(json_output)
    job = Job(chat=chat, max_tokens=max_tokens, n_ctx=n_ctx, sampling=sampling, timeout=timeout, output_model=output_model)

    if callable_tools:
        job.tool_mode = True
        job.tools = {s["name"]: parameters(s) for s in callable_tools}
        job.chat = with_system(chat, tool_prompt(callable_tools, prompt_choice))
        defs: dict[str, Any] = {}
        branches: list[dict[str, Any]] = []
        generic: list[dict[str, Any]] = []
        if allow_message:
            if out_schema:
                content = embed(out_schema, "output", defs)
            else:
                content = {"type": "object"} if json_output is True else {"type": "string"}
            branches.append(message_branch(content))
            generic.append(message_branch({"type": "object"} if json_output else {"type": "string"}))
            job.message_schema = union([branches[0]], defs)
            job.done_calls = {
                call_key(call.name, call.arguments)
                for message in messages
                if isinstance(message, AssistantMessage) and not isinstance(message.content, str)
                for call in message.content
            }
        for index, schema in enumerate(callable_tools):
            branches.append(tool_call_branch(schema["name"], embed(parameters(schema), f"tool{index}", defs)))
        job.schema = union(branches, defs)
        # if the grammar engine rejects a tool schema: any object as arguments, validated after
        generic.append(tool_call_branch(list(job.tools), {"type": "object"}))
        job.fallback_schema = union(generic, {})
    elif out_schema is not None:
        job.schema = out_schema
        job.fallback_schema = {"type": "object"}  # output is validated against the model afterwards
        job.chat = with_system(chat, "Answer with one JSON object that matches this JSON schema: " + compact_json(out_schema))
    elif json_output:
        job.schema = {"type": "object"}
        job.chat = with_system(chat, "Answer with one JSON object.")
    return job


def parse(job: Job, raw: RawOutput) -> CreateResult:
    """The model's raw answer as a CreateResult: text, a validated JSON text, or one tool call."""
    usage = RequestUsage(prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens)
    logger.debug(
        "local model: %d prompt + %d completion tokens in %.2fs (finish=%s)",
        usage.prompt_tokens, usage.completion_tokens, raw.seconds, raw.finish_reason,
    )
    finish: Any = raw.finish_reason if raw.finish_reason in ("stop", "length") else "unknown"
    text = raw.text.strip()

    if job.tool_mode:
        try:
            answer = json.loads(text)
        except json.JSONDecodeError as exc:
            salvaged = _salvage_message(text) if raw.finish_reason == "length" else None
            if salvaged is not None and not job.output_model:
                return CreateResult(finish_reason="length", content=salvaged, usage=usage, cached=False)
            raise ModelBehaviourError(_bad_json(text, raw, exc)) from exc
        if not isinstance(answer, dict) or answer.get("kind") not in ("message", "tool_call"):
            raise ModelBehaviourError(f"the local model's answer is not a message or a tool call: {text[:300]!r}")
        if answer["kind"] == "message":
            content = answer.get("content")
            if job.output_model is not None or not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False)
                _check_output(job, content)
            return CreateResult(finish_reason=finish, content=content, usage=usage, cached=False)
        name = answer.get("name")
        arguments = answer.get("arguments")
        if name not in job.tools:
            raise ModelBehaviourError(f"the local model called an unknown tool {name!r}; tools: {list(job.tools)}")
        if not isinstance(arguments, dict):
            raise ModelBehaviourError(f"the local model's arguments for {name!r} are not a JSON object: {arguments!r}")
        _validate_arguments(name, arguments, job.tools[name])
        call = FunctionCall(id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=json.dumps(arguments))
        return CreateResult(finish_reason="function_calls", content=[call], usage=usage, cached=False)

    if job.schema is not None:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelBehaviourError(_bad_json(text, raw, exc)) from exc
        _check_output(job, text)
    return CreateResult(finish_reason=finish, content=text, usage=usage, cached=False)


def _check_output(job: Job, text: str) -> None:
    if job.output_model is None:
        return
    try:
        job.output_model.model_validate_json(text)
    except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError and friends
        raise ModelBehaviourError(f"the local model's JSON does not validate as {job.output_model.__name__}: {exc}") from exc


def _bad_json(text: str, raw: RawOutput, exc: Exception) -> str:
    hint = (
        f" The answer was cut off at max_tokens ({raw.completion_tokens} tokens); raise max_tokens."
        if raw.finish_reason == "length"
        else ""
    )
    return f"the local model's constrained answer is not valid JSON ({exc}): {text[:300]!r}.{hint}"


_PARTIAL_MESSAGE = re.compile(r'^\{\s*"kind"\s*:\s*"message"\s*,\s*"content"\s*:\s*"(.*)$', re.DOTALL)


def _salvage_message(text: str) -> str | None:
    """The text of a ``{"kind": "message", "content": "...`` answer cut off at max_tokens."""
    match = _PARTIAL_MESSAGE.match(text)
    if match is None:
        return None
    partial = match.group(1)
    for end in range(len(partial), max(len(partial) - 8, -1), -1):
        try:
            value = json.loads('"' + partial[:end] + '"')
        except json.JSONDecodeError:
            continue
        return value if value.strip() else None
    return None


def _validate_arguments(name: str, arguments: dict[str, Any], schema: dict[str, Any]) -> None:
    """Check arguments against the tool's schema (the grammar normally guarantees this already)."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema ships with the MCP SDK
        missing = [key for key in schema.get("required", []) if key not in arguments]
        if missing:
            raise ModelBehaviourError(f"the local model's call to {name!r} lacks required arguments {missing}")
        return
    try:
        jsonschema.validate(arguments, schema)
    except jsonschema.ValidationError as exc:
        raise ModelBehaviourError(f"the local model's arguments for {name!r} are invalid: {exc.message}") from exc
    except jsonschema.SchemaError:
        logger.debug("tool %r has a schema jsonschema cannot check; arguments not validated", name)
