"""Running phases: standalone (a session of kind ``phase:<name>``, or an existing session), with
approvals answered later, in this process or another; and inline, as a tool of a swarm session.

A session's phase runs are kept in its meta as ``phase_runs``, one dict per run:
``{id, name, params, status, answers, pending, events, rounds, usage, output, error}``. Each run has
its own journal (``<session id>:<run id>``), so running it again from the start replays every
completed model call and code execution; ``answers`` holds the human's answers by gate and
``events`` how many transcript events the run has written (a resumed run skips those).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel

from swarm.errors import ConfigError, InternalError, ProviderError, SessionInterrupted, SwarmError, UserInputError
from swarm.events import Event, Usage, now
from swarm.journal import CallJournal
from swarm.runner import make_work_dir
from swarm.scope import current_grants
from swarm.grants import Grants
from swarm.session import PendingApproval, SessionRecord
from swarm.status import Cancelled, Completed, Failed, Paused, Running, Transition, Waiting, transition
from swarm.tools import SessionContext
from swarm.work import OnUpdate

from .context import PhaseContext, PhaseFailed, WaitingForApproval, clip, describe
from .models import PhaseResult
from .registry import Phase, get_phase

log = logging.getLogger("phases.runner")
SANDBOX = "phases.sandbox"
"""engine.services key: an optional swarm.sandbox.SandboxConfig for the code phases run (default limits otherwise)."""
TOOL_RESULT_CHARS = 6000
WORK_KIND = "phase"
"""The kind of session work a phase run is (phases/work.py); a phase session's ``kind`` is ``phase:<name>``."""
SYNONYMS = {"modify": "revise", "approved": "approve", "accept": "approve", "rejected": "reject", "cancel": "abort"}


def journal_id(session_id: str, run_id: str) -> str:
    return f"{session_id}:{run_id}"


def task_of(phase: Phase, params: BaseModel) -> str:
    task = getattr(params, "task", None) or getattr(params, "message", None)
    return task or f"{phase.name}: {clip(params.model_dump_json(exclude_none=True), 500)}"


def new_run(record: SessionRecord, phase: Phase, params: BaseModel) -> dict[str, Any]:
    runs = record.meta.setdefault("phase_runs", [])
    run = {"id": f"p{len(runs) + 1}", "name": phase.name, "params": params.model_dump(mode="json"), "status": "running",
           "answers": {}, "pending": None, "events": 0, "rounds": 0, "usage": {}, "output": None, "error": None, "retryable": False}
    runs.append(run)
    return run


def last_run(record: SessionRecord) -> dict[str, Any] | None:
    runs = record.meta.get("phase_runs") or []
    return runs[-1] if runs else None


async def run_phase(engine: Any, name: str, params: Mapping[str, Any] | BaseModel | None = None, *,
                    session_id: str | None = None, principal: str = "local", grants: Grants | None = None,
                    on_update: OnUpdate | None = None) -> PhaseResult:
    """Run a phase in a new session (kind ``phase:<name>``, with ``grants``: by default a local caller's) or in
    ``session_id`` (which then supplies state such as the plan). A failed or interrupted run of the same phase with the
    same parameters there is resumed."""
    phase = get_phase(name)
    values = phase.validate(params)
    if session_id is None:
        phase.check_params({}, values)
        record = await engine.create(task_of(phase, values), kind=f"phase:{name}", principal=principal, grants=grants)
        return await drive(engine, record, phase, new_run(record, phase, values), on_update)
    record = await engine.get(session_id, principal)
    if record.status == "waiting_input" and record.pending is not None:
        raise UserInputError(f"session {session_id} is waiting for approval {record.pending.id!r} ({clip(record.pending.message, 200)!r}); "
                             "answer it with resolve_approval first")
    if record.status == "cancelled":
        raise UserInputError(f"session {session_id} was cancelled; run the phase without session_id to start a new session")
    phase.check_params(record.meta, values)
    run = last_run(record)
    if not (run and run["name"] == name and resumable(run) and run["params"] == values.model_dump(mode="json")):
        run = new_run(record, phase, values)
    return await drive(engine, record, phase, run, on_update)


def resumable(run: dict[str, Any]) -> bool:
    """Interrupted, or failed where running it again may succeed (the provider failed, or a bug).
    A run that failed on its own terms (a step's code kept failing, a rejection, a model that never
    gave a valid answer) would replay to the same end: running the phase again starts a new run."""
    return run["status"] in ("running", "paused") or (run["status"] == "failed" and bool(run.get("retryable")))


async def resume_phase(engine: Any, session_id: str, *, principal: str | None = None, on_update: OnUpdate | None = None) -> PhaseResult:
    """Go on with a session's last phase run that failed or was interrupted (not one waiting for an answer)."""
    record = await engine.get(session_id, principal)
    run = last_run(record)
    if run is None or not resumable(run):
        raise UserInputError(f"session {session_id} has no interrupted phase run (or one failed by its model provider) to resume (status {record.status})")
    return await drive(engine, record, get_phase(run["name"]), run, on_update)


async def resolve_approval(engine: Any, session_id: str, approval_id: str, decision: str, feedback: str | None = None,
                           who: str = "user", *, principal: str | None = None, on_update: OnUpdate | None = None,
                           channel: str = "resolve_approval") -> PhaseResult:
    """Answer a session's pending approval and go on: the phase resumes with the answer (or, for a swarm
    session's clarifying question, the session continues with the answer as the user's message)."""
    record = await engine.get(session_id, principal)
    pending = record.pending
    if record.status != "waiting_input" or pending is None:
        raise UserInputError(f"session {session_id} has no pending approval (its status is {record.status})")
    if approval_id != pending.id:
        raise UserInputError(f"approval {approval_id!r} is not pending in session {session_id}; the pending approval is {pending.id!r}: {clip(pending.message, 200)!r}")
    decision, feedback = normalize(decision, feedback, pending)
    answer = {"id": approval_id, "decision": decision, "feedback": feedback, "who": who, "channel": channel, "time": now().isoformat()}
    run = last_run(record)
    if run is None or not run.get("pending") or run["pending"]["id"] != approval_id:  # the swarm runner's question
        await engine.store.save(record, [Event(type="approval_resolved", round=record.total_rounds, agent=who, content={**answer, "kind": pending.kind})])
        record = await engine.run(session_id, message=feedback or decision, principal=principal, on_update=on_update)
        return result_of(record, None, record.kind)
    run["answers"][run["pending"]["key"]] = answer
    run["pending"] = None
    transition(record, Running())  # its event is the phase run's own, when it goes on
    await engine.store.save(record)  # the answer is durable before the phase goes on
    return await drive(engine, record, get_phase(run["name"]), run, on_update)


def normalize(decision: str, feedback: str | None, pending: PendingApproval) -> tuple[str, str | None]:
    text = (decision or "").strip()
    word = SYNONYMS.get(text.lower(), text.lower())
    if word in pending.options:
        return word, feedback
    if text.lower() in pending.options:
        return text.lower(), feedback
    if pending.kind == "question" and text:  # a question's decision may be the answer itself
        return "answer", feedback or text
    raise UserInputError(f"decision {decision!r} is not allowed for approval {pending.id}; choose one of {pending.options}")


async def drive(engine: Any, record: SessionRecord, phase: Phase, run: dict[str, Any], on_update: OnUpdate | None = None) -> PhaseResult:
    """Run (or re-run from the journal) one phase run until it completes, waits, or fails; save it.

    On a durable engine the run is played as a workflow (``swarm.session_run``): a crash mid-run
    resumes it by itself, replaying its journal. Inside a workflow (a phase called as a swarm tool)
    it plays inline, as part of that workflow.
    """
    if engine.live.executes(record.id):
        raise UserInputError(f"session {record.id} is already running; wait for it to finish")
    durable = getattr(engine, "durable", None)
    if durable is not None:
        from swarm.durable import in_workflow

        if not in_workflow():
            run["drives"] = run.get("drives", 0) + 1
            run["workflow"] = f"{record.id}.{run['id']}.{run['drives']}"
            await _start(engine, record, phase, run, on_update)
            record = await durable.play(WORK_KIND, record.id, run["workflow"], local=True)
            return result_of(record, last_run(record), phase.name)
    await _start(engine, record, phase, run, on_update)
    return await _play(engine, record, phase, run)


async def _start(engine: Any, record: SessionRecord, phase: Phase, run: dict[str, Any], on_update: OnUpdate | None = None) -> None:
    run.update(status="running", pending=None, error=None, retryable=False)
    run.setdefault("round_base", record.total_rounds)
    saved = await engine.store.save(record, [transition(record, Running({"phase": phase.name, "run": run["id"]}))])
    if on_update is not None:  # the caller hears that the run started (what it saves later is read back at its end)
        await on_update(record, saved)


async def play_last(engine: Any, session_id: str) -> SessionRecord:
    """The durable worker: play the session's last phase run if it is still running (after a crash, again)."""
    record = await engine.get(session_id)
    run = last_run(record)
    if run is None or record.status != "running" or run["status"] != "running":
        return record
    await _play(engine, record, get_phase(run["name"]), run)
    return record


async def _play(engine: Any, record: SessionRecord, phase: Phase, run: dict[str, Any]) -> PhaseResult:
    with engine.live.execute(record.id):
        return await _play_here(engine, record, phase, run)


async def _play_here(engine: Any, record: SessionRecord, phase: Phase, run: dict[str, Any]) -> PhaseResult:
    grants_token = current_grants.set(record.grants)
    try:
        journal = await CallJournal.load(engine.store, journal_id(record.id, run["id"]))
        work_dir = Path(record.meta.get("work_dir") or engine.settings.work_root / record.id)
        try:
            make_work_dir(work_dir / "data")
        except ConfigError as exc:  # the data directory is broken: the run fails clearly (retried by a continue), never stays running
            run.update(status="failed", error=str(exc), retryable=True)
            failure = Event(type="error", round=record.total_rounds, content={"error": str(exc), "kind": "ConfigError", "phase": phase.name})
            await engine.store.save(record, [failure, transition(record, Failed(str(exc), {"phase": phase.name}))])
            return result_of(record, run, phase.name)
        pctx = PhaseContext(engine=engine, session_id=record.id, work_dir=work_dir, state=record.meta, journal=journal, run_id=run["id"],
                            answers=run["answers"], replayed_events=run["events"], round_base=run["round_base"], sandbox=engine.services.get(SANDBOX),
                            grants=record.grants)
        extra: list[Event] = []
        try:
            run["output"] = await phase.execute(pctx, phase.params.model_validate(run["params"]))
            run["status"] = "completed"
        except WaitingForApproval as wait:
            run["status"], run["pending"] = "waiting_input", {"key": wait.key, **wait.pending}
        except asyncio.CancelledError:
            run["status"] = "paused"
            await asyncio.shield(_save(engine, record, run, pctx, [], reason="the call was cancelled"))
            raise
        except Exception as exc:  # a failed step, a rejection, model misbehaviour, a provider failure, a bug
            stop = next((e for e in (exc, journal.last_error) if isinstance(e, SessionInterrupted)), None)
            if stop is not None:  # stopped on purpose at a model call: resumable (or cancelled), not failed
                run["status"], reason = "cancelled" if stop.reason == "cancel" else "paused", stop.why
                await _save(engine, record, run, pctx, [], reason=reason)
                return result_of(record, run, phase.name)
            root = journal.last_error if isinstance(journal.last_error, ProviderError) else exc
            run["status"], run["error"] = "failed", (f"model provider failed: {root}" if isinstance(root, ProviderError) else describe(exc))
            run["output"] = exc.output if isinstance(exc, PhaseFailed) else None
            run["retryable"] = isinstance(root, ProviderError) or not isinstance(exc, SwarmError)
            if not isinstance(exc, (PhaseFailed, UserInputError)):
                log.warning("phase %s in session %s failed: %s", phase.name, record.id, run["error"], exc_info=not isinstance(root, ProviderError))
            extra.append(Event(type="error", round=record.total_rounds, content={"error": run["error"], "kind": type(root).__name__, "phase": phase.name}))
        await _save(engine, record, run, pctx, extra)
    finally:
        current_grants.reset(grants_token)
    return result_of(record, run, phase.name)


async def _save(engine: Any, record: SessionRecord, run: dict[str, Any], pctx: PhaseContext, extra: list[Event], reason: str | None = None) -> None:
    # A run's usage and rounds are those of its whole (replayed) run: the session gets what is new since the last save.
    before = {m: Usage(**u) for m, u in run["usage"].items()}
    for model, item in pctx.usage_total().items():
        prior = before.get(model, Usage())
        delta = Usage(prompt_tokens=item.prompt_tokens - prior.prompt_tokens, completion_tokens=item.completion_tokens - prior.completion_tokens)
        record.usage[model] = record.usage.get(model, Usage()) + delta
    run["usage"] = {m: u.model_dump() for m, u in pctx.usage.items()}
    record.rounds_used = pctx.rounds - run["rounds"]
    record.total_rounds += record.rounds_used
    run["rounds"] = pctx.rounds
    run["events"] = max(run["events"], pctx.emitted)
    detail, status = {"phase": run["name"]}, run["status"]
    to: Transition
    if status == "completed":
        output = run["output"] or {}
        to = Completed(clip(str(output.get("answer") or json.dumps(output, default=str)), 4000), run["output"], detail)
    elif status == "waiting_input":
        to = Waiting(PendingApproval(**{k: v for k, v in run["pending"].items() if k != "key"}), detail)
    elif status == "failed":
        to = Failed(run["error"], detail)
    elif status == "cancelled":
        to = Cancelled(reason, detail)
    else:  # interrupted: resumable
        to = Paused(reason, detail)
    events = [*pctx.outbox, *extra, transition(record, to)]
    pctx.outbox.clear()
    await engine.store.save(record, events)


def result_of(record: SessionRecord, run: dict[str, Any] | None, phase: str) -> PhaseResult:
    status = record.status if record.status in ("completed", "waiting_input", "failed") else "running"
    return PhaseResult(session_id=record.id, phase=phase, status=status, output=run.get("output") if run else {"answer": record.result},
                       error=record.error, pending_approval=record.pending, usage=record.usage, total_tokens=record.total_usage().total_tokens,
                       work_dir=record.meta.get("work_dir"))


def with_profile_defaults(phase: Phase, params: BaseModel, profile: Any) -> BaseModel:
    """``params`` with the session profile's defaults for ``phase`` in place of the parameters the agent left unset."""
    defaults = profile.phase_defaults(phase.name) if profile is not None else {}
    unset = {k: v for k, v in defaults.items() if k in type(params).model_fields and k not in params.model_fields_set}
    return phase.validate({**params.model_dump(exclude_unset=True), **unset}) if unset else params


async def run_as_tool(phase: Phase, ctx: SessionContext, params: BaseModel) -> str:
    """A phase called by an agent of a swarm session: runs inline in that session (its state, its
    transcript, a journal of its own keyed by the tool call's journal position); an interactive phase
    runs in a session of its own, whose id and pending approval the tool returns."""
    engine = ctx.services.get("engine")
    if engine is None:
        raise InternalError("phase tools need the engine in the session's services (services['engine'])")
    params = with_profile_defaults(phase, params, ctx.profile)
    if phase.interactive:
        parent = await engine.get(ctx.session_id)
        result = await run_phase(engine, phase.name, params, principal=parent.principal, grants=parent.grants)
        ctx.state.setdefault("phase_sessions", []).append({"phase": phase.name, "session_id": result.session_id})
        reply = result.model_dump(mode="json", include={"session_id", "phase", "status", "output", "error", "pending_approval"})
        if result.pending_approval is not None:
            reply["next"] = (f"the phase waits for a human: ask the user, then answer approval {result.pending_approval.id} "
                             f"of session {result.session_id} with resolve_approval")
        return clip(json.dumps(reply, default=str), TOOL_RESULT_CHARS)
    outer = ctx.journal
    run_id = f"t{outer.position}" if outer is not None else f"t_{uuid.uuid4().hex[:8]}"
    journal = await CallJournal.load(engine.store, journal_id(ctx.session_id, run_id))
    pctx = PhaseContext(engine=engine, session_id=ctx.session_id, work_dir=ctx.work_dir, state=ctx.state, journal=journal,
                        run_id=run_id, outbox=ctx.outbox, sandbox=engine.services.get(SANDBOX), grants=ctx.grants)
    reply = {"phase": phase.name, "status": "completed"}
    try:
        reply["output"] = await phase.execute(pctx, params)
    except PhaseFailed as exc:
        reply.update(status="failed", error=str(exc), output=exc.output)
    finally:
        if outer is not None:
            for model, item in journal.take_usage().items():  # the engine's own accounting of the phase's calls
                outer.usage[model] = outer.usage.get(model, Usage()) + item
    return clip(json.dumps(reply, default=str), TOOL_RESULT_CHARS)
