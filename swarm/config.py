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
    durable: bool = False
    """Run sessions as DBOS workflows (SWARM_MCP_DURABLE, on by default for the server): a crashed
    process's sessions resume by themselves, and replicas on one PostgreSQL share them."""
    executor_id: str | None = None
    """This process's fixed DBOS executor id (SWARM_MCP_EXECUTOR_ID); default ``local``, or a
    unique id when another live process already holds ``local`` on the same database."""
    concurrency: int = 64
    """Session runs this process starts at once (SWARM_MCP_CONCURRENCY): a run starts here while fewer execute here,
    else it goes to the shared queue, from which the process also takes up to this many. A run waits on its model most
    of the time (a round costs ~5 ms of CPU against the model's 50 ms to seconds), so the default is what 64 concurrent
    callers need to start at once, not a CPU bound."""
    takeover_seconds: float = 5.0
    """A replica silent this long is presumed dead; another one recovers its sessions (SWARM_MCP_TAKEOVER_SECONDS)."""
    sandbox: str = "auto"
    """Isolation of the engineer's code (SWARM_MCP_SANDBOX): auto (bubblewrap, else namespaces, else code is refused),
    bubblewrap, namespaces (unshare + Landlock) or none (the operator's explicit opt-in to resource limits only)."""
    context_tokens: int = 6000
    """How many tokens of recent conversation each agent's model sees per call (SWARM_MCP_CONTEXT_TOKENS, estimated at 4
    characters a token; older messages stay in the transcript). The newest message is always sent."""
    profile_dirs: tuple[Path, ...] = ()
    """Extra directories of session profiles (SWARM_MCP_PROFILE_DIRS, separated by the path separator; swarm/profiles.py)."""
    prices_path: Path | None = None
    """A YAML or JSON price table (SWARM_MCP_PRICES): ``{model spec: {prompt: USD per 1M tokens, completion: ...}}``;
    with it, sessions report their cost and obey cost budgets."""
    malloc_arenas: int = 2
    """The most allocator arenas the process's threads share (SWARM_MCP_MALLOC_ARENAS, glibc only; 0 keeps glibc's 8 a
    core): fewer arenas keep less freed memory after a burst of sessions (swarm/memory.py)."""
    remote_code: bool = False
    """Sessions created by remote (HTTP) callers may execute code (SWARM_MCP_REMOTE_CODE=1); decided per session when it
    is created and kept in its record (swarm/grants.py)."""

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
        profile_dirs = tuple(Path(p).expanduser() for p in env.get("SWARM_MCP_PROFILE_DIRS", "").split(os.pathsep) if p)
        prices = Path(env["SWARM_MCP_PRICES"]).expanduser() if env.get("SWARM_MCP_PRICES") else None
        try:
            retries = int(env.get("SWARM_MCP_MAX_RETRIES", "4"))
        except ValueError:
            raise ConfigError("SWARM_MCP_MAX_RETRIES must be a whole number, e.g. 4") from None
        durable = env.get("SWARM_MCP_DURABLE", "1").strip().lower() not in ("0", "false", "no", "off")
        try:
            concurrency = int(env.get("SWARM_MCP_CONCURRENCY", "64"))
            takeover = float(env.get("SWARM_MCP_TAKEOVER_SECONDS", "5"))
            context_tokens = int(env.get("SWARM_MCP_CONTEXT_TOKENS", "6000"))
            arenas = int(env.get("SWARM_MCP_MALLOC_ARENAS", "2"))
        except ValueError:
            raise ConfigError("SWARM_MCP_CONCURRENCY, SWARM_MCP_CONTEXT_TOKENS and SWARM_MCP_MALLOC_ARENAS must be whole numbers "
                              "(e.g. 8, 6000, 2) and SWARM_MCP_TAKEOVER_SECONDS a number of seconds (e.g. 5)") from None
        if context_tokens < 256:
            raise ConfigError(f"SWARM_MCP_CONTEXT_TOKENS must be at least 256 (an agent needs room for its task), got {context_tokens}")
        if arenas < 0:
            raise ConfigError(f"SWARM_MCP_MALLOC_ARENAS must be 0 (glibc's default) or more, got {arenas}")
        if concurrency < 1 or takeover <= 0:
            raise ConfigError("SWARM_MCP_CONCURRENCY must be at least 1 and SWARM_MCP_TAKEOVER_SECONDS above 0")
        sandbox = env.get("SWARM_MCP_SANDBOX", "auto").strip().lower() or "auto"
        if sandbox not in ("auto", "bubblewrap", "namespaces", "none"):
            raise ConfigError(f"SWARM_MCP_SANDBOX must be auto, bubblewrap, namespaces or none (none runs code without isolation), got {sandbox!r}")
        values: dict[str, object] = dict(home=home, db_url=db_url, model=env.get("SWARM_MCP_MODEL", "auto"), tier_models=tiers, agent_dirs=dirs,
                                         max_retries=retries, durable=durable, executor_id=env.get("SWARM_MCP_EXECUTOR_ID") or None,
                                         concurrency=concurrency, takeover_seconds=takeover, sandbox=sandbox, malloc_arenas=arenas, context_tokens=context_tokens,
                                         remote_code=_flag(env.get("SWARM_MCP_REMOTE_CODE")), profile_dirs=profile_dirs, prices_path=prices)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        validate_model_spec(settings.model)
        for spec in settings.tier_models.values():
            validate_model_spec(spec)
        return settings


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def validate_model_spec(spec: str) -> None:
    """Check a model spec's form; raise ConfigError saying what is allowed."""
    if spec in ("auto", "local", "sampling", "scripted"):
        return
    kind, _, name = spec.partition(":")
    if kind in ("openai", "anthropic") and name:
        return
    raise ConfigError(f"invalid model {spec!r}: expected auto, local, sampling, openai:<model> or anthropic:<model>")
