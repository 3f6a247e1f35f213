"""Publish the marts: copy schema `marts` into a fresh DuckDB file, then atomically replace
`$FUNDTRACE_MARTS_DB` with it.

Analysts hold the published file open read-only. `os.replace` swaps the directory entry in one
step, so a reader sees the complete old file (its open handle keeps the old inode alive) or
the complete new one, never a half-written table. This asset runs only when every mart and
every blocking check upstream succeeded, so a failed run leaves the previous marts in place.
"""

import os
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.tables import TableSpec, sql_literal
from assets.marts.control import FUNDING_STREAM_CONTROL, PROJECT_CONTROL, ULTIMATE_CONTROLLERS
from assets.marts.core import FUNDING_STREAMS, MONEY_FLOWS, ORGANISATIONS
from assets.marts.data_quality import DATA_QUALITY
from assets.marts.procurement import PROCUREMENT_CONTRACTS
from assets.marts.red_flags import RED_FLAGS
from pipelines.resources import FundtraceSettings

PUBLISHED_MARTS: tuple[TableSpec, ...] = (
    ORGANISATIONS,
    FUNDING_STREAMS,
    FUNDING_STREAM_CONTROL,
    PROJECT_CONTROL,
    MONEY_FLOWS,
    PROCUREMENT_CONTRACTS,
    ULTIMATE_CONTROLLERS,
    RED_FLAGS,
    DATA_QUALITY,
)
_ALIAS = "published"


def publish_marts(
    con: duckdb.DuckDBPyConnection, target: Path, specs: Sequence[TableSpec] = PUBLISHED_MARTS
) -> dict[str, int]:
    """Write `specs` from the build database (`con`) to `target` atomically; row counts."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    counts: dict[str, int] = {}
    try:
        con.execute(f"ATTACH {sql_literal(str(tmp))} AS {_ALIAS}")
        try:
            con.execute(f"CREATE SCHEMA {_ALIAS}.marts")
            for spec in specs:
                order = f" ORDER BY {', '.join(spec.order_by)}" if spec.order_by else ""
                con.execute(
                    f"CREATE TABLE {_ALIAS}.{spec.qualified} AS "
                    f"SELECT {spec.select_list()} FROM {spec.qualified}{order}"
                )
                for stmt in spec.comment_statements(catalog=_ALIAS):
                    con.execute(stmt)
                row = con.execute(f"SELECT count(*) FROM {_ALIAS}.{spec.qualified}").fetchall()[0]
                counts[spec.name] = int(row[0]) if row else 0
            con.execute(f"CHECKPOINT {_ALIAS}")
        finally:
            con.execute(f"DETACH {_ALIAS}")
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return counts


@dg.asset(
    key=dg.AssetKey(["marts", "published_marts"]),
    group_name="marts",
    kinds={"duckdb", "file"},
    description="The published marts file ($FUNDTRACE_MARTS_DB, default "
    "data/marts/fundtrace.duckdb): schema `marts` copied from the build database and swapped "
    "in atomically after a successful run. Grain: one file holding every mart table.",
    deps=[s.asset_key for s in PUBLISHED_MARTS],
)
def published_marts(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    target = fundtrace.marts_path
    with duckdb.get_connection() as con:
        counts = publish_marts(con, target)
    context.log.info(f"published {target}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "bytes": target.stat().st_size,
            **{f"rows/{name}": n for name, n in counts.items()},
        }
    )
