"""Tool argument schemas written from signatures match what pydantic publishes; the models are strict."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import build_server
from server.arguments import _inline, arguments_model, arguments_schema, published_arguments


def _same(schema: Any, names: bool = False) -> Any:
    """Compare modulo $defs inlining and titles (neither changes what is accepted); defaults are compared."""
    if isinstance(schema, list):
        return [_same(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if names:
        return {k: _same(v) for k, v in schema.items()}
    return {k: _same(v, names=k == "properties") for k, v in _inline(dict(schema)).items() if k != "title"}


@pytest.fixture(scope="module")
def tools() -> dict[str, Any]:
    return {t.name: t for t in build_server()._tool_manager.list_tools()}


def test_every_tool_schema_is_what_pydantic_would_publish(tools: dict[str, Any]) -> None:
    assert len(tools) == 13
    for name, tool in tools.items():
        fn = tool.fn.__wrapped__
        assert tool.parameters == published_arguments(arguments_schema(name, fn))  # what tools/list shows: the same, smaller
        pydantic = arguments_model(name, fn).model_json_schema(by_alias=True)
        ours = arguments_schema(name, fn)
        assert _same(ours) == _same(pydantic), name
        published = tool.parameters
        assert published.get("required") == ours.get("required") and set(published["properties"]) == set(ours["properties"])
        assert all(p.get("description") for p in published["properties"].values()), name


def test_argument_models_are_strict(tools: dict[str, Any]) -> None:
    model = arguments_model("copilot", tools["copilot"].fn.__wrapped__)
    assert model(task="x").max_rounds is None  # left out: the profile's round limit (20 for the default profile)
    with pytest.raises(Exception):
        model.model_validate({"task": "x", "max_rounds": "5"})
    with pytest.raises(Exception):
        model.model_validate({"task": "x", "surprise": 1})
