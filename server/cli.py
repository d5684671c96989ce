"""The `swarm-mcp` command line: serve, run, continue, sessions, route, config.

Results go to stdout; live progress and logs go to stderr. `serve` speaks MCP on stdin/stdout (so it
writes nothing else to stdout); `run` is an MCP client of a `serve` it spawns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any, Sequence

from swarm.errors import SwarmError, UserInputError

from .render import event_line, transcript_markdown

log = logging.getLogger("swarm_mcp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm-mcp", description="A multi-agent swarm orchestrator, served over MCP.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a whole copilot session for a task")
    run.add_argument("task", help="what the swarm should do")
    run.add_argument("--max-rounds", type=int, help="rounds (agent turns) before the session pauses (default: the profile's, 20 for default)")
    run.add_argument("--profile", help="session profile: default, full (asks before code and phases run), quick, or one of SWARM_MCP_PROFILE_DIRS")
    run.add_argument("--model", help="model backend: auto | local | openai:<model> | anthropic:<model> (default: SWARM_MCP_MODEL or auto)")
    run.add_argument("--json", action="store_true", help="print the final session as JSON")

    cont = sub.add_parser("continue", help="continue a paused, waiting or interrupted session")
    cont.add_argument("session_id")
    cont.add_argument("message", nargs="?", help="new user input (an answer, a correction, a follow-up)")
    cont.add_argument("--max-rounds", type=int, help="round limit of this leg (default: the session's)")
    cont.add_argument("--model", help="model backend for this leg")
    cont.add_argument("--json", action="store_true", help="print the final session as JSON")

    sessions = sub.add_parser("sessions", help="list sessions, or `sessions show ID` for a transcript (markdown; --brief: one line per event)")
    sessions.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    sessions.add_argument("session_id", nargs="?")
    sessions.add_argument("--json", action="store_true", help="JSON output")
    sessions.add_argument("--brief", action="store_true", help="show: one line per transcript event instead of the markdown transcript")

    route = sub.add_parser("route", help="print the offline router's decision for a task as JSON")
    route.add_argument("task")

    serve = sub.add_parser("serve", help="serve MCP (stdio: for IDEs and desktop clients; http: for remote clients)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                       help="stdio (default), or http: streamable HTTP at /mcp and legacy SSE at /sse on one port")
    serve.add_argument("--host", default="127.0.0.1",
                       help="http: address to bind (default 127.0.0.1; off loopback SWARM_MCP_TOKEN or a verifier is required)")
    serve.add_argument("--port", type=int, default=8000, help="http: port (default 8000; 0 picks a free one)")
    serve.add_argument("--allowed-host", action="append", metavar="HOST",
                       help="http: a Host header value to accept besides the bind host (repeatable; SWARM_MCP_ALLOWED_HOSTS)")
    serve.add_argument("--allowed-origin", action="append", metavar="ORIGIN",
                       help="http: a browser Origin to accept (repeatable; SWARM_MCP_ALLOWED_ORIGINS)")
    serve.add_argument("--token-verifier", metavar="MODULE:NAME",
                       help="http: a TokenVerifier (MCP SDK protocol) to check bearer tokens with (SWARM_MCP_TOKEN_VERIFIER)")
    serve.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)

    config = sub.add_parser("config", help="print ready-to-paste client configuration")
    config.add_argument("client", choices=["claude", "vscode", "cursor"])
    config.add_argument("--model", help="set SWARM_MCP_MODEL in the configuration (e.g. sampling, local, openai:gpt-4o-mini)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "route":
            return _route(args.task)
        if args.command == "serve":
            return _serve(args)
        if args.command == "config":
            return _config(args)
        if args.command == "run":
            return asyncio.run(_run(args))
        return asyncio.run(_async_main(args))
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the session is saved; resume it with `swarm-mcp continue <id>`", file=sys.stderr)
        return 130


def _route(task: str) -> int:
    from swarm.config import Settings
    from swarm.manifest import load_agents
    from swarm.router import OfflineRouter

    settings = Settings.from_env()
    decision = OfflineRouter(load_agents(settings.agent_dirs)).decide(task)
    print(json.dumps({"route": decision.route, "agent": decision.agent, "confidence": round(decision.confidence, 3)}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from swarm.memory import tune_collector

    tune_collector()  # this process only serves: before its imports, which ran ~4 full collections (~0.3 s) at Python's defaults
    if args.exit_with_parent:
        from .remote import exit_with_parent

        exit_with_parent()
    if args.transport == "http":
        from .http import HttpSettings, serve_http

        settings = HttpSettings.from_env(host=args.host, port=args.port, allowed_hosts=args.allowed_host,
                                         allowed_origins=args.allowed_origin, token_verifier=args.token_verifier)
        serve_http(settings, verbose=args.verbose)
        return 0
    from .app import serve_stdio

    serve_stdio(verbose=args.verbose)
    return 0


def _config(args: argparse.Namespace) -> int:
    from .client_config import WHERE, client_config

    env = None
    if args.model:
        from swarm.config import validate_model_spec

        validate_model_spec(args.model)
        env = {"SWARM_MCP_MODEL": args.model}
    print(f"# {WHERE[args.client]}", file=sys.stderr)
    print(json.dumps(client_config(args.client, env=env), indent=2))
    return 0


async def _run(args: argparse.Namespace) -> int:
    """`run` through the MCP protocol: a real client of a `serve` it spawns over stdio."""
    from types import SimpleNamespace

    from .remote import ToolFailed, run_session

    if args.model:
        from swarm.config import validate_model_spec

        validate_model_spec(args.model)
    try:
        result = await run_session(args.task, max_rounds=args.max_rounds, model=args.model, profile=args.profile)
    except ToolFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.kind in ("user_input", "unknown_session", "invalid_arguments", "config") else 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 1 if result["status"] == "failed" else 0
    usage = result["usage"]["total"]
    pending = result.get("pending_approval")
    record = SimpleNamespace(
        id=result["session_id"], status=result["status"], rounds_used=result["rounds_used"], total_rounds=result["total_rounds"],
        pending=SimpleNamespace(message=pending["message"]) if pending else None, error=result.get("error"),
        result=result["result"] if isinstance(result.get("result"), (str, type(None))) else json.dumps(result["result"], indent=2),
        total_usage=lambda: SimpleNamespace(total_tokens=usage["total_tokens"], prompt_tokens=usage["prompt_tokens"],
                                            completion_tokens=usage["completion_tokens"]),
    )
    _print_result(record, False)
    return 1 if result["status"] == "failed" else 0


async def _async_main(args: argparse.Namespace) -> int:
    from swarm.config import Settings
    from swarm.engine import Engine

    overrides: dict[str, Any] = {}
    if getattr(args, "model", None):
        from swarm.config import validate_model_spec

        validate_model_spec(args.model)
        overrides["model"] = args.model
    settings = Settings.from_env(**overrides)
    from .phases import tool_registry

    async with Engine(settings, tools=tool_registry()) as engine:
        if args.command == "sessions":
            return await _sessions(engine, args)
        if args.command == "run":
            record = await engine.create(args.task, max_rounds=args.max_rounds)
            print(f"session {record.id} started (model: {engine.models.spec_for('default')})", file=sys.stderr)
            record = await engine.run(record.id, on_update=_progress)
        else:
            record = await engine.run(args.session_id, message=args.message, max_rounds=args.max_rounds, on_update=_progress)
        _print_result(record, args.json)
        return 1 if record.status == "failed" else 0


async def _progress(record: Any, events: list[Any]) -> None:
    for event in events:
        print(f"  [{record.id} r{event.round}] {event_line(event)}", file=sys.stderr, flush=True)


def _print_result(record: Any, as_json: bool) -> None:
    if as_json:
        print(record.model_dump_json(indent=2))
        return
    usage = record.total_usage()
    print(f"session: {record.id}")
    print(f"status: {record.status}")
    print(f"rounds: {record.rounds_used} this run, {record.total_rounds} in total")
    print(f"tokens: {usage.total_tokens} ({usage.prompt_tokens} prompt, {usage.completion_tokens} completion)")
    if record.pending:
        print(f"question: {record.pending.message}")
        print(f"next: answer with `swarm-mcp continue {record.id} \"<your answer>\"`")
    elif record.status == "paused":
        print(f"next: resume with `swarm-mcp continue {record.id}`")
    elif record.status == "failed":
        print(f"error: {record.error}", file=sys.stderr)
        print(f"next: fix the cause, then retry with `swarm-mcp continue {record.id}`")
    if record.result:
        print("result:")
        print(record.result)


async def _sessions(engine: Any, args: argparse.Namespace) -> int:
    if args.action == "list":
        records = await engine.list()
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        for r in records if not args.json else []:
            print(f"{r.id}  {r.status:<13} rounds={r.total_rounds:<3} {r.updated_at:%Y-%m-%d %H:%M}  {r.task[:70]}")
        return 0
    if not args.session_id:
        raise UserInputError("`sessions show` needs a session id: swarm-mcp sessions show <id>")
    record = await engine.get(args.session_id)
    events = await engine.transcript(args.session_id)
    if args.json:
        print(json.dumps({"session": record.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]}, indent=2))
        return 0
    if not args.brief:
        print(transcript_markdown(record, events))
        return 0
    print(f"session {record.id} [{record.status}] {record.task}")
    for event in events:
        print(f"{event.seq:>4} r{event.round:<3} {event.type:<17} {event_line(event)}")
    if record.result:
        print(f"result: {record.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
