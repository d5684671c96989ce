"""The seam through which tools (and later, phases) plug into the swarm.

A ``ToolProvider`` builds an autogen tool for one session. Phases implement the same protocol
(``invoke_<name>_phase``), so agents such as copilot_control can call them mid-session. swarm/
knows nothing about what a provider does; it only asks it for a tool bound to a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from autogen_core import CancellationToken
from autogen_core.tools import BaseTool, ToolSchema
from pydantic import BaseModel

from .errors import ManifestError
from .grants import Grants, check_code
from .tool_cache import schema_of

if TYPE_CHECKING:
    from .config import Settings
    from .profiles import Profile
    from .events import Event
    from .work import SessionWork


@dataclass
class SessionContext:
    """What a tool may know and do about the session it runs in."""

    session_id: str
    work_dir: Path
    settings: "Settings"
    outbox: list["Event"] = field(default_factory=list)
    """Extra transcript events (phase_start, phase_end, ...) a tool emitted; written with the round."""
    state: dict[str, Any] = field(default_factory=dict)
    """Session meta (plan, step results, ideas): tools may read and update it; saved with the round."""
    services: dict[str, Any] = field(default_factory=dict)
    """Engine-wide services a provider may need (``engine``: the Engine); opaque to swarm/."""
    journal: Any = None
    """The session's CallJournal: model clients and tools a tool builds must go through it."""
    grants: Grants | None = None
    """What the session may do (from its durable record); None: unknown, so nothing gated is allowed."""
    profile: "Profile | None" = None
    """The session's profile (swarm/profiles.py): the defaults of the phases its agents run, among others."""

    def emit(self, events: list["Event"]) -> None:
        """Record extra transcript events for this session; they are saved with the current round."""
        self.outbox.extend(events)


class ToolProvider(Protocol):
    """Builds one named tool for a session."""

    name: str
    description: str

    def build(self, ctx: SessionContext) -> BaseTool[Any, Any]: ...


@dataclass
class FunctionToolProvider:
    """A provider from a plain factory function ``ctx -> tool``."""

    name: str
    description: str
    factory: Callable[[SessionContext], BaseTool[Any, Any]]

    def build(self, ctx: SessionContext) -> BaseTool[Any, Any]:
        return self.factory(ctx)


class GuardedTool(BaseTool[BaseModel, BaseModel]):
    """A tool whose every call first passes ``check(arguments, call_id)``, which raises to refuse it (the agent sees the error)."""

    def __init__(self, inner: BaseTool[Any, Any], check: Callable[[dict[str, Any], str | None], None]) -> None:
        super().__init__(inner.args_type(), inner.return_type(), inner.name, inner.description)
        self._inner = inner
        self._check = check

    @property
    def schema(self) -> ToolSchema:
        return schema_of(self._inner)

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        self._check(args.model_dump(), None)
        return await self._inner.run(args, cancellation_token)

    async def run_json(self, args: Mapping[str, Any], cancellation_token: CancellationToken, call_id: str | None = None) -> Any:
        self._check(dict(args), call_id)
        return await self._inner.run_json(args, cancellation_token, call_id=call_id)

    def return_value_as_string(self, value: Any) -> str:
        return self._inner.return_value_as_string(value)


class ToolRegistry:
    """Named tool providers (manifests refer to tools by these names), and the kinds of session work besides the
    swarm's own legs that the tools bring (``works``: a phase run, for the phase tools)."""

    def __init__(self, providers: Mapping[str, ToolProvider] | None = None, works: Mapping[str, "SessionWork"] | None = None) -> None:
        self._providers: dict[str, ToolProvider] = dict(providers or {})
        self._phases: set[str] = set()
        self.works: dict[str, SessionWork] = dict(works or {})
        """Kinds of session work (swarm/work.py) by name; a durable engine plays them as ``swarm.session_run`` workflows."""

    def add(self, provider: ToolProvider, *, phase: bool = False) -> None:
        """Add a tool; ``phase``: it runs a whole phase of agents (a profile may leave such tools out)."""
        self._providers[provider.name] = provider
        if phase:
            self._phases.add(provider.name)

    def is_phase(self, name: str) -> bool:
        """Whether the tool ``name`` runs a phase (see ``add``)."""
        return name in self._phases

    def names(self) -> list[str]:
        return sorted(self._providers)

    def get(self, name: str) -> ToolProvider | None:
        return self._providers.get(name)

    def build(self, names: list[str], ctx: SessionContext, agent: str) -> list[BaseTool[Any, Any]]:
        tools = []
        for name in names:
            provider = self._providers.get(name)
            if provider is None:
                raise ManifestError(f"agent {agent}", "tools", f"expected one of the known tools {self.names()}, got unknown {name!r}")
            tools.append(provider.build(ctx))
        return tools


def default_registry() -> ToolRegistry:
    """The built-in tools: code execution in the session's sandboxed work dir, if the session's grants allow it."""
    registry = ToolRegistry()
    registry.add(FunctionToolProvider("execute_code", "Run Python or bash code in the session's sandboxed work directory.", _code_tool))
    return registry


def _code_tool(ctx: SessionContext) -> BaseTool[Any, Any]:
    from .sandbox import execute_code_tool, sandbox_config

    return GuardedTool(execute_code_tool(ctx.work_dir, sandbox_config(ctx.settings)), lambda _args, _call: check_code(ctx.grants, "the engineer's code (execute_code)"))
