"""What the MCP tools take and return: argument types with descriptions, and the result models.

Every tool argument is an ``Annotated`` type carrying a pydantic ``Field`` (description and bounds),
so ``tools/list`` publishes a JSON schema with a description for each parameter and the edge
(server/edge.py) can validate arguments strictly and explain what is allowed. Every tool returns a
``SessionResult`` as structured content (its schema is the tool's output schema) plus a short text.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import Field

from swarm.profiles import Budget
from swarm.results import ApprovalOut, SessionResult, Status, TokenCount, UsageOut  # noqa: F401 - re-exported: the tools' results

MAX_WAIT_SECONDS = 600
DEFAULT_WAIT_SECONDS = 45
MAX_ROUNDS_LIMIT = 500

# ---- arguments -----------------------------------------------------------------------------------

# (Descriptions are short on purpose: every client pays for them in every conversation; the tools' results say more.)
Task = Annotated[str, Field(min_length=1, max_length=20_000, description="The task.")]
MaxRounds = Annotated[int, Field(ge=1, le=MAX_ROUNDS_LIMIT, description="Turns before a pause, 1-500; default: profile's (20).")]
OptMaxRounds = Annotated[int | None, Field(ge=1, le=MAX_ROUNDS_LIMIT, description="New round limit, 1-500; default: as before.")]
WaitSeconds = Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS, description="Max wait, 0-600 s.")]
SessionId = Annotated[str, Field(min_length=1, max_length=64, description="Session id.")]
OptSessionId = Annotated[str | None, Field(max_length=64, description="Follow up in this session.")]
PhaseSessionId = Annotated[str | None, Field(max_length=64, description="Default: a new session.")]
Profile = Annotated[str | None, Field(max_length=64, description="default, full (asks before code) or quick.")]
Limits = Annotated[Budget | None, Field(description="Limits: tokens, cost_usd, seconds.")]
Message = Annotated[str | None, Field(max_length=20_000, description="New input: answer, correction, follow-up.")]
ApprovalId = Annotated[str, Field(min_length=1, max_length=64, description="pending_approval.id")]
Decision = Annotated[str, Field(min_length=1, max_length=20_000, description="An option, or the answer.")]
Feedback = Annotated[str | None, Field(max_length=20_000, description="Why, what to revise, or the answer.")]
# ---- results ---------------------------------------------------------------------------------------
# The session result is the swarm's own (swarm/results.py), shared with the Python API; imported above.


def published_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema a tool publishes: ``flat_schema`` without descriptions (the tool's description and each field's
    name say what a result holds; every tool would repeat them) and with objects nested past the first level as plain
    objects: under 1 KB, against 3.4 KB repeated on every tool. Every result valid for the full schema is valid here."""
    def walk(node: Any, depth: int, names: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(n, depth) for n in node]
        if not isinstance(node, dict):
            return node
        if names:
            return {k: walk(v, depth + 1) for k, v in node.items()}
        if depth >= 2 and "properties" in node:
            return {"type": node["type"]}
        dropped = {"description", "additionalProperties", *(("required",) if depth else ()), *(("type",) if "enum" in node else ())}
        return {k: walk(v, depth, names=k == "properties") for k, v in node.items() if k not in dropped}

    return walk(flat_schema(schema), 0)


def flat_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON schema without ``$ref``s and with nullable ``anyOf``s as type lists.

    Clients validate every structured result against the tool's output schema (the SDK's client does,
    with jsonschema, in pure Python): resolving references and trying ``anyOf`` branches costs more
    than the rest of a status call. The flattened schema accepts exactly the same documents; it also
    leaves out ``title`` and ``default`` (names and defaults say nothing about a result), keeping every
    ``description``.
    """
    defs = schema.get("$defs", {})

    def walk(node: Any, names: bool = False) -> Any:
        """``names``: node maps property names to schemas (its keys are names, not keywords)."""
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if names:
            return {k: walk(v) for k, v in node.items()}
        if "$ref" in node:
            target = walk(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {**target, **{k: walk(v) for k, v in node.items() if k not in ("$ref", "title", "default")}}
        out = {k: walk(v, names=k in ("properties", "patternProperties")) for k, v in node.items() if k not in ("$defs", "title", "default")}
        branches = out.get("anyOf")
        if branches:
            plain = [_no_op_free(b) for b in branches]
            typed = [b for b in plain if b.get("type") != "null"]
            nullable = len(typed) != len(plain)
            if all(set(b) == {"type"} and isinstance(b["type"], str) for b in typed):
                del out["anyOf"]
                out["type"] = [b["type"] for b in typed] + (["null"] if nullable else [])
            elif len(typed) == 1 and nullable and isinstance(typed[0].get("type"), str):
                del out["anyOf"]
                out = {**typed[0], **out, "type": [typed[0]["type"], "null"]}
        return out

    return walk(schema)


def _no_op_free(branch: dict[str, Any]) -> dict[str, Any]:
    """A branch without keywords that accept everything (``additionalProperties: true``, ``items: {}``)."""
    return {k: v for k, v in branch.items() if not ((k == "additionalProperties" and v is True) or (k == "items" and v == {}))}
