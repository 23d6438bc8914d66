"""LoRA adapters on the loaded model: loaded once, stacked with a scale each, swapped per reply.

llama.cpp keeps an adapter's tensors beside the model's and adds them while it computes, so
changing the stack (``llama_set_adapters_lora``) costs no reload. The stack is one per context,
shared by every slot, and the keys and values a slot has cached were computed under the stack
of their time: the scheduler keeps each slot's stack with its cache (see :meth:`AdapterSet.key`)
and reuses a cache only for a request with the same stack.

Everything here runs on the model thread, like all llama.cpp calls; other threads only read
the lists for status.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_cpp

from desktop.core.adapters import (
    AdapterError,
    AdapterInfo,
    AdapterMismatch,
    check_compatible,
    inspect_adapter,
)
from desktop.core.presets import StackEntry
from desktop.engine.errors import APIError

if TYPE_CHECKING:
    from desktop.engine.runner import LoadedModel


@dataclass
class LoadedAdapter:
    """An adapter initialised on the current model; ``id`` is stable while the engine runs."""

    id: int
    name: str
    path: Path
    info: AdapterInfo
    handle: Any  # llama_adapter_lora pointer, freed by AdapterSet

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path),
                "architecture": self.info.architecture, "rank": self.info.rank,
                "alpha": self.info.alpha, "targets": self.info.target_summary(),
                "size_bytes": self.info.size_bytes, "base_model": self.info.base_model}


Active = list[tuple[LoadedAdapter, float]]


class AdapterSet:
    """The adapters loaded on the model, the engine's own stack, and what llama.cpp applies."""

    def __init__(self, log_reason: Callable[[], str], clear_log: Callable[[], None]) -> None:
        self.loaded: list[LoadedAdapter] = []
        self.stack: list[StackEntry] = []
        self.swaps = 0  # how often the applied stack changed
        self._applied: tuple[tuple[int, float], ...] = ()
        self._next_id = 0
        self._log_reason = log_reason
        self._clear_log = clear_log

    # -- looking up ------------------------------------------------------------------------------
    def by_name(self, name: str) -> LoadedAdapter | None:
        return next((a for a in self.loaded if a.name == name), None)

    def by_id(self, adapter_id: int) -> LoadedAdapter | None:
        return next((a for a in self.loaded if a.id == adapter_id), None)

    def stack_active(self) -> Active:
        """The engine's own stack as (adapter, scale) pairs that change the model."""
        active = []
        for entry in self.stack:
            adapter = self.by_name(entry.name)
            if adapter is not None and entry.active:
                active.append((adapter, entry.scale))
        return active

    def applied(self) -> dict[int, float]:
        """Adapter id -> scale that llama.cpp applies now."""
        return dict(self._applied)

    # -- changing ----------------------------------------------------------------------------------
    def add(self, model: LoadedModel, name: str, path: Path) -> LoadedAdapter:
        """Check *path* against *model*, then initialise it on the model (not yet applied)."""
        existing = self.by_name(name)
        if existing is not None:
            if existing.path.resolve() == path.resolve():
                return existing
            raise APIError(409, f"An adapter called '{name}' is already loaded (from "
                           f"{existing.path}). Remove it first, or give this one another name.",
                           code="adapter_exists", param="name")
        try:
            info = inspect_adapter(path)
            check_compatible(info, model.info)
        except AdapterMismatch as exc:
            raise APIError(400, str(exc), code="adapter_mismatch", param="lora") from exc
        except AdapterError as exc:
            raise APIError(400, str(exc), code="invalid_adapter", param="lora") from exc
        self._clear_log()
        handle = llama_cpp.llama_adapter_lora_init(model.weights.model, os.fsencode(path))
        if not handle:
            raise APIError(400, f"llama.cpp could not load the adapter {path.name}: "
                           f"{self._log_reason() or 'no reason given'}.",
                           code="invalid_adapter", param="lora")
        adapter = LoadedAdapter(self._next_id, name, path, info, handle)
        self._next_id += 1
        self.loaded.append(adapter)
        return adapter

    def remove(self, model: LoadedModel, name: str) -> None:
        """Take an adapter off the model and out of the stack, then free it."""
        adapter = self.by_name(name)
        if adapter is None:
            raise APIError(404, f"No adapter called '{name}' is loaded.",
                           code="adapter_not_found", param="name")
        self.stack = [e for e in self.stack if e.name != name]
        if adapter.id in self.applied():
            self.apply(model, [(a, s) for a, s in self.active_now() if a is not adapter])
        self.loaded.remove(adapter)
        llama_cpp.llama_adapter_lora_free(adapter.handle)

    def active_now(self) -> Active:
        """The (adapter, scale) pairs llama.cpp applies now."""
        return [(a, s) for a in self.loaded for i, s in self._applied if a.id == i]

    @staticmethod
    def key(active: Active) -> tuple[tuple[int, float], ...]:
        """What *active* applies, as (adapter id, scale) pairs: zero scales change nothing."""
        return tuple((a.id, float(ctypes.c_float(s).value)) for a, s in active if s != 0.0)

    def apply(self, model: LoadedModel, active: Active) -> bool:
        """Make llama.cpp apply exactly *active*; returns whether that is a change.

        Only while no slot is decoding: the stack is the whole context's.
        """
        wanted = self.key(active)
        if wanted == self._applied:
            return False
        chosen = [(a, s) for a, s in active if s != 0.0]
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * max(1, len(chosen)))(
            *[a.handle for a, _ in chosen])
        scales = (ctypes.c_float * max(1, len(chosen)))(*[s for _, s in chosen])
        if llama_cpp.llama_set_adapters_lora(model.context.ctx, handles, len(chosen), scales):
            raise APIError(500, "llama.cpp refused the adapter stack.", type="server_error",
                           code="adapter_stack_failed")
        self._applied = wanted
        self.swaps += 1
        return True

    def release(self, model: LoadedModel | None) -> None:
        """Free every adapter; called before the model itself is freed."""
        if model is not None and self._applied:
            llama_cpp.llama_set_adapters_lora(model.context.ctx, None, 0, None)
        for adapter in self.loaded:
            llama_cpp.llama_adapter_lora_free(adapter.handle)
        self.loaded = []
        self.stack = []
        self._applied = ()

    # -- across model loads ------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[tuple[str, Path]], list[StackEntry]]:
        return [(a.name, a.path) for a in self.loaded], list(self.stack)

    def restore(self, model: LoadedModel,
                snapshot: tuple[list[tuple[str, Path]], list[StackEntry]]) -> list[str]:
        """Put back the adapters that fit the newly loaded model; return the names dropped."""
        adapters, stack = snapshot
        dropped = []
        for name, path in adapters:
            try:
                self.add(model, name, path)
            except APIError:
                dropped.append(name)
        self.stack = [e for e in stack if self.by_name(e.name) is not None]
        self.apply(model, self.stack_active())
        return dropped

    def describe(self) -> dict[str, Any]:
        applied = self.applied()
        in_stack = {e.name: e for e in self.stack}
        loaded = []
        for adapter in self.loaded:
            entry = in_stack.get(adapter.name)
            loaded.append(dict(adapter.describe(),
                               scale=entry.scale if entry else 0.0,
                               enabled=entry.enabled if entry else False,
                               applied_scale=applied.get(adapter.id, 0.0)))
        return {"loaded": loaded, "stack": [e.to_dict() for e in self.stack]}
