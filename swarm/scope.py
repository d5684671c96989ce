"""What the current task works for: the session whose leg (or phase run) it executes.

Kept free of heavy imports: the server reads it on its start-up path.
"""

from __future__ import annotations

import contextvars

current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("swarm_session", default=None)
"""The session whose work the current task runs (model sources read it to find the run's caller)."""
