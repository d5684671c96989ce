"""A scripted model client: the real ChatCompletionClient interface, answers read from a script (the
function-driven client of function.py, whose function reads the script).

Used by tests (and demos) at the model boundary. It fails loudly on an unexpected call (the script
is exhausted, or the call comes from another agent than the script says) and can report leftover
entries. With a ``log_path`` it keeps its position in a file, so a session continued in another
process picks up the script where the first process stopped, and a test can prove that no
completed model call was ever repeated.

Script entries (JSON objects):
  {"agent": "copilot_control", "handoff": "engineer"}         a hand-off (tool transfer_to_engineer)
  {"agent": "engineer", "tool": "execute_code", "args": {...}} a tool call
  {"agent": "engineer", "text": "the answer"}                  a final text message
  {"agent": "engineer", "text": ""}                            an empty reply (a provider fault: the retry layer retries it)
  {"json": {...}}                                              text that is this JSON document
  {"error": "rate_limit" | "timeout" | "server_error" | "auth"} a provider failure
  {"hang": true}                                               block until cancelled (kill tests)
  {"delay": 0.2, ...}                                          the model takes this long before it answers (latency)
"agent" is optional; when given, a call from another agent is an error. "expect" (optional) is a
substring that must appear in one of the last three messages of the request.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, LLMMessage, RequestUsage

from ..errors import ProviderError
from .function import MODEL_INFO, FunctionModelClient, ModelCallError

SCRIPTED_INFO = MODEL_INFO

_ERRORS = {
    "rate_limit": ("429 Too Many Requests (scripted)", True),
    "timeout": ("request timed out (scripted)", True),
    "server_error": ("503 Service Unavailable (scripted)", True),
    "auth": ("401 invalid API key (scripted)", False),
}


class ScriptError(ModelCallError):
    """The code under test made a model call the script did not expect."""


class Script:
    """The shared script and the position in it (in memory, or in a log file across processes)."""

    def __init__(self, entries: Sequence[Mapping[str, Any]], log_path: Path | None = None) -> None:
        self.entries = [dict(e) for e in entries]
        self.log_path = log_path
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Script":
        path = Path(path)
        return cls(json.loads(path.read_text()), log_path=path.with_suffix(path.suffix + ".log"))

    def position(self) -> int:
        if self.log_path is None:
            return len(self.calls)
        if not self.log_path.exists():
            return 0
        return sum(1 for _ in self.log_path.open())

    def take(self, agent: str, summary: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            index = self.position()
            if index >= len(self.entries):
                raise ScriptError(f"unexpected model call #{index + 1} by {agent!r}: the script has only {len(self.entries)} entries; last message: {summary.get('last')!r}")
            entry = self.entries[index]
            want = entry.get("agent")
            if want is not None and want != agent:
                raise ScriptError(f"model call #{index + 1}: the script expects agent {want!r}, got a call by {agent!r}; last message: {summary.get('last')!r}")
            expect = entry.get("expect")
            if expect is not None and not any(expect in text for text in summary.get("recent", [])):
                raise ScriptError(f"model call #{index + 1} by {agent!r}: the script expects {expect!r} in the latest messages, got {summary.get('recent')!r}")
            record = {"index": index, "agent": agent, **summary}
            self.calls.append(record)
            if self.log_path is not None:
                with self.log_path.open("a") as log:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
            return entry

    def peek_delay(self) -> float:
        """The latency of the next entry, if the script gives one."""
        with self._lock:
            index = self.position()
            return float(self.entries[index].get("delay", 0)) if index < len(self.entries) else 0.0

    def leftover(self) -> list[dict[str, Any]]:
        return self.entries[self.position():]

    def assert_exhausted(self) -> None:
        rest = self.leftover()
        if rest:
            raise ScriptError(f"{len(rest)} scripted model call(s) were never made: {rest}")


class ScriptedModelClient(FunctionModelClient):
    """A ChatCompletionClient whose answers come from a Script, for one agent: the function-driven client whose
    function takes the script's next entry."""

    def __init__(self, script: Script, agent: str = "?", usage: tuple[int, int] = (10, 5)) -> None:
        super().__init__(self._answer, agent, usage)
        self.script = script

    def for_agent(self, agent: str) -> "ScriptedModelClient":
        return ScriptedModelClient(self.script, agent, self._usage)

    async def _answer(self, messages: Sequence[LLMMessage], agent: str, tools: list[str]) -> CreateResult | str | FunctionCall:
        delay = self.script.peek_delay()
        if delay:
            await asyncio.sleep(delay)  # model latency: the call is made (and logged) when the answer comes
        last = messages[-1].content if messages else None
        recent = [str(m.content)[:4000] for m in messages[-3:]]
        entry = self.script.take(agent, {"last": str(last)[:200], "recent": recent, "n_messages": len(messages), "tools": tools})
        if entry.get("hang"):
            await asyncio.Event().wait()
        if "error" in entry:
            message, retryable = _ERRORS[entry["error"]]
            raise ProviderError(message, retryable=retryable)
        prompt, completion = entry.get("usage", self._usage)
        usage = RequestUsage(prompt_tokens=prompt, completion_tokens=completion)
        if "handoff" in entry or "tool" in entry:
            name = f"transfer_to_{entry['handoff']}" if "handoff" in entry else entry["tool"]
            if name not in tools:
                raise ScriptError(f"model call #{entry_index(self.script)} by {agent!r}: scripted tool {name!r} is not offered; offered: {tools}")
            call = FunctionCall(id=f"call_{self.script.position()}", name=name, arguments=json.dumps(entry.get("args", {})))
            return CreateResult(finish_reason="function_calls", content=[call], usage=usage, cached=False)
        text = json.dumps(entry["json"]) if "json" in entry else str(entry.get("text", ""))
        return CreateResult(finish_reason="stop", content=text, usage=usage, cached=False)


def entry_index(script: Script) -> int:
    return script.position()
