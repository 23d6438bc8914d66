"""What happens when the user sends, stops, regenerates or edits: the turn, off the GUI thread.

A turn runs on a worker: it writes the user message, begins the reply row, streams the reply
from the engine, saves it as it grows (ReplyWriter, about once a second) and finishes it. The
GUI only reads the turn's buffer on a timer (about 30 times a second) and gets signals for
the start and the end, so nothing the engine or the database does can block the window.

A chat that may use tools (MCP servers picked with the tools button) offers them to the model;
when a round of the reply ends in tool calls, each call is saved at once, asked about (the
worker waits for the user's answer from the window), run, and the reply goes on with the
results, for at most ``tool_rounds`` rounds. Stop ends the whole loop.

A chat that answers from document collections (picked with the documents button) has the
passages that best match the user's message found before the reply (desktop.ui.chat_docs),
saved with the reply as it begins, and put in the prompt just before that message.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.client.api import EngineError, StreamEnd, Thought
from desktop.core.chats import ChatStore, Conversation, Message, ReplyWriter
from desktop.core.tool_calls import Decision, ToolCall, ToolStep
from desktop.tools.session import ToolSession
from desktop.ui.chat_docs import DocsFound, docs_of, question_of, with_sources
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
    tools: list[str] = field(default_factory=list)  # the MCP servers whose tools it may call
    tool_choice: str = "auto"  # for the first round; later rounds are "auto"
    tool_rounds: int = 8
    docs: list[str] = field(default_factory=list)  # the document collections it answers from
    context: int = 0  # tokens of context per reply, which the passages may take half of
    cancelled: threading.Event = field(default_factory=threading.Event)
    asking: str | None = None  # the call waiting for the user's say (its id)
    decision: Decision | None = None
    decided: threading.Event = field(default_factory=threading.Event)
    steps_taken: list[ToolStep] = field(default_factory=list)  # last shown (GUI thread only)
    reply_id: int | None = None  # the reply's row, once the worker has begun it
    taken: str = ""  # all the text the GUI has taken so far (GUI thread only)
    thought_taken: str = ""  # all the thinking the GUI has taken so far (GUI thread only)
    thought_seconds: float | None = None  # set once the answer begins after the thinking
    thought_shown: bool = False  # whether the GUI has been told how long the thinking took
    _pieces: list[str | list[ToolStep]] = field(default_factory=list)
    _thoughts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, piece: str) -> None:
        with self._lock:
            self._pieces.append(piece)

    def push_steps(self, steps: list[ToolStep]) -> None:
        """The reply's tool calls changed; *steps* is the worker's list, copied here so the
        GUI never reads what the worker goes on changing."""
        snapshot = copy.deepcopy(steps)
        with self._lock:
            self._pieces.append(snapshot)

    def take_events(self) -> list[str | list[ToolStep]]:
        """What came since the last take, in order: text (joined where it runs on), and the
        reply's tool calls each time they changed. A change of the calls starts a new round,
        whose text is counted from there."""
        with self._lock:
            pieces, self._pieces = self._pieces, []
        events: list[str | list[ToolStep]] = []
        for piece in pieces:
            if isinstance(piece, str) and events and isinstance(events[-1], str):
                events[-1] += piece
            else:
                events.append(piece)
        for event in events:
            if isinstance(event, str):
                self.taken += event
            else:
                if len(event) != len(self.steps_taken):
                    self.taken = ""
                self.steps_taken = event
        return events

    def push_thought(self, piece: str) -> None:
        with self._lock:
            self._thoughts.append(piece)

    def take_thought(self) -> str:
        with self._lock:
            text = "".join(self._thoughts)
            self._thoughts.clear()
        self.thought_taken += text
        return text


class _TurnSignals(QObject):
    ready = Signal(object, object)  # conversation, messages shown before the reply
    note = Signal(str)  # a tool server that could not be used, in words
    searching = Signal(object)  # list[str]: the collections being searched for the reply
    sources = Signal(int, object)  # reply id, tuple[Source, ...]: the passages it is given
    remember = Signal(str, str)  # server, tool: the user said "always" for it
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
    replySteps = Signal(object)  # list[ToolStep]: the reply's tool calls, each time they change
    replySearching = Signal(object)  # list[str]: the reply waits for these collections' search
    replySources = Signal(int, object)  # reply id, tuple[Source, ...]: the passages it was given
    toolsChanged = Signal(object)  # list[str]: the servers whose tools the open chat may use
    docsChanged = Signal(object)  # list[str]: the collections the open chat answers from
    toolNote = Signal(str)  # what the user should know of its tools or documents (in words)
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
        # Set by the app: the MCP servers (desktop.ui.tool_servers.ToolServers), how many rounds
        # of calls one reply may make, and the tool choice of a reply's first round.
        self.tool_servers: Any = None
        self.tool_rounds = 8
        self.tool_choice = "auto"
        self.tools: list[str] = []  # the open chat's servers
        # Set by the app: finds the passages of the named collections that answer a question
        # (names, question, context tokens), on the turn's worker.
        self.search_documents: Callable[[list[str], str, int], DocsFound] | None = None
        self.docs: list[str] = []  # the open chat's document collections
        self._timer = QTimer(self)
        self._timer.setInterval(PAINT_INTERVAL_MS)
        self._timer.timeout.connect(self._paint)
        self._signals = _TurnSignals(self)
        self._signals.ready.connect(self._on_ready)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._signals.note.connect(self.toolNote)
        self._signals.searching.connect(self.replySearching)
        self._signals.sources.connect(self.replySources)
        self._signals.remember.connect(self._remember_tool)

    @property
    def busy(self) -> bool:
        return self.turn is not None

    # -- conversations ---------------------------------------------------------------------------
    def new_conversation(self) -> None:
        """Show an empty chat; the conversation is written when its first message is sent.

        A reply being written goes on meanwhile (one at a time: sending waits for it)."""
        self.conversation = None
        self.thinking = True
        self.tools = []
        self.docs = []
        self.toolsChanged.emit([])
        self.docsChanged.emit([])
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
        self.tools = tools_of(result[0])
        self.docs = docs_of(result[0])
        self.toolsChanged.emit(list(self.tools))
        self.docsChanged.emit(list(self.docs))
        self.conversationOpened.emit(*result)

    def set_thinking(self, enabled: bool) -> None:
        """The chat's thinking switch, kept with the conversation (a new chat keeps it when
        its first message is sent)."""
        self.thinking = enabled
        self._keep_setting("thinking", enabled)

    def _keep_setting(self, key: str, value: Any) -> None:
        """Save one of the open conversation's settings (a new chat keeps them when its first
        message is sent)."""
        if self.conversation is None:
            return
        settings = {**self.conversation.settings, key: value}
        self.workers.submit(self.store.set_settings, self.conversation.id, settings,
                            on_done=self._conversation_updated, serial=True)

    def set_tools(self, servers: list[str]) -> None:
        """The MCP servers whose tools the open chat may use, kept with the conversation (a new
        chat keeps them when its first message is sent)."""
        self.tools = list(dict.fromkeys(servers))
        self.toolsChanged.emit(list(self.tools))
        self._keep_setting("tools", list(self.tools))

    def set_docs(self, names: list[str]) -> None:
        """The document collections the open chat answers from, kept with the conversation
        like its tools."""
        self.docs = list(dict.fromkeys(names))
        self.docsChanged.emit(list(self.docs))
        self._keep_setting("docs", list(self.docs))

    def decide(self, call_id: str, decision: Decision) -> None:
        """The user's say on the call the reply is waiting for."""
        turn = self.turn
        if turn is not None and turn.asking == call_id and not turn.decided.is_set():
            turn.decision = decision
            turn.decided.set()

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
            self.turn.decided.set()  # a call waiting for the user's say ends too

    def _cid(self) -> int | None:
        return self.conversation.id if self.conversation is not None else None

    def _start(self, turn: Turn) -> None:
        turn.model = self.model
        turn.sampling = {k: v for k, v in self.sampling.items() if k in SAMPLING_KEYS}
        turn.adapter_preset = self.adapter_preset
        turn.thinking = self.thinking
        servers = self.tool_servers
        turn.tools = [name for name in self.tools
                      if servers is not None and name in servers.config.servers]
        turn.tool_choice = self.tool_choice
        turn.tool_rounds = self.tool_rounds
        turn.docs = list(self.docs)
        # Where a server elsewhere does not say its context, a common one is assumed.
        turn.context = int(self.engine.context_for(turn.model) or 4096)
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
                settings: dict[str, Any] = {} if turn.thinking else {"thinking": False}
                if turn.tools:
                    settings["tools"] = list(turn.tools)
                if turn.docs:
                    settings["docs"] = list(turn.docs)
                conversation = store.create_conversation(
                    system_prompt=turn.system_prompt, model_id=turn.model, settings=settings)
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
            history: list[dict[str, Any]] = [
                chat for m in store.messages(cid) if m.role != "system" and m.has_content
                for chat in m.as_chat_messages()]
            # The reply is shown (empty, streaming) before the documents are searched: a first
            # search may wait for the embedding model to load.
            reply = store.begin_reply(cid, turn.model, turn.sampling)
            turn.reply_id = reply.id
            signals.ready.emit(conversation, store.messages(cid))
            found = self._find_sources(turn, history)
            if turn.docs:
                if found.sources:
                    store.set_sources(reply.id, found.sources)
                signals.sources.emit(reply.id, tuple(found.sources))
            writer = ReplyWriter(store, reply.id)
            system = ([{"role": "system", "content": conversation.system_prompt}]
                      if conversation.system_prompt else [])
            before_reply = self.before_reply
            if before_reply is not None:
                before_reply()
            session = self._tool_session(turn)
            dropped, end, timings = 0, None, {}
            while True:
                try:
                    end, timings = self._stream(
                        turn, writer, with_sources(system + history[dropped:], found.prompt),
                        self._tool_params(turn, session, 0))
                    break
                except EngineError as exc:
                    # The oldest turns leave the prompt (the system prompt stays) until it fits;
                    # the prompt always starts at a question.
                    later = [i for i in range(dropped + 1, len(history))
                             if history[i]["role"] == "user"]
                    if exc.code == "context_length_exceeded" and not writer.text and later:
                        dropped = later[0]
                        continue
                    raise
            if session is not None:
                end = self._use_tools(turn, writer, session,
                                      with_sources(system + history[dropped:], found.prompt), end)
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

    def _find_sources(self, turn: Turn, history: list[dict[str, Any]]) -> DocsFound:
        """The passages of the turn's collections for its question (on the worker); what went
        wrong goes to the chat's notice line, and the reply comes without them."""
        search = self.search_documents
        if not turn.docs or search is None:
            return DocsFound()
        self._signals.searching.emit(list(turn.docs))
        found = search(list(turn.docs), question_of(history), turn.context)
        if found.note:
            self._signals.note.emit(found.note)
        return found

    def _tool_session(self, turn: Turn) -> ToolSession | None:
        """The tools this turn may use (starting their servers, on this worker), or None."""
        servers = self.tool_servers
        if not turn.tools or servers is None:
            return None
        always: set[tuple[str, str]] = set()

        def remember(server: str, tool: str) -> None:
            always.add((server, tool))
            self._signals.remember.emit(server, tool)

        session = ToolSession(servers.manager, turn.tools,
                              lambda s, t: (s, t) in always or servers.always_allowed(s, t),
                              remember)
        for problem in session.problems:
            self._signals.note.emit(problem)
        return session if session else None

    @staticmethod
    def _tool_params(turn: Turn, session: ToolSession | None, rounds: int) -> dict[str, Any]:
        if session is None:
            return {}
        choice = turn.tool_choice if rounds == 0 else "auto"
        if rounds >= turn.tool_rounds:
            choice = "none"  # the calls allowed for one reply are used up: it must answer
        return {"tools": session.openai_tools(), "tool_choice": choice}

    def _use_tools(self, turn: Turn, writer: ReplyWriter, session: ToolSession,
                   messages: list[dict[str, Any]], end: StreamEnd | None) -> StreamEnd | None:
        """While a round ends in tool calls: save them, ask, run, and stream the next round."""
        rounds = 0
        while end is not None and end.tool_calls and not turn.cancelled.is_set():
            calls = [session.make_call(raw) for raw in end.tool_calls]
            if end.finish_reason == "length":
                session.cut_short(calls)
            step = writer.begin_calls(calls)
            turn.push_steps(writer.steps)

            def changed() -> None:
                writer.save_calls()
                turn.push_steps(writer.steps)

            for call in calls:
                session.run(call, lambda c: self._ask(turn, c), turn.cancelled, changed)
            messages = [*messages, {"role": "assistant", "content": step.text,
                                    "tool_calls": [c.as_openai() for c in calls]},
                        *(c.result_message() for c in calls)]
            rounds += 1
            if turn.cancelled.is_set():
                break
            end, _ = self._stream(turn, writer, messages,
                                  self._tool_params(turn, session, rounds))
        return end

    @staticmethod
    def _ask(turn: Turn, call: ToolCall) -> Decision:
        """Wait (on the worker) for the user's say on *call*; a stop counts as no."""
        turn.decision = None
        turn.decided.clear()
        turn.asking = call.id
        try:
            while not turn.decided.wait(0.1):
                if turn.cancelled.is_set():
                    return Decision.DENY
            return turn.decision or Decision.DENY
        finally:
            turn.asking = None

    def _stream(self, turn: Turn, writer: ReplyWriter, messages: list[dict[str, Any]],
                extra: dict[str, Any] | None = None) -> tuple[StreamEnd | None, dict[str, float]]:
        """Stream one reply (or one round of it) into *writer*; return how it ended and its
        timings."""
        client = self.engine.chat_client()
        started = time.perf_counter()
        first = last = thought_at = None
        params = {**turn.sampling, **(extra or {})}
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
    def _remember_tool(self, server: str, tool: str) -> None:
        if self.tool_servers is not None:
            self.tool_servers.set_always_allowed(server, tool, True)

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
            for event in turn.take_events():
                if isinstance(event, str):
                    self.replyText.emit(event)
                else:
                    self.replySteps.emit(event)

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


def tools_of(conversation: Conversation) -> list[str]:
    """The MCP servers the conversation may use."""
    tools = conversation.settings.get("tools")
    return [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else []


def thinking_of(conversation: Conversation) -> bool:
    """The conversation's thinking switch (on unless it was turned off)."""
    return conversation.settings.get("thinking") is not False
