"""Approvals inside a copilot session, by the policy of its profile (swarm/profiles.py ``ApprovalPolicy``).

    an agent's model proposes code (execute_code) or a phase (invoke_*_phase)  -> before_code / before_phase
    an agent is about to read a failed step's result                            -> after_failure

The gate sits at the model boundary, where a session can stop and resume exactly: the model's answer is journaled,
then the gate asks (``ApprovalNeeded`` ends the leg ``waiting_input``); once answered, the leg is played again, the
journal returns the same answer, and the decision (kept in the record, ``meta["approvals"]``) applies:

    approve -> the code or phase runs; after a failure, the agent goes on (and fixes it)
    reject  -> the call is refused (the agent reads who refused it and why); after a failure, the session is cancelled
    revise  -> the call is refused with the human's feedback for the agent to act on; after a failure, the agent
               reads the feedback before it goes on

Approval ids come from the journal position and the call itself, so they are the same on every replay.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Mapping, MutableMapping, Sequence

from autogen_core.models import CreateResult, FunctionExecutionResultMessage, LLMMessage, UserMessage
from autogen_core.tools import BaseTool

from .errors import SessionCancelled, SwarmError
from .profiles import ApprovalPolicy
from .session import PendingApproval
from .tools import GuardedTool

OPTIONS = ["approve", "reject", "revise"]
CODE_PREVIEW = 4000


class ApprovalNeeded(SwarmError):
    """A copilot session reached an approval its policy requires and nobody has answered: it waits for a human."""

    def __init__(self, pending: PendingApproval) -> None:
        super().__init__(pending.message)
        self.pending = pending


class ToolRefused(Exception):
    """A human rejected (or asked to revise) a tool call: the agent reads this instead of the tool's result."""


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def failed(result: Any) -> bool:
    """Whether a tool result reports a failure: an error, or code that exited non-zero or timed out."""
    if getattr(result, "is_error", False):
        return True
    text = str(getattr(result, "content", ""))
    if text.startswith("error:"):
        return True
    return text.startswith("exit_code: ") and not text.startswith("exit_code: 0 |") or "| timed_out: True |" in text.split("\n", 1)[0]


class ApprovalGate:
    """One session's approvals while a leg plays: asks what its policy requires, applies what was answered."""

    def __init__(self, policy: ApprovalPolicy, answers: MutableMapping[str, Any], is_phase: Callable[[str], bool],
                 code_allowed: bool = True) -> None:
        self.policy = policy
        self.code_allowed = code_allowed
        """Whether the session's grants let code run at all: if not, nobody is asked about code (the tool refuses it)."""
        self.answers = answers
        """Answers by approval id (``{decision, feedback, who, channel}``), kept in the session record."""
        self.is_phase = is_phase
        self.by_call: dict[str, tuple[str, str]] = {}
        """Tool call id -> (approval id, what it approves: code | phase), for the calls the gate asked about."""
        self.refused: set[str] = set()
        """Tool call ids refused by a human: their error results are answers, not failed steps."""

    def _what(self, tool: str) -> str | None:
        if tool == "execute_code" and self.policy.before_code:
            return "code" if self.code_allowed else None
        if self.policy.before_phase and self.is_phase(tool):
            return "phase"
        return None

    def after_model(self, agent: str, result: CreateResult, position: int) -> None:
        """After ``agent``'s model answered (journal position ``position``): ask about any gated call in its answer."""
        if not isinstance(result.content, list):
            return
        for call in result.content:
            what = self._what(getattr(call, "name", ""))
            if what is None:
                continue
            approval = f"{what}_{position}_{_key(call.name, call.arguments)}"
            self.by_call[call.id] = (approval, what)
            if approval not in self.answers:
                raise ApprovalNeeded(PendingApproval(id=approval, message=describe_call(agent, what, call.name, call.arguments),
                                                     options=list(OPTIONS), kind=what, agent=agent))

    def before_model(self, agent: str, messages: Sequence[LLMMessage], position: int) -> list[LLMMessage]:
        """Before ``agent``'s next model call (the ``position + 1``-th): if it is about to read a failed step, ask; the
        messages to send (with the human's feedback added on revise)."""
        if not self.policy.after_failure or not messages or not isinstance(messages[-1], FunctionExecutionResultMessage):
            return list(messages)
        bad = [r for r in messages[-1].content if failed(r) and r.call_id not in self.refused]
        if not bad:
            return list(messages)
        approval = f"failure_{position + 1}_{_key([str(r.content)[:2000] for r in bad])}"
        answer = self.answers.get(approval)
        if answer is None:
            detail = "\n".join(f"{r.name}: {str(r.content)[:1500]}" for r in bad)
            raise ApprovalNeeded(PendingApproval(
                id=approval, kind="failure", agent=agent, options=list(OPTIONS),
                message=f"A step of {agent} failed:\n{detail}\n\napprove: {agent} goes on and fixes it; revise: it goes on with "
                        "your feedback; reject: stop the session here."))
        if answer["decision"] == "reject":
            raise SessionCancelled(f"{answer.get('who') or 'a human'} stopped the session after a failed step"
                                   + (f": {answer['feedback']}" if answer.get("feedback") else ""))
        if answer["decision"] == "revise" and answer.get("feedback"):
            return [*messages, UserMessage(content=f"{answer.get('who') or 'The user'} says about the failure: {answer['feedback']}", source="user")]
        return list(messages)

    def check_tool(self, tool: str, call_id: str | None) -> None:
        """Before a gated tool runs: raise ToolRefused unless its call was approved (calls the gate did not ask about pass)."""
        if tool == "execute_code" and not self.code_allowed:  # the session's grants refuse it: a refusal, not a failed step
            self.refused.add(call_id or "")
            return
        asked = self.by_call.get(call_id or "")
        if asked is None:
            if self._what(tool) is not None:  # gated but never asked (no call id): refuse rather than run unapproved
                self.refused.add(call_id or "")
                raise ToolRefused(f"{tool} needs a human's approval in this session, and this call was not put to one")
            return
        approval, what = asked
        answer = self.answers.get(approval) or {}
        decision, who, feedback = answer.get("decision"), answer.get("who") or "the user", answer.get("feedback")
        if decision == "approve":
            return
        self.refused.add(call_id or "")
        thing = "this code" if what == "code" else f"the {tool} call"
        if decision == "revise":
            raise ToolRefused(f"{who} asks for a revision before {thing} runs: {feedback or '(no feedback given)'}. Change it and try again.")
        raise ToolRefused(f"{who} rejected running {thing}" + (f": {feedback}" if feedback else "") + ". Do not run it; go on without it or ask.")


def describe_call(agent: str, what: str, tool: str, arguments: str) -> str:
    """What a human is asked about a proposed call: the code itself, or the phase and its parameters."""
    try:
        args: Any = json.loads(arguments or "{}")
    except ValueError:
        args = arguments
    if what == "code" and isinstance(args, Mapping):
        code = str(args.get("code", ""))
        clipped = code if len(code) <= CODE_PREVIEW else code[:CODE_PREVIEW] + f"\n... ({len(code) - CODE_PREVIEW} more characters)"
        return f"{agent} wants to run this {args.get('language') or 'python'} code in the session's sandbox:\n{clipped}"
    return f"{agent} wants to run {tool} with {json.dumps(args, default=str)[:CODE_PREVIEW]}"


def approved(tool: BaseTool[Any, Any], gate: ApprovalGate) -> GuardedTool:
    """``tool`` whose calls run only once approved (``ApprovalGate.check_tool``); a refusal is what the agent reads."""
    return GuardedTool(tool, lambda _args, call_id: gate.check_tool(tool.name, call_id))
