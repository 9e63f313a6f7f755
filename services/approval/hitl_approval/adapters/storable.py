"""Free-form JSON (tool arguments, contexts, schemas) in forms every store accepts.

MongoDB and FerretDB refuse keys that start with `$` or hold `.` or NUL, integers
past 64 bits, and FerretDB 1.x drops the connection on NaN; JSON schemas routinely
carry `$defs` and `$ref`. So the truth (stream entries, stored responses) is kept
as JSON text, and the copies other readers query (the listing projection) are made
storable by `readable`, which changes only what the store would refuse.
"""

import json
import math
from typing import Any

INT64 = 2**63


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(value: str) -> Any:
    return json.loads(value)


def readable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key(str(k)): readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


def _key(key: str) -> str:
    # Look-alike characters keep the key legible to a person reading the document.
    key = key.replace("\x00", "\u2400").replace(".", "\uff0e")
    return "\uff04" + key[1:] if key.startswith("$") else key
