"""Agent manifests: one YAML file per agent under manifests/agents/, validated by pydantic.

A malformed manifest fails at start with the file, the field and what was expected.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from .errors import ManifestError

Route = Literal["one_shot", "planning", "idea_generation", "clarify"]
ROSTER_GROUPS = ("@roster", "@one_shot")
"""Hand-off groups a manifest may name instead of agents: the agents they stand for are read from the roster (the
loaded manifests) when a team is built, so an agent dropped in needs no edit of any other manifest."""
Tier = Literal["fast", "default", "strong"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class RoutingSpec(BaseModel):
    """What an agent stands for in the offline router."""

    model_config = ConfigDict(extra="forbid")
    route: Route = Field(description="The copilot route this agent serves.")
    examples: list[str] = Field(default_factory=list, description="Example tasks that belong to this agent.")


class AgentManifest(BaseModel):
    """One agent, as data."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Unique agent name: lowercase letters, digits and underscores.")
    description: str = Field(min_length=1, description="What the agent does; routers read it.")
    system_message: str = Field(min_length=1, description="The agent's system prompt.")
    tools: list[str] = Field(default_factory=list, description="Names of tools the agent may call.")
    handoffs: list[str] = Field(default_factory=list, description=(
        "Agents (or 'user') it may hand off to; '@roster' stands for every agent a route leads to and '@one_shot' for every "
        "agent that does a task in one go, both read from the roster when a team is built."))
    model_tier: Tier = Field(default="default", description="Which model tier serves this agent.")
    routing: RoutingSpec | None = Field(default=None, description="Optional routing examples.")
    _path: str = PrivateAttr(default="(built in code)")

    @property
    def path(self) -> str:
        """The file this manifest was loaded from."""
        return self._path

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits and underscores, starting with a letter")
        return value


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> object:
    """``yaml.safe_load``, with libyaml's C parser when PyYAML has it (the same documents, ~10x less CPU: the agents'
    and profiles' manifests are read when the engine opens, on the first call's path)."""
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


def builtin_agents_dir() -> Path:
    """The manifests/agents directory shipped with swarm-mcp."""
    return Path(str(resources.files("manifests") / "agents"))


def load_manifest(path: Path) -> AgentManifest:
    """Load and validate one manifest file; errors name the file and the field."""
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "(file)", f"is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(str(path), "(file)", "expected a mapping of fields (name, description, system_message, ...)")
    try:
        manifest = AgentManifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        expected = "a known field (name, description, system_message, tools, handoffs, model_tier, routing)" if err["type"] == "extra_forbidden" else err["msg"]
        raise ManifestError(str(path), field, f"{expected} (got {err.get('input')!r})") from None
    if manifest.name != path.stem:
        raise ManifestError(str(path), "name", f"expected {path.stem!r} to match the file name, got {manifest.name!r}")
    manifest._path = str(path)
    return manifest


def load_agents(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> dict[str, AgentManifest]:
    """Load the built-in agents and those of extra directories (later ones override by name).

    Handoff targets are checked against the loaded set ("user" is always allowed).
    """
    agents: dict[str, AgentManifest] = {}
    for directory in (builtin_agents_dir(), *extra_dirs):
        directory = Path(directory)
        if not directory.is_dir():
            raise ManifestError(str(directory), "(directory)", "expected an existing directory of <name>.yaml agent files")
        for path in sorted(directory.glob("*.yaml")):
            manifest = load_manifest(path)
            agents[manifest.name] = manifest
    for manifest in agents.values():
        for target in manifest.handoffs:
            if target != "user" and target not in agents and target not in ROSTER_GROUPS:
                raise ManifestError(manifest.path, "handoffs",
                                    f"expected known agent names, 'user' or a group ({', '.join(ROSTER_GROUPS)}), got unknown {target!r}")
    return agents


def check_tools(agents: dict[str, AgentManifest], known: list[str]) -> None:
    """Every tool a manifest names must exist: a typo fails at start, naming the file."""
    for manifest in agents.values():
        for tool in manifest.tools:
            if tool not in known:
                raise ManifestError(manifest.path, "tools", f"expected known tool names {known}, got unknown {tool!r}")
