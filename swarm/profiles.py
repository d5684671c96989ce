"""Session profiles: named presets of what a copilot session uses and asks, as YAML data beside the agents.

    manifests/profiles/default.yaml   every agent, phase tools, no approvals (a session that names no profile)
    manifests/profiles/full.yaml      every agent, phase tools, approvals before code / phases / after failures
    manifests/profiles/quick.yaml     the core agents, no phase tools, no approvals, a small round limit

Users add their own by dropping ``<name>.yaml`` into a directory named by ``SWARM_MCP_PROFILE_DIRS``. A session keeps
the profile it was created with (``SessionRecord.profile``), so a run resumed anywhere obeys the same policy.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ManifestError, UserInputError
from .manifest import safe_load

DEFAULT_PROFILE = "default"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class ApprovalPolicy(BaseModel):
    """When a copilot session stops to ask a human (answered by approve, reject or revise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    before_code: bool = Field(False, description="Ask before an agent's code runs (execute_code).")
    before_phase: bool = Field(False, description="Ask before an agent runs a phase tool (invoke_*_phase).")
    after_failure: bool = Field(False, description="Ask after a failed step (code that exited non-zero, a tool or phase that failed).")

    @property
    def any(self) -> bool:
        return self.before_code or self.before_phase or self.after_failure


class Budget(BaseModel):
    """Limits of a session over all its legs; reaching one pauses it with the reason (continue with a raised limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: int | None = Field(None, ge=1, description="Most model tokens (prompt + completion) over the session.")
    cost_usd: float | None = Field(None, gt=0, description="Most cost in US dollars, by the price table (SWARM_MCP_PRICES).")
    seconds: float | None = Field(None, gt=0, description="Most wall-clock seconds of running, over all legs.")

    def raised(self, other: "Budget | None") -> "Budget":
        """This budget with the limits ``other`` sets replacing ours."""
        if other is None:
            return self
        return self.model_copy(update={k: v for k, v in other.model_dump().items() if v is not None})

    @property
    def any(self) -> bool:
        return self.tokens is not None or self.cost_usd is not None or self.seconds is not None


class Profile(BaseModel):
    """One profile: the agents a copilot session may use, its phase tools, approvals, round limit, budget and the
    defaults of the phases it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="The profile's name (its file name).")
    description: str = Field("", description="What the profile is for.")
    agents: Literal["all"] | list[str] = Field("all", description="The agents a copilot session may hand off to (copilot_control always).")
    phase_tools: bool = Field(True, description="Whether agents may run phases as tools (invoke_*_phase).")
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy, description="When the session asks a human.")
    max_rounds: int = Field(20, ge=1, le=10_000, description="Round limit of a leg when the caller sets none.")
    budget: Budget = Field(default_factory=Budget, description="Limits over the whole session.")
    phases: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Default parameters of the phases, by phase name.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '_' or '-', starting with a letter")
        return value

    def allows(self, agent: str) -> bool:
        return self.agents == "all" or agent in self.agents

    def allowed(self) -> frozenset[str] | None:
        """The agents allowed, or None for all."""
        return None if self.agents == "all" else frozenset(self.agents)

    def phase_defaults(self, phase: str) -> dict[str, Any]:
        return dict(self.phases.get(phase) or {})


def builtin_profiles_dir() -> Path:
    return Path(str(resources.files("manifests") / "profiles"))


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; errors name the file and the field."""
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(str(path), "(file)", f"is not readable YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(str(path), "(file)", "expected a mapping of fields (name, description, agents, approvals, ...)")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise ManifestError(str(path), field, f"{err['msg']} (got {err.get('input')!r})") from None
    if profile.name != path.stem:
        raise ManifestError(str(path), "name", f"expected {path.stem!r} to match the file name, got {profile.name!r}")
    return profile


def load_profiles(extra_dirs: tuple[Path, ...] | list[Path] = ()) -> dict[str, Profile]:
    """The built-in profiles and those of ``extra_dirs`` (later ones override by name)."""
    profiles: dict[str, Profile] = {}
    for directory in (builtin_profiles_dir(), *extra_dirs):
        directory = Path(directory)
        if not directory.is_dir():
            raise ManifestError(str(directory), "(directory)", "expected an existing directory of <name>.yaml profile files")
        for path in sorted(directory.glob("*.yaml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return profiles


def check_profile(profile: Profile, agents: set[str] | frozenset[str]) -> Profile:
    """``profile`` if every agent it names exists (checked when a session takes it: an engine serving other agents may
    load profiles it never uses); else a UserInputError naming the unknown ones."""
    if profile.agents != "all":
        unknown = sorted(set(profile.agents) - set(agents))
        if unknown:
            raise UserInputError(f"profile {profile.name!r} names agents this server does not have: {unknown}; "
                                 f"its agents are {sorted(agents)}")
    return profile


def pick(profiles: dict[str, Profile], name: str | None) -> Profile:
    """The profile called ``name`` (default: ``default``); a UserInputError listing the profiles if there is none."""
    name = (name or DEFAULT_PROFILE).strip()
    profile = profiles.get(name)
    if profile is None:
        raise UserInputError(f"unknown profile {name!r}; the profiles are {sorted(profiles)} (add your own as YAML in SWARM_MCP_PROFILE_DIRS)")
    return profile
