"""The task improver before planning, the code reviewer and the plot judge after an engineer step's successful run."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Sequence

import pytest
from autogen_core import Image
from autogen_core.models import LLMMessage

from phases import run_phase
from phases.review import image_size
from swarm.engine import Engine
from swarm.models.function import MODEL_INFO, FunctionModelClient
from swarm.models.scripted import Script
from tests.fakes import FunctionModels
from tests.phases.phase_helpers import code, plan, scripted_engine

pytestmark = pytest.mark.anyio

PNG_WRITER = """import struct, zlib
def png(path, w, h):
    raw = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * w for _ in range(h))
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    with open(path, 'wb') as f:
        f.write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
"""


def plot_code(width: int, height: int) -> dict[str, Any]:
    return code(PNG_WRITER + f"png('plot.png', {width}, {height})\nprint('wrote plot.png')", f"draws plot.png ({width}x{height})")


PRINT_TOTAL = code("print('total =', 6 * 7)", "prints the total")
APPROVE = {"verdict": "approve", "issues": []}
OK = {"verdict": "ok", "problems": []}


# ---- the task improver ----------------------------------------------------------------------------------------------


async def test_the_improvers_rewrite_is_the_task_the_planner_and_its_reviewer_get(settings: Any) -> None:
    precise = "Read values.txt (one number a line), compute their mean and write it to data/mean.json."
    script = Script([
        {"agent": "task_improver", "json": {"task": precise, "changes": "named the input and the output file"}, "expect": "do the numbers thing"},
        {"agent": "planner", "json": plan(("compute the mean", "engineer")), "expect": f"Task:\n{precise}"},
        {"agent": "plan_reviewer", "text": "1. Fine.", "expect": precise},
        {"agent": "planner", "json": plan(("compute the mean", "engineer"))},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "planning", {"task": "do the numbers thing", "improve_task": True})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        improved = {"original": "do the numbers thing", "task": precise, "changes": "named the input and the output file"}
        assert result.output["improved_task"] == improved
        record = await engine.get(result.session_id)
        assert record.meta["improved_task"] == improved
        events = await engine.transcript(result.session_id)
        assert [e.agent for e in events if e.type == "message" and e.agent != "user"][:2] == ["task_improver", "planner"]
        # planning again without the improver: the session's plan is for the task as given
        script.entries += [{"agent": "planner", "json": plan(("b", "researcher")), "expect": "Task:\nanother task"}]
        again = await run_phase(engine, "planning", {"task": "another task", "n_plan_reviews": 0}, session_id=result.session_id)
        script.assert_exhausted()
        assert "improved_task" not in again.output and "improved_task" not in (await engine.get(result.session_id)).meta


# ---- the code reviewer ----------------------------------------------------------------------------------------------


async def test_a_review_that_requests_changes_sends_the_step_back_and_an_approval_completes_it(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": PRINT_TOTAL},
        {"agent": "code_reviewer", "json": {"verdict": "request_changes", "issues": ["write the total to data/total.txt as well"]},
         "expect": "print('total =', 6 * 7)"},
        {"agent": "engineer", "json": code("open('data/total.txt', 'w').write('42')\nprint('total = 42')", "writes data/total.txt"),
         "expect": "write the total to data/total.txt as well"},
        {"agent": "code_reviewer", "json": APPROVE, "expect": "Attempt 2"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "control", {"plan": plan(("compute the total", "engineer")), "review_code": True})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        [step] = result.output["steps"]
        assert step["status"] == "completed" and step["attempts"] == 2 and "total = 42" in step["summary"]
        assert [(r["attempt"], r["agent"], r["verdict"], r["issues"]) for r in step["reviews"]] == [
            (1, "code_reviewer", "request_changes", ["write the total to data/total.txt as well"]),
            (2, "code_reviewer", "approve", []),
        ]
        assert (Path(result.work_dir) / "data" / "total.txt").read_text() == "42"
        assert "The code reviewer requests changes (attempt 1 of 3)" in script.calls[2]["recent"][-1]
        events = await engine.transcript(result.session_id)
        verdicts = [e.content["json"]["verdict"] for e in events if e.type == "message" and e.agent == "code_reviewer"]
        assert verdicts == ["request_changes", "approve"]
        journal = await engine.store.journal_entries(f"{result.session_id}:p1")
        assert [j["agent"] for j in journal] == ["engineer", "executor", "code_reviewer"] * 2


async def test_a_review_still_requesting_changes_at_the_last_attempt_fails_the_step(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": PRINT_TOTAL},
        {"agent": "code_reviewer", "json": {"verdict": "request_changes"}},  # no issues: sent back for them
        {"agent": "code_reviewer", "json": {"verdict": "request_changes", "issues": ["the total is hard-coded"]}, "expect": "says nothing to change"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "one_shot", {"task": "Compute the total", "max_n_attempts": 1, "review_code": True})
        script.assert_exhausted()
        assert result.status == "failed"
        assert "step 1 failed after 1 attempts; the code reviewer still requests changes: the total is hard-coded" in result.error
        step = result.output["result"]
        assert step["exit_code"] == 0 and step["reviews"][0]["verdict"] == "request_changes"


# ---- the plot judge -------------------------------------------------------------------------------------------------


async def test_a_plot_judge_asking_for_a_redo_of_a_written_png_retries_the_step(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": plot_code(3, 2)},
        {"agent": "plot_judge", "json": {"verdict": "redo", "problems": ["plot.png: 3x2 pixels is far too small to read"]},
         "expect": "- plot.png: PNG, 3x2 pixels"},
        {"agent": "engineer", "json": plot_code(40, 30), "expect": "plot.png: 3x2 pixels is far too small to read"},
        {"agent": "plot_judge", "json": OK, "expect": "- plot.png: PNG, 40x30 pixels"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "control", {"plan": plan(("draw the plot", "engineer")), "judge_plots": True})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        [step] = result.output["steps"]
        assert step["attempts"] == 2
        assert [(r["agent"], r["verdict"], r["figures"]) for r in step["reviews"]] == [("plot_judge", "redo", ["plot.png"]),
                                                                                     ("plot_judge", "ok", ["plot.png"])]
        assert "You cannot see the images" in script.calls[1]["recent"][-1]  # a model without vision gets descriptions
        assert image_size(Path(result.work_dir) / "plot.png") == ("png", 40, 30)


async def test_a_resumed_run_shows_the_judge_the_figures_the_first_run_saw(settings: Any) -> None:
    script = Script([
        {"agent": "engineer", "json": plot_code(3, 2)},
        {"agent": "plot_judge", "json": {"verdict": "redo", "problems": ["plot.png: too small"]}},
        {"agent": "engineer", "json": plot_code(40, 30)},
        {"agent": "plot_judge", "error": "auth"},
    ])
    params = {"plan": plan(("draw the plot", "engineer")), "judge_plots": True}
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "control", params)
        assert result.status == "failed" and "401" in result.error
        # plot.png is 40x30 now; the replayed first judgement must still be of the 3x2 figure, or it would run again
        script.entries += [{"agent": "plot_judge", "json": OK, "expect": "40x30 pixels"}]
        again = await run_phase(engine, "control", params, session_id=result.session_id)
        script.assert_exhausted()
        assert again.status == "completed" and again.output["steps"][0]["attempts"] == 2
        assert [c["agent"] for c in script.calls] == ["engineer", "plot_judge", "engineer", "plot_judge", "plot_judge"]


class VisionClient(FunctionModelClient):
    @property
    def model_info(self) -> Any:
        return {**MODEL_INFO, "vision": True}


class VisionModels(FunctionModels):
    def client_for(self, agent: str, tier: str) -> FunctionModelClient:
        return VisionClient(self.function, agent, self.usage)


async def test_a_judge_whose_model_has_vision_is_shown_the_figure_as_an_image(settings: Any) -> None:
    seen: dict[str, list[Sequence[LLMMessage]]] = {}

    def model(messages: Sequence[LLMMessage], agent: str, tools: list[str]) -> str:
        seen.setdefault(agent, []).append(messages)
        return json.dumps(plot_code(5, 4) if agent == "engineer" else OK)

    from phases import phase_tool_registry

    async with Engine(settings, models=VisionModels(model), tools=phase_tool_registry()) as engine:
        result = await run_phase(engine, "one_shot", {"task": "Draw a red plot into plot.png", "judge_plots": True})
        assert result.status == "completed", result.error
        [judged] = seen["plot_judge"]
        content = judged[-1].content
        assert isinstance(content, list) and isinstance(content[0], str)
        [image] = [part for part in content[1:] if isinstance(part, Image)]
        assert image.image.size == (5, 4)
        assert "- plot.png: PNG, 5x4 pixels" in content[0] and "The images follow" in content[0]
        assert result.output["result"]["reviews"] == [{"attempt": 1, "agent": "plot_judge", "verdict": "ok", "issues": [], "figures": ["plot.png"]}]


async def test_a_step_that_writes_no_figure_is_not_judged(settings: Any) -> None:
    script = Script([{"agent": "engineer", "json": PRINT_TOTAL}])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "one_shot", {"task": "Compute the total", "judge_plots": True})
        script.assert_exhausted()
        assert result.status == "completed" and result.output["result"]["reviews"] == []


# ---- through the copilot --------------------------------------------------------------------------------------------


async def test_the_copilot_passes_the_options_to_the_phases_it_runs(settings: Any) -> None:
    task = "Download the data, then clean it, then train a model, evaluate it and write up the results."
    script = Script([
        {"agent": "task_improver", "json": {"task": task + " Use data.csv.", "changes": "named the data"}},
        {"agent": "planner", "json": plan(("train the model", "engineer")), "expect": "Use data.csv."},
        {"agent": "engineer", "json": plot_code(8, 6)},
        {"agent": "code_reviewer", "json": APPROVE},
        {"agent": "plot_judge", "json": OK, "expect": "8x6 pixels"},
    ])
    async with scripted_engine(settings, script) as engine:
        result = await run_phase(engine, "copilot", {"task": task, "n_plan_reviews": 0, "improve_task": True, "review_code": True,
                                                     "judge_plots": True})
        script.assert_exhausted()
        assert result.status == "completed", result.error
        [step] = result.output["result"]["steps"]
        assert [r["agent"] for r in step["reviews"]] == ["code_reviewer", "plot_judge"]
        assert (await engine.get(result.session_id)).meta["improved_task"]["task"].endswith("Use data.csv.")


# ---- off by default ---------------------------------------------------------------------------------------------------


async def test_with_the_options_off_nothing_reviews_or_judges(settings: Any) -> None:
    script = Script([
        {"agent": "planner", "json": plan(("draw the plot", "engineer"))},
        {"agent": "engineer", "json": plot_code(3, 2)},
    ])
    async with scripted_engine(settings, script) as engine:
        planned = await run_phase(engine, "planning", {"task": "Draw a plot", "n_plan_reviews": 0})
        result = await run_phase(engine, "control", {}, session_id=planned.session_id)
        script.assert_exhausted()
        assert "improved_task" not in planned.output
        [step] = result.output["steps"]
        assert step["status"] == "completed" and step["attempts"] == 1 and step["reviews"] == []
        journal = await engine.store.journal_entries(f"{result.session_id}:p2")
        assert [(j["agent"], j["kind"]) for j in journal] == [("engineer", "model"), ("executor", "tool")]


def test_image_sizes_come_from_the_headers(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    PILImage.new("RGB", (7, 5)).save(tmp_path / "a.jpg", "JPEG")
    PILImage.new("RGB", (9, 4)).save(tmp_path / "b.gif", "GIF")
    (tmp_path / "c.svg").write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80.5"></svg>')
    (tmp_path / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 640, 480))
    (tmp_path / "e.png").write_bytes(b"not an image")
    assert [image_size(tmp_path / n) for n in ("a.jpg", "b.gif", "c.svg", "d.png", "e.png")] == [
        ("jpeg", 7, 5), ("gif", 9, 4), ("svg", 120, 80), ("png", 640, 480), ("png", None, None)]
