"""Phase runs as a kind of session work (swarm.work.SessionWork): how a phase session goes on, how its approvals
are answered, whether it may run code, which workflow runs it. Handed to the engine with the phase tools
(``phase_tool_registry``), so no caller of the engine needs to know that a session runs phases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from pydantic import BaseModel

from swarm.errors import UserInputError
from swarm.grants import Grants, Origin, check_code
from swarm.session import PendingApproval, SessionRecord
from swarm.work import OnUpdate

from .registry import get_phase
from .runner import WORK_KIND, last_run, normalize, play_last, resolve_approval, resume_phase, task_of

if TYPE_CHECKING:
    from swarm.engine import Engine


class PhaseWork:
    """swarm.work.SessionWork for sessions that run phases."""

    name = WORK_KIND
    takes_input_while_running = False

    async def go_on(self, engine: "Engine", record: SessionRecord, *, message: str | None, max_rounds: int | None,
                    principal: str | None, on_update: OnUpdate | None, local: bool) -> SessionRecord:
        """Answer the pending approval with ``message``, or resume an interrupted (or provider-failed) run."""
        check_code_of(record)
        if record.status == "waiting_input" and record.pending is not None:
            if not message:
                raise UserInputError(f"session {record.id} waits for approval {record.pending.id} ({record.pending.message!r}); "
                                     f"answer it with resolve_approval (one of {list(record.pending.options)}) or pass the decision as message")
            return await self.answer(engine, record, record.pending, message, None, who="user", principal=principal,
                                     on_update=on_update, local=local)
        if message:
            raise UserInputError(f"session {record.id} runs the {record.kind.split(':', 1)[-1]} phase, which takes no message; "
                                 "start a session with copilot, or run a phase with session_id to build on this one")
        await resume_phase(engine, record.id, principal=principal, on_update=on_update)
        return await engine.get(record.id)

    def check_answer(self, record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None) -> tuple[str, str | None]:
        return normalize(decision, feedback, pending)

    async def answer(self, engine: "Engine", record: SessionRecord, pending: PendingApproval, decision: str, feedback: str | None, *,
                     who: str, principal: str | None, on_update: OnUpdate | None, local: bool, channel: str = "resolve_approval") -> SessionRecord:
        decision, feedback = self.check_answer(record, pending, decision, feedback)
        check_code_of(record)
        await resolve_approval(engine, record.id, pending.id, decision, feedback, who, principal=principal, on_update=on_update, channel=channel)
        return await engine.get(record.id)

    def workflow(self, record: SessionRecord) -> str | None:
        run = last_run(record)
        return run.get("workflow") if run else None

    async def play(self, engine: "Engine", session_id: str) -> SessionRecord:
        return await play_last(engine, session_id)


def may_run_code(phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether running ``phase`` with ``params`` in a session with ``state`` (its meta) may execute code."""
    return get_phase(phase).may_run_code(params, state)


def check_phase(grants: Grants | None, phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Before a phase runs: refuse at once, rather than after its planning spent model calls, if it may run code
    and the session's grants do not allow it (the gate itself is at the moment code would run: PhaseContext.execute)."""
    if may_run_code(phase, params, state):
        check_code(grants, f"the {phase} phase (its engineer runs code)")


def check_code_of(record: SessionRecord) -> None:
    """``check_phase`` for a phase session going on, with the parameters of its last run."""
    run = last_run(record)
    params = (run.get("params") or {}) if run else {}
    name = run.get("name") if run else str(record.kind).split(":", 1)[-1]
    check_phase(record.grants, str(name), params, record.meta or {})


async def open_phase(engine: "Engine", name: str, args: Mapping[str, Any], *, session_id: str | None, principal: str,
                     origin: Origin, sampling: bool) -> tuple[SessionRecord, BaseModel]:
    """Check a call of phase ``name`` and give the session it runs in - a new one (``phase:<name>``, with the grants
    of a caller from ``origin``), or ``session_id``'s, which supplies state such as the plan - with its parameters."""
    phase = get_phase(name)
    params = phase.validate({k: v for k, v in args.items() if v is not None})
    if session_id is None:
        phase.check_params({}, params)
        check_phase(engine.grants_for(origin, sampling=sampling), name, params.model_dump(), {})
        record = await engine.create(task_of(phase, params), kind=f"{WORK_KIND}:{name}", principal=principal, origin=origin, sampling=sampling)
    else:
        record = await engine.admit(session_id, principal, origin)
        check_phase(record.grants, name, params.model_dump(), record.meta or {})
    return record, params
