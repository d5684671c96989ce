"""Code execution for remote callers: off unless the operator allows it (design.md section 7).

A run started by a call over HTTP (``Run.remote``, from ``Call.remote``) may not execute code
unless ``SWARM_MCP_REMOTE_CODE=1``. Two seams enforce it, both in server/:

- the engine's tools: the swarm's ``execute_code`` tool and the phase tools that may run code are
  wrapped (``guard_registry``); the wrapper refuses inside a remote run, at call time. The agent
  sees the refusal as the tool's error and the session goes on;
- the MCP phase tools: a phase that may run code (one-shot with the engineer, control and
  hitl_control of a plan with an engineer step, the routed copilot pass) is refused up front for a
  remote call, with an ``isError`` result of kind ``config``.

The phases run code through ``PhaseContext.execute`` (phases/context.py), which has no hook of its
own, so the phase check is by what the phase *may* do rather than by what it does. Replayed
journal entries never reach a guard: a replay runs nothing.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from swarm.errors import ConfigError

from .runs import active_run

REMOTE_CODE_ENV = "SWARM_MCP_REMOTE_CODE"
CODE_TOOL = "execute_code"


class CodeExecutionRefused(ConfigError):
    """Code execution was asked for by a remote caller and the server does not allow it."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"code execution is turned off for remote (HTTP) callers of this server, so {what} cannot run here. "
            f"The server's operator can allow it with {REMOTE_CODE_ENV}=1; over stdio, code runs as usual."
        )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class CodePolicy:
    """Whether runs of remote callers may execute code."""

    def __init__(self, remote_code: bool | None = None) -> None:
        self.remote_code = _flag(os.environ.get(REMOTE_CODE_ENV)) if remote_code is None else remote_code

    def allows(self, remote: bool) -> bool:
        return self.remote_code or not remote

    def check_run(self, what: str) -> None:
        """Inside a run's task: refuse if the run was started by a remote call."""
        run = active_run()
        if run is not None and not self.allows(run.remote):
            raise CodeExecutionRefused(what)

    def check_phase(self, remote: bool, phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Before a phase runs for a call: refuse if it may run code and the call is remote."""
        if not self.allows(remote) and may_run_code(phase, params, state):
            raise CodeExecutionRefused(f"the {phase} phase (its engineer runs code)")


def may_run_code(phase: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether running ``phase`` with ``params`` in a session with ``state`` (its meta) may execute code."""
    if phase == "one_shot":
        return (params.get("agent") or "engineer") == "engineer"
    if phase in ("control", "hitl_control"):
        plan = params.get("plan") or state.get("plan")
        if isinstance(plan, BaseModel):
            plan = plan.model_dump()
        steps = (plan or {}).get("steps") or []
        return any((s.get("agent") if isinstance(s, Mapping) else getattr(s, "agent", None)) == "engineer" for s in steps)
    return phase == "copilot"  # routes simple tasks to one_shot, which may pick the engineer


# ---- the engine's tools -----------------------------------------------------------------------------


def guard_registry(registry: Any, policy: CodePolicy) -> Any:
    """``registry`` with ``execute_code`` and the code-running phase tools behind ``policy``."""
    from swarm.tools import ToolRegistry

    from .guarded_tools import GuardedProvider

    guarded = ToolRegistry()
    for name in registry.names():
        provider = registry.get(name)
        phase = getattr(getattr(provider, "phase", None), "name", None)
        if name == CODE_TOOL:
            provider = GuardedProvider(provider, lambda ctx, args: policy.check_run("the engineer's code (execute_code)"))
        elif phase is not None:
            provider = GuardedProvider(provider, _phase_check(policy, phase))
        guarded.add(provider)
    return guarded


def _phase_check(policy: CodePolicy, phase: str) -> Callable[[Any, dict[str, Any]], None]:
    def check(ctx: Any, args: dict[str, Any]) -> None:
        run = active_run()
        if run is not None:
            policy.check_phase(run.remote, phase, args, ctx.state)

    return check
