"""Storage faults seen from outside: `serve --transport http` over a data directory that is read-only, on a full disk,
or whose database another process keeps locked.

`/healthz` answers 503 naming the cause; a tool call answers within 5 s with an ``isError`` result of kind
``storage`` that names the cause and the fix (not "internal error"); once the fault is gone the same server works
again, and the sessions and transcripts written before are intact.

The read-only and full-disk cases run the server in a private mount namespace (``unshare -m``) over a read-only
bind mount or a small tmpfs, and change them from outside with ``nsenter``; they are skipped where such mounts are
not allowed. The locked case runs everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.http_harness import HttpServer, connect_http, serve_env, serve_process
from tests.e2e.mcp_harness import data, text
from tests.swarm.test_store_faults import LockHolder

pytestmark = pytest.mark.anyio

SCRIPT = [{"agent": "copilot_control", "text": "First answer."}, {"agent": "copilot_control", "text": "Second answer."}]
ANSWER_WITHIN = 5.0


async def health(server: HttpServer) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.base}/healthz")
    return response.status_code, response.json()


async def until_health(server: HttpServer, status: int, within: float = 15) -> dict[str, Any]:
    """Poll /healthz (its answer is kept two seconds) until it answers ``status``: what an orchestrator does."""
    with anyio.fail_after(within):
        while True:
            code, body = await health(server)
            if code == status:
                return body
            await anyio.sleep(0.25)


async def until_healthy(server: HttpServer, within: float = 15) -> None:
    await until_health(server, 200, within)


async def timed_call(server: HttpServer, tool: str, arguments: dict[str, Any]) -> tuple[Any, float]:
    async with connect_http(server, "http-2025") as client:
        started = time.monotonic()
        result = await client.call_tool(tool, arguments)
        return result, time.monotonic() - started


def storage_error(result: Any, *words: str) -> str:
    message = text(result)
    assert result.is_error and result.meta["swarm-mcp/error-kind"] == "storage", message
    assert "internal error" not in message and all(w in message for w in words), message
    return message


async def first_session(server: HttpServer) -> tuple[str, list[dict[str, Any]]]:
    async with connect_http(server, "http-2025") as client:
        done = data(await client.call_tool("copilot", {"task": "Answer the first question"}))
        assert done["status"] == "completed" and done["result"] == "First answer."
        return done["session_id"], await transcript(server, done["session_id"])


async def transcript(server: HttpServer, session_id: str) -> list[dict[str, Any]]:
    async with connect_http(server, "http-2025") as client:
        body = (await client.read_resource(f"swarm://sessions/{session_id}/transcript")).contents[0].text
    return json.loads(body)["events"]


async def works_again(server: HttpServer, session_id: str, before: list[dict[str, Any]]) -> None:
    """The earlier session and its transcript are intact, and a new session runs to its end."""
    await until_healthy(server)
    assert await transcript(server, session_id) == before
    async with connect_http(server, "http-2025") as client:
        assert data(await client.call_tool("session_status", {"session_id": session_id}))["status"] == "completed"
        again = data(await client.call_tool("copilot", {"task": "Answer the second question"}))
    assert again["status"] == "completed" and again["result"] == "Second answer."


# ---- locked by another process (everywhere) ---------------------------------------------------------------------------


async def test_a_database_locked_by_another_process(tmp_path: Path) -> None:
    env = serve_env(tmp_path, SCRIPT)
    db = Path(env["SWARM_MCP_HOME"]) / "swarm.db"
    with anyio.fail_after(120):
        async with serve_process(tmp_path, env) as server:
            sid, before = await first_session(server)
            holder = LockHolder(db)
            try:
                status, body = await health(server)
                assert status == 503 and body["store"]["cause"] == "locked" and body["store"]["path"] == str(db), body
                result, elapsed = await timed_call(server, "copilot", {"task": "Answer the second question"})
                storage_error(result, str(db), "locked by another process", "Stop the other process")
                assert elapsed < ANSWER_WITHIN, elapsed
                print(f"locked: answered in {elapsed:.2f} s")
            finally:
                holder.release()
            await works_again(server, sid, before)
            system = db.parent / "dbos.sqlite"  # DBOS's system database, beside the store
            holder = LockHolder(system)
            try:
                body = await until_health(server, 503, within=5)  # the answer from before the lock is kept two seconds
                assert body["store"]["cause"] == "locked" and body["store"]["path"] == str(system), body
            finally:
                holder.release()
            await until_healthy(server)


# ---- read-only data directory and full disk (private mount namespaces) -------------------------------------------------


def mount_namespaces() -> str | None:
    """Why private mount namespaces with tmpfs mounts cannot be used here (None: they can)."""
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"no {tool}(1)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount in a private mount namespace: {probe.stderr.strip()}"


def in_namespace(server: HttpServer, *command: str) -> None:
    """Run ``command`` in the server's mount namespace (the server's process is the namespace's first)."""
    subprocess.run(["nsenter", "-t", str(server.proc.pid), "-m", "--", *command], check=True, capture_output=True, timeout=30)


needs_mounts = pytest.mark.skipif(mount_namespaces() is not None, reason=str(mount_namespaces()))


@needs_mounts
async def test_a_read_only_data_directory_then_made_writable(tmp_path: Path) -> None:
    env = serve_env(tmp_path, SCRIPT)
    home = Path(env["SWARM_MCP_HOME"])
    with anyio.fail_after(180):
        async with serve_process(tmp_path, env, name="first") as server:  # a session written before the fault
            sid, before = await first_session(server)
        read_only = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"'
        wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c", read_only, "sh")
        async with serve_process(tmp_path, env, wrap=wrap) as server:  # starts, so that /healthz can say what is wrong
            status, body = await health(server)
            assert status == 503 and body["store"]["cause"] == "read_only" and body["store"]["path"] == str(home), body
            for tool, arguments in (("copilot", {"task": "Answer the second question"}), ("session_status", {"session_id": sid})):
                result, elapsed = await timed_call(server, tool, arguments)
                storage_error(result, f"the data directory {home} is read-only", f"Make {home} writable", "SWARM_MCP_HOME")
                assert elapsed < ANSWER_WITHIN, elapsed
                print(f"read-only: {tool} answered in {elapsed:.2f} s")
            in_namespace(server, "mount", "-o", "remount,bind,rw", str(home))
            await works_again(server, sid, before)


@needs_mounts
async def test_a_full_disk_then_freed(tmp_path: Path) -> None:
    env = serve_env(tmp_path, SCRIPT)
    home = Path(env["SWARM_MCP_HOME"])
    home.mkdir(parents=True)
    small_disk = f'mount -t tmpfs -o size=32m tmpfs "{home}" && exec "$@"'
    wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c", small_disk, "sh")
    with anyio.fail_after(180):
        async with serve_process(tmp_path, env, wrap=wrap) as server:
            sid, before = await first_session(server)
            filler = f"/proc/{server.proc.pid}/root{home}/filler"  # the tmpfs, seen through the server's namespace
            fill = subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True, text=True, timeout=60)
            assert "No space left on device" in fill.stderr, fill.stderr
            status, body = await health(server)
            assert status == 503 and body["store"]["cause"] == "disk_full" and body["store"]["path"] == str(home), body
            result, elapsed = await timed_call(server, "copilot", {"task": "Answer the second question"})
            storage_error(result, f"the disk holding the data directory {home} is full", "Free space")
            assert elapsed < ANSWER_WITHIN, elapsed
            print(f"disk full: answered in {elapsed:.2f} s")
            Path(filler).unlink()
            await works_again(server, sid, before)
