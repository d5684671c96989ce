"""The session store on every backend it supports: plain SQLite, aiosqlite, and PostgreSQL when available."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.errors import SessionBusyError, UnknownSessionError
from swarm.events import Event, now
from swarm.session import SessionRecord
from swarm.store import SqlStore

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", "sqlite+aiosqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "postgresql":
        url = os.environ.get("SWARM_MCP_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("set SWARM_MCP_TEST_POSTGRES_URL (postgresql+asyncpg://...) to run the store tests on PostgreSQL; .ci/run does")
    else:
        url = f"{request.param}:///{tmp_path / 'store.db'}"
    store = await SqlStore(url).open()
    yield store
    await store.close()


def record(session_id: str, principal: str = "alice") -> SessionRecord:
    stamp = now()
    return SessionRecord(id=session_id, principal=principal, task="t", created_at=stamp, updated_at=stamp)


async def test_events_are_numbered_gaplessly_and_read_back(store: SqlStore) -> None:
    sid = f"s_{os.urandom(6).hex()}"
    rec = record(sid)
    await store.create_session(rec)
    first = await store.save(rec, [Event(type="message", agent="user", content={"text": "hi"}), Event(type="status", content={"status": "running"})])
    second = await store.save(rec, [Event(type="handoff", agent="a", content={"target": "b"})])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert [e.type for e in await store.events(sid)] == ["message", "status", "handoff"]
    assert [e.seq for e in await store.events(sid, after_seq=2)] == [3]
    assert (await store.get_session(sid)).last_seq == 3


async def test_principals_only_see_their_sessions(store: SqlStore) -> None:
    mine, theirs = f"s_{os.urandom(6).hex()}", f"s_{os.urandom(6).hex()}"
    await store.create_session(record(mine, "alice"))
    await store.create_session(record(theirs, "bob"))
    assert mine in [r.id for r in await store.list_sessions("alice")]
    assert theirs not in [r.id for r in await store.list_sessions("alice")]
    with pytest.raises(UnknownSessionError):
        await store.get_session(theirs, principal="alice")


async def test_journal_round_trip_and_truncate(store: SqlStore) -> None:
    sid = f"s_{os.urandom(6).hex()}"
    await store.create_session(record(sid))
    for seq in (1, 2, 3):
        await store.journal_put(sid, seq, agent="a", kind="model", name="m", request_hash=f"h{seq}", request="{}", response=f'"r{seq}"')
    assert (await store.journal_load(sid))[2] == ("h2", '"r2"')
    await store.journal_truncate(sid, 2)
    assert list(await store.journal_load(sid)) == [1]


async def test_a_duplicate_append_fails_instead_of_forking_the_transcript(store: SqlStore) -> None:
    sid = f"s_{os.urandom(6).hex()}"
    rec = record(sid)
    await store.create_session(rec)
    await store.save(rec, [Event(type="message", content={"text": "one"})])
    stale = rec.model_copy(update={"last_seq": 0})  # another writer's copy, read before the first save
    with pytest.raises(SessionBusyError, match="changed by another call at the same moment.*continue_copilot"):
        await store.save(stale, [Event(type="message", content={"text": "fork"})])
    assert stale.last_seq == 0
    assert [e.content["text"] for e in await store.events(sid)] == ["one"]


async def test_saving_an_unknown_session_is_a_clear_error(store: SqlStore) -> None:
    with pytest.raises(UnknownSessionError):
        await store.save(record("s_missing"), [])
