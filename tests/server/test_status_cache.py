"""The status cache: exact for SQLite, emptied by any commit from any connection."""

from __future__ import annotations

from typing import Any

import pytest

from server.status_cache import StatusCache
from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.errors import UnknownSessionError
from tests.fakes import FunctionModels

pytestmark = pytest.mark.anyio

NO_MODEL = FunctionModels(lambda messages, agent, tools: pytest.fail(f"{agent} made a model call"))
"""These tests call no model."""


async def test_cached_reads_stay_exact_across_writers(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=NO_MODEL) as engine, Engine(settings, tools=phase_tool_registry(), models=NO_MODEL) as other:
        record = await engine.create("Say hello")
        cache = StatusCache(settings.db_url)
        first = await cache.get(engine, record.id, "local")
        assert await cache.get(engine, record.id, "local") is first  # nothing committed: served from the cache
        changed = await other.get(record.id)  # another connection (another process, in life) commits a change
        changed.status = "paused"
        await other.store.save(changed)
        assert (await cache.get(engine, record.id, "local")).status == "paused"
        with pytest.raises(UnknownSessionError):
            await cache.get(engine, record.id, "someone-else")
        cache.close()
