"""The journal's request digests: what identifies a model request on replay.

A resumed session finds its recorded calls by position and digest, so a digest must depend on the request alone
(never on the requests made before it, nor on which were cached) and stay what earlier versions recorded.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest

from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import ToolSchema

from swarm.journal import CallJournal, SeenRequest, _request

TOOLS = [ToolSchema(name="transfer_to_b", description="hand off to b")]


def reference(messages: list[Any], tools: list[ToolSchema], tool_choice: str = "auto", json_output: Any = None) -> tuple[str, Any]:
    """The digest as defined (and recorded by every earlier version): the SHA-256 of the header's sorted JSON followed
    by the SHA-256 of each message's JSON, computed here the plain way, message by message; and what the audit text
    says (the header, the number of messages, the newest one)."""
    header = {"tools": [t["name"] for t in tools], "tool_choice": tool_choice, "json_output": json_output}
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode()
                            + b"".join(hashlib.sha256(m.model_dump_json().encode()).digest() for m in messages)).hexdigest()
    return digest, {**header, "n_messages": len(messages), "last_message": messages[-1].model_dump(mode="json") if messages else None}


def request(journal: CallJournal, messages: list[Any], tools: list[ToolSchema], tool_choice: str = "auto", seen: SeenRequest | None = None) -> tuple[str, Any]:
    digest, audit = _request(journal, messages, tools, tool_choice, None, seen)
    return digest, json.loads(audit)


def turn(i: int, agent: str) -> list[Any]:
    """What one hand-off turn leaves in a model context: the call, its result, sometimes a text."""
    made: list[Any] = [AssistantMessage(content=[FunctionCall(id=f"call_{i}", name="transfer_to_b", arguments="{}")], source=agent),
                       FunctionExecutionResultMessage(content=[FunctionExecutionResult(content="Transferred to b", name="transfer_to_b",
                                                                                       call_id=f"call_{i}", is_error=False)])]
    if i % 3 == 0:
        made.append(UserMessage(content=f"note {i} " + "x" * (i % 17), source="user"))
    return made


def test_a_known_request_keeps_the_digest_earlier_versions_recorded() -> None:
    """Pinned: journals written before the digests were reused from the previous request must still replay."""
    messages = [SystemMessage(content="You are a."), UserMessage(content="go", source="user"),
                AssistantMessage(content=[FunctionCall(id="call_1", name="transfer_to_b", arguments="{}")], source="a"),
                FunctionExecutionResultMessage(content=[FunctionExecutionResult(content="Transferred to b", name="transfer_to_b", call_id="call_1", is_error=False)])]
    expected = "cc60a10e44c1eece36eb07afdbfc39a228785296593a852aed1587e1b835cfea"
    assert reference(messages, TOOLS)[0] == expected
    journal = CallJournal(None, "s", {})  # type: ignore[arg-type]
    seen = SeenRequest()
    digest, audit = _request(journal, messages, TOOLS, "auto", None)
    assert digest == expected
    assert json.loads(audit) == json.loads(  # the audit text earlier versions wrote, read back the same
        '{"tools": ["transfer_to_b"], "tool_choice": "auto", "json_output": null, "n_messages": 4, "last_message": {"content": [{"content": '
        '"Transferred to b", "name": "transfer_to_b", "call_id": "call_1", "is_error": false}], "type": "FunctionExecutionResultMessage"}}')
    assert _request(journal, messages[:2], TOOLS, "auto", None, seen)[0] == reference(messages[:2], TOOLS)[0]
    assert _request(journal, messages, TOOLS, "auto", None, seen)[0] == expected  # its first two from the previous request


def test_digests_reused_from_the_previous_request_equal_the_plain_digest() -> None:
    """Growing, sliding, shrinking, reflection, rebuilt and unrelated requests, in random order: every digest and audit
    text equals the plain computation, with the previous request reused, with a fresh journal, and with none."""
    rng = random.Random(7)
    system = SystemMessage(content="You are a.")
    conversation: list[Any] = [UserMessage(content="go", source="user")]
    journal, fresh_seen = CallJournal(None, "s", {}), SeenRequest()  # type: ignore[arg-type]
    start = 0
    kinds: dict[str, int] = {}
    for i in range(400):
        conversation.extend(turn(i, rng.choice("ab")))
        kind = rng.choice(["grow", "grow", "slide", "slide", "jump", "reflect", "shrink", "rebuilt", "other", "empty"])
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "slide":
            start = min(len(conversation) - 1, start + rng.randint(1, 4))
        elif kind == "jump":
            start = min(len(conversation) - 1, start + rng.randint(5, 60))
        window = conversation[start:]
        while window and isinstance(window[0], FunctionExecutionResultMessage) and len(window) > 1:
            window = window[1:]
        sent: list[Any] = [system, *window]
        tool_choice, tools = "auto", TOOLS
        if kind == "reflect":
            tool_choice, tools = "none", []
        elif kind == "shrink":
            sent = sent[: max(1, len(sent) - rng.randint(1, 3))]
        elif kind == "rebuilt":  # equal messages, new objects (a client that copies its context)
            sent = [m.model_copy() for m in sent]
        elif kind == "other":  # another conversation through the same client
            sent = [SystemMessage(content="Other."), *turn(10_000 + i, "c")]
        elif kind == "empty":
            sent = []
        expected = reference(sent, tools, tool_choice)
        assert request(journal, sent, tools, tool_choice, fresh_seen) == expected, (i, kind)
        assert request(CallJournal(None, "s", {}), sent, tools, tool_choice, SeenRequest()) == expected  # type: ignore[arg-type]
        assert request(journal, sent, tools, tool_choice) == expected
    assert min(kinds.values()) > 10, kinds


def test_a_window_the_previous_request_does_not_line_up_with_is_digested_message_by_message() -> None:
    """A request whose window starts at a message the previous request did not hold is digested message by message."""
    journal, seen = CallJournal(None, "s", {}), SeenRequest()  # type: ignore[arg-type]
    system = SystemMessage(content="You are a.")
    first = [system, *turn(1, "a"), *turn(2, "b")]
    assert _request(journal, first, TOOLS, "auto", None, seen)[0] == reference(first, TOOLS)[0]
    moved = [system, *turn(3, "a")]  # none of the previous messages
    assert _request(journal, moved, TOOLS, "auto", None, seen)[0] == reference(moved, TOOLS)[0]
    reordered = [system, moved[2], moved[1]]
    assert _request(journal, reordered, TOOLS, "auto", None, seen)[0] == reference(reordered, TOOLS)[0]


def test_each_message_is_hashed_once_over_a_growing_and_sliding_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request costs the hashing of the messages its client's previous request did not hold (the new ones) only,
    also when one message in the window is a new object every time (a client that rebuilds it): that one, and the one
    it replaced last time, are hashed again, the rest still come from the previous request."""
    hashed: list[Any] = []
    for cls in (SystemMessage, UserMessage, AssistantMessage, FunctionExecutionResultMessage):
        dump = cls.model_dump_json
        monkeypatch.setattr(cls, "model_dump_json", lambda self, _dump=dump, **kw: hashed.append(self) or _dump(self, **kw))
    journal, seen = CallJournal(None, "s", {}), SeenRequest()  # type: ignore[arg-type]
    system, conversation, start = SystemMessage(content="You are a."), [UserMessage(content="go", source="user")], 0
    previous: list[Any] = []
    for i in range(60):
        new = turn(i, "a")
        conversation.extend(new)
        start = max(0, len(conversation) - 40)  # a window of the 40 newest
        sent = [system, *conversation[start:]]
        if i >= 30:  # one message of the window rebuilt for every request
            sent[5] = sent[5].model_copy()
        hashed.clear()
        digest = _request(journal, sent, TOOLS, "auto", None, seen)[0]
        held = {id(m) for m in previous}
        assert [id(m) for m in hashed] == [id(m) for m in sent if id(m) not in held], i
        assert len(hashed) == (len(sent) if i == 0 else len(new) + 2 * (i > 30) + (i == 30)), i
        hashed.clear()
        assert digest == reference(sent, TOOLS)[0]
        previous = sent
