"""The tools of MCP servers as the model is offered them (under names it may use), and a
tool's result as the text the model reads. A call itself, as the chat saves it, is
:class:`desktop.core.tool_calls.ToolCall`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from desktop.core.schema_keywords import loosened

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_EMPTY_PARAMETERS = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class OfferedTool:
    """An MCP server's tool as the model sees it: *function* is the name in ``tools``."""

    function: str
    server: str
    tool: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: dict(_EMPTY_PARAMETERS))

    def as_openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.function, "description": self.description[:2000],
            "parameters": self.parameters}}


def _function_name(text: str) -> str:
    return _NAME_CHARS.sub("_", text)[:64] or "tool"


def offer(tools: dict[str, list[tuple[str, str, Any]]]) -> dict[str, OfferedTool]:
    """The tools of each server (name, description, input schema) under function names that
    are unique and valid: a tool's own name, or ``server_tool`` where two servers share it."""
    counts: dict[str, int] = {}
    for listed in tools.values():
        for name, _, _ in listed:
            counts[_function_name(name)] = counts.get(_function_name(name), 0) + 1
    offered: dict[str, OfferedTool] = {}
    for server, listed in tools.items():
        for name, description, schema in listed:
            function = _function_name(name)
            if counts[function] > 1:
                function = _function_name(f"{server}_{name}")
            base, n = function, 2
            while function in offered:
                function = f"{base[:60]}_{n}"
                n += 1
            parameters = loosened(schema) if isinstance(schema, dict) else {}
            if parameters.get("type") != "object":
                parameters = dict(_EMPTY_PARAMETERS)
            offered[function] = OfferedTool(function, server, name, description or "",
                                            parameters)
    return offered


def result_text(content: list[Any], structured: Any = None) -> str:
    """What a tool gave back, as text: its text blocks, and a line for each other block."""
    parts: list[str] = []
    for block in content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        elif kind in ("image", "audio"):
            mime = getattr(block, "mimeType", None) or getattr(block, "mime_type", "")
            parts.append(f"[{kind} {mime}]")
        elif kind == "resource":
            resource = getattr(block, "resource", None)
            text = getattr(resource, "text", None)
            parts.append(str(text) if text is not None
                         else f"[resource {getattr(resource, 'uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[link {getattr(block, 'uri', '')}]")
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)
