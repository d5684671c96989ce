"""The Python API: the swarm driven from Python, on the same engine, store and durability as the MCP server.

    from swarm import copilot, continue_copilot, full_swarm, quick_swarm, SwarmConfig, SwarmOrchestrator

    result = copilot("Build a REST API", max_rounds=100)
    if result["status"] == "paused":
        result = continue_copilot(result["session_id"])
    result = full_swarm("Complex multi-agent task", approval_manager=manager)   # every agent, approvals
    result = quick_swarm("Simple task")                                         # lightweight, unattended

    async with SwarmOrchestrator(SwarmConfig(max_rounds=50)) as swarm:
        result = await swarm.run("Task")

Results are the MCP tools' results (swarm/results.py ``SessionResult``), readable as ``result["status"]``. Sessions
live in the store of the data directory (SWARM_MCP_HOME, or SWARM_MCP_DB) and belong to the local user, as a stdio
server's do: a session started here is continued over MCP, and the other way round. The functions are synchronous
(each runs on a fresh event loop); ``acopilot``, ``acontinue_copilot``, ``afull_swarm`` and ``aquick_swarm`` are their
async forms. Approvals a session stops at are answered by an approval manager (swarm/approval_manager.py), else on the
console when stdin is a terminal, else the call returns the ``waiting_input`` result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Iterator, Mapping, TypeVar

from .approval_manager import ApprovalManager, ApprovalRequest, ConsoleApprovals, ask, console_is_interactive
from .results import SessionResult, session_result

if TYPE_CHECKING:
    from .engine import Engine
    from .profiles import Budget, Profile
    from .runner import ModelSource
    from .session import SessionRecord

T = TypeVar("T")

_models: ContextVar["ModelSource | None"] = ContextVar("swarm_api_models", default=None)

_KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_PROVIDER_VARS = frozenset({"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"})


@dataclass(frozen=True)
class SwarmConfig:
    """How the Python API runs sessions. A field left at its default follows the environment (SWARM_MCP_*) and the
    session profile, as the MCP server does."""

    max_rounds: int | None = None
    """Agent turns a run may take before the session pauses (continue it with ``continue_copilot``); None: the
    profile's (default 20, full 50, quick 8)."""
    profile: str | None = None
    """The session profile: default, full, quick, or one of SWARM_MCP_PROFILE_DIRS; None: default."""
    enable_phase_tools: bool = True
    """Whether agents may run phases as tools (invoke_*_phase). False turns them off in the session's profile; True
    keeps the profile's choice (quick has none)."""
    use_copilot_control: bool = True
    """Sessions start at the copilot_control router (it routes with the offline router, at no model cost, when the
    decision is clear). It cannot be skipped: False is refused with a ValueError."""
    approval_manager: ApprovalManager | None = None
    """Answers the approvals and questions a session stops at (swarm/approval_manager.py); None: see ``interactive``."""
    interactive: bool | None = None
    """With no approval manager, ask on the console (stderr, stdin); None: when stdin is a terminal. Otherwise a call
    returns the ``waiting_input`` result."""
    model: str | None = None
    """Model backend, as SWARM_MCP_MODEL: auto | local | openai:<model> | anthropic:<model>; None: SWARM_MCP_MODEL."""
    work_dir: str | Path | None = None
    """The data directory, as SWARM_MCP_HOME: the session store (unless SWARM_MCP_DB names one) and each session's
    work directory, ``<work_dir>/sessions/<session_id>``; None: SWARM_MCP_HOME. A server with the same data directory
    sees these sessions."""
    max_tokens: int | None = None
    """Most model tokens a session may use over all its runs (it pauses there); None: the profile's budget."""
    max_cost_usd: float | None = None
    """Most US dollars a session may cost, by the price table (SWARM_MCP_PRICES); None: the profile's budget."""
    max_seconds: float | None = None
    """Most wall-clock seconds a session may run over all its runs; None: the profile's budget."""
    durable: bool | None = None
    """Run sessions as durable workflows, as the server does (a crashed run resumes); None: SWARM_MCP_DURABLE, on by
    default."""
    principal: str = "local"
    """Who owns the sessions. A stdio server's caller is ``local``: keep it to share sessions with it."""

    def __post_init__(self) -> None:
        if not self.use_copilot_control:
            raise ValueError("use_copilot_control=False cannot be honoured: every swarm session starts at the copilot_control "
                             "router, which picks the agents (with no model call when the offline router's decision is clear). "
                             "Use quick_swarm (profile 'quick') for a lightweight session, or set a smaller max_rounds")

    def budget(self) -> "Budget | None":
        """The session limits this config sets, if any."""
        if self.max_tokens is None and self.max_cost_usd is None and self.max_seconds is None:
            return None
        from .profiles import Budget

        return Budget(tokens=self.max_tokens, cost_usd=self.max_cost_usd, seconds=self.max_seconds)


@contextmanager
def model_source(models: "ModelSource") -> Iterator["ModelSource"]:
    """Within the block, the Python API's engines (those of the functions, and of a SwarmOrchestrator made without
    ``models``) get their model clients from ``models``: a ModelFactory of your own, or a scripted model in tests."""
    token = _models.set(models)
    try:
        yield models
    finally:
        _models.reset(token)


def provider_env(api_keys: Mapping[str, str | None] | None) -> dict[str, str]:
    """The environment variables of ``api_keys``: by provider (``openai``, ``anthropic``, any case) or by variable name
    (OPENAI_API_KEY, ANTHROPIC_API_KEY, OPENAI_BASE_URL, ANTHROPIC_BASE_URL). Empty values are left out."""
    env: dict[str, str] = {}
    for name, value in (api_keys or {}).items():
        if not value:
            continue
        var = name if name in _PROVIDER_VARS else _KEY_VARS.get(name.lower().removesuffix("_api_key"))
        if var is None:
            raise ValueError(f"api_keys: unknown key {name!r}; expected a provider (openai, anthropic) or one of {sorted(_PROVIDER_VARS)}")
        env[var] = value
    return env


class SwarmOrchestrator:
    """An engine for Python callers: ``await swarm.initialize()``, then ``run`` and ``continue_``; ``close`` at the end
    (or ``async with SwarmOrchestrator(config) as swarm``). ``models`` replaces the configured model backends."""

    def __init__(self, config: SwarmConfig | None = None, *, models: "ModelSource | None" = None) -> None:
        self.config = config or SwarmConfig()
        self._models = models
        self._own_models: Any = None
        self._engine: Engine | None = None

    @property
    def engine(self) -> "Engine":
        """The engine (after ``initialize``)."""
        if self._engine is None:
            raise RuntimeError("the SwarmOrchestrator is not initialized: await swarm.initialize() first (or use `async with`)")
        return self._engine

    async def initialize(self, api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None) -> "SwarmOrchestrator":
        """Open the engine: settings from the environment and this config, the model backends (with ``api_keys`` for
        them alone; the process environment is not changed), the tools of the installed plugins (the phases)."""
        if self._engine is not None:
            return self
        from .config import Settings
        from .engine import Engine
        from .manifest import load_agents
        from .plugins import agents_with_tools, plugin_tools

        keys = provider_env(api_keys)
        home = work_dir if work_dir is not None else self.config.work_dir
        env = dict(os.environ, **({"SWARM_MCP_HOME": str(Path(home).expanduser())} if home is not None else {}))
        overrides: dict[str, Any] = {}
        if self.config.model is not None:
            overrides["model"] = self.config.model
        if self.config.durable is not None:
            overrides["durable"] = self.config.durable
        settings = Settings.from_env(env, **overrides)
        models = self._models or _models.get()
        if models is None:
            from .models.factory import ModelFactory

            models = self._own_models = ModelFactory(settings, env={**env, **keys})
        tools = plugin_tools()
        engine = Engine(settings, models=models, tools=tools, agents=agents_with_tools(load_agents(settings.agent_dirs), tools))
        await engine.__aenter__()
        self._engine = engine
        return self

    async def close(self) -> None:
        """Close the engine (the sessions stay in the store) and the model clients it built."""
        engine, self._engine = self._engine, None
        try:
            if engine is not None:
                await engine.__aexit__(None, None, None)
        finally:
            models, self._own_models = self._own_models, None
            if models is not None:
                await models.aclose()

    async def __aenter__(self) -> "SwarmOrchestrator":
        return await self.initialize()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- sessions ---------------------------------------------------------------------------------------

    async def run(self, task: str, *, max_rounds: int | None = None, profile: str | None = None,
                  approval_manager: ApprovalManager | None = None, budget: "Budget | None" = None) -> SessionResult:
        """Start a copilot session for ``task`` and run it until it completes, fails, pauses at its round limit or waits
        for an answer nobody here gives. Arguments left out come from the config."""
        await self.initialize()
        record = await self.engine.create(task, max_rounds=max_rounds if max_rounds is not None else self.config.max_rounds, principal=self.config.principal,
                                          profile=self.profile(profile), budget=budget or self.config.budget())
        record = await self.engine.go_on(record.id, principal=self.config.principal)
        return await self._result(await self._answer_all(record, approval_manager))

    async def continue_(self, session_id: str, message: str | None = None, *, max_rounds: int | None = None,
                        approval_manager: ApprovalManager | None = None, budget: "Budget | None" = None) -> SessionResult:
        """Go on with a paused, waiting or interrupted session (``message``: new input, or the answer to its question).
        A session waiting on an approval, continued without a message, has it answered by the approval manager (or
        the console), and goes on with its own round limit. ``budget`` replaces the session's limits (raise the one
        that paused it)."""
        await self.initialize()
        principal = self.config.principal
        record = await self.engine.get(session_id, principal)
        if message is None and record.status == "waiting_input" and record.pending is not None and self._answerer(approval_manager):
            if budget is not None and budget.any:
                record = await self.engine.raise_budget(record, budget)
            return await self._result(await self._answer_all(record, approval_manager))
        extra: dict[str, Any] = {"budget": budget} if budget is not None else {}
        record = await self.engine.go_on(session_id, message=message, max_rounds=max_rounds, principal=principal, **extra)
        return await self._result(await self._answer_all(record, approval_manager))

    async def resolve_approval(self, session_id: str, approval_id: str, decision: str, feedback: str | None = None, *,
                               approval_manager: ApprovalManager | None = None) -> SessionResult:
        """Answer a session's pending approval (or question) and go on until its next stop."""
        await self.initialize()
        record = await self._answer(session_id, approval_id, decision, feedback, "python")
        return await self._result(await self._answer_all(record, approval_manager))

    async def status(self, session_id: str) -> SessionResult:
        """A session's state, as ``session_status`` gives it."""
        await self.initialize()
        return await self._result(await self.engine.get(session_id, self.config.principal))

    async def cancel(self, session_id: str) -> SessionResult:
        """Cancel a session wherever it runs; its transcript stays readable."""
        await self.initialize()
        record, _ = await self.engine.cancel_session(session_id, self.config.principal)
        return await self._result(record)

    def profile(self, name: str | None = None) -> "Profile":
        """The profile a session started here gets: ``name`` (else the config's), phase tools off when the config says so."""
        from .profiles import pick

        chosen = pick(self.engine.profiles, name or self.config.profile)
        if not self.config.enable_phase_tools and chosen.phase_tools:
            chosen = chosen.model_copy(update={"phase_tools": False})
        return chosen

    # ---- approvals --------------------------------------------------------------------------------------

    def _answerer(self, manager: ApprovalManager | None) -> tuple[ApprovalManager, str] | None:
        """Who answers approvals, and through which channel: the manager given, the config's, else the console."""
        manager = manager or self.config.approval_manager
        if manager is not None:
            return manager, "python"
        interactive = self.config.interactive
        if interactive or (interactive is None and console_is_interactive()):
            return ConsoleApprovals(), "console"
        return None

    async def _answer_all(self, record: "SessionRecord", manager: ApprovalManager | None) -> "SessionRecord":
        """While the session waits on an approval someone here answers, answer it and go on."""
        answerer = self._answerer(manager)
        while answerer is not None and record.status == "waiting_input" and record.pending is not None:
            decision = await ask(answerer[0], ApprovalRequest.of(record.id, record.pending))
            if decision is None:
                break
            record = await self._answer(record.id, record.pending.id, decision.decision, decision.feedback, answerer[1])
        return record

    async def _answer(self, session_id: str, approval_id: str, decision: str, feedback: str | None, channel: str) -> "SessionRecord":
        principal = self.config.principal
        return await self.engine.answer(session_id, approval_id, decision, feedback, who=principal, channel=channel, principal=principal)

    async def _result(self, record: "SessionRecord") -> SessionResult:
        live = record.status == "running" and (self.engine.executes_here(record.id) or await self.engine.is_live(record))
        return session_result(record, live=live)


# ---- the functions -------------------------------------------------------------------------------------------


async def _once(config: SwarmConfig | None, api_keys: Mapping[str, str | None] | None, work_dir: str | Path | None,
                act: Callable[[SwarmOrchestrator], Awaitable[SessionResult]]) -> SessionResult:
    """``act`` on an orchestrator opened for this one call, closed after it."""
    swarm = SwarmOrchestrator(config)
    await swarm.initialize(api_keys, work_dir)
    try:
        return await act(swarm)
    finally:
        await swarm.close()


async def acopilot(task: str, max_rounds: int | None = None, profile: str | None = None, *,
                   approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
                   api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
                   budget: "Budget | None" = None) -> SessionResult:
    """Run a copilot session for ``task`` to its next stop (see ``SwarmOrchestrator.run``)."""
    return await _once(config, api_keys, work_dir, lambda swarm: swarm.run(
        task, max_rounds=max_rounds, profile=profile, approval_manager=approval_manager, budget=budget))


async def acontinue_copilot(session_id: str, message: str | None = None, *, max_rounds: int | None = None,
                            approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
                            api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
                            budget: "Budget | None" = None) -> SessionResult:
    """Go on with a session to its next stop (see ``SwarmOrchestrator.continue_``)."""
    return await _once(config, api_keys, work_dir, lambda swarm: swarm.continue_(
        session_id, message, max_rounds=max_rounds, approval_manager=approval_manager, budget=budget))


async def aresolve_approval(session_id: str, approval_id: str, decision: str, feedback: str | None = None, *,
                            approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
                            api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None) -> SessionResult:
    """Answer a session's pending approval (or question) and go on to its next stop."""
    return await _once(config, api_keys, work_dir, lambda swarm: swarm.resolve_approval(
        session_id, approval_id, decision, feedback, approval_manager=approval_manager))


async def afull_swarm(task: str, approval_manager: ApprovalManager | None = None, *, max_rounds: int | None = None,
                      config: SwarmConfig | None = None, api_keys: Mapping[str, str | None] | None = None,
                      work_dir: str | Path | None = None, budget: "Budget | None" = None) -> SessionResult:
    """A session of the ``full`` profile: every agent and the phase tools, a human's approval before code runs, before
    a phase runs and after a failed step, asked of ``approval_manager`` (else the console, else it waits)."""
    return await acopilot(task, max_rounds, "full", approval_manager=approval_manager, config=config, api_keys=api_keys,
                          work_dir=work_dir, budget=budget)


async def aquick_swarm(task: str, *, max_rounds: int | None = None, config: SwarmConfig | None = None,
                       api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
                       budget: "Budget | None" = None) -> SessionResult:
    """A session of the ``quick`` profile: the core agents, no phase tools, no approvals, a small round limit;
    unattended (a question the swarm asks ends the call ``waiting_input`` unless the config says ``interactive``)."""
    config = config or SwarmConfig()
    if config.interactive is None:
        config = dataclasses.replace(config, interactive=False)
    return await acopilot(task, max_rounds, "quick", config=config, api_keys=api_keys, work_dir=work_dir, budget=budget)


def _sync(name: str, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``start()`` on a fresh event loop; refused inside a running one (it would block it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(start())
    raise RuntimeError(f"{name}() runs its own event loop, so it cannot be called while one is running (in an async function "
                       f"or a notebook): use `await a{name}(...)` instead")


def copilot(task: str, max_rounds: int | None = None, profile: str | None = None, *,
            approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
            api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
            budget: "Budget | None" = None) -> SessionResult:
    """Run a copilot session for ``task`` to its next stop (``acopilot`` on a fresh event loop)."""
    return _sync("copilot", lambda: acopilot(task, max_rounds, profile, approval_manager=approval_manager, config=config,
                                             api_keys=api_keys, work_dir=work_dir, budget=budget))


def continue_copilot(session_id: str, message: str | None = None, *, max_rounds: int | None = None,
                     approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
                     api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
                     budget: "Budget | None" = None) -> SessionResult:
    """Go on with a session to its next stop (``acontinue_copilot`` on a fresh event loop)."""
    return _sync("continue_copilot", lambda: acontinue_copilot(session_id, message, max_rounds=max_rounds, approval_manager=approval_manager,
                                                               config=config, api_keys=api_keys, work_dir=work_dir, budget=budget))


def full_swarm(task: str, approval_manager: ApprovalManager | None = None, *, max_rounds: int | None = None,
               config: SwarmConfig | None = None, api_keys: Mapping[str, str | None] | None = None,
               work_dir: str | Path | None = None, budget: "Budget | None" = None) -> SessionResult:
    """A session of the ``full`` profile: every agent, approvals (``afull_swarm`` on a fresh event loop)."""
    return _sync("full_swarm", lambda: afull_swarm(task, approval_manager, max_rounds=max_rounds, config=config, api_keys=api_keys,
                                                   work_dir=work_dir, budget=budget))


def quick_swarm(task: str, *, max_rounds: int | None = None, config: SwarmConfig | None = None,
                api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None,
                budget: "Budget | None" = None) -> SessionResult:
    """A lightweight, unattended session of the ``quick`` profile (``aquick_swarm`` on a fresh event loop)."""
    return _sync("quick_swarm", lambda: aquick_swarm(task, max_rounds=max_rounds, config=config, api_keys=api_keys,
                                                     work_dir=work_dir, budget=budget))


def resolve_approval(session_id: str, approval_id: str, decision: str, feedback: str | None = None, *,
                     approval_manager: ApprovalManager | None = None, config: SwarmConfig | None = None,
                     api_keys: Mapping[str, str | None] | None = None, work_dir: str | Path | None = None) -> SessionResult:
    """Answer a session's pending approval and go on (``aresolve_approval`` on a fresh event loop)."""
    return _sync("resolve_approval", lambda: aresolve_approval(session_id, approval_id, decision, feedback, approval_manager=approval_manager,
                                                               config=config, api_keys=api_keys, work_dir=work_dir))
