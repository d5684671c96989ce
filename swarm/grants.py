"""What a session may do: decided when it is created, kept in its durable record, obeyed by every run of it.

A run resumed by another process (after a crash) or by another replica reads the same grants from the
store, so a gate never depends on what one process remembers. Grants only ever narrow: a remote caller
that continues a local session takes code execution away from it for good. A session whose grants are
unknown (recorded before grants existed) may not run code: unknown means refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError

REMOTE_CODE_ENV = "SWARM_MCP_REMOTE_CODE"

Origin = Literal["local", "remote"]


class Grants(BaseModel):
    """The gates of one session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Origin = Field(description="Where the call that created the session came from: 'local' (stdio, the CLI, Python) or 'remote' (HTTP).")
    code: bool = Field(description="Whether the session's agents and phases may execute code.")
    model: Literal["server", "sampling"] = Field("server", description=(
        "Whose model the session's runs use: the server's backend, or the calling client's own (MCP sampling), "
        "which only a run connected to that client can serve."))

    @classmethod
    def for_origin(cls, origin: Origin, *, remote_code: bool, model: Literal["server", "sampling"] = "server") -> "Grants":
        """The grants of a session created by a caller from ``origin`` (remote callers run code only if the operator allows it)."""
        return cls(origin=origin, code=origin == "local" or remote_code, model=model)

    def narrowed(self, origin: Origin, *, remote_code: bool) -> "Grants":
        """These grants as a caller from ``origin`` may use them: never wider than either."""
        if origin == "remote" and not remote_code and self.code:
            return self.model_copy(update={"origin": "remote", "code": False})
        return self


class CodeRefused(ConfigError):
    """Code execution was asked for in a session whose grants do not allow it."""

    def __init__(self, what: str, grants: Grants | None) -> None:
        if grants is None:
            why = ("this session has no record of who started it and from where (it was created by an older version), "
                   "so code does not run in it; start a new session to run code")
        else:
            why = (f"code execution is turned off for remote (HTTP) callers of this server, so {what} cannot run in this session. "
                   f"The server's operator can allow it with {REMOTE_CODE_ENV}=1 (for new sessions); over stdio, code runs as usual")
        super().__init__(why)
        self.what = what


def check_code(grants: Grants | None, what: str) -> None:
    """Raise ``CodeRefused`` unless ``grants`` allow code (fail closed: no grants, no code)."""
    if grants is None or not grants.code:
        raise CodeRefused(what, grants)
