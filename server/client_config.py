"""Ready-to-paste client configuration for ``swarm-mcp serve`` (``swarm-mcp config claude|vscode|cursor``).

The same documents, with the plain ``swarm-mcp`` command, ship in manifests/clients/*.json.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

CLIENTS = ("claude", "vscode", "cursor")
WHERE = {
    "claude": "Claude Desktop: add to claude_desktop_config.json (Settings > Developer > Edit Config)",
    "vscode": "VS Code: save as .vscode/mcp.json in your workspace (or run 'MCP: Open User Configuration')",
    "cursor": "Cursor: save as ~/.cursor/mcp.json (global) or .cursor/mcp.json (project)",
}


def command_line() -> tuple[str, list[str]]:
    """The command that starts the server: the installed script if on PATH, else this interpreter."""
    script = shutil.which("swarm-mcp")
    if script:
        return script, ["serve"]
    local = Path(sys.executable).with_name("swarm-mcp")
    if local.exists():
        return str(local), ["serve"]
    return sys.executable, ["-m", "server.cli", "serve"]


def client_config(client: str, *, command: str | None = None, args: list[str] | None = None,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """The configuration document for ``client`` (claude, vscode or cursor)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}: expected one of {', '.join(CLIENTS)}")
    if command is None:
        command, args = command_line()
    entry: dict[str, Any] = {"command": command, "args": list(args if args is not None else ["serve"])}
    if env:
        entry["env"] = dict(env)
    if client == "vscode":
        return {"servers": {"swarm-mcp": {"type": "stdio", **entry}}}
    return {"mcpServers": {"swarm-mcp": entry}}
