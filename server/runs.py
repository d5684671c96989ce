"""How a tool call follows its session's live run (swarm/live.py): at most ``wait_seconds``, with a progress
notification at least every ``HEARTBEAT`` seconds, since MCP clients drop a call that stays silent."""

from __future__ import annotations

HEARTBEAT = 10.0
"""Seconds between progress notifications while nothing happens (clients drop silent calls)."""
