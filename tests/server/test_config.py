"""`swarm-mcp config` and the shipped client configs / MCP registry manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import server
from server.client_config import CLIENTS, client_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("client", CLIENTS)
def test_config_prints_a_ready_to_paste_document(client: str) -> None:
    result = subprocess.run([sys.executable, "-m", "server.cli", "config", client, "--model", "sampling"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    entry = doc["servers" if client == "vscode" else "mcpServers"]["swarm-mcp"]
    assert entry["args"][-1] == "serve" and entry["env"] == {"SWARM_MCP_MODEL": "sampling"}
    assert Path(entry["command"]).name in ("swarm-mcp", Path(sys.executable).name)
    if client == "vscode":
        assert entry["type"] == "stdio"
    assert result.stderr.strip()  # where to paste it, on stderr


def test_config_rejects_an_invalid_model() -> None:
    result = subprocess.run([sys.executable, "-m", "server.cli", "config", "claude", "--model", "gpt4"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 2 and "openai:<model>" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("client", CLIENTS)
def test_shipped_client_configs_match_the_generator(client: str) -> None:
    shipped = json.loads((REPO / "manifests" / "clients" / f"{client}.json").read_text())
    assert shipped == client_config(client, command="swarm-mcp", args=["serve"])


def test_registry_manifest_matches_the_package() -> None:
    doc = json.loads((REPO / "manifests" / "server.json").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert doc["version"] == version == server.__version__
    assert doc["name"].count("/") == 1 and len(doc["description"]) <= 100
    package = doc["packages"][0]
    assert package["registryType"] == "pypi" and package["identifier"] == "swarm-mcp" and package["version"] == version
    assert package["transport"] == {"type": "stdio"}
    assert [a["value"] for a in package["packageArguments"]] == ["serve"]
    secrets = {e["name"] for e in package["environmentVariables"] if e["isSecret"]}
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= secrets
