"""What one generation of the loaded model returned: produced by ``runtime``, read back by ``job``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RawOutput:
    """The model's text for one request, before it is parsed into a message or a tool call."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    dropped_messages: int
    """Oldest non-system messages dropped to fit the prompt into the context window."""
    seconds: float
    """Wall-clock time of the generation."""
