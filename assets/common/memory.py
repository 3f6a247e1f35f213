"""DuckDB's share of memory while a step's worker processes need theirs.

The build database stays open for the whole run (`pipelines/resources.BuildDatabase`), and
DuckDB fills its `memory_limit` with cached blocks. A step that starts worker processes
(the OCDS merge) lowers DuckDB's limit while they run, so the process tree stays within the
memory budget (docs/scaling.md): DuckDB evicts down to the lower limit and spills beyond it.
"""

import contextlib
import re
from collections.abc import Iterator

import duckdb

_UNITS = {
    "bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes of a DuckDB size setting as DuckDB shows it ('953.6 MiB', '1GB')."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a DuckDB size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@contextlib.contextmanager
def memory_share(con: duckdb.DuckDBPyConnection, fraction: float) -> Iterator[None]:
    """DuckDB's `memory_limit` at `fraction` of its value while the block runs, then back."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{int(parse_size(before) * fraction)}B'")
    try:
        yield
    finally:
        # DuckDB shows the limit rounded down to 0.1 of its unit: restored within 0.01%
        con.execute(f"SET memory_limit = '{before}'")
