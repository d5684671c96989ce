"""Tool argument schemas written from signatures match what pydantic publishes; the models are strict; a phase's knobs
are published in one ``options`` argument and accepted there or at top level."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from phases.registry import PHASES
from server.app import build_server
from server.arguments import OPTIONS, ArgumentsError, _inline, arguments_model, arguments_schema, grouped, published_arguments, ungroup
from server.phases import option_keys

KNOBS = {p.tool_name: option_keys(p) for p in PHASES.values()}


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
        ours = arguments_schema(name, fn)
        knobs = KNOBS.get(name, ())
        # what tools/list shows: the same, smaller, with a phase's knobs in ``options``
        assert tool.parameters == published_arguments(grouped(ours, knobs) if knobs else ours), name
        pydantic = arguments_model(name, fn).model_json_schema(by_alias=True)
        assert _same(ours) == _same(pydantic), name
        published = tool.parameters
        assert published.get("required") == ours.get("required"), name
        assert set(published["properties"]) == (set(ours["properties"]) - set(knobs)) | ({OPTIONS} if knobs else set()), name
        assert all(p.get("description") for p in published["properties"].values()), name


def test_the_published_form_leaves_out_what_the_call_checks(tools: dict[str, Any]) -> None:
    for name, tool in tools.items():
        published = tool.parameters
        assert "additionalProperties" not in published, name  # the server refuses unknown arguments itself
        for arg, prop in published["properties"].items():
            assert "pattern" not in prop and "title" not in prop and prop.get("default", ...) is not None, f"{name}.{arg}"
    checkpoint = arguments_schema("invoke_hitl_checkpoint_phase", tools["invoke_hitl_checkpoint_phase"].fn.__wrapped__)
    assert "pattern" in checkpoint["properties"]["checkpoint_type"]  # (checked on the call)
    assert tools["copilot"].parameters["properties"]["max_rounds"] == {
        "type": "integer", "description": "Turns before a pause, 1-500; default: profile's (20)."}  # no default: null


def test_phase_knobs_are_published_in_options_with_their_ranges_and_defaults(tools: dict[str, Any]) -> None:
    assert KNOBS["invoke_planning_phase"] == ("max_plan_steps", "n_plan_reviews", "improve_task")
    assert KNOBS["invoke_hitl_checkpoint_phase"] == ()  # (its own ``options`` are the decisions a human picks from)
    planning = tools["invoke_planning_phase"].parameters
    assert list(planning["properties"]) == ["task", OPTIONS, "session_id", "wait_seconds"]
    assert planning["properties"][OPTIONS] == {"type": "object", "description": "max_plan_steps 1-10 (3), n_plan_reviews 0-5 (1), improve_task (false)"}
    control = tools["invoke_control_phase"].parameters["properties"]
    assert list(control) == ["plan", "step", OPTIONS, "session_id", "wait_seconds"]  # plan and step stay at top level
    assert control[OPTIONS]["description"] == "max_n_attempts 1-10 (3), review_code (false), judge_plots (false)"
    for name, knobs in KNOBS.items():
        description = tools[name].parameters["properties"].get(OPTIONS, {}).get("description", "")
        assert all(k in description for k in knobs), name
    checkpoint = tools["invoke_hitl_checkpoint_phase"].parameters["properties"][OPTIONS]
    assert checkpoint["type"] == "array"
    schema = arguments_schema("invoke_hitl_checkpoint_phase", tools["invoke_hitl_checkpoint_phase"].fn.__wrapped__)
    with pytest.raises(TypeError, match="an argument named 'options'"):  # a phase may not have both
        grouped(schema, ["checkpoint_type"])


def test_ungroup_takes_options_or_top_level_and_refuses_unknown_keys_and_conflicts() -> None:
    keys = ("max_plan_steps", "n_plan_reviews", "improve_task")
    assert ungroup("t", {"task": "x", "options": {"max_plan_steps": 2}}, keys) == {"task": "x", "max_plan_steps": 2}
    assert ungroup("t", {"task": "x", "max_plan_steps": 2}, keys) == {"task": "x", "max_plan_steps": 2}
    assert ungroup("t", {"task": "x", "options": None, "n_plan_reviews": 0}, keys) == {"task": "x", "n_plan_reviews": 0}
    assert ungroup("t", {"task": "x", "n_plan_reviews": 0, "options": {"max_plan_steps": 2}}, keys) == {
        "task": "x", "n_plan_reviews": 0, "max_plan_steps": 2}
    with pytest.raises(ArgumentsError) as unknown:
        ungroup("t", {"task": "x", "options": {"max_steps": 2}}, keys)
    assert str(unknown.value) == ("Invalid arguments for t: unknown option 'max_steps' in 'options' "
                                  "(the options are: max_plan_steps, n_plan_reviews, improve_task).")
    with pytest.raises(ArgumentsError) as twice:
        ungroup("t", {"task": "x", "max_plan_steps": 2, "options": {"max_plan_steps": 3}}, keys)
    assert str(twice.value) == "Invalid arguments for t: 'max_plan_steps' given both at top level and in 'options'; give it once."
    with pytest.raises(ArgumentsError, match="argument 'options' must be an object of max_plan_steps, n_plan_reviews, improve_task, got list"):
        ungroup("t", {"task": "x", "options": [2]}, keys)


def test_a_call_that_skips_the_middleware_is_ungrouped_too(tools: dict[str, Any]) -> None:
    meta = tools["invoke_idea_generation_phase"].fn_metadata
    assert meta.validate_arguments({"task": "x", "options": {"n_ideas": 2}}) == {
        "task": "x", "n_ideas": 2, "n_reviews": 1, "session_id": None, "wait_seconds": 45}
    with pytest.raises(ValidationError, match="unknown option 'ideas' in 'options'"):
        meta.validate_arguments({"task": "x", "options": {"ideas": 2}})
    with pytest.raises(ValidationError):  # strict, as at top level
        meta.validate_arguments({"task": "x", "options": {"n_ideas": "2"}})


def test_argument_models_are_strict(tools: dict[str, Any]) -> None:
    model = arguments_model("copilot", tools["copilot"].fn.__wrapped__)
    assert model(task="x").max_rounds is None  # left out: the profile's round limit (20 for the default profile)
    with pytest.raises(Exception):
        model.model_validate({"task": "x", "max_rounds": "5"})
    with pytest.raises(Exception):
        model.model_validate({"task": "x", "surprise": 1})
