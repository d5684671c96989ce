"""Errors named for who caused them.

Every error a user, a model client or an MCP client may see carries a message that says what went
wrong and how to fix it. The MCP edge (server/) turns these into ``isError`` results; the CLI prints
them on stderr with a non-zero exit code.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Base class of every error swarm-mcp raises on purpose."""


class UserInputError(SwarmError):
    """The caller passed something invalid (an argument, a config value, a task)."""


class UnknownSessionError(UserInputError):
    """A session id that does not exist (or is not visible to the caller)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"unknown session id {session_id!r}: no such session in this store. "
            "List sessions with `swarm-mcp sessions` (or read swarm://sessions) and use one of those ids."
        )
        self.session_id = session_id


class UnknownTaskError(UserInputError):
    """No task with this id for this caller (it never was, has expired, or is another principal's)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r}: it does not exist, has expired, or belongs to another caller")
        self.task_id = task_id


class SessionBusyError(UserInputError):
    """Another call (in this process or another replica) wrote the session at the same moment."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} was changed by another call at the same moment (it is probably running now): wait for it "
            f"with continue_copilot(session_id='{session_id}') without a message, then send yours"
        )
        self.session_id = session_id


class ManifestError(UserInputError):
    """An agent manifest file is malformed: names the file, the field and what was expected."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        super().__init__(f"{path}: field {field!r}: {problem}")
        self.path = path
        self.field = field
        self.problem = problem


class ConfigError(UserInputError):
    """A configuration value (environment variable or option) is invalid."""


class ModelBehaviourError(SwarmError):
    """The model answered, but not in a usable way (malformed tool call, invalid plan, ...)."""


class ProviderError(SwarmError):
    """The model provider failed (timeout, rate limit, 5xx, auth) after all retries."""

    def __init__(self, message: str, *, retryable: bool = False, attempts: int = 1) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts


class SessionInterrupted(SwarmError):
    """A run was stopped on purpose mid-round: its caller went away or the server shut down (``reason`` 'pause': the
    session is recorded paused, resumable), or cancel_session (``reason`` 'cancel'). Not a failure: no error is recorded."""

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(f"the round was interrupted ({why}); the session resumes from its last completed round")
        self.reason = reason
        self.why = why


class SessionCancelled(SwarmError):
    """The session was cancelled (cancel_session) while it ran, possibly from another replica."""


class StorageError(SwarmError):
    """The store's disk or database refused a read or write: caused by the machine, not by the caller or by us.

    ``cause`` is ``read_only``, ``disk_full``, ``locked`` or ``unavailable``; ``path`` is the file or directory (or
    the database URL without credentials) concerned. Nothing was written by the operation that failed.
    """

    def __init__(self, cause: str, path: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.path = path


class InternalError(SwarmError):
    """A bug in swarm-mcp itself."""
