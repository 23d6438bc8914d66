"""The conversation store: SQLite on disk, crash safety, migrations, search, export, trimming."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from desktop.core.chat_records import (
    DEFAULT_TITLE,
    date_group,
    fit_context,
    prompt_messages,
    title_from_message,
)
from desktop.core.chat_schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from desktop.core.chats import (
    ChatStore,
    ChatStoreError,
    ConversationNotFound,
    Message,
    ReplyWriter,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore(tmp_path / "chats.sqlite3") as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection, to look at the file the way another program would."""
    return sqlite3.connect(path, isolation_level=None)


def test_default_database_is_in_the_chats_folder_with_wal(data_home: Path) -> None:
    with ChatStore() as opened:
        opened.create_conversation()
        path = opened.path
        fk = opened._require().execute("PRAGMA foreign_keys").fetchone()[0]
    assert path == data_home / "chats" / "conversations.sqlite3"
    assert fk == 1
    conn = raw(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS)
    finally:
        conn.close()


def test_conversation_fields_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with ChatStore(path) as first:
        made = first.create_conversation(system_prompt="Be brief.", model_id="smollm2")
        first.rename(made.id, "  Trip   planning ")
        first.set_system_prompt(made.id, "Answer in French.")
        first.set_model(made.id, "qwen2.5-0.5b")
        first.set_adapter_preset(made.id, "pirate")
        first.set_settings(made.id, {"temperature": 0.2, "top_k": 20})
    with ChatStore(path) as second:
        again = second.conversation(made.id)
        assert again.title == "Trip planning"
        assert again.system_prompt == "Answer in French."
        assert again.model_id == "qwen2.5-0.5b"
        assert again.adapter_preset == "pirate"
        assert again.settings == {"temperature": 0.2, "top_k": 20}
        assert again.created == made.created
        assert second.rename(made.id, "   ").title == DEFAULT_TITLE
        with pytest.raises(ConversationNotFound):
            second.conversation(made.id + 1)
        with pytest.raises(ConversationNotFound):
            second.set_model(made.id + 1, "x")


def test_closed_store_says_so(tmp_path: Path) -> None:
    closed = ChatStore(tmp_path / "c.sqlite3")
    with pytest.raises(ChatStoreError, match="closed"):
        closed.list_conversations()
    closed.open().close()
    closed.close()
    with pytest.raises(ChatStoreError, match="open it first"):
        closed.create_conversation()


def test_title_from_message() -> None:
    assert title_from_message("How do I bake sourdough bread at home without a scale?") == \
        "How do I bake sourdough bread"
    assert title_from_message("  # Explain\n\n```python\nprint(1)\n```") == "Explain print(1)"
    assert title_from_message("Hi!") == "Hi"
    assert title_from_message(" \n ") == ""
    long = title_from_message("a" * 200)
    assert len(long) == 61 and long.endswith("…")


def test_first_user_message_names_a_new_chat(store: ChatStore) -> None:
    chat = store.create_conversation()
    store.add_message(chat.id, "system", "You are terse.")
    assert store.conversation(chat.id).title == DEFAULT_TITLE
    store.add_message(chat.id, "user", "What is the capital of Australia, please?")
    assert store.conversation(chat.id).title == "What is the capital of Australia"
    store.add_message(chat.id, "user", "And of Canada?")
    assert store.conversation(chat.id).title == "What is the capital of Australia"
    named = store.create_conversation("My\nnotes ")
    assert named.title == "My notes"
    store.add_message(named.id, "user", "Something else entirely")
    assert store.conversation(named.id).title == "My notes"
    with pytest.raises(ValueError, match="role"):
        store.add_message(chat.id, "tool", "x")  # type: ignore[arg-type]


def test_renaming_a_preset_moves_the_conversations_that_use_it(store: ChatStore) -> None:
    pirate = store.create_conversation(adapter_preset="pirate")
    also = store.create_conversation(adapter_preset="pirate")
    other = store.create_conversation(adapter_preset="sql")
    plain = store.create_conversation()
    assert store.rename_adapter_preset("pirate", "buccaneer") == 2
    assert [store.conversation(c.id).adapter_preset for c in (pirate, also, other, plain)] == \
        ["buccaneer", "buccaneer", "sql", None]
    assert store.rename_adapter_preset("nobody-uses-this", "x") == 0


def test_reply_lifecycle(store: ChatStore) -> None:
    chat = store.create_conversation(model_id="smollm2")
    question = store.add_message(chat.id, "user", "Count to three.")
    reply = store.begin_reply(chat.id, "smollm2", {"temperature": 0.7, "max_tokens": 64})
    assert (reply.state, reply.content, reply.position) == ("streaming", "", question.position + 1)
    assert store.update_reply(reply.id, "One,")
    assert store.update_reply(reply.id, "One, two,")
    assert store.message(reply.id).content == "One, two,"
    done = store.finish_reply(reply.id, "One, two, three.", prompt_tokens=12, completion_tokens=6,
                              seconds_to_first_token=0.05, tokens_per_second=80.5)
    assert done.state == "complete"
    assert (done.prompt_tokens, done.completion_tokens) == (12, 6)
    assert (done.seconds_to_first_token, done.tokens_per_second) == (0.05, 80.5)
    assert done.settings == {"temperature": 0.7, "max_tokens": 64}
    # A late save from a worker must not overwrite the final text.
    assert not store.update_reply(reply.id, "One, two,")
    assert store.message(reply.id).content == "One, two, three."
    assert not store.update_reply(reply.id + 100, "nobody")
    failed = store.begin_reply(chat.id, "smollm2")
    gone = store.finish_reply(failed.id, "", "error", error="The engine stopped while answering.")
    assert (gone.state, gone.error) == ("error", "The engine stopped while answering.")
    with pytest.raises(ValueError, match="state"):
        store.finish_reply(failed.id, "", "streaming")
    assert [m.role for m in store.messages(chat.id)] == ["user", "assistant", "assistant"]


CHILD = """
import sys, time
from desktop.core.chats import ChatStore

store = ChatStore(sys.argv[1]).open()
chat = store.create_conversation()
store.add_message(chat.id, "user", "Tell me a long story.")
reply = store.begin_reply(chat.id, "smollm2", {"temperature": 0.7})
text = ""
for i in range(100000):
    text += f"word{i} "
    store.update_reply(reply.id, text)
    print(i, flush=True)
    time.sleep(0.005)
"""


def test_a_killed_app_loses_nothing_saved(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = -1
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen = int(line)
            if seen >= 25:
                proc.kill()  # SIGKILL: no chance to clean up
                break
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert seen >= 25, err
    if sys.platform != "win32":
        assert proc.returncode == -9
    with ChatStore(path) as reopened:
        assert reopened.recovered == 1
        [chat] = [entry.conversation for entry in reopened.list_conversations()]
        assert chat.title == "Tell me a long story"
        user, reply = reopened.messages(chat.id)
        assert (user.role, user.content) == ("user", "Tell me a long story.")
        assert reply.state == "stopped"
        assert reply.settings == {"temperature": 0.7}
        words = reply.content.split()
        # Every save the child reported is there (it may have made one more before dying).
        assert len(words) >= seen + 1
        assert words == [f"word{i}" for i in range(len(words))]
    with ChatStore(path) as third:
        assert third.recovered == 0


def test_migrates_a_database_from_an_older_version(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = raw(path)
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO conversations (title, created, updated, system_prompt, model_id, "
                 "settings) VALUES ('Old chat', 1.7e9, 1.7e9, 'Be kind.', 'm', '{\"top_p\": 0.9}')")
    conn.execute("INSERT INTO messages (conversation_id, position, role, content, created, state) "
                 "VALUES (1, 0, 'user', 'hello from v1', 1.7e9, 'complete')")
    conn.execute("INSERT INTO messages (conversation_id, position, role, content, created, state) "
                 "VALUES (1, 1, 'assistant', 'half a rep', 1.7e9, 'streaming')")
    assert "adapter_preset" not in [r[1] for r in conn.execute("PRAGMA table_info(conversations)")]
    conn.close()
    with ChatStore(path) as store:
        assert schema_version(store._require()) == SCHEMA_VERSION
        old = store.conversation(1)
        assert (old.title, old.system_prompt, old.settings) == ("Old chat", "Be kind.",
                                                               {"top_p": 0.9})
        assert old.adapter_preset is None
        assert store.set_adapter_preset(1, "formal").adapter_preset == "formal"
        user, reply = store.messages(1)
        assert user.content == "hello from v1"
        assert (reply.content, reply.state) == ("half a rep", "stopped")


def test_a_failing_migration_leaves_the_last_good_version(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("step failed")

    conn = raw(tmp_path / "m.sqlite3")
    try:
        with pytest.raises(RuntimeError, match="step failed"):
            migrate(conn, (MIGRATIONS[0], broken))
        assert schema_version(conn) == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "conversations" in tables and "half_done" not in tables
    finally:
        conn.close()


def test_a_newer_or_damaged_database_is_refused_plainly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    conn = raw(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(ChatStoreError, match="newer version of NoMoat"):
        ChatStore(newer).open()
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database at all" * 200)
    store = ChatStore(damaged)
    with pytest.raises(ChatStoreError, match="move it elsewhere"):
        store.open()
    with pytest.raises(ChatStoreError, match="closed"):
        store.messages(1)


def test_search_titles_and_messages(tmp_path: Path) -> None:
    ticks = iter(range(1_700_000_000, 1_700_100_000, 60))
    with ChatStore(tmp_path / "s.sqlite3", clock=lambda: float(next(ticks))) as store:
        recipes = store.create_conversation("Sourdough recipes")
        store.add_message(recipes.id, "user", "How long should dough rest?")
        physics = store.create_conversation("Physics")
        store.add_message(physics.id, "user", "Explain why the SOURDOUGH rises, with CO2.")
        store.add_message(physics.id, "assistant", "Yeast makes gas; 100% of it is CO2_gas.")
        german = store.create_conversation("Deutsch")
        store.add_message(german.id, "user", "Ich esse gern ÄPFEL und Straße")

        hits = store.search("sourdough")
        assert [h.conversation.id for h in hits] == [physics.id, recipes.id]  # newest first
        assert hits[0].message_id is not None and "SOURDOUGH" in hits[0].snippet
        assert hits[1].message_id is None and hits[1].snippet == "Sourdough recipes"
        assert [h.conversation.id for h in store.search("äpfel")] == [german.id]
        assert [h.conversation.id for h in store.search("STRASSE")] == [german.id]
        # LIKE wildcards mean nothing here.
        assert [h.conversation.id for h in store.search("100%")] == [physics.id]
        assert store.search("%") and store.search("1_0") == []
        assert [h.conversation.id for h in store.search("co2_")] == [physics.id]
        assert store.search("   ") == []
        assert store.search("nothing like this") == []


def test_delete_removes_the_messages_too(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with ChatStore(path) as store:
        doomed = store.create_conversation()
        kept = store.create_conversation()
        for chat in (doomed, kept):
            store.add_message(chat.id, "user", "hi")
            reply = store.begin_reply(chat.id)
            store.finish_reply(reply.id, "hello")
        assert store.delete(doomed.id)
        assert not store.delete(doomed.id)
        assert [e.conversation.id for e in store.list_conversations()] == [kept.id]
        assert store.messages(doomed.id) == []
    conn = raw(path)
    try:
        counts = dict(conn.execute("SELECT conversation_id, COUNT(*) FROM messages "
                                   "GROUP BY conversation_id").fetchall())
    finally:
        conn.close()
    assert counts == {kept.id: 2}


def test_truncate_after_for_edit_and_regenerate(store: ChatStore) -> None:
    chat = store.create_conversation()
    first = store.add_message(chat.id, "user", "Name a fruit.")
    answer = store.begin_reply(chat.id)
    store.finish_reply(answer.id, "Apple.")
    second = store.add_message(chat.id, "user", "Another?")
    later = store.begin_reply(chat.id)
    store.finish_reply(later.id, "Pear.")

    # Regenerate the last reply: drop what came after the question it answered.
    assert store.truncate_after(second.id) == 1
    again = store.begin_reply(chat.id)
    assert again.position == second.position + 1
    assert again.id > later.id  # a stale id from the old reply never points at the new one
    store.finish_reply(again.id, "Banana.")

    # Edit the first question and send it again: everything after it goes.
    store.edit_message(first.id, "Name a vegetable.")
    assert store.truncate_after(first.id) == 3
    assert [(m.role, m.content) for m in store.messages(chat.id)] == [("user", "Name a vegetable.")]
    assert store.truncate_after(first.id) == 0
    with pytest.raises(ConversationNotFound):
        store.truncate_after(later.id)
    with pytest.raises(ConversationNotFound):
        store.edit_message(later.id, "x")


def test_exports(store: ChatStore) -> None:
    chat = store.create_conversation(system_prompt="You are a poet.", model_id="smollm2",
                                     settings={"temperature": 0.9})
    store.add_message(chat.id, "user", "Write a haiku about rain.")
    reply = store.begin_reply(chat.id, "smollm2", {"temperature": 0.9, "top_p": 0.95})
    store.finish_reply(reply.id, "Soft rain on the roof", prompt_tokens=20, completion_tokens=7,
                       seconds_to_first_token=0.12, tokens_per_second=55.0)
    cut = store.begin_reply(chat.id, "qwen2.5-0.5b", {"temperature": 0.1})
    store.finish_reply(cut.id, "Drops", "stopped")

    document = json.loads(store.export_json(chat.id))
    assert document["title"] == "Write a haiku about rain"
    assert document["system_prompt"] == "You are a poet."
    assert document["settings"] == {"temperature": 0.9}
    datetime.fromisoformat(document["created"])
    user, answer, stopped = document["messages"]
    assert (user["role"], user["content"], user["model"]) == ("user", "Write a haiku about rain.",
                                                              None)
    assert answer["model"] == "smollm2"
    assert answer["settings"] == {"temperature": 0.9, "top_p": 0.95}
    assert (answer["prompt_tokens"], answer["completion_tokens"]) == (20, 7)
    assert (answer["seconds_to_first_token"], answer["tokens_per_second"]) == (0.12, 55.0)
    assert answer["state"] == "complete"
    assert datetime.fromisoformat(answer["created"]).tzinfo is not None
    assert (stopped["model"], stopped["state"]) == ("qwen2.5-0.5b", "stopped")

    markdown = store.export_markdown(chat.id)
    lines = markdown.splitlines()
    assert lines[0] == "# Write a haiku about rain"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## System prompt", "## User", "## Assistant (smollm2)",
                        "## Assistant (qwen2.5-0.5b)"]
    assert "Soft rain on the roof" in markdown and "*(stopped before the end)*" in markdown


def test_date_groups_from_a_fixed_now() -> None:
    now = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)

    def at(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)  # type: ignore[misc]

    assert date_group(at(2025, 3, 15, 0, 1), now) == "Today"
    assert date_group(at(2025, 3, 16, 9, 0), now) == "Today"  # a clock that was ahead
    assert date_group(at(2025, 3, 14, 23, 59), now) == "Yesterday"
    assert date_group(at(2025, 3, 13, 12, 0), now) == "Previous 7 days"
    assert date_group(at(2025, 3, 8, 0, 0), now) == "Previous 7 days"
    assert date_group(at(2025, 3, 7, 23, 0), now) == "Previous 30 days"
    assert date_group(at(2025, 2, 13, 8, 0), now) == "Previous 30 days"
    assert date_group(at(2025, 2, 12, 8, 0), now) == "February 2025"
    assert date_group(at(2024, 12, 31, 8, 0), now) == "December 2024"
    # Calendar days are counted where the user is, not in UTC.
    east = datetime(2025, 3, 15, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert date_group(at(2025, 3, 14, 21, 0), east) == "Yesterday"
    assert date_group(at(2025, 3, 14, 21, 0), east.astimezone(UTC)) == "Today"


def test_list_conversations_newest_first_with_groups(tmp_path: Path) -> None:
    now = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
    when = [now - timedelta(days=40), now - timedelta(days=3), now - timedelta(days=1),
            now - timedelta(hours=1)]
    times = iter(w.timestamp() for w in when)
    with ChatStore(tmp_path / "l.sqlite3", clock=lambda: next(times)) as store:
        for title in ("Oldest", "Middle", "Recent", "Newest"):
            store.create_conversation(title)
        listed = store.list_conversations(now)
    assert [(e.conversation.title, e.group) for e in listed] == [
        ("Newest", "Today"), ("Recent", "Yesterday"), ("Middle", "Previous 7 days"),
        ("Oldest", "February 2025")]


def test_two_threads_write_at_once(store: ChatStore) -> None:
    shared = store.create_conversation("Shared")
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            own = store.create_conversation(name)
            for i in range(60):
                store.add_message(shared.id, "user", f"{name} {i}")
                reply = store.begin_reply(own.id)
                store.update_reply(reply.id, f"{name} partial {i}")
                store.finish_reply(reply.id, f"{name} done {i}")
                store.list_conversations()
                store.search(name)
        except (sqlite3.Error, ChatStoreError, LookupError, ValueError) as exc:
            # Handed to the test thread, which asserts there were none.
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    messages = store.messages(shared.id)
    assert [m.position for m in messages] == list(range(120))
    for name in ("left", "right"):
        assert [m.content for m in messages if m.content.startswith(name)] == \
            [f"{name} {i}" for i in range(60)]
    for entry in store.list_conversations():
        if entry.conversation.title in ("left", "right"):
            replies = store.messages(entry.conversation.id)
            assert {m.state for m in replies} == {"complete"} and len(replies) == 60


def _turn(role: str, words: int) -> dict[str, str]:
    return {"role": role, "content": " ".join(["w"] * words)}


def test_fit_context_keeps_the_system_prompt_and_newest_turns() -> None:
    def count(text: str) -> int:
        return len(text.split())

    chat = [_turn("system", 10), _turn("user", 20), _turn("assistant", 20), _turn("user", 20),
            _turn("assistant", 20), _turn("user", 5)]
    everything = fit_context(chat, count, budget=1000, per_message=1)
    assert (everything.messages, everything.left_out, everything.tokens) == (chat, 0, 101)
    assert everything.fits

    trimmed = fit_context(chat, count, budget=60, per_message=1)
    # system 11 + user 6 + assistant 21 = 38; the user turn of 21 would make 59, it fits;
    # the next assistant would not. The kept part starts with a user turn.
    assert trimmed.messages == [chat[0], chat[3], chat[4], chat[5]]
    assert (trimmed.left_out, trimmed.tokens, trimmed.fits) == (2, 59, True)

    starts_with_reply = fit_context(chat, count, budget=45, per_message=1)
    # system, assistant 21, user 6 fit (38), but a prompt must not open with the assistant.
    assert starts_with_reply.messages == [chat[0], chat[5]]
    assert starts_with_reply.left_out == 4 and starts_with_reply.tokens == 17

    tight = fit_context(chat, count, budget=12, per_message=1)
    assert tight.messages == [chat[0], chat[5]]  # the newest message always goes in
    assert not tight.fits


def test_prompt_messages_and_fit_context_take_stored_messages(store: ChatStore) -> None:
    chat = store.create_conversation(system_prompt="Be brief.")
    store.add_message(chat.id, "user", "one")
    failed = store.begin_reply(chat.id)
    store.finish_reply(failed.id, "", "error", error="boom")
    stopped = store.begin_reply(chat.id)
    store.finish_reply(stopped.id, "partial answer", "stopped")
    store.add_message(chat.id, "user", "two")
    store.begin_reply(chat.id)  # still streaming: not part of the prompt
    messages = store.messages(chat.id)
    assert prompt_messages(store.conversation(chat.id), messages) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "one"},
        {"role": "assistant", "content": "partial answer"}, {"role": "user", "content": "two"}]
    fit = fit_context(messages[:4], lambda text: len(text), budget=10, per_message=0)
    assert all(isinstance(m, Message) for m in fit.messages)
    assert [m.content for m in fit.messages] == ["two"] and fit.left_out == 3


def test_reply_writer_saves_at_most_once_per_interval(store: ChatStore) -> None:
    now = [100.0]
    chat = store.create_conversation()
    reply = store.begin_reply(chat.id)
    writer = ReplyWriter(store, reply.id, interval=1.0, clock=lambda: now[0])
    assert not writer.append("Hel")
    now[0] += 0.5
    assert not writer.append("lo")
    assert store.message(reply.id).content == ""
    now[0] += 0.6
    assert writer.append(",")
    assert store.message(reply.id).content == "Hello,"
    assert not writer.append(" world")
    writer.flush()  # on stop, save at once
    assert store.message(reply.id).content == "Hello, world"
    done = writer.finish("stopped", completion_tokens=4)
    assert (done.content, done.state, done.completion_tokens) == ("Hello, world", "stopped", 4)
