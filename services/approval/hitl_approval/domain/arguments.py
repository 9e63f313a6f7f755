"""Edited arguments: plain JSON of a sane shape, fitting the tool's JSON schema."""

import math
from typing import Any

from jsonschema import exceptions, validators

MAX_PROBLEMS = 5
# Tool arguments are shallow; this bounds what a reviewer's edit may nest, well inside
# what the JSON libraries on the way to the agent can serialize.
MAX_DEPTH = 32


def json_problems(value: Any, *, path: str = "arguments", depth: int = 0) -> str | None:
    """Why `value` is not plain JSON we can store and pass on; None when it is."""
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: {value} is not a JSON number"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)  # type: ignore[assignment]
    else:
        return None
    for key, item in items:
        if problem := json_problems(item, path=f"{path}.{key}", depth=depth + 1):
            return problem
    return None


def schema_problems(arguments: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit `schema`, for a person; None when they fit."""
    try:
        validator_class = validators.validator_for(schema)
        validator_class.check_schema(schema)
        errors = list(validator_class(schema).iter_errors(arguments))
    except exceptions.SchemaError as exc:
        return f"the request's arguments_schema is not a valid JSON schema: {exc.message}"
    except Exception as exc:
        # Unresolvable $refs, bad regexes, runaway recursion: the producer's schema is at
        # fault, not the reviewer's arguments, and the reviewer should be told so.
        return f"the request's arguments_schema cannot be applied: {exc!r}"
    if not errors:
        return None
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    parts = [
        f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
        for e in errors[:MAX_PROBLEMS]
    ]
    return "; ".join(parts)
