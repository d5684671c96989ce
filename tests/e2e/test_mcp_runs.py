"""Long calls: wait_seconds, heartbeats, continue on a running session, client cancellation, cancel_session."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import pytest

import server.runs
from tests.e2e.mcp_harness import Recorder, connect, data, era, make_server, text  # noqa: F401

pytestmark = pytest.mark.anyio

HANG = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "hang": True},
    {"agent": "engineer", "text": "Resumed and done."},
]


async def test_client_cancellation_mid_call_leaves_the_session_paused_and_resumable(settings: Any, era: str) -> None:
    server, script = make_server(settings, HANG)
    rec = Recorder()
    async with connect(server, era) as client:
        with anyio.move_on_after(60) as scope:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await client.call_tool("copilot", {"task": "Compute six times seven with Python"}, progress_callback=rec.on_progress)

                tg.start_soon(call)
                while len(script.calls) < 2:  # the engineer's model call hangs: cancel the call now
                    await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        sid = rec.progress[0][2].split()[1]

        # the server is healthy, and the session resumes where it stopped
        assert not (await client.call_tool("session_status", {"session_id": sid})).is_error
        done = data(await client.call_tool("continue_copilot", {"session_id": sid}))
        assert done["status"] == "completed" and done["result"] == "Resumed and done."
        events = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)["events"]
        paused = [e for e in events if e["type"] == "status" and e["content"]["status"] == "paused"]
        assert paused and "cancelled" in paused[0]["content"]["reason"]
        assert len(server.swarm.runs) == 0
    script.assert_exhausted()


async def test_continue_right_after_a_cancelled_call_waits_for_the_run_to_wind_down_then_resumes(settings: Any) -> None:
    server_, script = make_server(settings, HANG, cancel_grace=0.01)
    registry = server_.swarm.runs
    report, unwound = registry._on_update, anyio.Event()

    async def slow_unwinding(run: Any, record: Any, events: list[Any]) -> None:
        if record.status == "paused":  # the interrupted run is recording its pause: hold it there
            await unwound.wait()
        await report(run, record, events)

    registry._on_update = slow_unwinding
    rec = Recorder()
    async with connect(server_, "legacy") as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await client.call_tool("copilot", {"task": "Compute six times seven with Python"}, progress_callback=rec.on_progress)

                tg.start_soon(call)
                while len(script.calls) < 2:
                    await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
            sid = rec.progress[0][2].split()[1]
            async with anyio.create_task_group() as tg:
                results: list[Any] = []

                async def resume() -> None:
                    results.append(data(await client.call_tool("continue_copilot", {"session_id": sid})))

                tg.start_soon(resume)
                await anyio.wait_all_tasks_blocked()  # the continue call finds the run still winding down, far past its grace
                assert registry.get(sid) is not None and not registry.get(sid).done
                unwound.set()
        assert results[0]["status"] == "completed" and results[0]["result"] == "Resumed and done."
    script.assert_exhausted()


async def test_wait_seconds_returns_running_with_heartbeats_then_continue_waits(settings: Any, era: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.runs, "HEARTBEAT", 0.05)
    release = anyio.Event()
    server_, script = make_server(settings, [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "text": "Finished after the wait."},
    ], gates={1: release})
    rec = Recorder()
    async with connect(server_, era) as client:
        first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 1},
                                            progress_callback=rec.on_progress))
        assert first["status"] == "running" and first["live"] is True
        assert "continue_copilot" in first["next"]
        beats = [m for _, _, m in rec.progress if m.endswith("still working")]
        assert len(beats) >= 3
        values = [v for v, _, _ in rec.progress]
        assert values == sorted(values) and len(set(values)) == len(values)
        status = data(await client.call_tool("session_status", {"session_id": first["session_id"]}))
        assert status["status"] == "running" and status["live"] is True

        async def release_when_waiting(value: float, total: float | None, message: str | None) -> None:
            release.set()  # the continue call is following the live run: let the model answer

        done = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"], "wait_seconds": 30},
                                           progress_callback=release_when_waiting))
        assert done["status"] == "completed" and done["result"] == "Finished after the wait."
        assert done["total_rounds"] == 2  # one run, not a second one
    script.assert_exhausted()


async def test_continue_with_a_message_on_a_running_session_is_refused_without_durable_sessions(settings: Any) -> None:
    release = anyio.Event()
    server_, _ = make_server(dataclasses.replace(settings, durable=False),
                             [{"agent": "copilot_control", "handoff": "engineer"}, {"agent": "engineer", "text": "ok"}], gates={1: release})
    async with connect(server_, "legacy") as client:
        first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
        refused = await client.call_tool("continue_copilot", {"session_id": first["session_id"], "message": "faster"})
        assert refused.is_error and "still running" in text(refused)
        release.set()
        assert data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))["status"] == "completed"


async def test_a_message_for_a_running_durable_session_is_taken_when_its_rounds_end(settings: Any) -> None:
    release = anyio.Event()
    server_, script = make_server(dataclasses.replace(settings, durable=True), [
        {"agent": "copilot_control", "handoff": "engineer"},
        {"agent": "engineer", "text": "6 * 7 = 42."},
        {"agent": "engineer", "expect": "negative numbers", "text": "-6 * 7 = -42 as well."},
    ], gates={1: release})
    async with connect(server_, "legacy") as client:
        with anyio.fail_after(60):
            first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
            while len(script.calls) < 1:  # the engineer's call waits at the gate: the session is mid-leg
                await anyio.wait_all_tasks_blocked()
            queued = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"], "wait_seconds": 0,
                                                                      "message": "Show that it works for negative numbers too"}))
            assert queued["status"] == "running" and queued["live"] is True
            release.set()
            done = data(await client.call_tool("continue_copilot", {"session_id": first["session_id"]}))
        assert done["status"] == "completed" and done["result"] == "-6 * 7 = -42 as well."
        transcript = json.loads((await client.read_resource(done["transcript_uri"])).contents[0].text)
        said = [e["content"]["text"] for e in transcript["events"] if e["type"] == "message" and e["agent"] == "user"]
        assert said[1:] == ["Show that it works for negative numbers too"]  # after the task
    script.assert_exhausted()


async def test_cancel_session_stops_a_running_session_and_keeps_it_readable(settings: Any, era: str) -> None:
    server_, script = make_server(settings, HANG[:2])
    async with connect(server_, era) as client:
        first = data(await client.call_tool("copilot", {"task": "Compute six times seven with Python", "wait_seconds": 0}))
        assert first["status"] == "running"
        while len(script.calls) < 2:
            await anyio.wait_all_tasks_blocked()
        cancelled = data(await client.call_tool("cancel_session", {"session_id": first["session_id"]}))
        assert cancelled["status"] == "cancelled" and cancelled["live"] is False
        assert data(await client.call_tool("session_status", {"session_id": first["session_id"]}))["status"] == "cancelled"
        again = await client.call_tool("continue_copilot", {"session_id": first["session_id"]})
        assert again.is_error and "was cancelled" in text(again)
        transcript = json.loads((await client.read_resource(first["transcript_uri"])).contents[0].text)
        assert transcript["events"][-1]["content"]["status"] == "cancelled"
        repeat = data(await client.call_tool("cancel_session", {"session_id": first["session_id"]}))
        assert repeat["status"] == "cancelled"
        assert len(server_.swarm.runs) == 0
