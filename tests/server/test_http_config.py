"""The HTTP transport's configuration and the pieces behind its security decisions (no server started)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server.subscriptions import ResourceUpdated

from server.auth import STATIC_CLIENT_ID, StaticTokenVerifier, build_verifier, load_verifier, token_subject
from phases.work import check_phase, may_run_code
from server.http import HttpSettings, _matches, allowed_hosts, allowed_origins, is_loopback
from server.notify import Notifier, PrincipalBus
from swarm.config import Settings
from swarm.errors import ConfigError
from swarm.grants import CodeRefused, Grants

pytestmark = pytest.mark.anyio

TOKEN = "static-token-for-tests-0123456789"


def test_settings_from_env_and_options() -> None:
    env = {"SWARM_MCP_TOKEN": TOKEN, "SWARM_MCP_TOKEN_SUBJECT": "ci", "SWARM_MCP_ALLOWED_HOSTS": "a.example, b.example:8443",
           "SWARM_MCP_ALLOWED_ORIGINS": "https://app.example"}
    settings = HttpSettings.from_env(env, host="0.0.0.0", port=9000, allowed_hosts=["c.example"], token_verifier=None)
    assert (settings.host, settings.port, settings.token, settings.token_subject) == ("0.0.0.0", 9000, TOKEN, "ci")
    assert settings.allowed_hosts == ["a.example", "b.example:8443", "c.example"]
    assert settings.allowed_origins == ["https://app.example"] and not settings.loopback


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.3.4.5", True), ("localhost", True), ("::1", True), ("[::1]", True),
                                            ("0.0.0.0", False), ("::", False), ("mcp.example.test", False), ("192.0.2.7", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_allowed_hosts_and_origins() -> None:
    local = HttpSettings()
    assert _matches("127.0.0.1:8000", allowed_hosts(local)) and _matches("localhost:1234", allowed_hosts(local))
    assert _matches("[::1]:8000", allowed_hosts(local)) and not _matches("evil.example:8000", allowed_hosts(local))
    assert not _matches("127.0.0.1:80x", allowed_hosts(local)) and not _matches("127.0.0.1.evil.example:80", allowed_hosts(local))
    assert _matches("http://localhost:5173", allowed_origins(local)) and not _matches("https://evil.example", allowed_origins(local))

    named = HttpSettings(host="mcp.example.test", token=TOKEN, allowed_hosts=["alias.example", "10.9.8.7:8443"])
    hosts = allowed_hosts(named)
    assert all(_matches(h, hosts) for h in ("mcp.example.test", "mcp.example.test:8000", "alias.example:1", "10.9.8.7:8443"))
    assert not any(_matches(h, hosts) for h in ("127.0.0.1:8000", "10.9.8.7:8444", "evil.example"))
    assert _matches("https://mcp.example.test", allowed_origins(named)) and not _matches("http://localhost:3000", allowed_origins(named))

    with pytest.raises(ConfigError, match="SWARM_MCP_ALLOWED_HOSTS"):
        allowed_hosts(HttpSettings(host="0.0.0.0", token=TOKEN))
    assert _matches("anything.example:1", allowed_hosts(HttpSettings(host="::", token=TOKEN, allowed_hosts=["*"])))


async def test_static_token_verifier() -> None:
    verifier = StaticTokenVerifier(TOKEN)
    access = await verifier.verify_token(TOKEN)
    assert access is not None and access.client_id == STATIC_CLIENT_ID and access.subject == token_subject(TOKEN)
    assert access.subject.startswith("token:") and TOKEN not in access.subject
    assert await verifier.verify_token(TOKEN + "x") is None and await verifier.verify_token("") is None
    assert (await StaticTokenVerifier(TOKEN, "ci").verify_token(TOKEN)).subject == "ci"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="too short"):
        StaticTokenVerifier("short")


class Verifier:
    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        return AccessToken(token=token, client_id="plugged", scopes=[]) if token == "plugged-token" else None


async def test_plugged_verifier_and_chaining() -> None:
    assert isinstance(load_verifier(f"{__name__}:Verifier"), Verifier)
    assert isinstance(load_verifier(f"{__name__}.Verifier"), Verifier)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_verifier("no_such_module_here:Verifier")
    with pytest.raises(ConfigError, match="verify_token"):
        load_verifier("collections:OrderedDict")
    both = build_verifier(TOKEN, None, f"{__name__}:Verifier")
    assert (await both.verify_token(TOKEN)).client_id == STATIC_CLIENT_ID  # type: ignore[union-attr]
    assert (await both.verify_token("plugged-token")).client_id == "plugged"  # type: ignore[union-attr]
    assert await both.verify_token("nope") is None
    assert build_verifier(None, None, None) is None
    with pytest.raises(ConfigError, match="SWARM_MCP_TOKEN_SUBJECT"):
        build_verifier(None, "ci", None)


async def test_updates_reach_only_their_owners_subscribers_and_listeners() -> None:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    bus = PrincipalBus()
    heard: dict[str, list[str]] = {"alice": [], "bob": [], "local": []}
    for name in ("alice", "bob"):
        token = auth_context_var.set(AuthenticatedUser(AccessToken(token="t", client_id="c", scopes=[], subject=name)))
        try:
            bus.subscribe(lambda event, name=name: heard[name].append(event.uri))
        finally:
            auth_context_var.reset(token)
    bus.subscribe(lambda event: heard["local"].append(event.uri))

    class Session:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send_resource_updated(self, uri: str) -> None:
            self.sent.append(uri)

    notifier = Notifier(bus)
    alice, bob = Session(), Session()
    notifier.subscribe("swarm://sessions", alice, "user:alice")
    notifier.subscribe("swarm://sessions", bob, "user:bob")
    await notifier.updated("swarm://sessions", "swarm://sessions/s_1", owner="user:alice")
    for task in list(notifier._sending):
        await task
    assert heard == {"alice": ["swarm://sessions", "swarm://sessions/s_1"], "bob": [], "local": []}
    assert alice.sent == ["swarm://sessions"] and bob.sent == []
    await bus.publish(ResourceUpdated(uri="swarm://agents"))  # no owner: everyone
    assert heard["bob"] == ["swarm://agents"] and heard["local"] == ["swarm://agents"]


def test_which_phases_may_run_code() -> None:
    engineer = {"steps": [{"sub_task": "x", "agent": "researcher"}, {"sub_task": "y", "agent": "engineer"}]}
    researcher = {"steps": [{"sub_task": "x", "agent": "researcher"}]}
    assert may_run_code("one_shot", {"agent": "engineer"}, {}) and may_run_code("one_shot", {}, {})
    assert not may_run_code("one_shot", {"agent": "researcher"}, {})
    assert may_run_code("control", {"plan": engineer}, {}) and may_run_code("hitl_control", {}, {"plan": engineer})
    assert not may_run_code("control", {"plan": researcher}, {}) and not may_run_code("control", {}, {})
    assert may_run_code("copilot", {}, {})
    assert not any(may_run_code(p, {}, {"plan": engineer}) for p in ("planning", "hitl_planning", "hitl_checkpoint", "idea_generation"))


def test_code_policy(tmp_path: Any) -> None:
    assert not Settings.from_env({"SWARM_MCP_HOME": str(tmp_path)}).remote_code
    assert Settings.from_env({"SWARM_MCP_HOME": str(tmp_path), "SWARM_MCP_REMOTE_CODE": "1"}).remote_code
    local, remote = Grants.for_origin("local", remote_code=False), Grants.for_origin("remote", remote_code=False)
    assert local.code and not remote.code and Grants.for_origin("remote", remote_code=True).code
    with pytest.raises(CodeRefused, match="SWARM_MCP_REMOTE_CODE=1"):
        check_phase(remote, "one_shot", {"agent": "engineer"}, {})
    check_phase(local, "one_shot", {"agent": "engineer"}, {})
    check_phase(remote, "planning", {}, {})
    with pytest.raises(CodeRefused, match="no record of who started it"):  # unknown grants (an older record): refused
        check_phase(None, "one_shot", {"agent": "engineer"}, {})
    # grants only narrow: a remote caller continuing a local session takes code away; a local one gives none back
    assert local.narrowed("remote", remote_code=False) == Grants(origin="remote", code=False)
    assert local.narrowed("remote", remote_code=True) == local and remote.narrowed("local", remote_code=False) == remote


def test_request_state_keys() -> None:
    from server.app import request_state_security

    assert request_state_security({}) is None
    assert request_state_security({"SWARM_MCP_STATE_KEYS": "k" * 32 + ", " + "j" * 40}) is not None
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        request_state_security({"SWARM_MCP_STATE_KEYS": "short"})
