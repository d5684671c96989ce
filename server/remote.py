"""``swarm-mcp run`` as a real MCP client: it spawns ``swarm-mcp serve`` over stdio and drives a session.

Live progress (the server's progress notifications) goes to stderr; the caller prints the result.
When stdin is a terminal the client offers elicitation, so the swarm's questions are asked right
there; otherwise a question ends the run as ``waiting_input``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

CALL_WAIT_SECONDS = 30
"""How long each tool call may block before the client calls continue_copilot to wait again."""


class ToolFailed(Exception):
    """The server answered with an isError result."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def server_parameters(model: str | None = None) -> Any:
    from mcp.client.stdio import StdioServerParameters

    env = dict(os.environ)
    if model:
        env["SWARM_MCP_MODEL"] = model
    env["SWARM_MCP_PARENT_PID"] = str(os.getpid())
    return StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", "--exit-with-parent"], env=env, cwd=os.getcwd())


async def run_session(task: str, *, max_rounds: int | None = None, model: str | None = None, profile: str | None = None) -> dict[str, Any]:
    """Run one copilot session to a stop (completed, waiting_input, paused, failed) through MCP; ``max_rounds`` and
    ``profile`` left out are the server's defaults (the profile's round limit; the default profile)."""
    from mcp import Client
    from mcp.client.stdio import stdio_client

    async def progress(value: float, total: float | None, message: str | None) -> None:
        if message:
            print(f"  {message}", file=sys.stderr, flush=True)

    elicit = _terminal_elicitation if sys.stdin is not None and sys.stdin.isatty() else None
    failure: ToolFailed | None = None  # raised outside the client: the SDK's task groups would wrap it
    async with Client(stdio_client(server_parameters(model), errlog=sys.stderr), elicitation_callback=elicit) as client:
        args: dict[str, Any] = {"task": task, "wait_seconds": CALL_WAIT_SECONDS}
        args.update({k: v for k, v in (("max_rounds", max_rounds), ("profile", profile)) if v is not None})
        result = await client.call_tool("copilot", args, progress_callback=progress)
        while not result.is_error and (result.structured_content or {}).get("status") == "running":
            result = await client.call_tool(
                "continue_copilot", {"session_id": result.structured_content["session_id"], "wait_seconds": CALL_WAIT_SECONDS},
                progress_callback=progress)
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            failure = ToolFailed(text, (result.meta or {}).get("swarm-mcp/error-kind", "internal"))
    if failure is not None:
        raise failure
    return dict(result.structured_content or {})


async def _terminal_elicitation(context: Any, params: Any) -> Any:
    """Ask the swarm's question on the terminal (stderr), read the answer from stdin."""
    import anyio
    import mcp_types as types

    props = (params.requested_schema or {}).get("properties", {})
    print(f"\n{params.message}", file=sys.stderr, flush=True)
    content: dict[str, Any] = {}
    for name, prop in props.items():
        hint = f" ({', '.join(prop['enum'])})" if "enum" in prop else ""
        answer = await anyio.to_thread.run_sync(lambda: input(f"{name}{hint}: "))
        if not answer and name in (params.requested_schema or {}).get("required", []):
            return types.ElicitResult(action="decline")
        content[name] = answer
    return types.ElicitResult(action="accept", content=content)


def exit_with_parent() -> None:
    """In a server spawned by ``run``: die with the parent, as if part of it (Linux; elsewhere a no-op).

    A ``kill -9`` of ``swarm-mcp run`` then leaves the session as a killed process would: interrupted
    mid-round and resumable, not half shut down by an orphaned server.
    """
    parent = os.environ.get("SWARM_MCP_PARENT_PID")
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if parent and os.getppid() != int(parent):  # the parent died before prctl
        os._exit(1)
