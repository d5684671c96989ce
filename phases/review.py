"""Checks of an engineer step's successful run: the code reviewer reads the program and its output, the plot judge
looks at the figures the step wrote. Each answers with a structured verdict; a verdict against the attempt goes back
to the engineer as feedback and the step runs again (an attempt like any other, bounded by max_n_attempts).

    review_code:  CodeReview = code_reviewer(step, program, run)       approve | request_changes + issues
    judge_plots:  figures = the images the step wrote so far (png, jpg, jpeg, gif, svg in the work dir)
                  PlotVerdict = plot_judge(step, program, figures)     ok | redo + problems
                  shown as images when the judge's model has vision, else described (file, format, pixels, bytes)

Which figures a step wrote is observed through the journal (a snapshot of the work dir's images before the step,
another after each run, with what the judge is shown), so a resumed run sees the same figures and the same
images as the run it replays, even when a later attempt has overwritten the files since.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MultiModalMessage
from autogen_core import Image
from pydantic import BaseModel

from swarm.errors import ModelBehaviourError
from swarm.sandbox import ExecutionResult

from .context import PhaseContext, clip
from .models import CodeAnswer, CodeReview, PlotVerdict, Step, StepReview

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
SHOWN_FORMATS = ("png", "jpeg", "gif")
"""Formats a vision model is shown as images (an svg is described)."""
MAX_FIGURES = 8
"""Most figures put to the judge at once (the rest are named)."""
MAX_IMAGE_BYTES = 4_000_000
"""A larger figure is described, not shown."""
CODE_CHARS = 6000
OUTPUT_CHARS = 2000
REVIEWER_NOTE = ('Reply with a JSON document only: {"verdict": "approve" | "request_changes", '
                 '"issues": ["<what is wrong and what to do instead>", ...]} (no issues when approving).')
JUDGE_NOTE = ('Reply with a JSON document only: {"verdict": "ok" | "redo", '
              '"problems": ["<figure>: <what is wrong and what to change>", ...]} (no problems when ok).')


# ---- the figures ------------------------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[str, int | None, int | None]:
    """(format, width, height) from a PNG, JPEG or GIF header (or an svg's width and height); None where unknown."""
    with path.open("rb") as f:
        head = f.read(512 * 1024)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return "png", width, height
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return "gif", width, height
    if head.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(head))
    if path.suffix.lower() == ".svg":
        tag = re.search(rb"<svg\b[^>]*>", head)
        dims = [re.search(rb'\b%s="\s*([0-9.]+)' % name, tag.group(0)) if tag else None for name in (b"width", b"height")]
        width, height = (int(float(d.group(1))) if d else None for d in dims)
        return "svg", width, height
    return path.suffix.lower().lstrip(".") or "unknown", None, None


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None, None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None, None


def image_stamps(work_dir: Path) -> dict[str, list[int]]:
    """Every image file in the work dir (relative path -> [bytes, mtime in ns]), the sandbox's scratch dir left out."""
    stamps = {}
    for path in work_dir.rglob("*"):
        rel = path.relative_to(work_dir)
        if path.suffix.lower() in IMAGE_SUFFIXES and not rel.parts[0].startswith(".") and path.is_file():
            stat = path.stat()
            stamps[str(rel)] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(stamps.items()))


def figures_since(work_dir: Path, before: dict[str, list[int]], with_data: bool) -> dict[str, Any]:
    """The images written or changed since ``before``, described (and their data, for a model that sees)."""
    changed = [rel for rel, stamp in image_stamps(work_dir).items() if before.get(rel) != stamp]
    figures = []
    for rel in changed[:MAX_FIGURES]:
        path = work_dir / rel
        fmt, width, height = image_size(path)
        figure: dict[str, Any] = {"file": rel, "format": fmt, "bytes": path.stat().st_size, "width": width, "height": height}
        if with_data and fmt in SHOWN_FORMATS and 0 < figure["bytes"] <= MAX_IMAGE_BYTES:
            figure["data"] = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(figure)
    return {"figures": figures, "not_shown": changed[MAX_FIGURES:]}


def describe_figure(figure: dict[str, Any]) -> str:
    size = f"{figure['width']}x{figure['height']} pixels" if figure["width"] and figure["height"] else "size unknown"
    return f"- {figure['file']}: {figure['format'].upper()}, {size}, {figure['bytes']:,} bytes"


# ---- the checks -------------------------------------------------------------------------------------------------


@dataclass
class Objection:
    """A verdict against an attempt: who objected and what must change."""

    agent: str
    issues: list[str]

    def feedback(self, attempt: int, max_n_attempts: int) -> str:
        what = "The code reviewer requests changes" if self.agent == "code_reviewer" else "The plot judge asks for the figures to be redone"
        items = "\n".join(f"- {i}" for i in self.issues)
        return f"{what} (attempt {attempt} of {max_n_attempts}):\n{items}\n\nSend the complete corrected program."

    def summary(self) -> str:
        who = "the code reviewer still requests changes" if self.agent == "code_reviewer" else "the plot judge still asks for a redo"
        return f"{who}: {clip('; '.join(self.issues), 600)}"


def _has_issues(items: list[str], verdict: str) -> None:
    if not any(i.strip() for i in items):
        raise ModelBehaviourError(f"the verdict is {verdict!r} but says nothing to change; list what must change")


@dataclass
class StepChecks:
    """The checks of one engineer step. Their agents are made once per step and keep their conversations, so a
    reviewer sees its earlier verdicts when the corrected program comes back."""

    pctx: PhaseContext
    step: Step
    index: int
    review_code: bool = False
    judge_plots: bool = False
    reviews: list[StepReview] = field(default_factory=list)
    _before: dict[str, list[int]] | None = None
    _agents: dict[str, AssistantAgent] = field(default_factory=dict)

    async def start(self) -> None:
        """Before the step's first run: note the images already in the work dir (the step's are the ones it changes)."""
        if self.judge_plots:
            self._before = await self._observe("image_stamps", {"step": self.index}, lambda: image_stamps(self.pctx.work_dir))

    async def objection(self, attempt: int, answer: CodeAnswer, run: ExecutionResult) -> Objection | None:
        """After a successful run: what the first check against this attempt says must change, or None when all pass."""
        if self.review_code:
            review: CodeReview = await self.pctx.ask(self._agent("code_reviewer", CodeReview, REVIEWER_NOTE), self._review_prompt(attempt, answer, run),
                                                     CodeReview, check=lambda r: _has_issues(r.issues, r.verdict) if r.verdict == "request_changes" else None)
            issues = [i for i in review.issues if i.strip()] if review.verdict == "request_changes" else []
            self.reviews.append(StepReview(attempt=attempt, agent="code_reviewer", verdict=review.verdict, issues=issues))
            if issues:
                return Objection("code_reviewer", issues)
        if self.judge_plots:
            return await self._judge(attempt, answer)
        return None

    async def _judge(self, attempt: int, answer: CodeAnswer) -> Objection | None:
        vision = self._vision("plot_judge")
        before = self._before or {}
        seen = await self._observe("figures", {"step": self.index, "attempt": attempt, "images": vision},
                                   lambda: figures_since(self.pctx.work_dir, before, vision))
        figures = seen["figures"]
        if not figures:
            return None  # the step wrote no figure: nothing to judge
        judge = self._agent("plot_judge", PlotVerdict, JUDGE_NOTE)
        verdict: PlotVerdict = await self.pctx.ask(judge, self._judge_task(answer, figures, seen["not_shown"]), PlotVerdict,
                                                   check=lambda v: _has_issues(v.problems, v.verdict) if v.verdict == "redo" else None)
        problems = [p for p in verdict.problems if p.strip()] if verdict.verdict == "redo" else []
        self.reviews.append(StepReview(attempt=attempt, agent="plot_judge", verdict=verdict.verdict, issues=problems,
                                       figures=[f["file"] for f in figures]))
        return Objection("plot_judge", problems) if problems else None

    # ---- what the checkers are given ----------------------------------------------------------------------------

    def _step_text(self) -> str:
        return "\n".join([f"Step {self.index}: {self.step.sub_task}", *(f"- {b}" for b in self.step.bullet_points)])

    def _program(self, answer: CodeAnswer) -> str:
        return f"The program ({answer.language}):\n```{answer.language}\n{clip(answer.code, CODE_CHARS)}\n```"

    def _review_prompt(self, attempt: int, answer: CodeAnswer, run: ExecutionResult) -> str:
        out = [f"{name} (end):\n{text[-OUTPUT_CHARS:].rstrip()}" for name, text in (("stdout", run.stdout), ("stderr", run.stderr)) if text.strip()]
        return "\n\n".join([self._step_text(), f"Attempt {attempt}. " + self._program(answer),
                            f"The engineer says: {answer.explanation or '(nothing)'}",
                            f"It ran with exit code {run.exit_code}.\n" + ("\n".join(out) or "(no output)"),
                            "Review the program and its output."])

    def _judge_task(self, answer: CodeAnswer, figures: list[dict[str, Any]], not_shown: list[str]) -> str | MultiModalMessage:
        images = []
        for figure in figures:
            if "data" in figure:
                try:
                    images.append(Image.from_base64(figure["data"]))
                except Exception:  # not an image its header claims to be: it is described only
                    pass
        lines = [describe_figure(f) for f in figures] + [f"- {rel}: not shown (too many figures)" for rel in not_shown]
        how = ("The images follow, in this order." if images else
               "You cannot see the images: judge from their descriptions and the program that drew them.")
        text = "\n\n".join([self._step_text(), self._program(answer), "The figures it wrote:\n" + "\n".join(lines),
                            f"{how} Do the figures serve the step?"])
        return MultiModalMessage(content=[text, *images], source="user") if images else text

    # ---- agents and observations --------------------------------------------------------------------------------

    def _agent(self, name: str, output: type[BaseModel], note: str) -> AssistantAgent:
        if name not in self._agents:
            self._agents[name] = self.pctx.agent(name, output=output, instructions=note)
        return self._agents[name]

    def _vision(self, name: str) -> bool:
        """Whether the agent's model takes images (model_info["vision"])."""
        manifest = self.pctx.engine.agents.get(name)
        if manifest is None:
            return False  # pctx.agent says what is missing
        return bool(self.pctx.engine.models.client_for(name, manifest.model_tier).model_info.get("vision"))

    async def _observe(self, name: str, args: dict[str, Any], look: Callable[[], Any]) -> Any:
        """What ``look`` sees of the work dir, through the journal: a resumed run sees what the first run saw."""
        async def live() -> str:
            return json.dumps(look())

        request = json.dumps({"tool": name, "args": args}, sort_keys=True)
        return json.loads(await self.pctx.journal.call(agent="plot_judge", kind="tool", name=name, request=request, run=live))
