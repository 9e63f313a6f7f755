"""Edited arguments: plain JSON of a sane shape, fitting the tool's JSON schema."""

from typing import Any

from hitl_contracts.plain import plain_json_problem
from jsonschema import exceptions, validators

MAX_PROBLEMS = 5


def json_problems(value: Any) -> str | None:
    """Why edited arguments are not plain JSON every store and consumer takes; None if they are.

    The same rule the contracts apply to every free-form value (hitl_contracts.plain).
    """
    return plain_json_problem(value, path="arguments")


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


def with_defaults(
    arguments: dict[str, Any], schema: dict[str, Any] | None, *, requested: dict[str, Any]
) -> dict[str, Any]:
    """`arguments` with each field of the request they leave out set to its schema default.

    Only fields the request has: a default the request did not carry (a field the
    agent hides from reviewers) is no part of what is compared.
    """
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict):
        return arguments
    filled = dict(arguments)
    for name in requested:
        spec = properties.get(name)
        if name not in filled and isinstance(spec, dict) and "default" in spec:
            filled[name] = spec["default"]
    return filled
