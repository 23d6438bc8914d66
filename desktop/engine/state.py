"""What the engine knows besides the model: which model (and which adapters) a request means."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.adapters import AdapterError, AdapterLibrary
from desktop.core.cpu import default_threads
from desktop.core.gguf_info import CHAT, EMBEDDING
from desktop.core.library import BrokenModel, UnknownModel, installed_models, resolve_model
from desktop.core.memory import process_rss
from desktop.core.presets import Preset, PresetError, PresetStore, StackEntry
from desktop.engine.adapters import Active, LoadedAdapter
from desktop.engine.embedder import EmbeddingModel
from desktop.engine.errors import APIError, LoadError, bad_request
from desktop.engine.jobs import NeedsIdle
from desktop.engine.reasoning import template_thinks
from desktop.engine.runner import LoadedModel, LoadSettings, ModelRunner, not_a_chat_model


@dataclass(frozen=True)
class AdapterRef:
    """One entry of a request's ``lora`` field: an adapter by id or by name, and a scale."""

    id: int | None
    name: str | None
    scale: float


@dataclass
class Engine:
    """Shared by the private and the public app; model work goes through ``runner``."""

    runner: ModelRunner = field(default_factory=ModelRunner)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    settings_by_model: dict[str, LoadSettings] = field(default_factory=dict)
    public: Any = None  # desktop.engine.server.PublicListener, set by the server
    handover: Any = None  # the Unix socket the app passes listening sockets on, if any
    responses: Any = None  # desktop.engine.responses.ResponseStore, set with the routes

    # -- model thread only -------------------------------------------------------------------
    def load(self, ref: str, settings: LoadSettings | None = None) -> LoadedModel:
        try:
            model_id, path = resolve_model(ref)
        except BrokenModel as exc:  # installed, but its file failed the header check
            raise LoadError(exc.reason) from exc
        except UnknownModel as exc:
            raise APIError(404, str(exc), code="model_not_found", param="model") from exc
        if settings is None:
            settings = self.settings_by_model.get(model_id, LoadSettings())
        model = self.runner.load(model_id, Path(path), settings)
        self.settings_by_model[model_id] = settings
        return model

    def use(self, name: str | None) -> LoadedModel:
        """The model a request names, loading it first if it is installed but not loaded.

        A name ``<model>+<preset>`` means that model; :meth:`use_with_adapters` also applies
        the preset.
        """
        base, _ = self._split_preset(name)
        return self._use_base(base)

    def use_with_adapters(self, name: str | None, lora: list[AdapterRef] | None
                          ) -> tuple[LoadedModel, Active | None, str]:
        """The model, the adapter stack and the model id to answer with, for one request.

        The request's own ``lora`` field wins over a preset named in ``model``; with neither,
        the stack is None: the engine's own stack.
        """
        base, preset = self._split_preset(name)
        model = self._use_base(base)
        shown = model.id if preset is None else f"{model.id}+{preset.name}"
        if lora is not None:
            return model, self._resolve_refs(model, lora), shown
        if preset is not None:
            active = []
            for entry in preset.entries:
                if entry.active:
                    active.append((self.adapter_named(model, entry.name, param="model"),
                                   entry.scale))
            return model, active, shown
        return model, None, shown

    def _split_preset(self, name: str | None) -> tuple[str | None, Preset | None]:
        current = self.runner.model
        if not name or "+" not in name or (current is not None
                                           and name in self.aliases(current)):
            return name, None
        base, _, preset_name = name.partition("+")  # model ids never contain '+'
        try:
            preset = PresetStore().get(preset_name)
        except PresetError as exc:
            raise APIError(500, str(exc), type="server_error") from exc
        if preset is None:
            raise APIError(404, f"There is no adapter preset called '{preset_name}' (from the "
                           f"model name '{name}'). GET /v1/models lists the presets.",
                           code="model_not_found", param="model")
        return base or None, preset

    def _use_base(self, name: str | None) -> LoadedModel:
        current = self.runner.model
        if current is not None and (not name or name in self.aliases(current)):
            return current
        models = installed_models()
        installed = [m.id for m in models]
        if not name:
            chat = [m.id for m in models if m.kind == CHAT]
            if not chat:
                raise APIError(503, "No model is loaded and no chat model is installed.",
                               type="server_error", code="model_not_loaded")
            name = chat[0]
        elif name not in installed:  # requests name installed models, never arbitrary paths
            raise APIError(404, f"No installed model is called '{name}'. Installed: "
                           f"{', '.join(installed) or 'none'}.", code="model_not_found",
                           param="model")
        elif models[installed.index(name)].kind == EMBEDDING:
            raise not_a_chat_model(name)
        if self.runner.scheduler.busy:
            raise NeedsIdle  # another model: once the replies of this one are written
        try:
            return self.load(name)
        except LoadError as exc:
            raise APIError(503, f"Model '{name}' cannot be loaded: {exc.message}",
                           type="server_error", code="model_not_loaded",
                           param="model") from exc

    def embedding_model(self, name: str | None) -> EmbeddingModel | None:
        """The installed embedding model an embeddings request names, loaded beside the chat
        model (never in its place); None when the request means a chat model (no name, or a
        chat model's), which embeds as it always has, or a model that is not installed."""
        current = self.runner.model
        if not name or (current is not None and name in self.aliases(current)):
            return None
        loaded = self.runner.embedders.loaded.get(name)
        if loaded is not None:
            return loaded
        found = next((m for m in installed_models() if m.id == name), None)
        if found is None or found.kind != EMBEDDING:
            return None  # the chat model's path answers, or says it is not installed
        try:
            if found.problem is not None or found.info is None:
                raise LoadError(found.problem or f"{found.path.name} cannot be read.")
            return self.runner.embedders.use(found.id, found.path, found.info,
                                             default_threads())
        except LoadError as exc:
            raise APIError(503, f"Model '{name}' cannot be loaded: {exc.message}",
                           type="server_error", code="model_not_loaded",
                           param="model") from exc

    @staticmethod
    def aliases(model: LoadedModel) -> set[str]:
        return {model.id, model.path.name, model.path.stem, str(model.path)}

    # -- adapters (model thread only) ---------------------------------------------------------
    def adapter_named(self, model: LoadedModel, name: str, param: str = "lora") -> LoadedAdapter:
        """A loaded adapter by name, loading it from the library on first use."""
        adapters = self.runner.adapters
        found = adapters.by_name(name)
        if found is not None:
            return found
        try:
            entry = AdapterLibrary().find(name)
        except AdapterError as exc:
            raise APIError(500, str(exc), type="server_error") from exc
        if entry is None:
            loaded = ", ".join(a.name for a in adapters.loaded) or "none"
            raise bad_request(f"There is no adapter called '{name}' (loaded: {loaded}). Add it "
                              "to the adapter library first.", param=param,
                              code="adapter_not_found")
        return adapters.add(model, name, entry.path)

    def _resolve_refs(self, model: LoadedModel, refs: list[AdapterRef]) -> Active:
        active: Active = []
        for index, ref in enumerate(refs):
            if (ref.id is None) == (ref.name is None):
                raise bad_request(f"'lora.{index}' must name an adapter by 'id' or by 'name' "
                                  "(one of the two).", param=f"lora.{index}")
            if ref.id is not None:
                adapter = self.runner.adapters.by_id(ref.id)
                if adapter is None:
                    known = ", ".join(f"{a.id} ({a.name})" for a in self.runner.adapters.loaded)
                    raise bad_request(f"There is no adapter with id {ref.id} (loaded: "
                                      f"{known or 'none'}). GET /lora-adapters lists them.",
                                      param=f"lora.{index}.id", code="adapter_not_found")
            else:
                assert ref.name is not None
                adapter = self.adapter_named(model, ref.name, param=f"lora.{index}.name")
            if any(chosen is adapter for chosen, _ in active):
                raise bad_request(f"'lora' lists adapter '{adapter.name}' twice; list each "
                                  "adapter once.", param=f"lora.{index}")
            active.append((adapter, ref.scale))
        return active

    def add_adapter(self, name: str | None, path: str | None) -> LoadedAdapter:
        """Load an adapter on the current model: from the library by name, or from a file."""
        model = self.runner.require_model()
        if path:
            file = Path(path).expanduser()
            label = name or (file.name[:-5] if file.name.lower().endswith(".gguf")
                             else file.name)
            return self.runner.adapters.add(model, label, file)
        if not name:
            raise bad_request("Name an adapter from the library, or give the path of a GGUF "
                              "LoRA file.", param="name")
        return self.adapter_named(model, name, param="name")

    def remove_adapter(self, name: str) -> None:
        self.runner.adapters.remove(self.runner.require_model(), name)

    def set_stack(self, entries: list[StackEntry]) -> None:
        """Replace the engine's own stack; it applies to the next reply without a reload."""
        model = self.runner.require_model()
        seen = set()
        for entry in entries:
            if entry.name in seen:
                raise bad_request(f"'{entry.name}' is in the stack twice; list each adapter "
                                  "once.", param="stack")
            seen.add(entry.name)
            self.adapter_named(model, entry.name, param="stack")
        adapters = self.runner.adapters
        adapters.stack = list(entries)
        adapters.apply(model, adapters.stack_active())

    def adapter_state(self) -> dict[str, Any]:
        model = self.runner.model
        return dict(self.runner.adapters.describe(), model=None if model is None else model.id)

    def lora_adapters(self) -> list[dict[str, Any]]:
        """llama-server's GET /lora-adapters: every loaded adapter with its stack scale.

        ``path`` is the file name only: this list is served to other programs too, and the
        folders on this computer are none of their business.
        """
        return [{"id": a["id"], "path": Path(a["path"]).name, "name": a["name"],
                 "scale": a["scale"] if a["enabled"] else 0.0, "enabled": a["enabled"],
                 "architecture": a["architecture"], "rank": a["rank"], "alpha": a["alpha"]}
                for a in self.runner.adapters.describe()["loaded"]]

    # -- any thread ------------------------------------------------------------------------------
    def model_list(self) -> list[dict[str, Any]]:
        loaded = self.runner.model
        embedders = set(self.runner.embedders.loaded)
        entries = []
        seen = set()
        if loaded is not None:
            entry = self._model_entry(loaded.id, int(loaded.loaded_at), True)
            # What one request may use (other programs fit their prompts to it).
            entry["context_length"] = loaded.n_ctx
            entries.append(entry)
            seen.add(loaded.id)
        for model in installed_models():
            if model.id not in seen:
                seen.add(model.id)
                created = int(model.path.stat().st_mtime) if model.path.exists() else 0
                entries.append(self._model_entry(model.id, created, model.id in embedders,
                                                 model.kind))
        chat = [e["id"] for e in entries if e["kind"] == CHAT]
        default = loaded.id if loaded is not None else (chat[0] if chat else None)
        try:
            presets = PresetStore().presets()
        except PresetError:
            presets = []  # a damaged presets file must not take the model list down with it
        for preset in presets:
            base = preset.base_model or default
            if base is not None:
                entry = self._model_entry(f"{base}+{preset.name}", 0,
                                          loaded is not None and base == loaded.id)
                entry["adapters"] = [e.to_dict() for e in preset.entries]
                entry["description"] = preset.describe()
                entries.append(entry)
        return entries

    @staticmethod
    def _model_entry(model_id: str, created: int, loaded: bool,
                     kind: str = CHAT) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "nomoat",
                "loaded": loaded, "kind": kind}

    def status(self) -> dict[str, Any]:
        model = self.runner.model
        last = self.runner.last_generation
        return {
            "pid": os.getpid(),
            "model": None if model is None else {
                "id": model.id,
                "path": str(model.path),
                "name": model.info.name,
                "architecture": model.info.architecture,
                "parameters": model.info.parameter_count,
                "quantization": model.info.quantization,
                "context_length_trained": model.info.context_length,
                "chat_template": model.template_source,
                "thinks": template_thinks(model.template_text),
                "settings": model.settings.to_dict(),
                "context_per_slot": model.n_ctx,
                "threads_now": None if model.governor is None else model.governor.threads,
                # Whether the thread count follows the other programs' load (no count was set).
                "threads_auto": model.governor is not None and model.governor.adaptive,
                "other_programs_cpu": (None if model.governor is None
                                       else round(model.governor.others, 2)),
                "loaded_at": model.loaded_at,
            },
            "memory_bytes": process_rss(),
            "last_generation": None if last is None else {
                "tokens_per_second": last.tokens_per_second,
                "seconds_to_first_token": last.seconds_to_first_token,
                "prompt_tokens": last.prompt_tokens,
                "cached_tokens": last.cached_tokens,
                "completion_tokens": last.completion_tokens,
                "finish_reason": last.finish_reason,
            },
            "adapters": self.runner.adapters.describe(),
            "embedding_models": self.runner.embedders.describe(),
            "queue_length": self.runner.queue_length,
            "slots": self.runner.scheduler.describe(),
            "public": None if self.public is None else self.public.describe(),
        }
