"""Shared helpers of the phase tests: an engine on a scripted model, plans and code answers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from phases import phase_tool_registry
from swarm.engine import Engine
from swarm.models.scripted import Script
from tests.fakes import ScriptedModels


@asynccontextmanager
async def scripted_engine(settings: Any, script: Script, **kw: Any) -> AsyncIterator[Engine]:
    """An engine whose every agent answers from ``script``; the script must be used up at the end."""
    kw.setdefault("tools", phase_tool_registry())
    async with Engine(settings, models=ScriptedModels(script), **kw) as engine:
        yield engine


def plan(*steps: tuple[str, str]) -> dict[str, Any]:
    return {"steps": [{"sub_task": task, "agent": agent, "bullet_points": [f"deliver {task}"]} for task, agent in steps]}


def code(program: str, explanation: str = "runs the program") -> dict[str, Any]:
    return {"language": "python", "code": program, "explanation": explanation}


def phase_events(events: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(e.type, e.content["phase"], e.content.get("status")) for e in events if e.type in ("phase_start", "phase_end")]
