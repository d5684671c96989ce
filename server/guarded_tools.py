"""Tool wrappers that run a check before every call (the engine's side of server/code_policy.py).

Imported when the engine opens (they subclass autogen's BaseTool), never on the stdio start-up path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from autogen_core import CancellationToken
from autogen_core.tools import BaseTool, ToolSchema
from pydantic import BaseModel


class GuardedTool(BaseTool[BaseModel, BaseModel]):
    """A tool whose every call first passes ``check(arguments)`` (which raises to refuse it)."""

    def __init__(self, inner: BaseTool[Any, Any], check: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(inner.args_type(), inner.return_type(), inner.name, inner.description)
        self._inner = inner
        self._check = check

    @property
    def schema(self) -> ToolSchema:
        return self._inner.schema

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        self._check(args.model_dump())
        return await self._inner.run(args, cancellation_token)

    async def run_json(self, args: Mapping[str, Any], cancellation_token: CancellationToken, call_id: str | None = None) -> Any:
        self._check(dict(args))
        return await self._inner.run_json(args, cancellation_token, call_id=call_id)

    def return_value_as_string(self, value: Any) -> str:
        return self._inner.return_value_as_string(value)


@dataclass
class GuardedProvider:
    """A swarm.tools.ToolProvider whose tools pass ``check(session_context, arguments)`` first."""

    inner: Any
    check: Callable[[Any, dict[str, Any]], None]

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def description(self) -> str:
        return self.inner.description

    def build(self, ctx: Any) -> BaseTool[Any, Any]:
        return GuardedTool(self.inner.build(ctx), lambda args: self.check(ctx, args))
