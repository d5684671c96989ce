"""Input sent to a session while it runs, on a durable engine (swarm/durable.py).

    send -> the input goes at once to the inbox of the session's current leg (a DBOS message, topic ``input``) if that
        leg's workflow has not ended, and the workflow ``swarm.session_input`` is started to see it delivered
    the leg takes it when its rounds end (``DurableRuns.execute``) and goes on with it as its next leg, in the same
        workflow; the delivery waits for that workflow's result, which names the input it took
    a leg that ended without taking it (it failed, was cancelled, or ended just before the input came): the delivery
        opens the session's next leg with it, as continue_copilot with a message would

Every step of a delivery is a DBOS step, so a crash in the middle of one resumes it and the input is taken once.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable, cast

from dbos import DBOS, SetWorkflowID

from .errors import UserInputError
from .work import InputWork

if TYPE_CHECKING:
    from .durable import DurableRuns

log = logging.getLogger("swarm.durable")

INPUT_TOPIC = "input"
"""The topic of the DBOS messages a running leg takes as its next input when its rounds end."""
DELIVERY_HOPS = 50
DELIVERY_WAIT = 0.2
"""A delivery that finds the session's leg prepared but not yet started waits this long, at most DELIVERY_HOPS times."""


@DBOS.workflow(name="swarm.session_input")
async def session_input(session_id: str, given: dict[str, Any]) -> str:
    """Deliver input sent while the session ran (see ``InputDelivery.deliver``)."""
    from .durable import _runs  # (the process's one durable engine; durable.py imports this module)

    return await _runs().inputs.deliver(session_id, given)


class InputDelivery:
    """Input sent to the sessions of one durable engine while they run."""

    def __init__(self, runs: "DurableRuns") -> None:
        self.runs = runs

    def opener(self, work: InputWork, session_id: str, given: dict[str, Any], workflow: str | None) -> Callable[[], Awaitable[int | None]]:
        """A step that opens the work ``given`` starts (run by ``workflow``, or by its own); None if the session refuses it."""
        async def open_work() -> int | None:
            try:
                record = await work.open(self.runs.engine, session_id, given["message"], given.get("max_rounds"),
                                         on_update=self.runs.live.relay(session_id), workflow=workflow, input_id=given["id"])
                return record.total_rounds + 1  # (recorded by DBOS: any number says "opened")
            except UserInputError as exc:  # the session was cancelled meanwhile, ...
                log.warning("input %s for session %s was not taken: %s", given["id"], session_id, exc)
                return None

        return open_work

    async def send(self, session_id: str, message: str, max_rounds: int | None = None) -> str:
        """Queue a message for a running session, durably; return the input's id.

        The workflow ``swarm.session_input`` delivers it: as a DBOS message to the running leg, which takes
        it when its rounds end, or, if that leg ended without taking it, as the start of the next leg.
        """
        if not message.strip():
            raise UserInputError("the message is empty: pass the text the session should take next")
        if max_rounds is not None and max_rounds < 1:
            raise UserInputError(f"max_rounds must be at least 1, got {max_rounds}")
        given = {"id": uuid.uuid4().hex[:12], "message": message, "max_rounds": max_rounds}
        target = await self.target(session_id)
        if target:  # in the leg's inbox before the call returns (the delivery's own send of it is a no-op)
            await DBOS.send_async(target, given, topic=INPUT_TOPIC, idempotency_key=given["id"])
        with SetWorkflowID(f"{session_id}.input.{given['id']}"):
            await DBOS.start_workflow_async(session_input, session_id, given)
        return given["id"]

    async def deliver(self, session_id: str, given: dict[str, Any]) -> str:
        """The body of ``swarm.session_input``: hand ``given`` to the session's running leg, or start the next leg."""
        for _ in range(DELIVERY_HOPS):
            target = await DBOS.run_step_async({"name": "find-leg"}, self.target, session_id)
            if target == "":  # prepared but not started yet (or recovering): look again shortly
                await DBOS.sleep_async(DELIVERY_WAIT)
                continue
            if target is None:  # the session is not running: the input starts its next leg
                work = self.runs.engine.work_of(await self.runs.store.get_session(session_id))
                if not work.takes_input_while_running:  # (send_input refuses such input before it is queued)
                    return "refused"
                opened = await DBOS.run_step_async({"name": "open-leg"}, self.opener(cast(InputWork, work), session_id, given, None))
                if opened is None:
                    return "refused"
                await self.runs.enqueue(await self.runs.store.get_session(session_id))
                return "started"
            await DBOS.send_async(target, given, topic=INPUT_TOPIC, idempotency_key=given["id"])
            try:
                outcome = await DBOS.get_result_async(target)
            except Exception:  # the leg was cancelled or failed: it took no input; look again
                outcome = None
            if isinstance(outcome, dict) and given["id"] in outcome.get("taken", []):
                return "taken"
        log.error("input %s for session %s was not delivered: the session's leg never started", given["id"], session_id)
        return "undelivered"

    async def target(self, session_id: str) -> str | None:
        """The workflow of the session's current leg while it has not ended: its rounds run, or they have just ended and
        it is about to take the input sent to it (the session's status already says how its rounds ended); None when
        no leg of the session runs; "" when the session's leg is prepared but its workflow has not started."""
        record = await self.runs.store.get_session(session_id)
        wid = self.runs.engine.workflow_of(record)
        status = await DBOS.get_workflow_status_async(wid) if wid is not None else None
        if status is not None and status.status in ("PENDING", "ENQUEUED"):
            return wid
        return "" if record.status == "running" else None
