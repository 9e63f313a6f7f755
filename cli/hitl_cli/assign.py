"""`--set key=value` edits, typed by the tool's `arguments_schema` when it has one (pure)."""

import json
from typing import Any


class BadAssignment(ValueError):
    pass


def _types(schema: dict[str, Any] | None, key: str) -> set[str]:
    node = ((schema or {}).get("properties") or {}).get(key) or {}
    variants = node.get("anyOf") or node.get("oneOf") or [node]
    kinds: set[str] = set()
    for variant in variants:
        kind = variant.get("type")
        kinds.update(kind if isinstance(kind, list) else [kind] if kind else [])
    return kinds


def _typed(key: str, text: str, kinds: set[str]) -> Any:
    if text == "null" and "null" in kinds:
        return None
    if kinds & {"integer", "number"}:
        try:
            return int(text)
        except ValueError:
            if "number" in kinds:
                try:
                    return float(text)
                except ValueError:
                    pass
        raise BadAssignment(f"{key} must be a number, got {text!r}")
    if "boolean" in kinds:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise BadAssignment(f"{key} must be true or false, got {text!r}")
    if "string" in kinds:
        return text
    # No schema (or an object/array): JSON if it parses, else the plain string.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply(
    arguments: dict[str, Any], assignments: list[str], schema: dict[str, Any] | None
) -> dict[str, Any]:
    """A copy of `arguments` with each `key=value` applied in order."""
    edited = dict(arguments)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadAssignment(f"expected key=value, got {assignment!r}")
        edited[key] = _typed(key, text, _types(schema, key))
    return edited
