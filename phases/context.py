"""What a phase sees of its session: manifest agents behind the journal, the work dir, the state,
the transcript, approvals and sandboxed code execution.

A phase is a plain async function ``run(pctx, params) -> dict`` that reads top to bottom. It is
re-entrant: a phase run that stopped (at a pending approval, on a failure, in a killed process) is
resumed by running it again from the start with the same journal and the answers given so far.
Every model call and code execution replays from the journal, so nothing completed runs twice;
events an earlier run already recorded are counted and not written again; an approval already
answered returns its answer, and the first unanswered one stops the run (``WaitingForApproval``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import BaseChatMessage, StructuredMessage
from pydantic import BaseModel, ValidationError

from swarm.errors import ModelBehaviourError, SessionInterrupted, SwarmError, UserInputError
from swarm.events import Event, EventType, Usage
from swarm.grants import Grants, check_code
from swarm.journal import CallJournal, JournaledModelClient
from swarm.live import active_run
from swarm.sandbox import ExecutionResult, SandboxConfig, format_result, run_code, sandbox_config

from .models import Answer

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.S)
T = TypeVar("T", bound=BaseModel)

FORMAT_RETRIES = 2
"""How often an answer that fails validation is sent back to the model with the error."""
PHASE_NOTE = (
    "\n\nYou are working inside a phase run by the orchestrator: there is nobody to hand off to and no "
    "user to ask. Answer directly, in the format asked for."
)


class WaitingForApproval(Exception):
    """A phase run reached an approval nobody has answered yet: the session waits for a human."""

    def __init__(self, key: str, pending: dict[str, Any]) -> None:
        super().__init__(pending["message"])
        self.key = key
        self.pending = pending


class PhaseFailed(SwarmError):
    """A phase ended without success (a step failed, a human rejected or aborted); ``output`` keeps what was done."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


def describe(exc: BaseException) -> str:
    if isinstance(exc, SwarmError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def validation_summary(exc: ValidationError, limit: int = 3) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors()[:limit]]
    return "; ".join(parts)


def json_text(text: str) -> str:
    """The JSON document in a text answer: a fenced block's content, else from the first brace to the last."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else text


def clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15].rstrip() + " ...[truncated]"


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "output"


class CountingClient(JournaledModelClient):
    """A journaled model client that also adds every call's usage (live or replayed) to ``totals``."""

    def __init__(self, inner: Any, journal: CallJournal, agent: str, model: str, totals: dict[str, Usage]) -> None:
        super().__init__(inner, journal, agent, model)
        self.totals = totals

    async def create(self, messages: Any, **kwargs: Any) -> Any:
        result = await super().create(messages, **kwargs)
        used = Usage(prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)
        self.totals[self.model] = self.totals.get(self.model, Usage()) + used
        return result


@dataclass
class PhaseContext:
    """One phase run's view of its session (built by phases.runner from an engine and a session)."""

    engine: Any
    """The swarm Engine: agents (manifests), models (ModelSource), router, store, settings."""
    session_id: str
    work_dir: Path
    """The session's work dir: plan.json, code/, data/, step outputs."""
    state: dict[str, Any]
    """The session's meta: phase outputs (plan, step_results, ideas) are kept here."""
    journal: CallJournal
    """Every model call and code execution of this run goes through it."""
    run_id: str = "p1"
    outbox: list[Event] = field(default_factory=list)
    """Transcript events emitted and not yet saved."""
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Approval key -> the human's answer (id, decision, feedback, who)."""
    replayed_events: int = 0
    """Events an earlier run of this phase already recorded; a resumed run emits them again, so they are skipped."""
    sandbox: SandboxConfig | None = None
    grants: Grants | None = None
    """What the session may do (its durable record's): code runs only if they allow it."""
    round_base: int = 0
    """The session's round count when this run started; events are numbered from it."""
    emitted: int = 0
    rounds: int = 0
    """Agent turns in this run (replayed ones included): event round numbers."""
    usage: dict[str, Usage] = field(default_factory=dict)
    """Usage of every model call of this run (replayed ones included)."""

    def __post_init__(self) -> None:
        (self.work_dir / "data").mkdir(parents=True, exist_ok=True)

    # ---- agents and models ----------------------------------------------------------------

    def agent(self, name: str, *, output: type[BaseModel] | None = None, instructions: str = "") -> AssistantAgent:
        """A fresh autogen agent from the manifest, its model calls journaled; it keeps its own history across runs."""
        manifest = self.engine.agents.get(name)
        if manifest is None:
            raise UserInputError(f"this phase needs the agent {name!r}, which is not loaded; known agents: {sorted(self.engine.agents)}")
        models = self.engine.models
        client = CountingClient(models.client_for(name, manifest.model_tier), self.journal, name, models.spec_for(manifest.model_tier), self.usage)
        system = manifest.system_message.rstrip() + PHASE_NOTE + (f"\n{instructions.strip()}" if instructions else "")
        structured = output is not None and bool(client.model_info.get("structured_output"))
        if output is not None and not structured:  # e.g. Anthropic: JSON asked for in the prompt, parsed by ask()
            system += f"\nThe JSON document must match this JSON schema: {json.dumps(output.model_json_schema(), separators=(',', ':'))}"
        return AssistantAgent(name=name, model_client=client, description=manifest.description, system_message=system,
                              output_content_type=output if structured else None)

    async def ask(self, agent: AssistantAgent, task: str | BaseChatMessage, schema: type[T] | None = None, *,
                  check: Callable[[Any], None] | None = None, retries: int = FORMAT_RETRIES) -> Any:
        """One agent turn: text, or a validated ``schema`` instance. A malformed answer (or one ``check``
        rejects with ModelBehaviourError) goes back to the agent with the error, ``retries`` times. ``task`` is
        the prompt, or a message (a MultiModalMessage with images for a model that sees)."""
        prompt, error = task, ""
        for attempt in range(retries + 1):
            try:
                result = await agent.run(task=prompt)
                message = result.messages[-1]
                self._record(message)
                value: Any = message.content if isinstance(message, StructuredMessage) else message.to_text()
                if schema is not None and not isinstance(value, schema):
                    value = schema.model_validate_json(json_text(value))
                if check is not None:
                    check(value)
                return value
            except ValidationError as exc:
                self.rounds += 1
                error = f"the answer is not valid JSON for the expected format ({validation_summary(exc)})"
            except ModelBehaviourError as exc:
                error = str(exc)
            self.emit("error", {"error": error, "kind": "ModelBehaviourError", "attempt": attempt + 1, "retrying": attempt < retries}, agent=agent.name)
            prompt = f"Your answer was rejected: {error}.\nAnswer again, correcting this." + (" Reply with the JSON document only." if schema else "")
        raise ModelBehaviourError(f"{agent.name} gave no usable answer in {retries + 1} attempts; last problem: {error}")

    def _record(self, message: BaseChatMessage) -> None:
        self.rounds += 1
        usage = None
        if message.models_usage is not None:
            usage = Usage(prompt_tokens=message.models_usage.prompt_tokens, completion_tokens=message.models_usage.completion_tokens)
        content = message.content.model_dump(mode="json") if isinstance(message, StructuredMessage) else message.to_text()
        self.emit("message", {"text": message.to_text()} if isinstance(content, str) else {"json": content}, agent=message.source, usage=usage)

    # ---- code ------------------------------------------------------------------------------

    async def execute(self, code: str, language: str, filename: str) -> ExecutionResult:
        """Run a program in the sandbox in the work dir, as the executor; journaled, so a resumed run does not run it again."""
        args = {"code": code, "language": language, "filename": filename}

        async def live() -> str:
            check_code(self.grants, "the executor's code (the engineer's program)")
            sandbox = self.sandbox or sandbox_config(self.engine.settings)  # the operator's SWARM_MCP_SANDBOX; the store hidden
            return (await run_code(code, language, self.work_dir, sandbox, filename=filename)).model_dump_json()  # type: ignore[arg-type]

        self.emit("tool_call", {"name": "execute_code", "arguments": args}, agent="executor")
        request = json.dumps({"tool": "execute_code", "args": args}, sort_keys=True)
        response = await self.journal.call(agent="executor", kind="tool", name="execute_code", request=request, run=live)
        result = ExecutionResult.model_validate_json(response)
        failed = result.exit_code != 0 or result.timed_out
        self.emit("tool_result", {"name": "execute_code", "result": format_result(result, 1500), "is_error": failed,
                                  "isolation": result.isolation}, agent="executor")
        return result

    async def wait(self, seconds: float) -> None:
        """Pause for ``seconds`` (work that takes time without a model call); an interrupt of the run ends the pause
        at once, as it ends an in-flight model call: the run stops paused, or cancelled for cancel_session."""
        run = active_run()
        if run is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(run.stopping.wait(), seconds)
        except TimeoutError:
            return
        raise SessionInterrupted("cancel" if run.stop_reason == "cancel" else "pause", run.stop_note or "the run was interrupted")

    # ---- approvals -------------------------------------------------------------------------

    def approval_id(self, key: str) -> str:
        return "a_" + hashlib.sha256(f"{self.session_id}:{self.run_id}:{key}".encode()).hexdigest()[:12]

    async def approval(self, key: str, message: str, options: list[str], *, kind: str = "approval", agent: str | None = None) -> Answer:
        """The human's answer at this gate, or stop the run here until there is one."""
        pending = {"id": self.approval_id(key), "message": message, "options": list(options), "kind": kind, "agent": agent}
        self.emit("approval_request", pending, agent=agent)
        answer = self.answers.get(key)
        if answer is None:
            raise WaitingForApproval(key, pending)
        self.emit("approval_resolved", {"id": pending["id"], "decision": answer["decision"], "feedback": answer.get("feedback"),
                                        "who": answer.get("who", "user"), "kind": kind}, agent=answer.get("who", "user"))
        return Answer(**{**answer, "id": pending["id"]})

    # ---- transcript, phases, files ---------------------------------------------------------

    def emit(self, type: EventType, content: Any, *, agent: str | None = None, usage: Usage | None = None, replayable: bool = True) -> None:
        """Record a transcript event. Events a resumed run emits again (``replayable``) are counted, and
        skipped while the run replays; an event that ends a run on an exception is not (the resumed run goes on)."""
        if replayable:
            self.emitted += 1
            if self.emitted <= self.replayed_events:
                return  # written by an earlier run of this phase
        self.outbox.append(Event(type=type, round=self.round_base + self.rounds, agent=agent, content=content, usage=usage))

    def usage_total(self) -> dict[str, Usage]:
        """A copy of this run's usage so far (replayed calls included: a resumed run recounts its whole run)."""
        return dict(self.usage)

    async def phase(self, name: str, params: BaseModel, run: Callable[["PhaseContext", Any], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run a phase (or a sub-phase) between phase_start and phase_end events."""
        before = self.usage_total()
        self.emit("phase_start", {"phase": name, "inputs": params.model_dump(mode="json")})
        try:
            output = await run(self, params)
        except (WaitingForApproval, SessionInterrupted):
            raise  # not ended: the resumed run ends it
        except Exception as exc:
            usage = _usage_since(before, self.usage_total())
            end = {"phase": name, "status": "failed", "error": describe(exc), "usage": usage}
            if isinstance(exc, PhaseFailed):
                end["output"] = exc.output
            self.emit("phase_end", end, replayable=False)
            raise
        self.emit("phase_end", {"phase": name, "status": "completed", "output": output, "usage": _usage_since(before, self.usage_total())})
        return output

    def write(self, relpath: str, text: str) -> str:
        path = self.work_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return relpath

    def files(self) -> list[str]:
        """Files in the work dir (relative), the sandbox's scratch dir left out."""
        if not self.work_dir.is_dir():
            return []
        return sorted(str(p.relative_to(self.work_dir)) for p in self.work_dir.rglob("*")
                      if p.is_file() and not p.relative_to(self.work_dir).parts[0].startswith("."))


def _usage_since(before: dict[str, Usage], after: dict[str, Usage]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model, item in after.items():
        prior = before.get(model, Usage())
        p, c = item.prompt_tokens - prior.prompt_tokens, item.completion_tokens - prior.completion_tokens
        if p or c:
            out[model] = {"prompt_tokens": p, "completion_tokens": c}
    return out
