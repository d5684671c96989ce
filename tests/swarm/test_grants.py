"""A session's grants: decided at creation from the caller's origin, kept in its record, only ever narrowed, and
obeyed where code would run; unknown grants (an older record) refuse code."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.grants import Grants
from swarm.models.scripted import Script
from tests.fakes import ScriptedModels

pytestmark = pytest.mark.anyio

RUN_CODE = [
    {"agent": "copilot_control", "handoff": "engineer"},
    {"agent": "engineer", "tool": "execute_code", "args": {"code": "open('ran.txt', 'w').write('x')", "language": "python"}},
]


async def engine_with(settings: Any, entries: list[dict[str, Any]]) -> tuple[Engine, Script]:
    script = Script(entries)
    engine = Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(script))
    await engine.store.open()
    return engine, script


async def test_grants_follow_the_origin_and_the_operator_setting(settings: Any) -> None:
    engine, _ = await engine_with(settings, [])
    local = await engine.create("a task")
    remote = await engine.create("a task", origin="remote", sampling=True)
    assert local.grants == Grants(origin="local", code=True, model="server")
    assert (await engine.get(remote.id)).grants == Grants(origin="remote", code=False, model="sampling")  # stored
    await engine.store.close()

    engine, _ = await engine_with(dataclasses.replace(settings, remote_code=True), [])
    assert (await engine.create("a task", origin="remote")).grants.code
    await engine.store.close()


async def test_a_remote_caller_continuing_a_local_session_takes_code_away_for_good(settings: Any) -> None:
    engine, script = await engine_with(settings, [*RUN_CODE, {"agent": "engineer", "expect": "turned off for remote", "text": "No code."}])
    record = await engine.create("Compute six times seven with Python")
    admitted = await engine.admit(record.id, "local", "remote")
    assert admitted.grants == Grants(origin="remote", code=False)
    assert (await engine.admit(record.id, "local", "local")).grants == admitted.grants  # a local caller gives nothing back
    done = await engine.run(record.id)
    script.assert_exhausted()
    assert done.status == "completed" and done.result == "No code."
    assert not list(settings.work_root.rglob("ran.txt"))
    events = await engine.transcript(record.id)
    assert any(e.type == "status" and e.content.get("grants") == admitted.grants.model_dump() for e in events)
    await engine.store.close()


async def test_a_session_with_unknown_grants_runs_no_code(settings: Any) -> None:
    engine, script = await engine_with(settings, [*RUN_CODE, {"agent": "engineer", "expect": "no record of who started it", "text": "No code."}])
    record = await engine.create("Compute six times seven with Python")
    record.grants = None  # as a record written before grants existed
    await engine.store.save(record)
    done = await engine.run(record.id)
    script.assert_exhausted()
    assert done.status == "completed" and not list(settings.work_root.rglob("ran.txt"))
    await engine.store.close()


async def test_a_session_on_its_clients_model_never_falls_back_to_another_model(settings: Any) -> None:
    """After a restart no client serves a sampling session: its run fails clearly instead of using the embedded model."""
    from server.models import ServerModels
    from swarm.errors import ConfigError
    from swarm.models.factory import ModelFactory
    from swarm.scope import current_grants

    models = ServerModels(ModelFactory(settings))
    assert models.spec_for("default") == "local"  # auto, no key, no client: the embedded model
    token = current_grants.set(Grants(origin="remote", code=False, model="sampling"))
    try:
        assert models.spec_for("default") == "sampling"
        with pytest.raises(ConfigError, match="runs on its MCP client's own model"):
            models.client_for("engineer", "default")
    finally:
        current_grants.reset(token)
