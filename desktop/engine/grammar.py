"""Constrained output: JSON schemas checked and turned into GBNF, and llama.cpp's grammar
sampler wrapped for one slot.

A schema keyword that the grammar cannot enforce (a number range, ``uniqueItems`` …) is
refused with a 400 that names it and where it is, rather than accepted and then not kept.
The conversion itself is llama-cpp-python's SchemaConverter; what is done here is the
checking before it, filling in what it gets wrong (an empty schema means any value; a string
may not hold raw control characters, which no JSON parser accepts), and the rules around it
for tool calls.
"""

from __future__ import annotations

import copy
import ctypes
import json
import re
from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import JSON_GBNF, SchemaConverter

from desktop.core.schema_keywords import FORMATS, UNENFORCEABLE
from desktop.engine.errors import APIError, bad_request
from desktop.engine.vocab import piece_of, tokens_of

# Keywords the grammar keeps, and those that only describe (ignored, as they constrain nothing).
_ENFORCED = {"type", "properties", "required", "additionalProperties", "items", "prefixItems",
             "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
             "pattern", "minLength", "maxLength", "format"}
_DESCRIPTIVE = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
                "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "nullable",
                "strict", "discriminator"}
_UNENFORCEABLE = UNENFORCEABLE
_TYPES = {"string", "number", "integer", "boolean", "null", "object", "array"}
_FORMATS = FORMATS
_ANY = {"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean",
                                         "null")]}
# The longest schema (as JSON) a request may constrain its output with.
MAX_SCHEMA_BYTES = 200_000


class SchemaError(Exception):
    """A schema the grammar cannot keep; *where* is a JSON-pointer-like path."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def check_schema(schema: Any, where: str = "") -> dict[str, Any]:
    """A copy of *schema* ready for conversion, or SchemaError naming what cannot be kept."""
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"the schema is not JSON: {exc}", where or "/") from exc
    if size > MAX_SCHEMA_BYTES:
        raise SchemaError(f"the schema is {size:,} bytes; at most {MAX_SCHEMA_BYTES:,} are "
                          "accepted", where or "/")
    return _normalise(copy.deepcopy(schema), where, 0)


def _normalise(schema: Any, where: str, depth: int) -> Any:
    if depth > 64:
        raise SchemaError("the schema is nested more than 64 levels deep", where or "/")
    if schema is True:
        return dict(_ANY)
    if not isinstance(schema, dict):
        raise SchemaError(f"a schema must be an object, not {json.dumps(schema)[:40]}",
                          where or "/")
    for key in schema:
        if key in _UNENFORCEABLE:
            raise SchemaError(f"the keyword '{key}' cannot be enforced by the grammar; remove "
                              "it or check the value yourself", f"{where}/{key}")
    kind = schema.get("type")
    for name in (kind if isinstance(kind, list) else [kind] if kind is not None else []):
        if name not in _TYPES:
            raise SchemaError(f"unknown type {json.dumps(name)[:40]}", f"{where}/type")
    fmt = schema.get("format")
    if fmt is not None and kind in (None, "string") and fmt not in _FORMATS:
        raise SchemaError(f"the string format '{fmt}' cannot be enforced by the grammar "
                          f"(known: {', '.join(sorted(_FORMATS))})", f"{where}/format")
    ref = schema.get("$ref")
    if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
        raise SchemaError("only references inside the schema ('#/$defs/…') are supported",
                          f"{where}/$ref")
    if not any(key in schema for key in _ENFORCED - {"format"}) and fmt is None:
        return {**dict(_ANY), **{k: v for k, v in schema.items() if k in _DESCRIPTIVE}}
    for key in ("properties", "$defs", "definitions"):
        if key in schema:
            if not isinstance(schema[key], dict):
                raise SchemaError(f"'{key}' must be an object", f"{where}/{key}")
            schema[key] = {name: _normalise(sub, f"{where}/{key}/{name}", depth + 1)
                           for name, sub in schema[key].items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                raise SchemaError(f"'{key}' must be a list of schemas", f"{where}/{key}")
            schema[key] = [_normalise(sub, f"{where}/{key}/{i}", depth + 1)
                           for i, sub in enumerate(schema[key])]
    if "items" in schema:
        items = schema["items"]
        if isinstance(items, list):
            schema["items"] = [_normalise(sub, f"{where}/items/{i}", depth + 1)
                               for i, sub in enumerate(items)]
        elif items is False:
            schema["maxItems"] = 0
            schema["items"] = dict(_ANY)
        else:
            schema["items"] = _normalise(items, f"{where}/items", depth + 1)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        schema["additionalProperties"] = _normalise(extra, f"{where}/additionalProperties",
                                                    depth + 1)
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        value = schema.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= 10_000):
            raise SchemaError(f"'{key}' must be a whole number from 0 to 10000",
                              f"{where}/{key}")
    required = schema.get("required")
    if required is not None and (not isinstance(required, list)
                                 or not all(isinstance(r, str) for r in required)):
        raise SchemaError("'required' must be a list of property names", f"{where}/required")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaError("'enum' must be a list with at least one value", f"{where}/enum")
    return schema


def _patch(gbnf: str) -> str:
    """No raw control characters inside strings: JSON parsers refuse them."""
    return gbnf.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def schema_grammar(schema: Any, param: str = "response_format") -> str:
    """GBNF for values that validate against *schema*; a 400 names what cannot be kept."""
    try:
        checked = check_schema(schema)
    except SchemaError as exc:
        raise bad_request(f"The JSON schema cannot be used at '{exc.where}': {exc}.",
                          param=param, code="unsupported_schema") from exc
    return _convert(checked, param)


def _convert(schema: dict[str, Any], param: str) -> str:
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False,
                                raw_pattern=False)
    try:
        resolved = converter.resolve_refs(schema, "request")
        converter.visit(resolved, "")
        return _patch(converter.format_grammar())
    except (KeyError, AssertionError, ValueError, TypeError, RecursionError) as exc:
        raise bad_request(f"The JSON schema cannot be turned into a grammar: {exc}.",
                          param=param, code="unsupported_schema") from exc
    except Exception as exc:  # the converter raises bare Exceptions for bad refs and patterns
        raise bad_request(f"The JSON schema cannot be turned into a grammar: {exc}.",
                          param=param, code="unsupported_schema") from exc


JSON_OBJECT_GRAMMAR = JSON_GBNF
# The rule for one call in tool-call grammars (a name no property turns into).
CALL_RULE = "nomoat-tool-call"
# The answer after the thinking, for a reply that starts inside it.
AFTER_THINKING = r"[\s\S]*?</think>\s*([\s\S]*)"


def _rename_refs(schema: Any, prefix: str) -> Any:
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                value = re.sub(r"^#/(\$defs|definitions)/", f"#/$defs/{prefix}", value)
            out[key] = _rename_refs(value, prefix)
        return out
    if isinstance(schema, list):
        return [_rename_refs(v, prefix) for v in schema]
    return schema


def calls_schema(functions: list[tuple[str, dict[str, Any]]], key: str = "arguments"
                 ) -> dict[str, Any]:
    """One call of any of *functions* as {"name": …, key: {…}}, each function's references
    kept apart under its own prefix."""
    options = []
    defs: dict[str, Any] = {}
    for index, (name, parameters) in enumerate(functions):
        prefix = f"f{index}-"
        params = _rename_refs(parameters, prefix)
        for section in ("$defs", "definitions"):
            for def_name, sub in (params.pop(section, None) or {}).items():
                defs[prefix + def_name] = sub
        options.append({"type": "object",
                        "properties": {"name": {"const": name}, key: params},
                        "required": ["name", key], "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def tool_call_grammar(call_schema: dict[str, Any], root: str) -> str:
    """GBNF whose *root* rule (written by the caller, in the model's call markup) refers to
    CALL_RULE: one call as *call_schema* says."""
    grammar = _convert(call_schema, "tools")
    grammar = re.sub(r"^root ::=", f"{CALL_RULE} ::=", grammar, flags=re.MULTILINE)
    return root + "\n" + grammar


@dataclass
class Constraint:
    """A grammar for one reply. With a *trigger* (a regular expression the whole reply so far
    must match), the grammar waits until the reply matches it and binds the text from the
    trigger's first group on: the answer after the thinking, or a call the model chose to
    make."""

    gbnf: str
    trigger: str | None = None


class GrammarRefused(Exception):
    """A token the grammar does not allow was about to be given to it."""


class GrammarSampler:
    """llama.cpp's grammar sampler for one slot (model thread only).

    llama.cpp ends the process when its grammar is handed a token it does not allow, so no
    token reaches it unchecked: each is tried first, whitespace it refuses is left out (JSON
    and the call markup read the same without it), and anything else it refuses raises
    GrammarRefused. The trigger is watched here rather than by llama.cpp's lazy grammar for
    the same reason: the text from the trigger's group on is checked token by token."""

    def __init__(self, vocab: Any, gbnf: str, trigger: str | None = None) -> None:
        self.vocab = vocab
        self.sampler: Any = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(),
                                                                 b"root")
        if not self.sampler:
            raise APIError(400, "The output grammar could not be parsed by llama.cpp.",
                           code="invalid_grammar")
        self.trigger = re.compile(trigger) if trigger is not None else None
        self.waiting = trigger is not None
        self._said = ""
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)

    def allows(self, token: int) -> bool:
        """Whether the grammar lets *token* come next (it is not accepted yet)."""
        if self.waiting:
            return True
        self._one[0].id = token
        self._one[0].logit = 0.0
        self._one[0].p = 0.0
        self._one_array.size = 1
        self._one_array.selected = -1
        llama_cpp.llama_sampler_apply(self.sampler, ctypes.byref(self._one_array))
        return bool(self._one[0].logit != float("-inf"))

    def apply(self, candidates: Any) -> None:
        if not self.waiting:
            llama_cpp.llama_sampler_apply(self.sampler, candidates)

    def accept(self, token: int) -> None:
        if not self.waiting:
            self._take(token)
            return
        assert self.trigger is not None
        self._said += piece_of(self.vocab, token, special=True).decode("utf-8", "replace")
        match = self.trigger.fullmatch(self._said)
        if match is None:
            return
        self.waiting = False
        bound = self._said[match.start(1):] if match.lastindex else ""
        self._said = ""
        for part in tokens_of(self.vocab, bound) if bound else []:
            self._take(part)

    def _take(self, token: int) -> None:
        if self.allows(token):
            llama_cpp.llama_sampler_accept(self.sampler, token)
        elif not piece_of(self.vocab, token, special=True).isspace():
            raise GrammarRefused(token)

    def close(self) -> None:
        if self.sampler:
            llama_cpp.llama_sampler_free(self.sampler)
            self.sampler = None
