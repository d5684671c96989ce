"""Resources, prompts, completion, subscriptions and logging/setLevel of the swarm-mcp server."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from mcp.server.mcpserver.prompts.base import UserMessage
from pydantic import ValidationError

from swarm.errors import UserInputError

from .notify import LEVELS
from phases.registry import PHASES
from .principal import principal_of
from .render import transcript_json, transcript_markdown, transcript_md_uri
from .subscriptions import SubscriptionRules

log = logging.getLogger("swarm_mcp.resources")


def register_resources(mcp: Any, service: Any) -> None:
    lowlevel = mcp._lowlevel_server  # the SDK serves subscribe / setLevel / completion only through its handler table

    async def agents() -> dict[str, Any]:
        engine = await service.engine()
        return engine.agents

    async def record_of(session_id: str) -> Any:
        try:
            return await service.read(session_id, principal_of())
        except UserInputError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    @mcp.resource("swarm://sessions", name="sessions", title="Sessions", mime_type="application/json",
                  description="Your sessions, most recent first: id, kind, status, rounds, task.")
    async def sessions() -> str:
        engine = await service.engine()
        records = await engine.list(principal_of())
        return json.dumps([{
            "session_id": r.id, "kind": r.kind, "status": r.status, "total_rounds": r.total_rounds,
            "updated_at": r.updated_at.isoformat(), "task": r.task[:200], "uri": f"swarm://sessions/{r.id}",
        } for r in records], indent=2)

    @mcp.resource("swarm://sessions/{session_id}", name="session", title="Session status", mime_type="application/json",
                  description="A session's status, rounds, pending approval, result and usage (what session_status returns).")
    async def session(session_id: str) -> str:
        return service.result(await record_of(session_id)).model_dump_json(indent=2)

    @mcp.resource("swarm://sessions/{session_id}/transcript", name="transcript", title="Session transcript", mime_type="application/json",
                  description="A session's full transcript: every message, tool call, hand-off, approval and status event, in order.")
    async def transcript(session_id: str) -> str:
        record = await record_of(session_id)
        engine = await service.engine()
        return transcript_json(record, await engine.transcript(session_id, principal_of()))

    @mcp.resource("swarm://sessions/{session_id}/transcript.md", name="transcript_markdown", title="Session transcript (markdown)",
                  mime_type="text/markdown", description="A session's transcript rendered as markdown.")
    async def transcript_md(session_id: str) -> str:
        record = await record_of(session_id)
        engine = await service.engine()
        return transcript_markdown(record, await engine.transcript(session_id, principal_of()))

    @mcp.resource("swarm://agents", name="agents", title="Agents", mime_type="application/json",
                  description="The swarm's agents: name, description, model tier, tools and hand-offs.")
    async def agent_list() -> str:
        return json.dumps([_agent(m) for m in (await agents()).values()], indent=2)

    @mcp.resource("swarm://agents/{name}", name="agent", title="Agent manifest", mime_type="application/json",
                  description="One agent's manifest, including its system message.")
    async def agent(name: str) -> str:
        manifest = (await agents()).get(name)
        if manifest is None:
            raise ResourceNotFoundError(f"unknown agent {name!r}; known agents: {', '.join(sorted(await agents()))}")
        return manifest.model_dump_json(indent=2)

    @mcp.resource("swarm://phases", name="phases", title="Phases", mime_type="application/json",
                  description="The phases the swarm can run: name, tool, description and the JSON schema of the parameters.")
    async def phase_list() -> str:
        from .phases import describe

        return json.dumps(describe(), indent=2)

    @mcp.resource("swarm://phases/{name}", name="phase", title="Phase", mime_type="application/json",
                  description="One phase: its tool, what it does and the JSON schema of its parameters.")
    async def phase_info(name: str) -> str:
        from .phases import describe

        for item in describe():
            if item["name"] == name:
                return json.dumps(item, indent=2)
        raise ResourceNotFoundError(f"unknown phase {name!r}; the phases are {', '.join(sorted(PHASES))}")

    # ---- prompts --------------------------------------------------------------------------------

    @mcp.prompt(name="start_swarm", title="Start a swarm session", description="Hand a task to the swarm and see it through.")
    def start_swarm(task: str) -> list[UserMessage]:
        return [UserMessage(
            f"Use the swarm-mcp tools to get this done:\n\n{task}\n\n"
            "Call copilot with the task. Then follow the result's `next`: while status is 'running', call continue_copilot with "
            "the session_id; if it is 'waiting_input', show me pending_approval.message and pass my answer with continue_copilot "
            "(message=...) or resolve_approval; if it is 'paused', continue it. When it is 'completed', give me the result and "
            "the transcript_uri."
        )]

    @mcp.prompt(name="review_session", title="Review a session", description="Summarise a session's transcript and say what to do next.")
    async def review_session(session_id: str) -> list[UserMessage]:
        record = await record_of(session_id)
        engine = await service.engine()
        text = transcript_markdown(record, await engine.transcript(session_id, principal_of()))
        return [
            UserMessage(types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                uri=transcript_md_uri(session_id), mime_type="text/markdown", text=text))),
            UserMessage(f"Summarise what the swarm did in session {session_id} (status {record.status}): who did what, the result, "
                        "and anything that went wrong. Then say what I should do next with it."),
        ]

    # ---- completion, subscriptions, logging -----------------------------------------------------

    async def complete(ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref, arg = params.ref, params.argument
        prefix = arg.value or ""
        values: list[str] = []
        if arg.name == "session_id":
            engine = await service.engine()
            values = [r.id for r in await engine.list(principal_of(ctx), limit=500) if r.id.startswith(prefix)]
        elif arg.name == "name" and isinstance(ref, types.ResourceTemplateReference) and ref.uri.startswith("swarm://agents/"):
            values = sorted(n for n in await agents() if n.startswith(prefix))
        elif arg.name in ("phase", "phase_name") or (arg.name == "name" and isinstance(ref, types.ResourceTemplateReference)
                                                     and ref.uri.startswith("swarm://phases/")):
            values = sorted(p for p in PHASES if p.startswith(prefix))
        elif arg.name == "agent":
            values = sorted(n for n in await agents() if n.startswith(prefix))
        return types.CompleteResult(completion=types.Completion(values=values[:100], total=len(values), has_more=len(values) > 100))

    rules = SubscriptionRules(service)  # only resources that exist and the caller may read; a cap per connection
    subscribe, unsubscribe = rules.subscribe, rules.unsubscribe
    rules.guard_listen(lowlevel)  # the same rules for 2026-07-28 subscriptions/listen
    _read_without_thread_hop(mcp._resource_manager)

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        if params.level not in LEVELS:  # pragma: no cover - the SDK validates the enum
            raise ValueError(f"unknown level {params.level!r}")
        service.notifier.set_level(principal_of(ctx), params.level)
        return types.EmptyResult()

    async def prompt_errors(ctx: Any, call_next: Any) -> Any:
        """``prompts/get`` failures with real error codes. The SDK turns every one of them into a ValueError, which
        its dispatcher answers with code 0: an unknown prompt, a missing or unknown argument, or a session that is
        not yours are the caller's (-32602); a prompt that fails to render is ours (-32603)."""
        if ctx.method != "prompts/get" or not isinstance(ctx.params, Mapping):
            return await call_next(ctx)
        name = ctx.params.get("name")
        if isinstance(name, str):
            prompt = mcp._prompt_manager.get_prompt(name)
            if prompt is None:
                raise MCPError(INVALID_PARAMS, f"Unknown prompt: {name}; the prompts are start_swarm and review_session")
            _check_prompt_arguments(prompt, ctx.params.get("arguments"))
        try:
            return await call_next(ctx)
        except (MCPError, ValidationError):
            raise  # protocol errors, and the SDK's own -32602 for params of the wrong shape
        except Exception as exc:
            cause = _caller_error(exc)
            if cause is not None:
                raise MCPError(INVALID_PARAMS, f"prompt {name}: {cause}") from None
            log.error("prompt %s failed to render", name, exc_info=exc)
            raise MCPError(INTERNAL_ERROR, f"prompt {name} failed to render; the server's log (stderr) has the details") from None

    mcp.middleware.append(prompt_errors)
    lowlevel.add_request_handler("completion/complete", types.CompleteRequestParams, complete)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)


def _check_prompt_arguments(prompt: Any, arguments: Any) -> None:
    """Raise -32602 naming a prompt's missing required arguments and unknown ones (the SDK would raise a ValueError
    for the first and a TypeError for the second; an arguments value of the wrong shape is left to its validation)."""
    if arguments is not None and not isinstance(arguments, Mapping):
        return
    declared = {a.name: a for a in prompt.arguments or []}
    given = set(arguments or {})
    missing = sorted(n for n, a in declared.items() if a.required and n not in given)
    unknown = sorted(str(n) for n in given - set(declared))
    problems = [f"missing required argument {n!r}" + (f" ({declared[n].description})" if declared[n].description else "") for n in missing]
    problems += [f"unknown argument {n!r}" for n in unknown]
    if problems:
        takes = ", ".join(declared) or "no arguments"
        raise MCPError(INVALID_PARAMS, f"prompt {prompt.name}: " + "; ".join(problems) + f" (it takes: {takes})")


def _caller_error(exc: BaseException) -> str | None:
    """The message of a caller's error (a resource or session not found) somewhere in ``exc``'s causes, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ResourceNotFoundError, UserInputError)):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _agent(manifest: Any) -> dict[str, Any]:
    return {"name": manifest.name, "description": manifest.description, "model_tier": manifest.model_tier,
            "tools": list(manifest.tools), "handoffs": list(manifest.handoffs),
            "route": manifest.routing.route if manifest.routing else None, "uri": f"swarm://agents/{manifest.name}"}


def _read_without_thread_hop(manager: Any) -> None:
    """Serve a template resource's text as it is. The SDK wraps what a template function returned in a synchronous
    ``lambda: result``, which ``FunctionResource.read`` runs on an anyio worker thread: a thread hop per session or
    transcript read, and under 200 concurrent clients up to 40 worker threads that stayed (anyio retires an idle
    worker only when a later call happens to find it). Every resource function here is async, so a synchronous
    ``fn`` can only be such a wrapper: its value is taken at once and handed back by an async function."""
    from mcp.server.mcpserver.resources import FunctionResource

    get_resource = manager.get_resource

    async def get_resource_here(uri: Any, context: Any) -> Any:
        resource = await get_resource(uri, context)
        if type(resource) is FunctionResource and not inspect.iscoroutinefunction(resource.fn):
            content = resource.fn()

            async def rendered() -> Any:
                return content

            resource = resource.model_copy(update={"fn": rendered})
        return resource

    manager.get_resource = get_resource_here
