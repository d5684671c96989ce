"""The status cache: exact for SQLite, emptied by any commit from any connection."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ScriptedModels

from server.status_cache import StatusCache
from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.errors import UnknownSessionError
from swarm.models.scripted import Script

pytestmark = pytest.mark.anyio


async def test_cached_reads_stay_exact_across_writers(settings: Any) -> None:
    async with Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as engine, Engine(settings, tools=phase_tool_registry(), models=ScriptedModels(Script([]))) as other:
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
