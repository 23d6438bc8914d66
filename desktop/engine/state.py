"""What the engine knows besides the model: which model a request means, and how to load it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.library import UnknownModel, installed_models, resolve_model
from desktop.core.memory import process_rss
from desktop.engine.errors import APIError, LoadError
from desktop.engine.runner import LoadedModel, LoadSettings, ModelRunner


@dataclass
class Engine:
    """Shared by the private and the public app; model work goes through ``runner``."""

    runner: ModelRunner = field(default_factory=ModelRunner)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    settings_by_model: dict[str, LoadSettings] = field(default_factory=dict)
    public: Any = None  # desktop.engine.server.PublicListener, set by the server

    # -- model thread only -------------------------------------------------------------------
    def load(self, ref: str, settings: LoadSettings | None = None) -> LoadedModel:
        try:
            model_id, path = resolve_model(ref)
        except UnknownModel as exc:
            raise APIError(404, str(exc), code="model_not_found", param="model") from exc
        if settings is None:
            settings = self.settings_by_model.get(model_id, LoadSettings())
        model = self.runner.load(model_id, Path(path), settings)
        self.settings_by_model[model_id] = settings
        return model

    def use(self, name: str | None) -> LoadedModel:
        """The model a request names, loading it first if it is installed but not loaded."""
        current = self.runner.model
        if current is not None and (not name or name in self.aliases(current)):
            return current
        installed = [m.id for m in installed_models()]
        if not name:
            if not installed:
                raise APIError(503, "No model is loaded and none is installed.",
                               type="server_error", code="model_not_loaded")
            name = installed[0]
        elif name not in installed:  # requests name installed models, never arbitrary paths
            raise APIError(404, f"No installed model is called '{name}'. Installed: "
                           f"{', '.join(installed) or 'none'}.", code="model_not_found",
                           param="model")
        try:
            return self.load(name)
        except LoadError as exc:
            raise APIError(503, f"Model '{name}' cannot be loaded: {exc.message}",
                           type="server_error", code="model_not_loaded",
                           param="model") from exc

    @staticmethod
    def aliases(model: LoadedModel) -> set[str]:
        return {model.id, model.path.name, model.path.stem, str(model.path)}

    # -- any thread ------------------------------------------------------------------------------
    def model_list(self) -> list[dict[str, Any]]:
        loaded = self.runner.model
        entries = []
        seen = set()
        if loaded is not None:
            entries.append(self._model_entry(loaded.id, int(loaded.loaded_at), True))
            seen.add(loaded.id)
        for model in installed_models():
            if model.id not in seen:
                seen.add(model.id)
                created = int(model.path.stat().st_mtime) if model.path.exists() else 0
                entries.append(self._model_entry(model.id, created, False))
        return entries

    @staticmethod
    def _model_entry(model_id: str, created: int, loaded: bool) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "nomoat",
                "loaded": loaded}

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
                "settings": model.settings.to_dict(),
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
            "queue_length": self.runner.queue_length,
            "public": None if self.public is None else self.public.describe(),
        }
