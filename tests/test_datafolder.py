"""Moving the data folder: the choice is checked, and the next start copies the data across."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from desktop.core import datafolder
from desktop.core.chats import DATABASE_NAME, ChatStore
from desktop.core.datafolder import DataFolderError, open_data_folder, plan_move
from desktop.core.library import REGISTRY_FILE
from desktop.core.paths import ENV_DATA, get_paths
from desktop.core.settings import load_settings, save_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMOAT_HOME", str(tmp_path / "home"))
    # Whatever a test sets NOMOAT_DATA to is undone after it.
    monkeypatch.setenv(ENV_DATA, "unset")
    monkeypatch.delenv(ENV_DATA)
    return tmp_path / "home"


def fill(home: Path) -> ChatStore:
    """Data as a user leaves it: a conversation (the store left open, its last writes still in
    the write-ahead log), an adapter, the registry and a model."""
    store = ChatStore().open()
    conversation = store.create_conversation(system_prompt="Be brief.")
    store.add_message(conversation.id, "user", "Hello there")
    (home / "adapters" / "style").mkdir(parents=True)
    (home / "adapters" / "style" / "adapter.gguf").write_bytes(b"GGUF adapter")
    (home / "adapters" / "presets.json").write_text('{"presets": []}')
    (home / REGISTRY_FILE).write_text('{"models": {}}')
    (home / "models").mkdir()
    (home / "models" / "tiny.gguf").write_bytes(b"GGUF model")
    return store


def conversations(store: ChatStore) -> list:
    return [entry.conversation for entry in store.list_conversations()]


def move_to(target: Path) -> None:
    settings = load_settings()
    datafolder.choose(settings, plan_move(target))
    save_settings(settings)


def test_a_chosen_folder_is_checked(home, tmp_path) -> None:
    home.mkdir()
    with pytest.raises(DataFolderError, match="whole path"):
        plan_move("relative/folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataFolderError, match="is a file"):
        plan_move(tmp_path / "file")
    with pytest.raises(DataFolderError, match="already keeps its data"):
        plan_move(home)
    with pytest.raises(DataFolderError, match="inside the data folder"):
        plan_move(home / "chats" / "elsewhere")
    (home / "chats").mkdir()
    (home / "chats" / DATABASE_NAME).write_bytes(b"")
    with pytest.raises(DataFolderError, match=f"^{home / 'chats'} is inside the data folder"):
        plan_move(home / "chats")  # named as chosen, not with a NoMoat folder inside
    # An empty or new folder takes the data; one with other files gets a NoMoat folder inside.
    assert plan_move(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "photos").mkdir()
    assert plan_move(tmp_path / "disk") == tmp_path / "disk" / "NoMoat"
    (tmp_path / "disk" / "NoMoat").mkdir()
    (tmp_path / "disk" / "NoMoat" / "notes.txt").write_text("mine")
    with pytest.raises(DataFolderError, match="other files"):
        plan_move(tmp_path / "disk")
    (tmp_path / "old" / "chats").mkdir(parents=True)  # NoMoat data from before: used as it is
    (tmp_path / "old" / "chats" / "x.txt").write_text("not empty, and used as it is")
    assert plan_move(tmp_path / "old") == tmp_path / "old"


def test_the_next_start_copies_the_data_and_uses_the_new_folder(home, tmp_path) -> None:
    store = fill(home)
    target = tmp_path / "bigger disk" / "NoMoat"
    move_to(target)
    assert datafolder.pending(load_settings()) == target
    assert get_paths().data == home  # nothing moves while NoMoat runs
    try:
        messages = open_data_folder()  # the next start, the old store still open
    finally:
        store.close()

    assert os.environ[ENV_DATA] == str(target)
    assert get_paths().chats == target / "chats"
    assert "now keeps your conversations and adapters in" in messages[0]
    assert f"Your models stay in {home / 'models'}" in messages[0]
    with ChatStore() as moved:
        (conversation,) = conversations(moved)
        assert conversation.system_prompt == "Be brief."
        assert [m.content for m in moved.messages(conversation.id)] == ["Hello there"]
    assert (target / "adapters" / "style" / "adapter.gguf").read_bytes() == b"GGUF adapter"
    assert (target / "adapters" / "presets.json").is_file()
    assert (target / REGISTRY_FILE).is_file()
    assert not (target / "models").exists()  # models are not copied ...
    settings = load_settings()
    assert settings.models_dir == str(home / "models")  # ... they stay installed where they are
    assert (settings.data_dir, settings.data_dir_from) == (str(target), None)
    with ChatStore(home / "chats" / DATABASE_NAME) as old:  # the old folder is left as it was
        assert len(conversations(old)) == 1

    # Later starts use the new folder and move nothing.
    os.environ.pop(ENV_DATA)
    assert open_data_folder() == []
    assert get_paths().data == target


def test_a_folder_that_holds_nomoat_data_is_used_as_it_is(home, tmp_path) -> None:
    fill(home).close()
    other = tmp_path / "other"
    with ChatStore(other / "chats" / DATABASE_NAME) as there:
        there.create_conversation(system_prompt="From the other folder")
    move_to(other)
    (message,) = open_data_folder()
    assert "uses the conversations and adapters in" in message
    with ChatStore() as used:
        assert [c.system_prompt for c in conversations(used)] == ["From the other folder"]
    assert (other / "adapters" / "style" / "adapter.gguf").is_file()  # what it lacked is added


def test_a_move_that_fails_leaves_everything_on_the_old_folder(home, tmp_path) -> None:
    fill(home).close()
    target = tmp_path / "target"
    move_to(target)
    target.mkdir()
    (target / "chats").write_text("a file where the folder must go")
    (message,) = open_data_folder()
    assert f"could not be moved to {target}" in message
    assert f"goes on using {home}" in message
    assert ENV_DATA not in os.environ and get_paths().data == home
    settings = load_settings()
    assert (settings.data_dir, settings.data_dir_from, settings.models_dir) == (None, None, None)
    with ChatStore() as store:
        assert len(conversations(store)) == 1


def test_an_interrupted_copy_is_finished_by_the_next_start(home, tmp_path) -> None:
    fill(home).close()
    target = tmp_path / "target"
    move_to(target)
    (target / "chats").mkdir(parents=True)  # stopped before the database was whole
    (target / "chats" / (DATABASE_NAME + ".moving")).write_bytes(b"half a database")
    open_data_folder()
    with ChatStore() as store:
        assert len(conversations(store)) == 1
    assert not (target / "chats" / (DATABASE_NAME + ".moving")).exists()
    with sqlite3.connect(target / "chats" / DATABASE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_move_can_be_called_off_before_the_next_start(home, tmp_path) -> None:
    fill(home).close()
    move_to(tmp_path / "target")
    settings = load_settings()
    datafolder.cancel(settings)
    save_settings(settings)
    assert datafolder.pending(load_settings()) is None
    assert open_data_folder() == []
    assert get_paths().data == home and not (tmp_path / "target").exists()


def test_a_data_folder_that_is_gone_is_not_made_again(home, tmp_path) -> None:
    fill(home).close()
    unplugged = tmp_path / "usb disk" / "NoMoat"
    move_to(unplugged)
    open_data_folder()
    assert get_paths().data == unplugged
    os.environ.pop(ENV_DATA)
    shutil.rmtree(tmp_path / "usb disk")  # the disk is not connected at the next start
    (message,) = open_data_folder()
    assert f"The data folder {unplugged} cannot be found" in message
    assert f"NoMoat uses {home}" in message
    assert get_paths().data == home and not unplugged.exists()
    assert load_settings().data_dir == str(unplugged)  # used again once it is back
