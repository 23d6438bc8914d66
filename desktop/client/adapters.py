"""Engine calls for LoRA adapters, and the ``--lora PATH[:SCALE]`` command-line argument."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from desktop.client.api import EngineClient, EngineError
from desktop.core.presets import StackEntry


class AdapterClient:
    """The adapter routes of one engine (the private listener, with the launch token)."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client

    def state(self) -> dict[str, Any]:
        """``{"model", "loaded": [...], "stack": [...]}``: what the engine has now."""
        return self.client._call("GET", "/control/adapters")

    def add(self, *, name: str | None = None, path: str | None = None) -> dict[str, Any]:
        """Load an adapter on the engine's model: a library adapter by name, or a GGUF file
        (named after the file unless *name* is given). Raises EngineError with the reason
        when it does not fit the model."""
        return self.client._call("POST", "/control/adapters", {"name": name, "path": path})

    def remove(self, name: str) -> dict[str, Any]:
        return self.client._call("DELETE", f"/control/adapters/{quote(name, safe='')}")

    def set_stack(self, stack: Sequence[StackEntry]) -> dict[str, Any]:
        """Replace the engine's stack; the next reply uses it, with no model reload."""
        return self.client._call("POST", "/control/adapters/stack",
                                 {"stack": [entry.to_dict() for entry in stack]})

    def lora_adapters(self) -> list[dict[str, Any]]:
        """llama-server's list: ``[{"id", "name", "path", "scale", ...}]``."""
        return self.client._call("GET", "/lora-adapters")


def parse_lora_arg(text: str) -> tuple[str, float]:
    """``PATH[:SCALE]`` -> (path, scale); the scale is 1 when left out.

    Only a last part that reads as a number is a scale, so Windows drive letters and paths
    with colons stay whole.
    """
    path, sep, tail = text.rpartition(":")
    if sep and path:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return text, 1.0


def apply_lora_args(client: EngineClient, specs: Sequence[str]) -> dict[str, Any]:
    """Load every ``PATH[:SCALE]`` on the engine's model and stack them in that order. A
    PATH that is no file but the name of an adapter in the library means that adapter."""
    adapters = AdapterClient(client)
    stack = []
    for spec in specs:
        path, scale = parse_lora_arg(spec)
        if not Path(path).expanduser().exists() and _in_library(path):
            state = adapters.add(name=path)
            loaded = [a for a in state["loaded"] if a["name"] == path]
            if not loaded:
                raise EngineError(f"The engine did not keep the adapter {path}.")
            stack.append(StackEntry(loaded[-1]["name"], scale))
            continue
        path = str(Path(path).expanduser().resolve())  # relative to where the user typed it
        state = adapters.add(path=path)
        loaded = [a for a in state["loaded"] if a["path"] == path]
        if not loaded:
            raise EngineError(f"The engine did not keep the adapter {path}.")
        stack.append(StackEntry(loaded[-1]["name"], scale))
    return adapters.set_stack(stack)


def _in_library(name: str) -> bool:
    from desktop.core.adapters import AdapterError, AdapterLibrary

    try:
        return AdapterLibrary().find(name) is not None
    except (AdapterError, OSError):
        return False
