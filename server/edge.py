"""The one edge where failures become MCP data: argument checks and errors as ``isError`` results.

- ``ArgumentCheck`` (server middleware, before the SDK touches the call): the SDK validates tool
  arguments leniently (``"3"`` and ``true`` pass as integers, unknown arguments are ignored) and
  reports pydantic's raw text. We validate strictly against each tool's declared types and answer
  with an ``isError`` result naming the argument and what is allowed.
- ``tool_edge`` (decorator around every tool): swarm errors - caused by the caller, the model, the
  provider or by us - become ``isError`` results with their message and
  ``_meta["swarm-mcp/error-kind"]``; anything unexpected is logged and reported without internals.
  Cancellation passes through untouched.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from typing import Any, Callable

import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from swarm.errors import ConfigError, ModelBehaviourError, ProviderError, StorageError, SwarmError, UnknownSessionError, UserInputError

log = logging.getLogger("swarm_mcp.edge")

ERROR_KIND_META = "swarm-mcp/error-kind"


def error_result(message: str, kind: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True, _meta={ERROR_KIND_META: kind})


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, UnknownSessionError):
        return "unknown_session"
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, UserInputError):
        return "user_input"
    if isinstance(exc, ProviderError):
        return "provider"
    if isinstance(exc, ModelBehaviourError):
        return "model"
    if isinstance(exc, StorageError):
        return "storage"
    return "internal"


def tool_edge(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn what a tool raises into an isError result (the signature is kept for the SDK)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except MCPError:
            raise
        except SwarmError as exc:
            kind = error_kind(exc)
            if kind in ("internal", "provider", "model", "storage"):
                log.warning("%s failed: %s", fn.__name__, exc)
            return error_result(str(exc), kind)
        except Exception as exc:
            fault = _storage_fault(exc)
            if fault is not None:  # met outside the store (DBOS's system database, a session's work dir)
                log.warning("%s failed: %s (%s: %s)", fn.__name__, fault, type(exc).__name__, exc)
                return error_result(str(fault), "storage")
            log.exception("%s crashed", fn.__name__)
            return error_result(f"internal error in swarm-mcp ({type(exc).__name__}); the server's log (stderr) has the details", "internal")

    return wrapper


def _storage_fault(exc: BaseException) -> StorageError | None:
    from swarm.store_faults import storage_fault

    return storage_fault(exc, None)


# ---- strict arguments ------------------------------------------------------------------------------


def normalized(arguments: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has one number type: 20.0 is accepted for an integer argument."""
    return {k: _integral(v, props.get(k, {})) for k, v in arguments.items()}


def check_arguments(tool: str, model: type[BaseModel], arguments: Any, props: Mapping[str, Any]) -> str | None:
    """None if the arguments are valid; else a message naming each bad argument and what is allowed."""
    if not isinstance(arguments, Mapping):
        return f"Invalid arguments for {tool}: expected an object of named arguments, got {type(arguments).__name__}."
    try:
        model.model_validate(normalized(arguments, props))
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            arg = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown argument {arg!r} ({tool} takes: {', '.join(props)})")
            elif err["type"] == "missing":
                problems.append(f"missing required argument {arg!r}: {props.get(arg, {}).get('description', '')}".rstrip(": "))
            else:
                problems.append(f"argument {arg!r} must be {allowed(props.get(arg, {}))}, got {_clip(repr(err.get('input')))}")
        seen: list[str] = []
        for p in problems:
            if p not in seen:
                seen.append(p)
        return f"Invalid arguments for {tool}: " + "; ".join(seen) + "."
    return None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _integral(value: Any, prop: Mapping[str, Any]) -> Any:
    types_ = {prop.get("type")} | {b.get("type") for b in prop.get("anyOf", [])}
    if "integer" in types_ and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def allowed(prop: Mapping[str, Any]) -> str:
    """What a JSON schema property accepts, in words."""
    branches = prop.get("anyOf") or [prop]
    words = [_one(b) for b in branches if b.get("type") != "null"]
    text = " or ".join(w for w in words if w) or "a valid value"
    if any(b.get("type") == "null" for b in branches):
        text += " (or null to leave it out)"
    return text


def _one(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    kind = prop.get("type")
    if kind == "integer":
        lo, hi = prop.get("minimum"), prop.get("maximum")
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        if lo is not None:
            return f"an integer >= {lo}"
        return "an integer"
    if kind == "string":
        lo, hi = prop.get("minLength"), prop.get("maxLength")
        if lo and hi:
            return f"a string of {lo} to {hi} characters"
        if hi:
            return f"a string of at most {hi} characters"
        return "a non-empty string" if lo else "a string"
    if kind == "boolean":
        return "true or false"
    if kind == "number":
        return "a number"
    return f"a {kind}" if kind else ""


class ArgumentCheck:
    """Server middleware: strict validation of tools/call arguments for the tools registered here."""

    def __init__(self) -> None:
        self.tools: dict[str, tuple[Callable[[], type[BaseModel]], dict[str, Any]]] = {}
        self._models: dict[str, type[BaseModel]] = {}

    def add(self, name: str, build: Callable[[], type[BaseModel]], schema: Mapping[str, Any]) -> None:
        """Check calls of ``name`` against the model ``build()`` makes (built at the first call) and ``schema``."""
        self.tools[name] = (build, dict(schema.get("properties", {})))

    def model(self, name: str) -> type[BaseModel]:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self.tools[name][0]()
        return model

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            name = ctx.params.get("name")
            entry = self.tools.get(name) if isinstance(name, str) else None
            if entry is not None:
                model, props = self.model(name), entry[1]
                arguments = ctx.params.get("arguments") or {}
                problem = check_arguments(name, model, arguments, props)
                if problem is not None:
                    log.info("rejected arguments for %s: %s", name, problem)
                    return error_result(problem, "invalid_arguments")
                fixed = normalized(arguments, props)
                if any(type(fixed[k]) is not type(arguments[k]) for k in fixed):
                    ctx = dataclasses.replace(ctx, params={**ctx.params, "arguments": fixed})
        return await call_next(ctx)
