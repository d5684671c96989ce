"""One tool call's link to its client: who calls, what the client can do, progress, and asking it things.

Asking the client (an approval through elicitation, a model call through sampling) takes one of two
forms, chosen by the protocol era of the call:

- 2025-11-25: a server-to-client request in the middle of the call (``elicitation/create``,
  ``sampling/createMessage``), answered before the call goes on;
- 2026-07-28 (no back-channel): the call returns an ``InputRequiredResult`` carrying the requests
  and an opaque ``request_state`` (sealed by the SDK); the client answers them and retries the same
  call, and ``Call.state`` / ``Call.responses`` bring the answers back to the session.

This is the same two-era transport the SDK's ``Resolve(...)`` resolvers use, driven from the tool
body instead of from a resolver: a session's question is only known after the session has run
(a resolver runs before the body), a call may need several rounds (several model calls, then a
question), and our own request_state carries the session id across the retries.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from typing import Any, Literal

import mcp_types as types
from pydantic import BaseModel, Field, ValidationError, create_model

from .principal import is_remote, principal_of
from .render import event_line

log = logging.getLogger("swarm_mcp.interaction")

in_task: contextvars.ContextVar[bool] = contextvars.ContextVar("swarm_mcp_in_task", default=False)
"""Set while a tool call is started as an MCP task (server/tasks.py): the call returns at once, and the session
asks its questions through the task, not the call; its model is the server's (a task has no client to sample)."""

STATE_VERSION = 1
MAX_RELAY_ROUNDS = 8
"""Input-required rounds per call before it returns ``running`` (the SDK client gives up after 10)."""


class Call:
    """The context of one tools/call, as the service needs it."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.principal = principal_of(ctx)
        self.remote = is_remote(ctx)
        """Whether the call came over HTTP: sessions it creates or continues may not execute code unless the operator allows it."""
        self.origin: Literal["local", "remote"] = "remote" if self.remote else "local"
        """The same, as a session's grants name it (swarm.grants)."""
        self.declined: set[str] = set()
        self._progress = 0.0
        self._round = -1
        self._beats = 0

    @functools.cached_property
    def modern(self) -> bool:
        """Whether the call speaks 2026-07-28 (no back-channel: ask through InputRequiredResult)."""
        return (self.ctx.protocol_version or "") >= "2026"

    @functools.cached_property
    def _capabilities(self) -> Any:
        try:
            return self.ctx.client_capabilities
        except ValueError:  # no request (a direct call in tests)
            return None

    @property
    def can_elicit(self) -> bool:
        if in_task.get():
            return False
        elicitation = self._capabilities.elicitation if self._capabilities is not None else None
        return elicitation is not None and (elicitation.form is not None or elicitation.url is None)

    @property
    def can_sample(self) -> bool:
        if in_task.get():
            return False
        return self._capabilities is not None and self._capabilities.sampling is not None

    @property
    def sampling_tools(self) -> bool:
        return self.can_sample and self._capabilities.sampling.tools is not None

    @functools.cached_property
    def state(self) -> dict[str, Any] | None:
        """Our request_state, on a 2026-07-28 retry that carries the client's answers."""
        return _decode(self.ctx.request_state)

    @functools.cached_property
    def responses(self) -> dict[str, Any]:
        return dict(self.ctx.input_responses or {})

    # ---- progress -------------------------------------------------------------------------------

    async def report(self, rounds: int, total: int | None, message: str, *, heartbeat: bool = False) -> None:
        """A progress notification (a no-op without a progress token). Progress only ever grows:
        ``rounds`` done, plus a fraction that grows with each heartbeat within the round."""
        if rounds != self._round:
            self._round, self._beats = rounds, 0
        else:
            self._beats += 1
        value = max(self._progress, rounds + self._beats / (self._beats + 1))
        if value <= self._progress and self._progress > 0:
            value = self._progress + 1e-6
        self._progress = value
        if total is not None and value > total:
            total = None
        try:
            await self.ctx.report_progress(value, total, message)
        except Exception as exc:  # a progress notification must never fail the call
            log.debug("progress not sent: %s", exc)

    async def progress(self, run: Any, events: list[Any], heartbeat: bool) -> None:
        """The run registry's progress hook: one notification per update, and per heartbeat."""
        record = run.record
        rounds = record.rounds_used if record is not None else 0
        total = record.max_rounds if record is not None else None
        sid = run.session_id
        if heartbeat:
            if run.waiting():
                await self.report(rounds, total, f"session {sid} round {rounds}: waiting for the client's model (sampling)", heartbeat=True)
            else:
                await self.report(rounds, total, f"session {sid} round {rounds}: still working", heartbeat=True)
            return
        shown = [e for e in events if e.type not in ("status",)] or events
        if shown:
            await self.report(rounds, total, f"session {sid} round {rounds}: {event_line(shown[-1])}")

    # ---- sampling -------------------------------------------------------------------------------

    def channel(self, timeout: float) -> Any:
        """A factory of this client's sampling channel for a run (None if the client offers no sampling)."""
        if not self.can_sample:
            return None
        from .sampling import PushChannel, RelayChannel

        if self.modern:
            return lambda run: RelayChannel(run, tools=self.sampling_tools, timeout=timeout)
        session = self.ctx.session
        return lambda run: PushChannel(session, tools=self.sampling_tools, timeout=timeout)

    def relay_rounds(self) -> int:
        return int(self.state.get("n", 0)) if self.state else 0

    def relay(self, session_id: str, requests: list[Any]) -> types.InputRequiredResult:
        """Hand the run's pending requests (model calls) to the client; its retry brings the answers."""
        return types.InputRequiredResult(
            input_requests={r.key: r.request for r in requests},
            request_state=_encode({"sid": session_id, "relay": [r.key for r in requests], "n": self.relay_rounds() + 1}),
        )

    # ---- elicitation ----------------------------------------------------------------------------

    def ask(self, session_id: str, pending: Any) -> types.InputRequiredResult:
        """2026-07-28: ask a pending approval as an elicitation inside an InputRequiredResult."""
        key = f"approval-{pending.id}"
        request = types.ElicitRequest(params=types.ElicitRequestFormParams(message=approval_question(pending), requested_schema=approval_schema(pending)))
        return types.InputRequiredResult(
            input_requests={key: request},
            request_state=_encode({"sid": session_id, "ask": {"key": key, "approval": pending.id}, "n": self.relay_rounds() + 1}),
        )

    def answer_from_state(self) -> tuple[str, tuple[str, str | None] | None] | None:
        """On a retry that carries an elicitation answer: (approval id, (decision, feedback) or None if declined)."""
        ask = (self.state or {}).get("ask")
        if not ask:
            return None
        response = self.responses.get(ask["key"])
        if response is None:
            return ask["approval"], None
        data = response.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(response, BaseModel) else response
        try:
            result = types.ElicitResult.model_validate(data, by_name=False)
        except ValidationError:
            return ask["approval"], None
        if result.action != "accept" or not result.content:
            return ask["approval"], None
        return ask["approval"], approval_decision(result.content)

    async def elicit(self, pending: Any) -> tuple[str, str | None] | None:
        """2025-11-25: ask a pending approval with an elicitation request; None if declined or cancelled."""
        model = _model(pending)
        try:
            outcome = await self.ctx.elicit(approval_question(pending), model)
        except Exception as exc:  # the client failed the request: fall back to returning waiting_input
            log.info("elicitation failed (%s); returning the question to the caller", exc)
            return None
        if outcome.action != "accept":
            return None
        return approval_decision(outcome.data.model_dump())


# ---- approval forms ---------------------------------------------------------------------------------


def approval_question(pending: Any) -> str:
    who = f"{pending.agent} asks" if pending.agent else "The swarm asks"
    return f"{who}: {pending.message}" if pending.kind == "question" else f"{pending.kind} approval: {pending.message}"


def _model(pending: Any) -> type[BaseModel]:
    if pending.kind == "question" or list(pending.options) in ([], ["answer"]):
        return create_model("Answer", answer=(str, Field(description="Your answer")))
    options = tuple(pending.options)
    return create_model(
        "Decision",
        decision=(Literal[options], Field(description=f"One of: {', '.join(options)}")),  # type: ignore[valid-type]
        feedback=(str, Field(default="", description="Optional: what to change, or why")),
    )


def approval_schema(pending: Any) -> dict[str, Any]:
    from mcp.server.elicitation import render_elicitation_schema

    return render_elicitation_schema(_model(pending))


def approval_decision(content: dict[str, Any]) -> tuple[str, str | None]:
    if "answer" in content:
        return "answer", str(content["answer"])
    feedback = content.get("feedback")
    return str(content.get("decision", "")), (str(feedback) if feedback else None)


# ---- request_state ----------------------------------------------------------------------------------


def _encode(state: dict[str, Any]) -> str:
    return json.dumps({"swarm": STATE_VERSION, **state}, separators=(",", ":"))


def _decode(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("swarm") != STATE_VERSION or not isinstance(state.get("sid"), str):
        return None
    return state
