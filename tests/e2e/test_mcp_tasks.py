"""Sessions as MCP tasks against the real server: the 2026-07-28 extension over HTTP, the 2025-11-25 tasks utility
over HTTP and stdio. A copilot task polled to completed, an approval answered through the task, a task cancelled,
a task another principal cannot see, and a kill -9 between two polls after which the task completes with no model
call repeated. The clients are raw JSON-RPC (the MCP SDK's client has no tasks API), over the real transports."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.http_harness import REPO, http_server, logged_indices, post, serve_env
from tests.e2e.http_verifier import ALICE, BOB

pytestmark = pytest.mark.anyio

TASKS = "io.modelcontextprotocol/tasks"
RELATED = "io.modelcontextprotocol/related-task"
HELLO = [{"agent": "copilot_control", "handoff": "researcher"}, {"agent": "researcher", "text": "Hello from the swarm."}]
TERMINAL = ("completed", "failed", "cancelled")


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.data = error.get("data")


class Modern:
    """A 2026-07-28 client: stateless POSTs, the tasks extension declared per request (``tasks=False``: not)."""

    def __init__(self, url: str, *, token: str | None = None, tasks: bool = True) -> None:
        self.url, self.token, self.tasks = url, token, tasks
        self.ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        capabilities: dict[str, Any] = {"elicitation": {}}
        if self.tasks:
            capabilities["extensions"] = {TASKS: {}}
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": {**params, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities}}}
        headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
        name = params.get("name") or params.get("taskId") or params.get("uri")
        if name:
            headers["Mcp-Name"] = name
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = await post(self.url, body, **headers)
        text = response.text
        if "data:" in text:
            text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
        message = json.loads(text)
        if "error" in message:
            raise RpcError(message["error"])
        return message["result"]

    async def poll(self, task_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = await self.request("tasks/get", {"taskId": task_id})
            if got["status"] in until:
                return got
            assert time.monotonic() < deadline, f"task {task_id} did not reach {until} within {timeout}s: {got}"
            await anyio.sleep(got.get("pollIntervalMs", 1000) / 1000 / 10)  # faster than told: the test has a deadline


class Legacy:
    """A 2025-11-25 client over stdio (a `serve` subprocess) or streamable HTTP (initialize, Mcp-Session-Id). It answers
    the server's elicitation requests with ``answer`` (None: declines) and keeps every message the server sent."""

    def __init__(self, *, url: str | None = None, env: dict[str, str] | None = None, answer: dict[str, Any] | None = None) -> None:
        self.url, self.env, self.answer = url, env, answer
        self.ids = itertools.count(1)
        self.session: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: list[dict[str, Any]] = []

    async def __aenter__(self) -> "Legacy":
        if self.url is None:
            self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=self.env, cwd=REPO,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        init = await self.request("initialize", {"protocolVersion": "2025-11-25", "clientInfo": {"name": "tasks-test", "version": "1"},
                                                 "capabilities": {"elicitation": {"form": {}}, "tasks": {"list": {}, "cancel": {}}}})
        assert init["protocolVersion"] == "2025-11-25", init
        self.capabilities = init["capabilities"]
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await anyio.to_thread.run_sync(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def send(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one message; over HTTP, the messages of its response (over stdio they are read by ``request``)."""
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
            return []
        headers = {"MCP-Protocol-Version": "2025-11-25"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        response = await post(self.url, message, **headers)  # type: ignore[arg-type]
        self.session = response.headers.get("mcp-session-id", self.session)
        if not response.text.strip():
            return []
        if "data:" in response.text:
            return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return [json.loads(response.text)]

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await anyio.to_thread.run_sync(self.proc.stdout.readline)
        assert line, "the server closed stdout"
        return json.loads(line)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        rid = next(self.ids)
        message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        if self.proc is None:
            return await self._http_request(rid, message)
        await self.send(message)
        while True:
            reply = await self._handle(await self._read(), rid)
            if reply is not None:
                return reply

    async def _handle(self, message: dict[str, Any], rid: int) -> dict[str, Any] | None:
        """Keep ``message``; answer it if it is a request of the server's (elicitation); its result if it answers ``rid``."""
        self.seen.append(message)
        if "method" in message and "id" in message:
            answer = {"action": "accept", "content": self.answer} if self.answer is not None else {"action": "decline"}
            await self.send({"jsonrpc": "2.0", "id": message["id"], "result": answer})
        elif message.get("id") == rid:
            if "error" in message:
                raise RpcError(message["error"])
            return message["result"]
        return None

    async def _http_request(self, rid: int, message: dict[str, Any]) -> dict[str, Any]:
        """POST a request and read its response stream as it comes (the server may ask something before it answers)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        async with httpx2.AsyncClient(timeout=60) as http:
            async with http.stream("POST", self.url, content=json.dumps(message), headers=headers) as response:  # type: ignore[arg-type]
                self.session = response.headers.get("mcp-session-id", self.session)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    reply = await self._handle(json.loads(await response.aread()), rid)
                    assert reply is not None, f"no response to {message['method']}"
                    return reply
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip():
                        reply = await self._handle(json.loads(line[5:]), rid)
                        if reply is not None:
                            return reply
        raise AssertionError(f"the stream ended with no response to {message['method']}")


async def test_copilot_as_a_2026_task_is_polled_to_completed_and_a_client_without_the_extension_sees_no_change(tmp_path: Path) -> None:
    async with http_server(tmp_path, HELLO + HELLO) as server:
        client = Modern(server.url)
        with anyio.fail_after(60):
            handle = await client.request("tools/call", {"name": "copilot", "arguments": {"task": "Say hello", "max_rounds": 5}})
            assert handle["resultType"] == "task" and handle["status"] == "working" and handle["pollIntervalMs"] > 0, handle
            assert not {"result", "error", "inputRequests", "requestState", "task"} & set(handle), handle
            done = await client.poll(handle["taskId"])
            assert done["status"] == "completed" and done["resultType"] == "complete", done
            result = done["result"]["structuredContent"]
            assert result["status"] == "completed" and result["result"] == "Hello from the swarm." and result["total_rounds"] == 2
            assert "Hello from the swarm." in done["result"]["content"][0]["text"]
            assert (await client.request("tasks/get", {"taskId": handle["taskId"]}))["status"] == "completed"  # stays readable

            plain = await Modern(server.url, tasks=False).request("tools/call", {"name": "copilot", "arguments": {"task": "Say hello"}})
            assert plain.get("resultType") != "task" and plain["structuredContent"]["status"] == "completed", plain
            with pytest.raises(RpcError) as refused:  # the tasks methods need the extension, declared on the request
                await Modern(server.url, tasks=False).request("tasks/get", {"taskId": handle["taskId"]})
            assert refused.value.code == -32021 and TASKS in refused.value.data["requiredCapabilities"]["extensions"]
            with pytest.raises(RpcError) as unknown:
                await client.request("tasks/get", {"taskId": "t_no_such_task"})
            assert unknown.value.code == -32602
            discovered = await client.request("server/discover", {})
            assert TASKS in discovered["capabilities"]["extensions"]


async def test_an_approval_is_answered_through_the_task_and_recorded_with_who_gave_it(tmp_path: Path) -> None:
    async with http_server(tmp_path, []) as server:
        client = Modern(server.url)
        with anyio.fail_after(60):
            handle = await client.request("tools/call", {"name": "invoke_hitl_checkpoint_phase",
                                                         "arguments": {"message": "Ship the release?", "checkpoint_type": "deploy"}})
            waiting = await client.poll(handle["taskId"], until=("input_required", *TERMINAL))
            assert waiting["status"] == "input_required", waiting
            [(key, request)] = waiting["inputRequests"].items()
            assert request["method"] == "elicitation/create" and "Ship the release?" in request["params"]["message"]
            assert set(request["params"]["requestedSchema"]["properties"]) >= {"decision"}
            ack = await client.request("tasks/update", {"taskId": handle["taskId"], "inputResponses": {
                "not-asked": {"action": "accept", "content": {}},  # ignored: nothing asks it
                key: {"action": "accept", "content": {"decision": "approve", "feedback": "ship it"}}}})
            assert ack == {"resultType": "complete", **({"_meta": ack["_meta"]} if "_meta" in ack else {})}, ack
            done = await client.poll(handle["taskId"])
            assert done["status"] == "completed" and done["result"]["structuredContent"]["status"] == "completed", done
            sid = done["result"]["structuredContent"]["session_id"]
            transcript = await client.request("resources/read", {"uri": f"swarm://sessions/{sid}/transcript"})
    events = json.loads(transcript["contents"][0]["text"])["events"]
    resolved = [e["content"] for e in events if e["type"] == "approval_resolved"]
    assert resolved and resolved[0]["decision"] == "approve" and resolved[0]["feedback"] == "ship it" and resolved[0]["who"] == "local", resolved


async def test_a_task_is_cancelled_and_another_principal_cannot_see_or_cancel_it(tmp_path: Path) -> None:
    script = [{"agent": "copilot_control", "hang": True}]
    async with http_server(tmp_path, script, SWARM_MCP_TOKEN_VERIFIER="http_verifier:TwoUsers") as server:
        alice, bob = Modern(server.url, token=ALICE), Modern(server.url, token=BOB)
        with anyio.fail_after(60):
            handle = await alice.request("tools/call", {"name": "copilot", "arguments": {"task": "Think for a long time"}})
            for method in ("tasks/get", "tasks/cancel"):
                with pytest.raises(RpcError) as foreign:
                    await bob.request(method, {"taskId": handle["taskId"]})
                assert foreign.value.code == -32602, method
            assert (await alice.request("tasks/get", {"taskId": handle["taskId"]}))["status"] == "working"
            assert (await alice.request("tasks/cancel", {"taskId": handle["taskId"]}))["resultType"] == "complete"
            done = await alice.poll(handle["taskId"])
            assert done["status"] == "cancelled" and "result" not in done, done
            assert (await alice.request("tasks/cancel", {"taskId": handle["taskId"]}))["resultType"] == "complete"  # idempotent


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_2025_task_over_the_tasks_utility(tmp_path: Path, transport: str) -> None:
    """params.task on tools/call, tasks/get, tasks/result (which asks the pending approval through elicitation, as
    related to the task), tasks/list, tasks/cancel; the tasks capability and execution.taskSupport are advertised."""
    env = serve_env(tmp_path, HELLO)
    answer = {"decision": "approve", "feedback": "fine by me"}
    with anyio.fail_after(90):
        if transport == "http":
            async with http_server(tmp_path, HELLO) as server, Legacy(url=server.url, answer=answer) as client:
                await _legacy_tasks(client)
        else:
            async with Legacy(env=env, answer=answer) as client:
                await _legacy_tasks(client)


async def _legacy_tasks(client: Legacy) -> None:
    assert client.capabilities["tasks"]["requests"]["tools"]["call"] == {}, client.capabilities
    tools = {t["name"]: t for t in (await client.request("tools/list", {}))["tools"]}
    assert tools["copilot"]["execution"] == {"taskSupport": "optional"} and "execution" not in tools["session_status"]

    created = await client.request("tools/call", {"name": "copilot", "arguments": {"task": "Say hello"}, "task": {"ttl": 600000}})
    task = created["task"]
    assert task["status"] == "working" and task["ttl"] == 600000 and task["pollInterval"] > 0, created
    result = await client.request("tasks/result", {"taskId": task["taskId"]})
    assert result["structuredContent"]["result"] == "Hello from the swarm." and result["_meta"][RELATED] == {"taskId": task["taskId"]}
    got = await client.request("tasks/get", {"taskId": task["taskId"]})
    assert got["status"] == "completed" and got["taskId"] == task["taskId"]

    gate = await client.request("tools/call", {"name": "invoke_hitl_checkpoint_phase", "arguments": {"message": "Merge it?"}, "task": {}})
    result = await client.request("tasks/result", {"taskId": gate["task"]["taskId"]})
    assert result["structuredContent"]["status"] == "completed", result
    asked = [m for m in client.seen if m.get("method") == "elicitation/create"]
    assert asked and asked[0]["params"]["_meta"][RELATED] == {"taskId": gate["task"]["taskId"]} and "Merge it?" in asked[0]["params"]["message"]

    listed = await client.request("tasks/list", {})
    assert [t["taskId"] for t in listed["tasks"]] == [gate["task"]["taskId"], task["taskId"]], listed

    held = (await client.request("tools/call", {"name": "invoke_hitl_checkpoint_phase", "arguments": {"message": "Wait here"}, "task": {}}))["task"]
    deadline = time.monotonic() + 30
    while (got := await client.request("tasks/get", {"taskId": held["taskId"]}))["status"] != "input_required":
        assert time.monotonic() < deadline, got
        await anyio.sleep(0.05)
    cancelled = await client.request("tasks/cancel", {"taskId": held["taskId"]})
    assert cancelled["status"] == "cancelled" and cancelled["taskId"] == held["taskId"], cancelled
    with pytest.raises(RpcError) as ended:  # 2025: a task that ended cannot be cancelled
        await client.request("tasks/cancel", {"taskId": task["taskId"]})
    assert ended.value.code == -32602


async def test_a_task_survives_kill_9_between_two_polls_and_completes_with_no_model_call_repeated(tmp_path: Path) -> None:
    script = [{"agent": "copilot_control", "handoff": "researcher", "delay": 0.3}]
    script += [{"agent": a, "handoff": b, "delay": 0.3} for a, b in [("researcher", "controller"), ("controller", "researcher")] * 2]
    script += [{"agent": "researcher", "text": "Done after a restart.", "delay": 0.3}]
    env = dict(SWARM_MCP_EXECUTOR_ID="solo", SWARM_MCP_DURABLE="1")
    with anyio.fail_after(120):
        async with http_server(tmp_path, script, **env) as server:
            client = Modern(server.url)
            handle = await client.request("tools/call", {"name": "copilot", "arguments": {"task": "Research and report", "max_rounds": 20}})
            while (first := await client.request("tasks/get", {"taskId": handle["taskId"]}))["statusMessage"] == "round 0 of 20":
                await anyio.sleep(0.02)  # until a round is committed (a call answered but not yet journaled is lost in a kill)
            assert first["status"] == "working", first
            server.proc.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(server.proc.wait, 10)
        async with http_server(tmp_path, script, **env) as server:
            done = await Modern(server.url).poll(handle["taskId"], timeout=60)
    outcome = done["result"]["structuredContent"]
    assert done["status"] == "completed" and outcome["status"] == "completed", (outcome, logged_indices(tmp_path))
    assert outcome["result"] == "Done after a restart."
    assert logged_indices(tmp_path) == list(range(len(script))), logged_indices(tmp_path)


async def test_task_status_is_pushed_on_a_2026_listen_stream_and_to_the_2025_connection_that_made_it(tmp_path: Path) -> None:
    script = [{"agent": "copilot_control", "handoff": "researcher", "delay": 0.3}, {"agent": "researcher", "text": "Pushed.", "delay": 0.3}]
    async with http_server(tmp_path, script + script) as server:
        client = Modern(server.url)
        with anyio.fail_after(60):
            handle = await client.request("tools/call", {"name": "copilot", "arguments": {"task": "Say something"}})
            body = {"jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen", "params": {
                "notifications": {"taskIds": [handle["taskId"]]}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}}}}
            headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                       "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
            frames: list[dict[str, Any]] = []
            async with httpx2.AsyncClient(timeout=60) as http:
                async with http.stream("POST", server.url, content=json.dumps(body), headers=headers) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:") and line[5:].strip():
                            frames.append(json.loads(line[5:]))
                            if frames[-1].get("method") == "notifications/tasks" and frames[-1]["params"]["status"] in TERMINAL:
                                break
            assert frames[0]["method"] == "notifications/subscriptions/acknowledged", frames[0]
            assert frames[0]["params"]["notifications"]["taskIds"] == [handle["taskId"]]
            pushed = [f["params"] for f in frames if f.get("method") == "notifications/tasks"]
            assert pushed[0]["taskId"] == handle["taskId"] and pushed[-1]["status"] == "completed", pushed
            assert pushed[-1]["result"]["structuredContent"]["result"] == "Pushed." and pushed[-1]["_meta"]
            with pytest.raises(RpcError) as foreign:  # a task id that is not the caller's is refused, not watched
                await Modern(server.url).request("subscriptions/listen", {"notifications": {"taskIds": ["t_someone_elses"]}})
            assert foreign.value.code == -32602

    (tmp_path / "stdio").mkdir()
    with anyio.fail_after(60):
        async with Legacy(env=serve_env(tmp_path / "stdio", script)) as legacy:
            created = await legacy.request("tools/call", {"name": "copilot", "arguments": {"task": "Say something"}, "task": {}})
            await legacy.request("tasks/result", {"taskId": created["task"]["taskId"]})
            while not any(m.get("method") == "notifications/tasks/status" and m["params"]["status"] == "completed" for m in legacy.seen):
                await legacy.request("tasks/get", {"taskId": created["task"]["taskId"]})  # reads what the server sent meanwhile
    statuses = [m["params"]["status"] for m in legacy.seen if m.get("method") == "notifications/tasks/status"]
    assert statuses[-1] == "completed" and all(m["params"]["taskId"] == created["task"]["taskId"] for m in legacy.seen
                                               if m.get("method") == "notifications/tasks/status"), statuses
