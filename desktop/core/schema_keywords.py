"""The JSON Schema keywords that the engine's output grammar can keep, and those it cannot.

The engine refuses a schema with a keyword it cannot enforce (a 400 naming it). Tools from
elsewhere (MCP servers) are offered with those keywords taken out: their server checks the
values itself, and the model still gets the shape.
"""

from __future__ import annotations

from typing import Any

# Keywords of JSON Schema that constrain values and that the grammar cannot enforce.
UNENFORCEABLE = frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "not", "if",
    "then", "else", "uniqueItems", "contains", "minContains", "maxContains", "minProperties",
    "maxProperties", "patternProperties", "propertyNames", "dependentRequired",
    "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems",
    "contentEncoding", "contentMediaType", "additionalItems"})
# The string formats the grammar can enforce.
FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4",
                     "uuid5"})
# Keywords whose value is a schema, or a list or an object of schemas.
_SUBSCHEMA = {"items", "additionalProperties", "contains", "not", "if", "then", "else"}
_SUBSCHEMAS = {"anyOf", "oneOf", "allOf", "prefixItems"}
_NAMED = {"properties", "$defs", "definitions"}


def loosened(schema: Any, depth: int = 0) -> Any:
    """A copy of *schema* without the keywords the grammar cannot enforce (and without string
    formats it does not know, and patterns, whose regular expressions may use what the grammar
    cannot), everywhere in it."""
    if depth > 64 or not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNENFORCEABLE or key == "pattern":
            continue
        if key == "format" and value not in FORMATS:
            continue
        if key in _SUBSCHEMA:
            value = loosened(value, depth + 1)
        elif key in _SUBSCHEMAS and isinstance(value, list):
            value = [loosened(v, depth + 1) for v in value]
        elif key in _NAMED and isinstance(value, dict):
            value = {k: loosened(v, depth + 1) for k, v in value.items()}
        out[key] = value
    return out
