"""What the current task works for: the session whose leg (or phase run) it executes.

Kept free of heavy imports: the server reads it on its start-up path.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .grants import Grants

current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("swarm_session", default=None)
"""The session whose work the current task runs (model sources read it to find the run's caller)."""

current_grants: contextvars.ContextVar["Grants | None"] = contextvars.ContextVar("swarm_grants", default=None)
"""The grants of that session (its durable record's): model sources and tools obey them wherever the run resumes."""
