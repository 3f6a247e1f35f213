"""Publish the marts: copy schema `marts` into a fresh DuckDB file, then atomically replace
`$FUNDTRACE_MARTS_DB` with it.

Analysts hold the published file open read-only. `os.replace` swaps the directory entry in one
step, so a reader sees the complete old file (its open handle keeps the old inode alive) or
the complete new one, never a half-written table. This asset runs only when every mart and
every blocking check upstream succeeded, so a failed run leaves the previous marts in place.

The same step writes each mart as Parquet (and CSV when it is small) into an `export` folder
next to the marts file, for BI tools and spreadsheets. The folder is written under a temporary
name and swapped in after the marts file, so it always matches the published marts and a
failed build leaves the previous export in place.
"""

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import (
    input_fingerprint,
    remember_file_output,
    skipped_file_output,
    table_name,
)
from assets.common.tables import TableSpec, scalar_int, sql_literal
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

# Marts up to this many rows are also exported as CSV (spreadsheet users); all get Parquet.
CSV_MAX_ROWS = 100_000
EXPORT_DIR_NAME = "export"


def export_dir_for(marts_db: Path) -> Path:
    """The exports folder: `export/` next to the published marts file."""
    return marts_db.parent / EXPORT_DIR_NAME


def _write_exports(
    con: duckdb.DuckDBPyConnection, specs: Sequence[TableSpec], counts: dict[str, int], out: Path
) -> None:
    """COPY each published table (catalog `_ALIAS`) to `out`: Parquet always, CSV if small."""
    out.mkdir(parents=True)
    for spec in specs:
        source = f"(SELECT * FROM {_ALIAS}.{spec.qualified})"
        target = sql_literal(str(out / f"{spec.name}.parquet"))
        con.execute(f"COPY {source} TO {target} (FORMAT parquet, COMPRESSION zstd)")
        if counts[spec.name] <= CSV_MAX_ROWS:
            target = sql_literal(str(out / f"{spec.name}.csv"))
            con.execute(f"COPY {source} TO {target} (FORMAT csv, HEADER true)")


def _swap_dir(new: Path, target: Path) -> None:
    """Put `new` in place of `target`: two renames, the old folder restored if the second fails."""
    old = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.old")
    had_old = target.exists()
    if had_old:
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if had_old:
            old.rename(target)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def publish_marts(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    specs: Sequence[TableSpec] = PUBLISHED_MARTS,
    export_dir: Path | None = None,
) -> dict[str, int]:
    """Write `specs` from the build database (`con`) to `target` atomically; row counts.

    With `export_dir`, also replace that folder with Parquet/CSV copies of the published tables.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    tmp_export = None
    if export_dir is not None:
        tmp_export = export_dir.with_name(f".{export_dir.name}.{os.getpid()}.{time.time_ns()}.tmp")
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
                counts[spec.name] = scalar_int(
                    con, f"SELECT count(*) FROM {_ALIAS}.{spec.qualified}"
                )
            con.execute(f"CHECKPOINT {_ALIAS}")
            if tmp_export is not None:
                # exported from the file being published, so both always hold the same rows
                _write_exports(con, specs, counts, tmp_export)
        finally:
            con.execute(f"DETACH {_ALIAS}")
        os.replace(tmp, target)
        if tmp_export is not None and export_dir is not None:
            _swap_dir(tmp_export, export_dir)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        if tmp_export is not None:
            shutil.rmtree(tmp_export, ignore_errors=True)
    return counts


@dg.asset(
    key=dg.AssetKey(["marts", "published_marts"]),
    group_name="marts",
    kinds={"duckdb", "file", "parquet", "csv"},
    description="The published marts file ($FUNDTRACE_MARTS_DB, default "
    "data/marts/fundtrace.duckdb): schema `marts` copied from the build database and swapped "
    "in atomically after a successful run, plus each mart as Parquet (and CSV when small) in "
    "the `export/` folder next to it. Grain: one file holding every mart table.",
    deps=[s.asset_key for s in PUBLISHED_MARTS],
)
def published_marts(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    target = fundtrace.marts_path
    export_dir = export_dir_for(target)
    key = "marts.published_marts"
    with duckdb.get_connection() as con:
        # unchanged marts and an untouched published file: nothing to copy again
        fingerprint = input_fingerprint(
            con, [key], [table_name(s.asset_key) for s in PUBLISHED_MARTS], str(target)
        )
        skipped = skipped_file_output(con, key, fingerprint, [target, export_dir])
        if skipped is not None:
            context.log.info(f"{target}: marts unchanged since it was published, not rewritten")
            return dg.MaterializeResult(metadata=skipped)
        counts = publish_marts(con, target, export_dir=export_dir)
        context.log.info(f"published {target} and exports in {export_dir}: {counts}")
        exports = sorted(p.name for p in export_dir.iterdir())
        metadata = {
            "path": dg.MetadataValue.path(str(target)),
            "bytes": target.stat().st_size,
            "export_dir": dg.MetadataValue.path(str(export_dir)),
            "export_files": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in exports)),
            "csv_max_rows": CSV_MAX_ROWS,
            **{f"rows/{name}": n for name, n in counts.items()},
        }
        remember_file_output(con, key, fingerprint, [target, export_dir], metadata)
    return dg.MaterializeResult(metadata=metadata)
