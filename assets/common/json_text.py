"""JSON text of parsed records: made with orjson, with the standard library where it cannot.

The raw parsers store each OCDS release and BODS statement as canonical JSON text (and hash
it), and the OCDS merge writes each compiled release as text: at scale 1 that is ~1M values,
and `json.dumps` was 5-10x slower than orjson on them (docs/scaling.md, session 7).

orjson refuses integers beyond 64 bits and strings with lone surrogates, which JSON text can
carry; those values fall back to `json.dumps` with the same separators, so no value is lost.
Both write numbers as Python reads them back; they differ only in how an exponent is spelt
(orjson `1.5e-7`, json `1.5e-07`), so text made by other code is not compared byte for byte.
NaN and Infinity are not JSON: `loads` refuses them (orjson would write them as null).
"""

import json
from typing import Any

import orjson


def canonical_json(value: Any) -> str:
    """Keys sorted, no spaces, non-ASCII kept: the text content hashes are taken of."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def compact_json(value: Any) -> str:
    """Keys in their order, no spaces, non-ASCII kept."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def loads(text: str | bytes) -> Any:
    """`json.loads` without NaN/Infinity (integers keep every digit, unlike orjson.loads)."""
    return json.loads(text, parse_constant=_not_json)
