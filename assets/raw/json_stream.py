"""ijson for the raw JSON parsers (OCDS, BODS): its C backend, and its Python backend for a
file the C backend cannot read exactly.

The parsers stream with `use_float=True` (a non-integer number comes back as a float, not a
Decimal: faster, and what `json.loads` gives). With that option ijson's C backend (yajl) keeps
integers in 64 bits and refuses a file holding a larger one ("integer overflow"), although
it is valid JSON: a numeric id of 20 digits would have quarantined the whole file. Such a file
is read again from its start by ijson's Python backend, which reads every integer exactly, at
~10x the CPU time. `read_exactly` does that: the parser raises `WideInteger` through
`refuse_wide_integer` where it catches ijson's errors, and the rows it wrote for the file are
discarded (`RowBuffer.discard`) before the second read.
"""

import contextvars
from collections.abc import Callable
from types import ModuleType
from typing import Any

import ijson

from assets.raw.ingest import ParseResult, RowBuffer

PYTHON_BACKEND: ModuleType = ijson.get_backend("python")
_BACKEND: contextvars.ContextVar[Any] = contextvars.ContextVar("ijson_backend", default=ijson)


class WideInteger(Exception):
    """ijson's C backend met an integer beyond 64 bits: the file is read again (read_exactly)."""


def backend() -> Any:
    """The ijson backend the file being parsed is read with (`parse`, `items`)."""
    return _BACKEND.get()


def refuse_wide_integer(exc: Exception) -> None:
    """Raise WideInteger if `exc`, an ijson error, is the C backend's refusal of an integer
    beyond 64 bits; otherwise return (the caller reports the file as invalid JSON)."""
    if _BACKEND.get() is not PYTHON_BACKEND and "integer overflow" in str(exc):
        raise WideInteger(" ".join(str(exc).split())) from exc


def read_exactly(out: RowBuffer, parse: Callable[[], ParseResult]) -> ParseResult:
    """`parse()` (one file's rows to `out`); when it meets an integer beyond 64 bits, the
    file's rows so far discarded and `parse()` again with ijson's Python backend."""
    try:
        return parse()
    except WideInteger:
        out.discard()
    token = _BACKEND.set(PYTHON_BACKEND)
    try:
        result = parse()
    finally:
        _BACKEND.reset(token)
    note = "read by ijson's Python backend: it holds integers beyond 64 bits"
    result.message = f"{result.message}; {note}" if result.message else note
    return result
