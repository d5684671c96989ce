"""The edge: strict argument checks with clear messages, swarm errors as isError results, flat output schemas."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from jsonschema import validators
from mcp.server.mcpserver import Context
from pydantic import Field

from server.arguments import arguments_model
from server.edge import check_arguments, tool_edge
from server.schemas import SessionResult, flat_schema
from swarm.errors import ProviderError, UnknownSessionError, UserInputError

pytestmark = pytest.mark.anyio


async def tool(ctx: Context, task: Annotated[str, Field(min_length=1, description="What to do")],
               rounds: Annotated[int, Field(ge=1, le=5, description="Rounds")] = 2,
               mode: Annotated[str | None, Field(max_length=3, description="Mode")] = None) -> None:
    """A tool."""


def check(args: Any) -> str | None:
    model = arguments_model("t", tool)
    return check_arguments("t", model, args, model.model_json_schema()["properties"])


def test_arguments_are_checked_strictly_with_what_is_allowed() -> None:
    assert check({"task": "x"}) is None and check({"task": "x", "rounds": 3.0}) is None  # 3.0 is JSON's 3
    assert check({"task": "x", "rounds": "3"}) == "Invalid arguments for t: argument 'rounds' must be an integer from 1 to 5, got '3'."
    assert "must be an integer from 1 to 5, got True" in check({"task": "x", "rounds": True})
    assert check({}) == "Invalid arguments for t: missing required argument 'task': What to do."
    assert "unknown argument 'colour' (t takes: task, rounds, mode)" in check({"task": "x", "colour": 1})
    assert "'mode' must be a string of at most 3 characters (or null to leave it out)" in check({"task": "x", "mode": "long"})
    assert "expected an object" in check(["x"])


async def test_swarm_errors_become_is_error_results_naming_who_caused_them() -> None:
    async def raises(exc: Exception) -> None:
        raise exc

    wrapped = tool_edge(raises)
    unknown = await wrapped(UnknownSessionError("s_x"))
    assert unknown.is_error and "unknown session id 's_x'" in unknown.content[0].text and unknown.meta["swarm-mcp/error-kind"] == "unknown_session"
    assert (await wrapped(UserInputError("bad"))).meta["swarm-mcp/error-kind"] == "user_input"
    assert (await wrapped(ProviderError("429"))).meta["swarm-mcp/error-kind"] == "provider"
    crash = await wrapped(KeyError("secret internals"))
    assert crash.is_error and "secret internals" not in crash.content[0].text and "KeyError" in crash.content[0].text


def test_the_flat_output_schema_accepts_and_rejects_the_same_documents() -> None:
    full = SessionResult.model_json_schema()
    flat = flat_schema(full)
    assert "$ref" not in str(flat) and "$defs" not in flat
    good = {"session_id": "s", "kind": "copilot", "status": "paused", "rounds_used": 1, "total_rounds": 1, "max_rounds": 2, "result": None,
            "error": None, "pending_approval": {"id": "q", "message": "?", "options": ["answer"], "kind": "question", "agent": None},
            "usage": {"models": {"m": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
                      "total": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
            "transcript_uri": "swarm://sessions/s/transcript", "live": False, "next": "go on"}
    bad = [{**good, "status": "sleeping"}, {**good, "result": 3}, {**good, "pending_approval": {"id": "q"}}, {**good, "error": 1},
           {**good, "usage": {"models": {"m": {"prompt_tokens": "1"}}, "total": good["usage"]["total"]}}]
    for schema in (full, flat):
        validator = validators.validator_for(schema)(schema)
        assert not list(validator.iter_errors(good)) and not list(validator.iter_errors({**good, "result": {"plan": []}}))
        assert all(list(validator.iter_errors(doc)) for doc in bad)


def test_flattening_keeps_properties_named_like_keywords() -> None:
    schema = {"type": "object", "title": "T", "properties": {"title": {"type": "string", "title": "Title"}, "default": {"type": "integer"}},
              "required": ["title"]}
    assert flat_schema(schema) == {"type": "object", "properties": {"title": {"type": "string"}, "default": {"type": "integer"}},
                                   "required": ["title"]}
