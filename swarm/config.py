"""Settings, read from the environment (SWARM_MCP_*) with typed defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError


def _default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("swarm-mcp", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a swarm-mcp process."""

    home: Path
    """Data directory: the SQLite database and per-session work dirs live here (SWARM_MCP_HOME)."""
    db_url: str
    """SQLAlchemy URL of the session store (SWARM_MCP_DB): default sqlite:///<home>/swarm.db; postgresql://... for scale-out."""
    model: str = "auto"
    """Model backend: auto | local | sampling | openai:<model> | anthropic:<model> (SWARM_MCP_MODEL)."""
    tier_models: dict[str, str] = field(default_factory=dict)
    """Per-tier overrides (SWARM_MCP_MODEL_FAST / _DEFAULT / _STRONG), same syntax as model."""
    agent_dirs: tuple[Path, ...] = ()
    """Extra directories of agent manifests (SWARM_MCP_AGENT_DIRS, separated by the path separator)."""
    max_retries: int = 4
    """Retries of a provider call on timeouts, 429 and 5xx before the session fails."""

    @property
    def work_root(self) -> Path:
        return self.home / "sessions"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("SWARM_MCP_HOME") or _default_home()).expanduser()
        db_url = env.get("SWARM_MCP_DB") or f"sqlite:///{home / 'swarm.db'}"
        if db_url.startswith("postgresql://") or db_url.startswith("postgres://"):
            db_url = "postgresql+asyncpg://" + db_url.split("://", 1)[1]
        tiers = {t: env[f"SWARM_MCP_MODEL_{t.upper()}"] for t in ("fast", "default", "strong") if env.get(f"SWARM_MCP_MODEL_{t.upper()}")}
        dirs = tuple(Path(p).expanduser() for p in env.get("SWARM_MCP_AGENT_DIRS", "").split(os.pathsep) if p)
        try:
            retries = int(env.get("SWARM_MCP_MAX_RETRIES", "4"))
        except ValueError:
            raise ConfigError("SWARM_MCP_MAX_RETRIES must be a whole number, e.g. 4") from None
        values: dict[str, object] = dict(home=home, db_url=db_url, model=env.get("SWARM_MCP_MODEL", "auto"), tier_models=tiers, agent_dirs=dirs, max_retries=retries)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        validate_model_spec(settings.model)
        for spec in settings.tier_models.values():
            validate_model_spec(spec)
        return settings


def validate_model_spec(spec: str) -> None:
    """Check a model spec's form; raise ConfigError saying what is allowed."""
    if spec in ("auto", "local", "sampling", "scripted"):
        return
    kind, _, name = spec.partition(":")
    if kind in ("openai", "anthropic") and name:
        return
    raise ConfigError(f"invalid model {spec!r}: expected auto, local, sampling, openai:<model> or anthropic:<model>")
