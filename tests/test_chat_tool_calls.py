"""Tool calls saved with the reply they belong to: written as they happen, recovered after a
crash, sent back to the model in OpenAI's shape, and exported."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from desktop.core.chat_records import prompt_messages
from desktop.core.chat_schema import MIGRATIONS, migrate
from desktop.core.chats import ChatStore, ReplyWriter
from desktop.core.tool_calls import CallState, ToolCall, ToolStep, steps_from_text


def _call(state: CallState = CallState.DONE, result: str = "The note says hello.") -> ToolCall:
    call = ToolCall("call_1", "read_note", "notes", "read_note", '{"name": "a.txt"}')
    if state in (CallState.ASKING, CallState.RUNNING):
        call.state = state
    else:
        call.finish(state, result)
    return call


def test_calls_are_saved_as_they_happen_and_sent_back_in_order(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "What does a.txt say?")
        reply = store.begin_reply(chat.id, "smollm2")
        writer = ReplyWriter(store, reply.id, interval=3600)
        writer.append("Let me look.")
        call = _call(CallState.ASKING)
        writer.begin_calls([call])
        saved = store.message(reply.id)  # saved at once, not at the next interval
        assert saved.tool_steps[0].text == "Let me look."
        assert saved.tool_steps[0].calls[0].state == CallState.ASKING
        assert saved.content == ""
        call.finish(CallState.DONE, "hello")
        writer.save_calls()
        assert store.message(reply.id).tool_steps[0].calls[0].result == "hello"
        writer.append("It says hello.")
        final = writer.finish("complete")
        assert final.content == "It says hello."
        chat_messages = prompt_messages(store.conversation(chat.id), store.messages(chat.id))
    assert [m["role"] for m in chat_messages] == ["user", "assistant", "tool", "assistant"]
    assert chat_messages[1]["content"] == "Let me look."
    assert chat_messages[1]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "read_note", "arguments": '{"name": "a.txt"}'}}]
    assert chat_messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "hello"}
    assert chat_messages[3] == {"role": "assistant", "content": "It says hello."}


def test_denied_and_failed_calls_reach_the_model_as_errors() -> None:
    denied, failed = _call(CallState.DENIED, ""), _call(CallState.FAILED, "no such note")
    assert "did not allow" in denied.result_message()["content"]
    assert failed.result_message()["content"] == "Error: no such note"


def test_a_crash_mid_call_leaves_the_call_stopped_and_everything_before_it(
        tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = ChatStore(path).open()
    chat = store.create_conversation()
    store.add_message(chat.id, "user", "Read a.txt")
    reply = store.begin_reply(chat.id)
    writer = ReplyWriter(store, reply.id)
    writer.append("Reading.")
    writer.begin_calls([_call(CallState.RUNNING)])
    store._conn.close()  # type: ignore[union-attr] # as a kill would: no finish, no close
    store._conn = None
    with ChatStore(path) as reopened:
        assert reopened.recovered == 1
        user, saved = reopened.messages(chat.id)
        assert user.content == "Read a.txt"
        assert saved.state == "stopped"
        [step] = saved.tool_steps
        assert step.text == "Reading."
        assert step.calls[0].state == CallState.STOPPED
        assert "closed before this call ended" in step.calls[0].result


def test_exports_show_each_call_its_arguments_and_its_result(tmp_path: Path) -> None:
    with ChatStore(tmp_path / "c.sqlite3") as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "What does a.txt say?")
        reply = store.begin_reply(chat.id)
        writer = ReplyWriter(store, reply.id)
        writer.begin_calls([_call(result="```inner fence``` hello")])
        writer.append("It says hello.")
        writer.finish()
        markdown = store.export_markdown(chat.id)
        document = json.loads(store.export_json(chat.id))
    assert "Tool call: read_note (notes): done" in markdown
    assert '{"name": "a.txt"}' in markdown
    assert "````text\n```inner fence``` hello\n````" in markdown  # its own fence stays inside
    assert markdown.index("Tool call") < markdown.index("It says hello.")
    steps = document["messages"][1]["tool_steps"]
    assert steps[0]["calls"][0]["result"] == "```inner fence``` hello"
    assert steps[0]["calls"][0]["state"] == "done"


def test_a_database_from_before_tool_calls_opens_with_its_replies_whole(
        tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=3)
    conn.execute("INSERT INTO conversations (title, created, updated) VALUES ('Old', 1, 1)")
    conn.execute("INSERT INTO messages (conversation_id, position, role, content, created) "
                 "VALUES (1, 0, 'assistant', 'An old reply.', 1)")
    conn.close()
    with ChatStore(path) as store:
        [message] = store.messages(1)
        assert (message.content, message.tool_steps) == ("An old reply.", ())
        assert message.as_chat_messages() == [{"role": "assistant", "content": "An old reply."}]


def _odd(rng: random.Random, depth: int = 0) -> object:
    choices = [None, True, 3, -1.5, "", "x" * rng.randint(0, 300), "\u202e\x00", [], {}]
    if depth < 3:
        choices += [[_odd(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    {rng.choice(["text", "calls", "state", "id", "result", "arguments"]):
                     _odd(rng, depth + 1) for _ in range(rng.randint(0, 4))}]
    return rng.choice(choices)


def test_saved_calls_that_are_damaged_never_stop_the_chat_from_opening() -> None:
    rng = random.Random(20261206)
    for _ in range(400):
        text = json.dumps(_odd(rng)) if rng.random() < 0.8 else "{not json" * rng.randint(0, 2)
        steps = steps_from_text(text)
        assert all(isinstance(s, ToolStep) for s in steps)
        for step in steps:
            for call in step.calls:
                assert isinstance(call.state, CallState)
                call.result_message()  # every call can be sent back to the model
