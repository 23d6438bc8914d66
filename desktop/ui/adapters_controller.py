"""What the adapters panel does: the library, the adapter stack, presets, and the engine's stack.

The panel edits ``stack`` on the GUI thread. The engine takes it through the supervisor (which
remembers it for restarts) on a worker, about 150 ms after the last change, so a slider drag
sends one request rather than fifty. A reply about to start first waits for the latest stack
(:meth:`AdaptersController.sync_for_reply`), so a change made just before Send is never missed.
Changing the stack never reloads the model: the engine swaps adapters between replies.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.client.adapters import AdapterClient
from desktop.client.api import EngineError
from desktop.client.process import EngineSupervisor
from desktop.core.adapters import (
    AdapterError,
    AdapterLibrary,
    AdapterMismatch,
    LibraryAdapter,
    check_compatible,
    describe_stack,
)
from desktop.core.chats import Conversation
from desktop.core.downloads import DownloadOptions
from desktop.core.gguf_info import GGUFError, read_gguf
from desktop.core.presets import Preset, PresetError, PresetStore, StackEntry
from desktop.ui.chat_controller import ChatController
from desktop.ui.engine import EngineController
from desktop.ui.models.adapters import AdapterRow, AdapterTableModel, PresetListModel
from desktop.ui.workers import Workers

APPLY_DELAY_MS = 150  # slider drags settle before the engine is asked
Stack = tuple[StackEntry, ...]


class StackRefused(Exception):
    """The engine refused a stack; it keeps the one it had."""

    def __init__(self, reason: str, stack: Stack) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stack = stack


def scan_library(library: AdapterLibrary, model_path: str | None
                 ) -> list[tuple[LibraryAdapter, str | None]]:
    """Every library adapter with the reason it does not fit the model at *model_path*."""
    base = None
    if model_path:
        try:
            base = read_gguf(model_path)
        except GGUFError:
            base = None  # the engine has it loaded, so it is readable; a moved file fits nothing
    found = []
    for adapter in library.adapters():
        fit = None
        if adapter.info is not None and base is not None:
            try:
                check_compatible(adapter.info, base)
            except AdapterMismatch as exc:
                fit = str(exc)
        found.append((adapter, fit))
    return found


def _plural(names: list[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"{quoted} {'does' if len(names) == 1 else 'do'}"


class AdaptersController(QObject):
    """Holds the library, the presets and the stack, and keeps the engine's stack in step."""

    stackChanged = Signal()  # entries added, removed, renamed or replaced: rebuild the rows
    entryChanged = Signal(str)  # one entry's scale or switch changed: update that row
    summaryChanged = Signal(str)  # "Adapters: pirate 0.8 + sql 0.5", "" when none are on
    presetChanged = Signal(object)  # the active preset's name, or None
    presetsChanged = Signal()
    modelChanged = Signal(object)  # the loaded model's id, or None
    message = Signal(str, bool)  # text, whether it is a problem
    applied = Signal(object)  # the stack (a tuple of StackEntry) the engine now applies
    _replyStackRefused = Signal(object)

    def __init__(self, engine: EngineController, chat: ChatController, workers: Workers,
                 hub: DownloadOptions | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.chat = chat
        self.workers = workers
        self.hub = hub
        self.library = AdapterLibrary()
        self.presets = PresetStore()
        self.adapter_model = AdapterTableModel(self)
        self.adapter_model.renameRequested.connect(self.rename_adapter)
        self.preset_model = PresetListModel(self)
        self.stack: list[StackEntry] = []
        self.active_preset: str | None = None
        self.model_id: str | None = None
        self.model_path: str | None = None
        self._library: list[tuple[LibraryAdapter, str | None]] = []
        self._candidate: Preset | None = None  # the preset the stack came from, if any
        self._scanned = False
        # Reads run on workers and may finish out of order: only the latest one is shown.
        self._library_reads = 0
        self._preset_reads = 0
        self._pending_preset: str | None = None
        self._last_state = engine.state
        # _wanted and _applied are read by workers; _apply_lock keeps engine calls in order.
        self._lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._wanted: Stack = ()
        self._applied: Stack = ()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._apply_soon)
        self._replyStackRefused.connect(self._apply_failed)
        engine.statusChanged.connect(self._engine_status)
        engine.stateChanged.connect(self._engine_state)
        chat.conversationOpened.connect(self._conversation_opened)
        chat.before_reply = self.sync_for_reply

    # -- reading ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the library (checked against the loaded model) and the presets again."""
        library, presets, model_path = self.library, self.presets, self.model_path
        self._library_reads += 1
        self._preset_reads += 1
        reads = (self._library_reads, self._preset_reads)

        def read() -> tuple[list[tuple[LibraryAdapter, str | None]], list[Preset], str | None]:
            try:
                saved, problem = presets.presets(), None
            except PresetError as exc:
                saved, problem = [], str(exc)
            return scan_library(library, model_path), saved, problem

        self.workers.submit(read, on_done=lambda result: self._read(result, reads),
                            on_error=self._failed)

    def _read(self, result: tuple[list[tuple[LibraryAdapter, str | None]], list[Preset],
                                  str | None], reads: tuple[int, int]) -> None:
        found, saved, problem = result
        if reads[0] == self._library_reads:
            self._library = found
            self._scanned = True
            self._show_rows()
        if reads[1] == self._preset_reads:
            self._set_presets(saved)
        if problem:
            self.message.emit(problem, True)
        if self._pending_preset is not None:
            name, self._pending_preset = self._pending_preset, None
            self.apply_preset(name)

    def _show_rows(self) -> None:
        names = {e.name for e in self.stack}
        rows = []
        for adapter, fit in self._library:
            info = adapter.info
            rows.append(AdapterRow(
                name=adapter.name, architecture=info.architecture if info else "",
                rank=info.rank if info else None, alpha=info.alpha if info else None,
                targets=info.target_summary() if info else "",
                size_bytes=info.size_bytes if info else _size(adapter.path),
                base_model=adapter.base_model or (info.base_model if info else None),
                source=adapter.source, problem=adapter.problem, fit=fit,
                in_stack=adapter.name in names))
        self.adapter_model.set_rows(rows)

    def _set_presets(self, saved: list[Preset]) -> None:
        self.preset_model.set_presets(saved)
        if self._candidate is not None:
            self._candidate = next((p for p in saved if p.name == self._candidate.name), None)
        self.presetsChanged.emit()
        self._stack_shown()

    def _reload_presets(self) -> None:
        self._preset_reads += 1
        reads = self._preset_reads
        self.workers.submit(self.presets.presets,
                            on_done=lambda saved: self._presets_read(saved, reads),
                            on_error=self._failed)

    def _presets_read(self, saved: list[Preset], reads: int) -> None:
        if reads == self._preset_reads:
            self._set_presets(saved)

    def adapter_names(self) -> list[str]:
        return [adapter.name for adapter, _ in self._library]

    def summary(self) -> str:
        """What the chat header shows: the adapters that change the model now."""
        text = describe_stack((e.name, e.scale) for e in self.stack if e.active)
        if not text:
            return ""
        preset = f" ({self.active_preset})" if self.active_preset else ""
        return f"Adapters{preset}: {text}"

    def active_entries(self) -> list[StackEntry]:
        return [e for e in self.stack if e.active]

    # -- the library -------------------------------------------------------------------------------
    def set_hub(self, endpoint: str | None, token: str | None) -> None:
        """The hub (or mirror) and token for adapter downloads from now on."""
        self.hub = DownloadOptions(endpoint=endpoint, token=token)

    def add_path(self, path: str, name: str | None = None) -> None:
        """Add a GGUF LoRA file or a PEFT adapter (folder or file) and put it in the stack."""
        library, base = self.library, self.model_path
        self.message.emit(f"Adding {Path(path).name}…", False)
        self.workers.submit(lambda: self._load(library.add_file(path, name=name,
                                                                base_model=base)),
                            on_done=self._added, on_error=self._failed)

    def add_from_hub(self, ref: str, name: str | None = None) -> None:
        """Download ``REPO_ID/FILENAME`` from the hub, check it, add it, and stack it."""
        ref = ref.strip()
        if not ref:
            self.message.emit("Type the adapter's hub address: OWNER/REPO/FILE.gguf, or "
                              "OWNER/REPO/adapter_config.json for a PEFT adapter.", True)
            return
        library, base, options = self.library, self.model_path, self.hub
        self.message.emit(f"Downloading {ref}…", False)
        self.workers.submit(lambda: self._load(library.add_from_hub(
            ref, name=name, base_model=base, options=options)),
            on_done=self._added, on_error=self._failed)

    def _load(self, adapter: LibraryAdapter) -> tuple[str, str | None]:
        """Worker side: load a new library adapter on the engine; (name, why it did not load)."""
        if self.model_path is None:
            return adapter.name, None
        try:
            with self._apply_lock:
                self.engine.supervisor.add_adapter(name=adapter.name)
        except EngineError as exc:
            return adapter.name, str(exc)
        return adapter.name, None

    def _added(self, result: tuple[str, str | None]) -> None:
        name, problem = result
        self.refresh()
        if problem is not None:
            self.message.emit(f"'{name}' is in the library, but the engine could not load it: "
                              f"{problem}", True)
        elif self.model_id is None:
            self.message.emit(f"Added '{name}'. Load a model to use it.", False)
        else:
            self._put_in_stack(name)
            self.message.emit(f"Added '{name}'. It is on at scale 1: tune it below; the next "
                              "reply uses it.", False)

    def use(self, name: str) -> None:
        """Put a library adapter in the stack (on, scale 1) once the engine has loaded it."""
        if any(e.name == name for e in self.stack):
            return
        if self.model_id is None:
            self.message.emit("Load a model first: adapters change a loaded model.", True)
            return
        supervisor = self.engine.supervisor

        def load() -> str:
            with self._apply_lock:
                supervisor.add_adapter(name=name)
            return name

        self.workers.submit(load, on_done=self._used, on_error=self._failed)

    def _used(self, name: str) -> None:
        self._put_in_stack(name)
        self.message.emit(f"'{name}' is on at scale 1; the next reply uses it.", False)

    def _put_in_stack(self, name: str) -> None:
        if any(e.name == name for e in self.stack):
            return
        self.stack.append(StackEntry(name, 1.0, True))
        self._structure_changed()

    def rename_adapter(self, name: str, new_name: str) -> None:
        """Rename a library adapter; the stack and the presets follow the new name."""
        library, presets, supervisor = self.library, self.presets, self.engine.supervisor
        loaded = self.model_id is not None

        def rename() -> tuple[str, str]:
            renamed = library.rename(name, new_name).name
            for preset in presets.presets():
                if any(e.name == name for e in preset.entries):
                    presets.save(Preset(preset.name, tuple(
                        replace(e, name=renamed) if e.name == name else e
                        for e in preset.entries), preset.base_model))
            if loaded and renamed != name:
                self._unload(supervisor, name)
            return name, renamed

        self.workers.submit(rename, on_done=self._renamed, on_error=self._failed)

    def _renamed(self, names: tuple[str, str]) -> None:
        old, new = names
        if old != new:
            self.stack = [replace(e, name=new) if e.name == old else e for e in self.stack]
            if self._candidate is not None:
                self._candidate = replace(self._candidate, entries=tuple(
                    replace(e, name=new) if e.name == old else e
                    for e in self._candidate.entries))
            self._structure_changed()
        self.refresh()
        self.message.emit(f"Renamed '{old}' to '{new}'.", False)

    def remove_adapter(self, name: str) -> None:
        """Take an adapter off the model and out of the stack, and delete its file."""
        library, supervisor = self.library, self.engine.supervisor
        loaded = self.model_id is not None

        def remove() -> str:
            if loaded:
                self._unload(supervisor, name)
            library.remove(name)
            return name

        self.workers.submit(remove, on_done=self._removed, on_error=self._failed)

    def _unload(self, supervisor: EngineSupervisor, name: str) -> None:
        """Worker side: take *name* off the engine's model (the engine drops it from its stack)."""
        with self._apply_lock:
            try:
                supervisor.remove_adapter(name)
            except EngineError as exc:
                if exc.status != 404:  # 404: it was never loaded, which is just as good
                    raise
            with self._lock:
                self._applied = tuple(e for e in self._applied if e.name != name)

    def _removed(self, name: str) -> None:
        self.stack = [e for e in self.stack if e.name != name]
        self._structure_changed()
        self.refresh()
        self.message.emit(f"Removed '{name}' from the library.", False)

    # -- the stack -------------------------------------------------------------------------------
    def set_scale(self, name: str, scale: float) -> None:
        """Change one adapter's scale; the engine takes it after the slider settles."""
        self._edit(name, scale=round(float(scale), 3))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Switch one adapter on or off without taking it out of the stack."""
        self._edit(name, enabled=bool(enabled))

    def take_off(self, name: str) -> None:
        """Take an adapter out of the stack (it stays in the library)."""
        if any(e.name == name for e in self.stack):
            self.stack = [e for e in self.stack if e.name != name]
            self._structure_changed()

    def _edit(self, name: str, **change: Any) -> None:
        for index, entry in enumerate(self.stack):
            if entry.name == name:
                changed = replace(entry, **change)
                if changed == entry:
                    return
                self.stack[index] = changed
                self.entryChanged.emit(name)
                self._stack_edited(APPLY_DELAY_MS)
                return

    def _structure_changed(self) -> None:
        self.stackChanged.emit()
        self._show_rows()
        self._stack_edited(0)

    def _stack_edited(self, delay_ms: int) -> None:
        with self._lock:
            self._wanted = tuple(self.stack)
        self._stack_shown()
        self._timer.start(delay_ms)

    def _stack_shown(self) -> None:
        """The active preset and the chat header follow the stack."""
        candidate = self._candidate
        active = (candidate.name if candidate is not None
                  and tuple(self.stack) == tuple(candidate.entries) else None)
        if active != self.active_preset:
            self.active_preset = active
            self.chat.adapter_preset = active
            self.presetChanged.emit(active)
        self.summaryChanged.emit(self.summary())

    def _apply_soon(self) -> None:
        self.workers.submit(self.sync, on_error=self._apply_failed)

    def sync(self) -> Stack | None:
        """Any thread: give the engine the latest stack unless it has it; return what changed.

        Raises :class:`StackRefused` when the engine refuses it.
        """
        with self._apply_lock:
            with self._lock:
                wanted, applied = self._wanted, self._applied
            if wanted == applied:
                return None
            try:
                self.engine.supervisor.set_adapter_stack(list(wanted))
            except EngineError as exc:
                raise StackRefused(str(exc), wanted) from exc
            with self._lock:
                self._applied = wanted
        self.applied.emit(wanted)
        return wanted

    def sync_for_reply(self) -> None:
        """A reply's worker, before it asks: the engine must have the stack the user sees."""
        if self.engine.remote is not None:
            return  # replies come from another server, which has its own adapters
        try:
            self.sync()
        except StackRefused as exc:
            self._replyStackRefused.emit(exc)  # the reply goes on with the engine's stack

    def _apply_failed(self, exc: Exception) -> None:
        if not isinstance(exc, StackRefused):
            self._failed(exc)
            return
        self.message.emit(f"The adapters were not changed, and the model answers as before: "
                          f"{exc.reason}", True)
        if tuple(self.stack) == exc.stack:  # show what the engine really applies
            with self._lock:
                applied = self._applied
            self.stack = list(applied)
            self._structure_changed()

    # -- presets ---------------------------------------------------------------------------------
    def save_preset(self, name: str) -> None:
        """Save the stack as a preset called *name* (replacing one with that name)."""
        preset = Preset(name.strip(), tuple(self.stack), self.model_id)
        self.workers.submit(self.presets.save, preset, on_done=self._preset_saved,
                            on_error=self._failed)

    def _preset_saved(self, preset: Preset) -> None:
        self._candidate = preset
        self._stack_shown()
        self._reload_presets()
        self.message.emit(f"Saved the preset '{preset.name}': {preset.describe()}.", False)

    def apply_preset(self, name: str) -> None:
        """Make a saved preset the stack; adapters no longer in the library are left out."""
        preset = next((p for p in self.preset_model.presets() if p.name == name), None)
        if preset is None:
            if not self._scanned:
                self._pending_preset = name  # the presets are still being read
            else:
                self.message.emit(f"There is no preset called '{name}' any more; the adapters "
                                  "stay as they are.", True)
            return
        known = set(self.adapter_names())
        missing = [e.name for e in preset.entries if e.name not in known]
        self._candidate = preset
        self.stack = [e for e in preset.entries if e.name in known]
        self._structure_changed()
        if missing:
            self.message.emit(f"{_plural(missing)} not exist in the library any more, so the "
                              f"preset '{name}' was applied without.", True)
        else:
            self.message.emit(f"Applied the preset '{name}': {preset.describe()}.", False)

    def rename_preset(self, name: str, new_name: str) -> None:
        store = self.chat.store

        def rename() -> Preset:
            preset = self.presets.rename(name, new_name)
            store.rename_adapter_preset(name, preset.name)  # conversations keep their preset
            return preset

        self.workers.submit(rename, serial=True,
                            on_done=lambda preset: self._preset_renamed(name, preset),
                            on_error=self._failed)

    def _preset_renamed(self, old: str, preset: Preset) -> None:
        if self._candidate is not None and self._candidate.name == old:
            self._candidate = preset
        conversation = self.chat.conversation
        if conversation is not None and conversation.adapter_preset == old:
            self.chat.conversation = replace(conversation, adapter_preset=preset.name)
        self._reload_presets()
        self.message.emit(f"Renamed the preset '{old}' to '{preset.name}'.", False)

    def delete_preset(self, name: str) -> None:
        self.workers.submit(self.presets.delete, name,
                            on_done=lambda _: self._preset_deleted(name), on_error=self._failed)

    def _preset_deleted(self, name: str) -> None:
        self._reload_presets()
        self.message.emit(f"Deleted the preset '{name}'. The adapters stay as they are.", False)

    def _conversation_opened(self, conversation: Conversation | None, _messages: Any) -> None:
        """A conversation remembers its preset: opening it applies that preset again."""
        name = conversation.adapter_preset if conversation is not None else None
        if name and name != self.active_preset:
            self.apply_preset(name)

    # -- the engine ------------------------------------------------------------------------------
    def _engine_status(self, status: dict[str, Any]) -> None:
        if not status:
            return  # unreadable for now: keep what is known
        model = status.get("model")
        model_id = model["id"] if model else None
        if model_id == self.model_id:
            return
        previous = self.model_id
        self.model_id, self.model_path = model_id, (model or {}).get("path")
        self.modelChanged.emit(model_id)
        self.refresh()  # whether each adapter fits the new model
        if previous is not None:
            self._follow_engine(status.get("adapters") or {}, model_id)

    def _engine_state(self, state: str, _message: str) -> None:
        previous, self._last_state = self._last_state, state
        if state != "ready":
            return
        if previous == "starting":
            # Started afresh (or restarted by hand): a new engine has no adapters; send ours.
            with self._lock:
                self._applied = ()
            if self.stack:
                self._stack_edited(0)
        elif previous == "crashed":
            # The supervisor put the stack back after the crash: show what it could restore.
            supervisor = self.engine.supervisor
            self.workers.submit(lambda: AdapterClient(supervisor.client).state(),
                                on_done=self._engine_back, on_error=self._failed)

    def _engine_back(self, state: dict[str, Any]) -> None:
        self._follow_engine(state, self.model_id)

    def _follow_engine(self, adapters: dict[str, Any], model_id: str | None) -> None:
        """Show the engine's own stack after it changed behind the panel's back."""
        engine_stack = tuple(StackEntry.from_dict(e) for e in adapters.get("stack", []))
        with self._lock:
            applied = self._applied
            self._applied = engine_stack
        if engine_stack == applied:
            return
        kept = {e.name for e in engine_stack}
        dropped = [e.name for e in applied if e.name not in kept]
        self.stack = [e for e in self.stack if e.name not in dropped]
        self._structure_changed()
        if dropped:
            where = f"fit {model_id}" if model_id else "stay without a loaded model"
            self.message.emit(f"{_plural(dropped)} not {where}, so the engine took "
                              f"{'it' if len(dropped) == 1 else 'them'} off the stack.", True)

    # -- errors and shutdown -----------------------------------------------------------------------
    def _failed(self, exc: Exception) -> None:
        known = (AdapterError, PresetError, EngineError, OSError)
        text = str(exc) if isinstance(exc, known) else f"Something went wrong: {exc}"
        self.message.emit(text, True)

    def close(self) -> None:
        self._timer.stop()
        self.chat.before_reply = None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
