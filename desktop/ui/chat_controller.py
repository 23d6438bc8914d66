"""What happens when the user sends, stops, regenerates or edits: the turn, off the GUI thread.

A turn runs on a worker: it writes the user message, begins the reply row, streams the reply
from the engine, saves it as it grows (ReplyWriter, about once a second) and finishes it. The
GUI only reads the turn's text buffer on a timer (about 30 times a second) and gets signals for
the start and the end, so nothing the engine or the database does can block the window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.client.api import EngineError, StreamEnd, Thought
from desktop.core.chats import ChatStore, Conversation, Message, ReplyWriter
from desktop.ui.engine import EngineController
from desktop.ui.workers import Workers

PAINT_INTERVAL_MS = 33
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens",
                 "seed", "thinking_budget")


@dataclass
class Turn:
    """One request for a reply, shared between the GUI thread and its worker."""

    kind: str  # "send", "regenerate" or "edit"
    conversation_id: int | None
    text: str = ""
    anchor_id: int | None = None  # the user message that is edited or answered again
    model: str | None = None
    system_prompt: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    adapter_preset: str | None = None  # the LoRA preset in use, remembered by the conversation
    thinking: bool = True  # whether a reasoning model may think before it answers
    cancelled: threading.Event = field(default_factory=threading.Event)
    reply_id: int | None = None  # the reply's row, once the worker has begun it
    taken: str = ""  # all the text the GUI has taken so far (GUI thread only)
    thought_taken: str = ""  # all the thinking the GUI has taken so far (GUI thread only)
    thought_seconds: float | None = None  # set once the answer begins after the thinking
    thought_shown: bool = False  # whether the GUI has been told how long the thinking took
    _pieces: list[str] = field(default_factory=list)
    _thoughts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, piece: str) -> None:
        with self._lock:
            self._pieces.append(piece)

    def push_thought(self, piece: str) -> None:
        with self._lock:
            self._thoughts.append(piece)

    def take(self) -> str:
        with self._lock:
            text = "".join(self._pieces)
            self._pieces.clear()
        self.taken += text
        return text

    def take_thought(self) -> str:
        with self._lock:
            text = "".join(self._thoughts)
            self._thoughts.clear()
        self.thought_taken += text
        return text


class _TurnSignals(QObject):
    ready = Signal(object, object)  # conversation, messages shown before the reply
    finished = Signal(object, object)  # final reply Message, dropped-message count
    failed = Signal(object, str)  # reply Message or None, message


class ChatController(QObject):
    """Conversations and turns for the chat page."""

    conversationsChanged = Signal()
    conversationOpened = Signal(object, object)  # Conversation, list[Message]
    replyStarted = Signal(object, object)  # Conversation, list[Message] incl. streaming reply
    replyText = Signal(str)  # new text for the streaming reply
    replyThinking = Signal(str)  # new thinking for the streaming reply
    replyThought = Signal(float)  # the thinking ended after this many seconds; the answer begins
    replyFinished = Signal(object)  # Message
    replyFailed = Signal(str)
    contextTrimmed = Signal(int)
    busyChanged = Signal(bool)

    def __init__(self, store: ChatStore, engine: EngineController, workers: Workers,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.engine = engine
        self.workers = workers
        self.conversation: Conversation | None = None
        self.turn: Turn | None = None
        self.model: str | None = None
        self.sampling: dict[str, Any] = {}
        self.thinking = True  # the open chat's switch: may a reasoning model think first
        # Set by the adapters panel: the preset in use, and a call that runs on the turn's
        # worker before each reply so the engine has the adapter stack the panel shows.
        self.adapter_preset: str | None = None
        self.before_reply: Callable[[], None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._paint)
        self._signals = _TurnSignals(self)
        self._signals.ready.connect(self._on_ready)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)

    @property
    def busy(self) -> bool:
        return self.turn is not None

    # -- conversations ---------------------------------------------------------------------------
    def new_conversation(self) -> None:
        """Show an empty chat; the conversation is written when its first message is sent.

        A reply being written goes on meanwhile (one at a time: sending waits for it)."""
        self.conversation = None
        self.thinking = True
        self.conversationOpened.emit(None, [])

    def open_conversation(self, conversation_id: int) -> None:
        """Show another conversation; a reply being written goes on and is saved as before."""

        def load() -> tuple[Conversation, list[Message]]:
            return (self.store.conversation(conversation_id),
                    self.store.messages(conversation_id))

        self.workers.submit(load, on_done=self._opened, serial=True)

    def _opened(self, result: tuple[Conversation, list[Message]]) -> None:
        self.conversation = result[0]
        self.thinking = thinking_of(result[0])
        self.conversationOpened.emit(*result)

    def set_thinking(self, enabled: bool) -> None:
        """The chat's thinking switch, kept with the conversation (a new chat keeps it when
        its first message is sent)."""
        self.thinking = enabled
        if self.conversation is None:
            return
        conversation = self.conversation
        settings = {**conversation.settings, "thinking": enabled}
        self.workers.submit(self.store.set_settings, conversation.id, settings,
                            on_done=self._conversation_updated, serial=True)

    def rename(self, conversation_id: int, title: str) -> None:
        self.workers.submit(self.store.rename, conversation_id, title,
                            on_done=lambda _: self.conversationsChanged.emit(), serial=True)

    def delete(self, conversation_id: int) -> bool:
        """Delete a conversation; False for the one a reply is being written in (stop it first)."""
        if self.turn is not None and self.turn.conversation_id == conversation_id:
            return False
        if self.conversation is not None and self.conversation.id == conversation_id:
            self.new_conversation()
        self.workers.submit(self.store.delete, conversation_id,
                            on_done=lambda _: self.conversationsChanged.emit(), serial=True)
        return True

    def set_system_prompt(self, text: str) -> None:
        if self.conversation is None:
            return
        cid = self.conversation.id
        self.workers.submit(self.store.set_system_prompt, cid, text,
                            on_done=self._conversation_updated, serial=True)

    def _conversation_updated(self, conversation: Conversation) -> None:
        if self.conversation is not None and conversation.id == self.conversation.id:
            self.conversation = conversation

    # -- turns -----------------------------------------------------------------------------------
    def send(self, text: str, system_prompt: str = "") -> bool:
        text = text.strip()
        if not text or self.busy:
            return False
        self._start(Turn("send", self._cid(), text=text, system_prompt=system_prompt))
        return True

    def regenerate(self, user_message_id: int) -> None:
        if not self.busy and self.conversation is not None:
            self._start(Turn("regenerate", self.conversation.id, anchor_id=user_message_id))

    def edit_and_resend(self, user_message_id: int, text: str) -> None:
        if text.strip() and not self.busy and self.conversation is not None:
            self._start(Turn("edit", self.conversation.id, text=text.strip(),
                             anchor_id=user_message_id))

    def stop(self) -> None:
        if self.turn is not None:
            self.turn.cancelled.set()

    def _cid(self) -> int | None:
        return self.conversation.id if self.conversation is not None else None

    def _start(self, turn: Turn) -> None:
        turn.model = self.model
        turn.sampling = {k: v for k, v in self.sampling.items() if k in SAMPLING_KEYS}
        turn.adapter_preset = self.adapter_preset
        turn.thinking = self.thinking
        self.turn = turn
        self.busyChanged.emit(True)
        self.workers.submit(self._run_turn, turn, self._signals)

    def _run_turn(self, turn: Turn, signals: _TurnSignals) -> None:
        """The worker side of a turn; reports through *signals* only."""
        store = self.store
        reply: Message | None = None
        writer: ReplyWriter | None = None
        try:
            if turn.conversation_id is None:
                conversation = store.create_conversation(
                    system_prompt=turn.system_prompt, model_id=turn.model,
                    settings={} if turn.thinking else {"thinking": False})
                turn.conversation_id = conversation.id
            cid = turn.conversation_id
            if turn.kind == "send":
                store.add_message(cid, "user", turn.text)
            elif turn.kind == "edit" and turn.anchor_id is not None:
                store.edit_message(turn.anchor_id, turn.text)
                store.truncate_after(turn.anchor_id)
            elif turn.anchor_id is not None:
                store.truncate_after(turn.anchor_id)
            if turn.model:
                store.set_model(cid, turn.model)
            conversation = store.conversation(cid)
            if conversation.adapter_preset != turn.adapter_preset:
                conversation = store.set_adapter_preset(cid, turn.adapter_preset)
            history: list[dict[str, str]] = [
                m.as_chat() for m in store.messages(cid)
                if m.role != "system" and (m.content or m.role == "user")]
            reply = store.begin_reply(cid, turn.model, turn.sampling)
            turn.reply_id = reply.id
            signals.ready.emit(conversation, store.messages(cid))
            writer = ReplyWriter(store, reply.id)
            system = ([{"role": "system", "content": conversation.system_prompt}]
                      if conversation.system_prompt else [])
            before_reply = self.before_reply
            if before_reply is not None:
                before_reply()
            dropped, end, timings = 0, None, {}
            while True:
                try:
                    end, timings = self._stream(turn, writer, system + history[dropped:])
                    break
                except EngineError as exc:
                    # The oldest turns leave the prompt (the system prompt stays) until it fits.
                    if (exc.code == "context_length_exceeded" and not writer.text
                            and len(history) - dropped > 1):
                        dropped += 2 if len(history) - dropped > 2 else 1
                        continue
                    raise
            usage = end.usage if end is not None and end.usage else {}
            final = writer.finish(
                "stopped" if turn.cancelled.is_set() else "complete",
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"), **timings)
            signals.finished.emit(final, dropped)
        except Exception as exc:  # the window shows the reason; the saved text stays
            message = str(exc) if isinstance(exc, EngineError) else f"Something went wrong: {exc}"
            saved = None
            if writer is not None:
                try:
                    saved = writer.finish("error", error=message)
                except Exception:  # the store itself failed; the window still says why
                    saved = None
            signals.failed.emit(saved, message)

    def _stream(self, turn: Turn, writer: ReplyWriter,
                messages: list[dict[str, str]]) -> tuple[StreamEnd | None, dict[str, float]]:
        """Stream one reply into *writer*; return how it ended and its timings."""
        client = self.engine.chat_client()
        started = time.perf_counter()
        first = last = thought_at = None
        params = dict(turn.sampling)
        if not turn.thinking:
            params["enable_thinking"] = False
        stream = client.chat_stream(messages, model=turn.model, thoughts=True, **params)
        end = None
        try:
            for piece in stream:
                if turn.cancelled.is_set():
                    break
                if isinstance(piece, StreamEnd):
                    end = piece
                    continue
                last = time.perf_counter()
                first = first or last
                if isinstance(piece, Thought):
                    thought_at = thought_at or last
                    writer.append_thinking(piece.text)
                    turn.push_thought(piece.text)
                    continue
                if thought_at is not None and turn.thought_seconds is None:
                    turn.thought_seconds = last - thought_at
                writer.append(piece)
                turn.push(piece)
        finally:
            stream.close()  # a stopped reply disconnects, so the engine stops generating
        timings: dict[str, float] = {}
        if thought_at is not None:
            if turn.thought_seconds is None and last is not None:  # thought, never answered
                turn.thought_seconds = last - thought_at
            timings["thought_seconds"] = turn.thought_seconds or 0.0
        if first is not None and last is not None:
            timings["seconds_to_first_token"] = first - started
            tokens = (end.usage or {}).get("completion_tokens") if end else None
            if tokens and tokens > 1 and last > first:
                timings["tokens_per_second"] = (tokens - 1) / (last - first)
        return end, timings

    # -- GUI side --------------------------------------------------------------------------------
    def _on_ready(self, conversation: Conversation, messages: list[Message]) -> None:
        self.conversation = conversation
        self.replyStarted.emit(conversation, messages)
        self.conversationsChanged.emit()
        self._timer.start()

    def _paint(self) -> None:
        turn = self.turn
        if turn is not None:
            thought = turn.take_thought()
            if thought:
                self.replyThinking.emit(thought)
            if turn.thought_seconds is not None and not turn.thought_shown:
                turn.thought_shown = True
                self.replyThought.emit(turn.thought_seconds)
            text = turn.take()
            if text:
                self.replyText.emit(text)

    def _end_turn(self) -> None:
        self._paint()
        self._timer.stop()
        self.turn = None
        self.busyChanged.emit(False)

    def _on_finished(self, message: Message, dropped: int) -> None:
        self._end_turn()
        if dropped:
            self.contextTrimmed.emit(dropped)
        self.replyFinished.emit(message)
        self.conversationsChanged.emit()
        self.engine.refresh_status()

    def _on_failed(self, message: Message | None, reason: str) -> None:
        self._end_turn()
        if message is not None:
            self.replyFinished.emit(message)
        self.replyFailed.emit(reason)
        self.conversationsChanged.emit()


def thinking_of(conversation: Conversation) -> bool:
    """The conversation's thinking switch (on unless it was turned off)."""
    return conversation.settings.get("thinking") is not False
