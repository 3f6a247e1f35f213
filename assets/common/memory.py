"""DuckDB's share of memory while a step's worker processes need theirs.

The build database stays open for the whole run (`pipelines/resources.BuildDatabase`), and
DuckDB fills its `memory_limit` with cached blocks. A step that starts worker processes
(the OCDS merge) lowers DuckDB's limit while they run, so the process tree stays within the
memory budget (docs/scaling.md): DuckDB evicts down to the lower limit and spills beyond it.
"""

import contextlib
import logging
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


# captured into the run's event log (pipelines/dagster.yaml: python_logs)
_LOG = logging.getLogger("fundtrace.memory")
# above what DuckDB holds when it cannot go down to its share: room for the next blocks
HEADROOM_BYTES = 64 << 20


def _held_bytes(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0])


@contextlib.contextmanager
def memory_share(con: duckdb.DuckDBPyConnection, fraction: float) -> Iterator[int]:
    """DuckDB's `memory_limit` at `fraction` of its value while the block runs, then back.

    Yields the limit in force, in bytes. DuckDB refuses a limit below what it cannot evict (a
    running query's sorted rows, for one: a 310 MB OCDS package under a 512 MB limit held
    307 MiB in its ORDER BY). The limit then goes as low as DuckDB allows, to what it still
    holds after that attempt plus HEADROOM_BYTES, and stays as it was if even that fails: a
    share is a memory budget, not a reason to fail the step."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    limit = parse_size(before)
    wanted = int(limit * fraction)
    try:
        con.execute(f"SET memory_limit = '{wanted}B'")
        applied = wanted
    except duckdb.OutOfMemoryException:
        applied = min(limit, max(wanted, _held_bytes(con) + HEADROOM_BYTES))
        try:
            if applied < limit:
                con.execute(f"SET memory_limit = '{applied}B'")
        except duckdb.OutOfMemoryException:
            applied = limit
        _LOG.warning(
            "DuckDB holds memory it cannot evict yet: its limit is %.0f MiB while the workers "
            "run, not the %.0f MiB share (%.0f MiB otherwise)",
            applied / 2**20,
            wanted / 2**20,
            limit / 2**20,
        )
    try:
        yield applied
    finally:
        # DuckDB shows the limit rounded down to 0.1 of its unit: restored within 0.01%
        con.execute(f"SET memory_limit = '{before}'")
