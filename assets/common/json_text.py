"""JSON text of parsed records: made with orjson, with the standard library where it cannot.

The raw parsers store each OCDS release and BODS statement as canonical JSON text (and hash
it), and the OCDS merge writes each compiled release as text: at scale 1 that is ~1M values,
and `json.dumps` was 5-10x slower than orjson on them (docs/scaling.md, session 7).

orjson refuses integers beyond 64 bits and strings with lone surrogates, which JSON text can
carry; those values fall back to `json.dumps` with the same separators, so no value is lost.
Both write numbers as Python reads them back; they differ only in how an exponent is spelt
(orjson `1.5e-7`, json `1.5e-07`), so text made by other code is not compared byte for byte.
NaN and Infinity are not JSON: `loads` refuses them (orjson would write them as null).

Reading, orjson is ~2x faster than `json.loads` but not the same on one kind of value: an
integer beyond 64 bits comes back as a float, without an error. `loads_exactly` takes orjson for
the texts without a run of 19 digits (found for a whole column at once, by Arrow's regex
engine) and `json.loads` for the rest and for any text orjson refuses (NaN, lone surrogates,
numbers beyond a float): the values are those `json.loads` gives.
"""

import json
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

# every integer beyond 64 bits (below -2**63 or above 2**64 - 1) has 19 digits or more
_MAYBE_WIDE_INTEGER = r"\d{19}"


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


def may_hold_wide_integers(texts: pa.Array | pa.ChunkedArray) -> list[bool]:
    """For each text of an Arrow string column: could it hold an integer beyond 64 bits (a
    run of 19 digits)? Found by Arrow's regex engine for the whole column at once."""
    wide = pc.match_substring_regex(texts, _MAYBE_WIDE_INTEGER)  # pyright: ignore[reportAttributeAccessIssue]
    return [bool(w) for w in wide.to_pylist()]


def loads_exactly(text: str, flagged: bool) -> Any:
    """`json.loads(text)`, through orjson when it gives the same value (see the module);
    `flagged`: `may_hold_wide_integers` said the text could hold an integer beyond 64 bits."""
    if not flagged:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
