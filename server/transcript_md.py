"""A session's transcript as markdown a person reads: plans as numbered steps, code in fenced blocks, runs with their
exit codes, ideas ranked, phase outputs summarised, errors marked.

Works on the engine's records and events by attribute (duck-typed), like render.py, so importing it does not import
the engine. Bounded: long code, outputs and texts are clipped with a note (the JSON transcript has them whole).
Safe: model and program text goes in fences longer than any backtick run inside it, or in block quotes and list items,
so nothing in it can open a fence that swallows the rest of the document.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

CODE_CHARS, CODE_LINES = 6000, 150
"""The most of one program shown."""
OUTPUT_CHARS = 3000
"""The most of one run's output shown (its tail)."""
TEXT_CHARS = 4000
"""The most of one message shown."""
ITEM_CHARS = 400
"""The most of one plan step, idea or critique field shown."""
LIST_ITEMS = 20
"""The most steps, ideas or files listed."""

_RESULT_HEAD = re.compile(r"exit_code: (-?\d+) \| timed_out: (\w+) \| duration: ([\d.]+)s \| isolation: (.*)")
_LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


# ---- what a structured value is ------------------------------------------------------------------

def structured_kind(value: Any) -> str | None:
    """What a structured message or output is: plan, code, ideas, critiques, step (a step's result), steps, or None."""
    if not isinstance(value, dict):
        return None
    if _dicts(value.get("steps")) and all("sub_task" in s for s in value["steps"]):
        return "steps" if all("status" in s for s in value["steps"]) else "plan"
    if isinstance(value.get("code"), str):
        return "code"
    if _dicts(value.get("ideas")):
        return "ideas"
    if _dicts(value.get("critiques")):
        return "critiques"
    if "sub_task" in value and "status" in value:
        return "step"
    return None


def _dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def run_head(result: str) -> dict[str, str] | None:
    """The status line of an ``execute_code`` result (exit code, timed out, duration, isolation), if it has one."""
    match = _RESULT_HEAD.match(result)
    if not match:
        return None
    return dict(zip(("exit_code", "timed_out", "duration", "isolation"), match.groups()))


# ---- markdown building blocks ----------------------------------------------------------------------

def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters not shown]"


def clip_middle(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters by leaving out its middle (a run report keeps its headers and its ends)."""
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + f"\n[… {len(text) - limit} characters not shown …]\n" + text[len(text) - (limit - head):]


def clip_lines(text: str, max_lines: int, max_chars: int) -> str:
    lines = text.splitlines()
    if len(lines) > max_lines:
        text = "\n".join(lines[:max_lines]) + f"\n[… {len(lines) - max_lines} more lines not shown]"
    return clip(text, max_chars)


def fence(text: str, language: str = "") -> list[str]:
    """``text`` as a fenced code block whose fence is longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9_+.-]", "", language)[:20]
    return [bar + info, text.rstrip("\n"), bar]


def quote(text: str) -> list[str]:
    """``text`` as a block quote (model text stays inside it, whatever markdown it holds)."""
    return ["> " + line if line.strip() else ">" for line in (text.strip("\n") or "(empty)").splitlines()]


def fold(text: Any, limit: int = ITEM_CHARS) -> str:
    """Text on one line: whitespace folded, clipped."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line(text: Any, limit: int = ITEM_CHARS) -> str:
    """Text for one line of a list or heading: folded, clipped, and not read as markdown block syntax."""
    flat = fold(text, limit)
    if re.match(r"\d+[.)]", flat):  # not a list item of its own
        return re.sub(r"^(\d+)([.)])", r"\1\\\2", flat)
    return "\\" + flat if re.match(r"[#>+*=|`~-]", flat) else flat  # not a heading, quote, list or fence


def language_of(name: Any) -> str:
    return _LANGUAGES.get(str(name or "python").lower(), str(name or ""))


# ---- structured values -------------------------------------------------------------------------------

def plan_lines(plan: dict[str, Any]) -> list[str]:
    """A plan as numbered steps with their agents and bullet points."""
    steps = plan.get("steps") or []
    lines = [f"Plan of {len(steps)} step{'s' if len(steps) != 1 else ''}:", ""]
    for i, step in enumerate(steps[:LIST_ITEMS], 1):
        lines.append(f"{i}. **{one_line(step.get('sub_task', ''))}** — *{one_line(step.get('agent') or '?', 40)}*")
        lines += [f"   - {one_line(b)}" for b in (step.get("bullet_points") or [])[:5]]
    return lines + _more(steps, "steps")


def step_results_lines(steps: list[dict[str, Any]]) -> list[str]:
    """Step results as a numbered list: status, attempts, exit code, isolation, files, and a short summary."""
    lines: list[str] = []
    for step in steps[:LIST_ITEMS]:
        index = step.get("index") or len(lines) + 1
        lines.append(f"{index}. **{one_line(step.get('sub_task', ''))}** — *{step.get('agent', '?')}*: {_step_status(step)}")
        if step.get("error"):
            lines.append(f"   - **error:** {one_line(step['error'])}")
        elif step.get("summary"):
            lines.append(f"   - {one_line(step['summary'])}")
        if step.get("files"):
            lines.append(f"   - files: {_files(step['files'])}")
    return lines + _more(steps, "steps")


def _step_status(step: dict[str, Any]) -> str:
    status = str(step.get("status", "?"))
    parts = [f"**{status.upper()}**" if status == "failed" else status]
    if step.get("attempts"):
        parts.append(f"{step['attempts']} attempt{'s' if step['attempts'] != 1 else ''}")
    if step.get("exit_code") is not None:
        parts.append(f"exit code {step['exit_code']}")
    if step.get("isolation"):
        parts.append(f"isolation: {step['isolation']}")
    return ", ".join(parts)


def ideas_lines(ideas: list[dict[str, Any]]) -> list[str]:
    """Ideas as a ranked list (rank, title, score, description, critique)."""
    lines: list[str] = []
    for i, idea in enumerate(ideas[:LIST_ITEMS], 1):
        score = f" (score {idea['score']}/10)" if idea.get("score") is not None else ""
        text = f": {one_line(idea['description'])}" if idea.get("description") else ""
        lines.append(f"{idea.get('rank') or i}. **{one_line(idea.get('title', ''), 120)}**{score}{text}")
        if idea.get("critique"):
            lines.append(f"   - critique: {one_line(idea['critique'])}")
    return lines + _more(ideas, "ideas")


def critiques_lines(critiques: list[dict[str, Any]]) -> list[str]:
    lines = [f"- **{one_line(c.get('title', ''), 120)}** (score {c.get('score', '?')}/10): {one_line(c.get('critique', ''))}"
             for c in critiques[:LIST_ITEMS]]
    return lines + _more(critiques, "critiques")


def code_lines(code: str, language: Any) -> list[str]:
    return fence(clip_lines(code, CODE_LINES, CODE_CHARS), language_of(language))


def structured_lines(value: Any) -> list[str]:
    """A structured message (the planner's plan, the engineer's program, ideas, critiques) or any other JSON."""
    kind = structured_kind(value)
    if kind == "plan":
        return plan_lines(value)
    if kind == "steps":
        return step_results_lines(value["steps"])
    if kind == "code":
        head = [one_line(value["explanation"]), ""] if value.get("explanation") else []
        return head + code_lines(value["code"], value.get("language"))
    if kind == "ideas":
        return ideas_lines(value["ideas"])
    if kind == "critiques":
        return critiques_lines(value["critiques"])
    if kind == "step":
        return step_results_lines([value])
    return fence(clip(json.dumps(value, indent=2, default=str), TEXT_CHARS), "json")


def output_lines(output: Any, shown_plan: Any = None) -> list[str]:
    """A phase's output summarised: its route, plan, step results, ideas or answer, then its files.
    A plan equal to ``shown_plan`` (the planner's last, already shown) is referred to, not repeated."""
    if not isinstance(output, dict):
        return [] if output is None else quote(clip(str(output), TEXT_CHARS))
    lines: list[str] = []
    route = output.get("route")
    if isinstance(route, dict):
        lines += [f"Routed to **{route.get('route')}**" + (f" (agent {route['agent']})" if route.get("agent") else "")
                  + (f": {one_line(route['reason'])}" if route.get("reason") else ""), ""]
    for asked in output.get("clarifications") or []:
        lines += [f"- asked: {one_line(asked.get('question', ''))} — answer: {one_line(asked.get('answer', ''))}"]
    inner = output.get("result") if isinstance(output.get("result"), dict) else None
    shown = False
    for source in (output, inner or {}):
        if _dicts(source.get("plan", {}).get("steps") if isinstance(source.get("plan"), dict) else None):
            if source["plan"] == shown_plan:
                n = len(source["plan"]["steps"])
                lines += [f"The plan: the planner's last plan above ({n} step{'s' if n != 1 else ''}).", ""]
            else:
                lines += plan_lines(source["plan"]) + [""]
            shown = True
        kind = structured_kind(source)
        if kind in ("steps", "ideas", "step"):
            lines += structured_lines(source) + [""]
            shown = True
    for it in output.get("iterations") or []:
        if isinstance(it, dict) and it.get("decision"):
            lines.append(f"- plan {it.get('iteration')}: {it['decision']} by {it.get('who', 'user')}"
                         + (f": {one_line(it['feedback'])}" if it.get("feedback") else ""))
    if output.get("decision") and not shown:
        lines.append(f"Decision: **{output['decision']}** by {output.get('who', 'user')}"
                     + (f": {one_line(output['feedback'])}" if output.get("feedback") else ""))
        shown = True
    if not shown and output.get("answer"):
        lines += quote(clip(str(output["answer"]), TEXT_CHARS))
    while lines and not lines[-1]:
        lines.pop()
    if output.get("files"):
        lines += ["", f"Files: {_files(output['files'])}"]
    return lines


def _files(files: list[Any]) -> str:
    shown = ", ".join(f"`{fold(f, 200)}`" for f in files[:LIST_ITEMS])
    return shown + (f" and {len(files) - LIST_ITEMS} more" if len(files) > LIST_ITEMS else "")


def _more(items: list[Any], noun: str) -> list[str]:
    return [f"[… {len(items) - LIST_ITEMS} more {noun} not shown]"] if len(items) > LIST_ITEMS else []


# ---- events ------------------------------------------------------------------------------------------

class _Renderer:
    """Renders events in order; remembers the last program shown, so the executor's run of it is not printed twice."""

    def __init__(self) -> None:
        self.last_code: str | None = None
        self.last_plan: dict[str, Any] | None = None

    def event(self, e: Any) -> list[str]:
        content = e.content if isinstance(e.content, dict) else {"text": e.content}
        head = f"#{e.seq} · r{e.round}" + (f" · {e.time:%H:%M:%S}" if getattr(e, "time", None) else "")
        who = e.agent or "-"
        handler = getattr(self, "_" + e.type, None)
        if handler is None:
            return [f"**{head}** · {e.type} {who}", ""] + fence(clip(json.dumps(content, default=str), TEXT_CHARS), "json") + [""]
        return handler(head, who, content, e) + [""]

    def _message(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        tokens = f" · {e.usage.prompt_tokens + e.usage.completion_tokens} tokens" if getattr(e, "usage", None) else ""
        if content.get("kind") == "route":
            agent = f" (agent {content['agent']})" if content.get("agent") else ""
            return [f"**{head}** · **{who}** routes to **{content.get('route')}**{agent}: {one_line(content.get('reason', ''))}"]
        if "json" in content:
            value = content["json"]
            kind = structured_kind(value)
            if kind == "code":
                self.last_code = value["code"]
            if kind == "plan":
                self.last_plan = value
            label = f"program ({language_of(value.get('language'))})" if kind == "code" else kind or "answer (JSON)"
            return [f"### {head} · {who} — {label}{tokens}", ""] + structured_lines(value)
        label = " — tool summary" if content.get("kind") == "tool_summary" else ""
        return [f"### {head} · {who}{label}{tokens}", ""] + quote(clip(str(content.get("text", "")), TEXT_CHARS))

    def _tool_call(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        name, args = content.get("name"), content.get("arguments")
        if isinstance(args, dict) and isinstance(args.get("code"), str):
            language = language_of(args.get("language"))
            extra = ", ".join(f"{k}: `{fold(v, 200)}`" for k, v in args.items() if k not in ("code", "language"))
            title = f"**{head}** · **{who}** runs `{name}` ({language}{', ' + extra if extra else ''})"
            if args["code"] == self.last_code:
                return [title + ": the program above"]
            self.last_code = args["code"]
            return [title + ":", ""] + code_lines(args["code"], language)
        if not args:
            return [f"**{head}** · **{who}** calls `{name}`"]
        text = args if isinstance(args, str) else json.dumps(args, indent=2, default=str)
        return [f"**{head}** · **{who}** calls `{name}`:", ""] + fence(clip(text, TEXT_CHARS), "" if isinstance(args, str) else "json")

    def _tool_result(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        name, result = content.get("name"), str(content.get("result", ""))
        failed = bool(content.get("is_error"))
        run = run_head(result)
        if run is not None:
            body = result.split("\n", 1)[1] if "\n" in result else ""
            saved, _, rest = body.partition("\n") if body.startswith("saved as: ") else ("", "", body)
            verdict = f"**FAILED: exit code {run['exit_code']}**" if failed else f"exit code {run['exit_code']}"
            if run["timed_out"] == "True":
                verdict += " (**timed out**: killed at the time limit)"
            where = f", saved as `{fold(saved.removeprefix('saved as: '), 300)}`" if saved else ""
            line = f"**{head}** · `{name}` result: {verdict} · {run['duration']}s · isolation: {content.get('isolation') or run['isolation']}{where}"
            return [line, ""] + fence(clip_middle(rest, OUTPUT_CHARS), "text")
        verb = "**FAILED**" if failed else "returned"
        if "\n" not in result and len(result) <= 200:
            return [f"**{head}** · `{name}` {verb}: {one_line(result)}" if result else f"**{head}** · `{name}` {verb} nothing"]
        return [f"**{head}** · `{name}` {verb}:", ""] + fence(clip(_pretty(result), OUTPUT_CHARS), "")

    def _handoff(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        return [f"**{head}** · **{who}** hands off to **{content.get('target')}**"]

    def _phase_start(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        inputs = content.get("inputs") or {}
        shown = {k: v for k, v in inputs.items() if v is not None and k not in ("task", "plan")} if isinstance(inputs, dict) else {}
        lines = [f"## Phase `{content.get('phase')}` ({head})", ""]
        if isinstance(inputs, dict) and inputs.get("task"):
            lines += quote(clip(str(inputs["task"]), TEXT_CHARS)) + [""]
        if isinstance(inputs, dict) and isinstance(inputs.get("plan"), dict):
            lines += plan_lines(inputs["plan"]) + [""]
        if shown:
            lines.append("Parameters: " + ", ".join(f"{k}={fold(json.dumps(v, default=str), 200)}" for k, v in shown.items()))
        return lines

    def _phase_end(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        status = str(content.get("status", "?"))
        usage = content.get("usage") or {}
        tokens = sum(int(u.get("prompt_tokens", 0)) + int(u.get("completion_tokens", 0)) for u in usage.values() if isinstance(u, dict))
        title = f"### {head} · phase `{content.get('phase')}` " + ("**FAILED**" if status == "failed" else status) + f" · {tokens} tokens"
        lines = [title, ""]
        if content.get("error"):
            lines += [f"**Error:** {one_line(content['error'], 1000)}", ""]
        return lines + output_lines(content.get("output"), self.last_plan)

    def _approval_request(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        options = " / ".join(f"`{o}`" for o in content.get("options") or [])
        lines = [f"### {head} · {who} asks for a {content.get('kind', 'decision')} (`{content.get('id')}`)", ""]
        return lines + quote(clip(str(content.get("message", "")), TEXT_CHARS)) + ([f"", f"Options: {options}"] if options else [])

    def _approval_resolved(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        feedback = f": {one_line(content['feedback'], 1000)}" if content.get("feedback") else ""
        return [f"**{head}** · **{who}** answered `{content.get('id')}`: **{content.get('decision')}**{feedback}"]

    def _status(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        reason = f" ({one_line(content['reason'], 300)})" if content.get("reason") else ""
        return [f"*{head} · status: {content.get('status')}{reason}*"]

    def _error(self, head: str, who: str, content: dict[str, Any], e: Any) -> list[str]:
        kind = f" ({content['kind']})" if content.get("kind") else ""
        retry = " — retrying" if content.get("retrying") else ""
        where = f" in phase `{content['phase']}`" if content.get("phase") else ""
        agent = f" · {e.agent}" if e.agent else ""
        return [f"> **ERROR**{kind}{where} · {head}{agent}{retry}", ">"] + quote(clip(str(content.get("error", "")), TEXT_CHARS))


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except (TypeError, ValueError):
        return text


def transcript_markdown(record: Any, events: Iterable[Any]) -> str:
    """A readable rendering of a session's transcript."""
    lines = [f"# Session {record.id}", "", f"- kind: {record.kind}", f"- status: {record.status}", f"- rounds: {record.total_rounds}"]
    task = str(record.task)
    lines += [f"- task: {task}", ""] if "\n" not in task and len(task) <= 200 else ["- task:", ""] + quote(clip(task, TEXT_CHARS)) + [""]
    renderer = _Renderer()
    for e in events:
        lines += renderer.event(e)
    pending = record.pending if record.status == "waiting_input" else None
    if pending is not None:
        lines += [f"## Waiting for input (`{pending.id}`, {pending.kind})", ""] + quote(clip(str(pending.message), TEXT_CHARS))
        lines += ["", "Options: " + " / ".join(f"`{o}`" for o in pending.options), ""]
    if record.status == "failed" and record.error:
        lines += ["## Error", ""] + quote(clip(str(record.error), TEXT_CHARS)) + [""]
    if record.result:
        text = record.result if isinstance(record.result, str) else json.dumps(record.result, indent=2)
        lines += ["## Result", ""] + quote(clip(text, TEXT_CHARS)) + [""]
    return "\n".join(lines)
