"""The modify form, generated from the tool's `arguments_schema` and parsed back (pure).

A reviewer edits arguments in plain inputs: numbers as numbers, booleans and
enums as selects, and anything structured (objects, arrays, unknown shapes) as
JSON. Parsing reports a message per field instead of failing the whole form, so
the page can show the reviewer exactly what to fix.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

PREFIX = "arg."
RAW_FIELD = "arguments_json"

Schema = dict[str, Any]


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    # text | number | integer | boolean | select | json
    kind: str
    value: str
    required: bool = False
    nullable: bool = False
    help: str = ""
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    error: str = ""

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def html_min(self) -> float | None:
        return self.minimum if self.minimum is not None else self.exclusive_minimum

    @property
    def html_max(self) -> float | None:
        return self.maximum if self.maximum is not None else self.exclusive_maximum


def _resolve(schema: Schema, node: Schema) -> Schema:
    """Follow a local `$ref` (pydantic puts enums and nested models under `$defs`)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _unwrap_nullable(schema: Schema, node: Schema) -> tuple[Schema, bool]:
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        others = [v for v in variants if v.get("type") != "null"]
        if len(others) == 1 and len(others) < len(variants):
            merged = {**_resolve(schema, others[0])}
            for key in ("title", "description", "default"):
                if key in node:
                    merged[key] = node[key]
            return merged, True
    if isinstance(node.get("type"), list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) == 1:
            return {**node, "type": types[0]}, "null" in node["type"]
    return node, False


def _kind(node: Schema) -> str:
    if "enum" in node:
        return "select"
    kind = node.get("type")
    if kind in ("string", "number", "integer", "boolean"):
        return "text" if kind == "string" else str(kind)
    return "json"


def _show(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if kind in ("number", "integer") and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fields_for(schema: Schema | None, arguments: Mapping[str, Any]) -> list[FormField]:
    """One field per schema property, filled with the current arguments."""
    if not schema or not isinstance(schema.get("properties"), dict):
        return [
            FormField(
                name=RAW_FIELD,
                label="Arguments (JSON)",
                kind="json",
                value=json.dumps(dict(arguments), indent=2, ensure_ascii=False),
                required=True,
                help="The tool declared no schema; edit the arguments as a JSON object.",
            )
        ]
    required = set(schema.get("required", []))
    fields = []
    for name, raw in schema["properties"].items():
        node, nullable = _unwrap_nullable(schema, _resolve(schema, raw))
        kind = _kind(node)
        value = arguments[name] if name in arguments else node.get("default")
        fields.append(
            FormField(
                name=name,
                label=str(node.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                value=_show(value, kind),
                required=name in required,
                nullable=nullable,
                help=str(node.get("description", "")),
                options=tuple(_show(o, "text") for o in node.get("enum", [])),
                minimum=node.get("minimum"),
                maximum=node.get("maximum"),
                exclusive_minimum=node.get("exclusiveMinimum"),
                exclusive_maximum=node.get("exclusiveMaximum"),
                min_length=node.get("minLength"),
                max_length=node.get("maxLength"),
            )
        )
    return fields


class _Invalid(ValueError):
    pass


def _number(text: str, kind: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        if kind == "integer":
            raise _Invalid(f"{text!r} is not a whole number") from None
    try:
        number = float(text)
    except ValueError:
        raise _Invalid(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise _Invalid(f"{text!r} is not a finite number")
    return number


def _bounds(field: FormField, number: float) -> None:
    if field.minimum is not None and number < field.minimum:
        raise _Invalid(f"must be at least {_show(field.minimum, 'number')}")
    if field.exclusive_minimum is not None and number <= field.exclusive_minimum:
        raise _Invalid(f"must be more than {_show(field.exclusive_minimum, 'number')}")
    if field.maximum is not None and number > field.maximum:
        raise _Invalid(f"must be at most {_show(field.maximum, 'number')}")
    if field.exclusive_maximum is not None and number >= field.exclusive_maximum:
        raise _Invalid(f"must be less than {_show(field.exclusive_maximum, 'number')}")


def _value(field: FormField, text: str, schema_enum: list[Any]) -> Any:
    if field.kind in ("number", "integer"):
        number = _number(text, field.kind)
        _bounds(field, number)
        return number
    if field.kind == "boolean":
        if text not in ("true", "false"):
            raise _Invalid("choose true or false")
        return text == "true"
    if field.kind == "select":
        for option in schema_enum:
            if _show(option, "text") == text:
                return option
        raise _Invalid(f"choose one of {', '.join(field.options)}")
    if field.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise _Invalid(f"not valid JSON: {exc.msg} ({where})") from None
    if field.min_length is not None and len(text) < field.min_length:
        raise _Invalid(f"needs at least {field.min_length} characters")
    if field.max_length is not None and len(text) > field.max_length:
        raise _Invalid(f"allows at most {field.max_length} characters")
    return text


@dataclass(frozen=True)
class Parsed:
    arguments: dict[str, Any]
    fields: list[FormField]
    errors: dict[str, str]


def parse(schema: Schema | None, original: Mapping[str, Any], form: Mapping[str, str]) -> Parsed:
    """Edited arguments from a submitted form; `fields` echo what was typed, with errors."""
    fields = fields_for(schema, original)
    if fields and fields[0].name == RAW_FIELD:
        field = fields[0]
        text = form.get(field.input_name, "")
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise _Invalid('must be a JSON object, e.g. {"amount": 80}')
        except (json.JSONDecodeError, _Invalid) as exc:
            message = str(exc) if isinstance(exc, _Invalid) else f"not valid JSON: {exc.msg}"
            return Parsed({}, [replace(field, value=text, error=message)], {field.name: message})
        return Parsed(value, [replace(field, value=text)], {})

    assert schema is not None
    properties = schema["properties"]
    # Keys the schema does not describe are kept as the agent proposed them.
    arguments = {k: v for k, v in original.items() if k not in properties}
    errors: dict[str, str] = {}
    echoed = []
    for field in fields:
        text = form.get(field.input_name, "").strip()
        echoed_field = replace(field, value=text)
        if text == "":
            if field.nullable and (field.required or field.name in original):
                arguments[field.name] = None
            elif field.required:
                errors[field.name] = "is required"
        else:
            node, _ = _unwrap_nullable(schema, _resolve(schema, properties[field.name]))
            try:
                arguments[field.name] = _value(field, text, list(node.get("enum", [])))
            except _Invalid as exc:
                errors[field.name] = str(exc)
        echoed.append(replace(echoed_field, error=errors.get(field.name, "")))
    return Parsed(arguments, echoed, errors)
