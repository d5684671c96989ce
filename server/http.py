"""`swarm-mcp serve --transport http`: streamable HTTP, legacy SSE and a health check on one port.

Routes (one Starlette app, served by uvicorn):

- ``/mcp``: streamable HTTP, both protocol eras - 2025-11-25 (``initialize``, ``Mcp-Session-Id``,
  a standalone GET stream for server-initiated messages) and 2026-07-28 (stateless requests);
- ``/sse`` and ``/messages/``: the legacy HTTP+SSE transport (2024-11-05 clients);
- ``/healthz``: ``{"status": "ok"}`` while the server serves and its store can write (no auth, no Host
  check: for probes); else 503 with ``{"status": "unavailable", "store": {"cause", "path", "message"}}``
  naming what is wrong (read-only data directory, full disk, database locked by another process,
  database unreachable) and the fix. The write probe's answer is kept for two seconds.

Security, in the order a request meets it:

1. Host and Origin (DNS-rebinding protection): a Host not allowed gets 421, an Origin not allowed
   403. On a loopback bind the loopback names are allowed; off loopback the bind host and
   ``SWARM_MCP_ALLOWED_HOSTS`` / ``SWARM_MCP_ALLOWED_ORIGINS`` (``*`` allows any).
2. Bearer token (server/auth.py): required when one is configured, and always off loopback (the
   server refuses to start off loopback without one). A request without a valid token gets 401
   with ``WWW-Authenticate: Bearer``. On loopback with no token configured requests are allowed
   as the principal ``local``.
3. The principal (server/principal.py) owns the sessions it creates; every request is marked
   remote, which turns code execution off unless ``SWARM_MCP_REMOTE_CODE=1``.

The app's lifespan runs the streamable-HTTP session manager, which holds the swarm service open
(the engine and its runs): at shutdown, running sessions are recorded ``paused``. Legacy SSE
connections enter the service too; one leaving never pauses other clients' runs.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from swarm.errors import ConfigError

from .principal import remote_request

log = logging.getLogger("swarm_mcp.http")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
HEALTH_PATH = "/healthz"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


@dataclass
class HttpSettings:
    """How ``serve --transport http`` serves (environment variables in parentheses)."""

    host: str = "127.0.0.1"
    """The address to bind: loopback by default; anything else requires a bearer token."""
    port: int = 8000
    """The port to bind (0: a free one, printed on stderr when serving)."""
    token: str | None = None
    """A static bearer token (``SWARM_MCP_TOKEN``); when set it is required on every request, loopback too."""
    token_subject: str | None = None
    """The static token's subject (``SWARM_MCP_TOKEN_SUBJECT``); default ``token:<sha256 prefix>``."""
    token_verifier: str | None = None
    """``package.module:name`` of a TokenVerifier (``SWARM_MCP_TOKEN_VERIFIER``), e.g. for OAuth/JWT tokens."""
    allowed_hosts: list[str] = field(default_factory=list)
    """Extra Host header values allowed (``SWARM_MCP_ALLOWED_HOSTS``, comma-separated; ``name`` allows any port; ``*`` any host)."""
    allowed_origins: list[str] = field(default_factory=list)
    """Extra Origin values allowed (``SWARM_MCP_ALLOWED_ORIGINS``, comma-separated; ``https://app:*`` any port; ``*`` any)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "HttpSettings":
        env = os.environ if env is None else env

        def items(name: str) -> list[str]:
            return [v.strip() for v in (env.get(name) or "").split(",") if v.strip()]

        values: dict[str, Any] = {
            "token": env.get("SWARM_MCP_TOKEN") or None,
            "token_subject": env.get("SWARM_MCP_TOKEN_SUBJECT") or None,
            "token_verifier": env.get("SWARM_MCP_TOKEN_VERIFIER") or None,
            "allowed_hosts": items("SWARM_MCP_ALLOWED_HOSTS"),
            "allowed_origins": items("SWARM_MCP_ALLOWED_ORIGINS"),
        }
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("allowed_hosts", "allowed_origins"):
                values[key] = [*values[key], *value]
            else:
                values[key] = value
        return cls(**values)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """A bind address as it appears in a Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(settings: HttpSettings) -> list[str]:
    """Host header patterns: ``name`` (exact), ``name:*`` (any port), ``*`` (any)."""
    hosts: list[str] = []
    if settings.loopback:
        hosts += [f"{h}:*" for h in LOOPBACK_HOSTS] + list(LOOPBACK_HOSTS)
    elif settings.host not in WILDCARD_BINDS:
        name = _host_name(settings.host)
        hosts += [name, f"{name}:*"]
    for extra in settings.allowed_hosts:
        hosts.append(extra)
        if extra != "*" and not extra.endswith("]") and ":" not in extra.rsplit("]", 1)[-1]:
            hosts.append(f"{extra}:*")  # a name without a port: any port
    if not hosts:
        raise ConfigError(
            f"serving on {settings.host or 'all addresses'} needs the host names clients will use: set SWARM_MCP_ALLOWED_HOSTS "
            "(or --allowed-host), e.g. mcp.example.com,10.0.0.5:8000, or '*' to accept any Host header")
    return hosts


def allowed_origins(settings: HttpSettings) -> list[str]:
    """Origin patterns (a request without Origin - not from a browser - is always allowed)."""
    origins: list[str] = []
    if settings.loopback:
        origins += [f"http://{h}:*" for h in LOOPBACK_HOSTS] + [f"http://{h}" for h in LOOPBACK_HOSTS]
    elif settings.host not in WILDCARD_BINDS:
        name = _host_name(settings.host)
        origins += [f"{scheme}://{name}{port}" for scheme in ("http", "https") for port in ("", ":*")]
    return origins + list(settings.allowed_origins)


def _matches(value: str, patterns: list[str]) -> bool:
    value = value.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or value == pattern:
            return True
        if pattern.endswith(":*") and value.startswith(pattern[:-1]) and value[len(pattern) - 1:].isdigit():
            return True
    return False


class HostOriginGuard:
    """ASGI middleware: DNS-rebinding protection for every route but the health check."""

    def __init__(self, app: Any, hosts: list[str], origins: list[str], exempt: tuple[str, ...] = (HEALTH_PATH,)) -> None:
        self.app, self.hosts, self.origins, self.exempt = app, hosts, origins, exempt

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.exempt:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            host, origin = headers.get("host"), headers.get("origin")
            if not host or not _matches(host, self.hosts):
                log.warning("refused a request with Host %r (allowed: %s)", host, ", ".join(self.hosts))
                await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
                return
            if origin and not _matches(origin, self.origins):
                log.warning("refused a request with Origin %r (allowed: %s)", origin, ", ".join(self.origins) or "none")
                await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Endpoint:
    """An ASGI app as a Starlette route endpoint (a plain function would be wrapped as request -> response)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def build_app(mcp: Any, settings: HttpSettings) -> Starlette:
    """The HTTP face of ``mcp`` (a swarm-mcp ``MCPServer``): routes, guards and the lifespan."""
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
    from mcp.server.sse import SseServerTransport
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    from .auth import build_verifier
    from .disconnect import CancelDroppedCalls
    from .jsonrpc import guarded

    verifier = build_verifier(settings.token, settings.token_subject, settings.token_verifier)
    if verifier is None and not settings.loopback:
        raise ConfigError(
            f"refusing to serve on {settings.host!r} without authentication: off loopback a bearer token is required. Set "
            "SWARM_MCP_TOKEN (e.g. `export SWARM_MCP_TOKEN=$(openssl rand -hex 32)`) or SWARM_MCP_TOKEN_VERIFIER, or bind 127.0.0.1")
    hosts, origins = allowed_hosts(settings), allowed_origins(settings)
    checked = TransportSecuritySettings(enable_dns_rebinding_protection=False)  # HostOriginGuard checks every route once

    lowlevel = mcp._lowlevel_server
    manager = StreamableHTTPSessionManager(app=lowlevel, security_settings=checked)
    lowlevel._session_manager = manager  # mcp.session_manager, as if built by the SDK's own streamable_http_app
    sse = SseServerTransport(MESSAGES_PATH, security_settings=checked)

    async def serve_sse(scope: Any, receive: Any, send: Any) -> None:
        async with sse.connect_sse(scope, receive, send) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())

    def protect(app: Any) -> Any:
        return _Endpoint(RequireAuthMiddleware(app, [], None) if verifier is not None else app)

    probes: list[Any] = []

    async def healthz(request: Request) -> JSONResponse:
        if not probes:
            from swarm.config import Settings
            from swarm.store_faults import WriteProbe
            from swarm.system_db import sqlite_system_database

            try:
                swarm_settings = getattr(mcp.swarm, "_settings", None) or Settings.from_env()
            except ConfigError as exc:
                return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
            system = sqlite_system_database(swarm_settings) if swarm_settings.durable else None
            probes.append(WriteProbe(swarm_settings.db_url, also=[system] if system is not None else []))
        fault = await probes[0].check()
        if fault is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "store": {"cause": fault.cause, "path": fault.path, "message": str(fault)}},
                            status_code=503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():  # enters the MCP server's lifespan: the swarm service, shut down (runs paused) on exit
            yield

    middleware = [Middleware(HostOriginGuard, hosts=hosts, origins=origins), Middleware(remote_request)]
    if verifier is not None:
        middleware += [Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)), Middleware(AuthContextMiddleware)]
    routes = [
        Route(HEALTH_PATH, healthz, methods=["GET"]),
        Route(MCP_PATH, protect(guarded(CancelDroppedCalls(StreamableHTTPASGIApp(manager)))), methods=["GET", "POST", "DELETE"]),
        Route(SSE_PATH, protect(serve_sse), methods=["GET"]),
        Mount(MESSAGES_PATH, app=protect(guarded(sse.handle_post_message))),  # guarded: every message with an id is answered
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.auth = "bearer token" if verifier is not None else "none (loopback, principal 'local')"
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one.

    Made with ``proto=IPPROTO_TCP``: asyncio sets TCP_NODELAY only on such sockets, and without it every
    keep-alive response whose headers and body are written apart waits ~40 ms for the client's delayed ACK.
    """
    family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_http(settings: HttpSettings, *, verbose: bool = False, mcp: Any = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop taking requests, pause running sessions and exit."""
    import uvicorn

    from .app import process_server, quiet_autogen

    quiet_autogen(verbose)
    mcp = mcp or process_server(open_engine=0)  # launched in the lifespan: sessions a crash left running resume
    app = build_app(mcp, settings)  # refuses a bad configuration before binding anything
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    base = f"http://{_host_name(host)}:{port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"swarm-mcp: serving {base}{MCP_PATH} (streamable HTTP) and {base}{SSE_PATH} (SSE); auth: {app.state.auth}",
                      file=sys.stderr, flush=True)

    config = uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose, lifespan="on",
                            timeout_graceful_shutdown=3, server_header=False)
    Server(config).run(sockets=[sock])
