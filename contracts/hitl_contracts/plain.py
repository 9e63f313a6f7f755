"""Plain JSON: the only free-form values an event may carry.

Arguments, contexts, metadata and schemas are free-form, and some values in them
break a store or a consumer far from where they came in: FerretDB 1.x drops the
connection on NaN, MongoDB refuses integers beyond 64 bits, JSON encoders refuse
Infinity, and deep nesting exhausts recursion. So they are refused at the edge,
with the path of the first bad value, by every model that carries free-form JSON.
"""

import math
from typing import Annotated, Any

from pydantic import AfterValidator

# Tool arguments and contexts are shallow; this is far above any real one and far
# below what the JSON libraries and stores on the way can take.
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def plain_json_problem(value: Any, *, path: str = "value", depth: int = 0) -> str | None:
    """Why `value` is not plain JSON every store and consumer can take; None when it is."""
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{path}: the integer {value} does not fit in 64 bits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a JSON number"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            if "\0" in key:
                return f"{path}: key {key!r} contains a NUL character"
            if problem := plain_json_problem(item, path=f"{path}.{key}", depth=depth + 1):
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if problem := plain_json_problem(item, path=f"{path}[{index}]", depth=depth + 1):
                return problem
        return None
    return f"{path}: {type(value).__name__} is not a JSON value"


def _checked(value: dict[str, Any]) -> dict[str, Any]:
    if problem := plain_json_problem(value, path="object"):
        raise ValueError(f"not plain JSON: {problem}")
    return value


# A JSON object whose every value is plain JSON (see the module docstring).
PlainObject = Annotated[dict[str, Any], AfterValidator(_checked)]
