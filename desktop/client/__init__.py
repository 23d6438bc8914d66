"""Clients of an engine over HTTP: the app's own engine, or any OpenAI-compatible server."""

from desktop.client.api import EngineClient, EngineError

__all__ = ["EngineClient", "EngineError"]
