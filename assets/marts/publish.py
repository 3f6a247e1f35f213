"""Publish the marts: copy schema `marts` into a fresh DuckDB file, then atomically replace
`$FUNDTRACE_MARTS_DB` with it.

By difference, when it can: every write of a mart is logged with the table's next version
(`quality.mart_writes`, assets/common/tables.py), with the keys a `refresh_table` rewrote. When
the published file is still the one last published (its size and mtime as recorded in
`quality.published_mart_versions`), the new file starts as a copy of it: a mart not written
since is kept, a mart refreshed key by key since gets those keys' rows again, any other is
copied whole. Each table's columns and row count are checked against the build table; a
mismatch copies everything into an empty file instead. A new funding file changes ~1,000 of
the 1.2M money flows at scale 1: their copy took 1.6-1.9 s of every one-file run.

Analysts hold the published file open read-only. `os.replace` swaps the directory entry in one
step, so a reader sees the complete old file (its open handle keeps the old inode alive) or
the complete new one, never a half-written table. This asset runs only when every mart and
every blocking check upstream succeeded, so a failed run leaves the previous marts in place.

The copy keeps the row order of the build tables without sorting again (DuckDB keeps insertion
order for a plain scan, `preserve_insertion_order`, on by default). Every mart is written by
`rebuild_table` in its `order_by` order, except those kept by `refresh_table` (procurement
contracts, project control, ultimate controllers) or `refresh_by_feeds` (money flows,
organisations), which rewrite only the keys whose rows changed, and `red_flags`, rebuilt by
flag type (`refresh_slices`): after a run
that changed some, those rows follow the others (sorting the
1.2M flows here would cost ~0.6 s of the ~0.9 s that saves). Row order is no part of the
marts' contract: query with ORDER BY. All tables
are copied in one transaction, so their data is written to the new file once, at the commit.

The same step writes each mart as Parquet (and CSV when it is small) into an `export` folder
next to the marts file, for BI tools and spreadsheets. The folder is written under a temporary
name and swapped in after the marts file, so it always matches the published marts and a
failed build leaves the previous export in place. The exports are written from the build
tables, on a cursor of their own in a second thread, while the copy runs (3.1 -> 2.5 s at scale
1: each alone leaves part of the second core idle): nothing else writes the marts while a run
publishes them (the run holds the build database), and the row counts of the copy are checked
against those the exports were written with. A hidden manifest in the folder records,
per mart, the build it was exported from (its entry in `quality.build_fingerprints`: the
fingerprint and when it was built; its version entry instead when it has one, so a rebuild
that kept the rows keeps the export) and the size of each file. A mart whose entry is still the
same was not rebuilt since, so the table is the one exported last time: its files are
hard-linked from the previous export instead of written again (the fingerprint covers the code,
this module included, so a change to how exports are written rewrites them all). Anything
missing or different (no fingerprint, another row count, a file missing or of another size) is
written afresh.
"""

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import (
    file_state,
    input_fingerprint,
    remember_file_output,
    skipped_file_output,
    table_name,
    versioned_entries,
)
from assets.common.tables import (
    MART_WRITES,
    ROW_GROUP_SIZE,
    Column,
    TableSpec,
    database_cursor,
    scalar_int,
    sql_literal,
    table_columns,
    transaction,
)
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
# hidden, so the folder lists only the exports
MANIFEST_NAME = ".manifest.json"


def export_dir_for(marts_db: Path) -> Path:
    """The exports folder: `export/` next to the published marts file."""
    return marts_db.parent / EXPORT_DIR_NAME


def _builds(con: duckdb.DuckDBPyConnection, specs: Sequence[TableSpec]) -> dict[str, list[Any]]:
    """{mart name: [fingerprint, written at, row count]} of the build that last wrote each
    mart's rows: its version entry when it has one (a rebuild that kept the rows keeps it),
    else its build entry."""
    entries = versioned_entries(con, [s.qualified for s in specs])
    builds: dict[str, list[Any]] = {}
    for spec in specs:
        if spec.qualified in entries:
            fingerprint, written, rows, _ = entries[spec.qualified]
            builds[spec.name] = [fingerprint, written, rows]
    return builds


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _reuse(previous: Path, recorded: dict[str, int], names: list[str], out: Path) -> bool:
    """Link `names` from `previous` into `out` when each is there at its recorded size."""
    try:
        if sorted(recorded) != sorted(names) or any(
            (previous / name).stat().st_size != recorded[name] for name in names
        ):
            return False
    except OSError:
        return False
    for name in names:
        try:
            os.link(previous / name, out / name)
        except OSError:  # a file system without hard links
            shutil.copyfile(previous / name, out / name)
    return True


def _write_exports(
    con: duckdb.DuckDBPyConnection,
    specs: Sequence[TableSpec],
    counts: dict[str, int],
    builds: dict[str, list[Any]],
    out: Path,
    previous: Path,
) -> None:
    """COPY each table of `specs` (the build tables, in the published column order) to `out`:
    Parquet always, CSV if small; the files of a mart built by the same build as in `previous`
    are reused (module doc)."""
    out.mkdir(parents=True)
    before = _read_manifest(previous)
    manifest: dict[str, Any] = {}
    for spec in specs:
        names = [f"{spec.name}.parquet"]
        if counts[spec.name] <= CSV_MAX_ROWS:
            names.append(f"{spec.name}.csv")
        # the stored row count also catches a table changed behind the pipeline
        build = builds.get(spec.name)
        if build is not None and build[2] != counts[spec.name]:
            build = None
        last = before.get(spec.name)
        if (
            build is None
            or not isinstance(last, dict)
            or last.get("build") != build
            or not _reuse(previous, last.get("files", {}), names, out)
        ):
            source = f"(SELECT {spec.select_list()} FROM {spec.qualified})"
            for name in names:
                options = (
                    "FORMAT csv, HEADER true"
                    if name.endswith(".csv")
                    # level 1: the same size as the default level 3 on money_flows (39 MB
                    # at scale 1), written in 1.3 s instead of 1.9 s; row groups of the
                    # build's size: re-cutting them into Parquet's 122,880 cost ~0.3 s a publish
                    else "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
                    f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
                )
                con.execute(f"COPY {source} TO {sql_literal(str(out / name))} ({options})")
        manifest[spec.name] = {
            "build": build,
            "files": {name: (out / name).stat().st_size for name in names},
        }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))


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


PUBLISHED_VERSIONS = TableSpec(
    schema="quality",
    name="published_mart_versions",
    grain="one mart table as it was last published",
    description="The version (quality.mart_writes) of each mart in the published marts file "
    "and that file's state right after: while both hold, the next publish starts from a copy "
    "of the file and rewrites only what changed (assets/marts/publish.py).",
    columns=(
        Column("table_name", "VARCHAR", "The mart (`marts.name`).", False),
        Column("version", "BIGINT", "Its version in the published file.", False),
        Column("file_state", "VARCHAR", "Name, size and mtime of the published file.", False),
    ),
)


@dataclass(frozen=True)
class _Change:
    """How a mart gets into the new published file: `whole` (copied), `kept` (as it is in
    the previous file) or by key (`key` column, `keys` rewritten since it was published)."""

    version: int
    how: str  # "whole" | "kept" | "keys"
    key: str | None = None
    keys: tuple[str, ...] = ()


class _StaleCopy(RuntimeError):
    """The previous published file does not hold what its record says: copy everything."""


def _plan(
    con: duckdb.DuckDBPyConnection, target: Path, specs: Sequence[TableSpec]
) -> dict[str, _Change]:
    """What each mart needs, from the writes logged since the recorded publish
    (quality.mart_writes): everything whole unless the published file is the one recorded."""
    versions: dict[str, int] = {}
    if table_columns(con, MART_WRITES.qualified) is not None:
        versions = dict(
            con.execute(
                f"SELECT table_name, max(version) FROM {MART_WRITES.qualified} GROUP BY 1"
            ).fetchall()
        )
    published: dict[str, tuple[int, str]] = {}
    if table_columns(con, PUBLISHED_VERSIONS.qualified) is not None:
        published = {
            t: (v, f)
            for t, v, f in con.execute(
                f"SELECT table_name, version, file_state FROM {PUBLISHED_VERSIONS.qualified}"
            ).fetchall()
        }
    # a WAL next to the file: what it holds is not in a copy of the file alone
    state = file_state(target) if target.exists() and not _wal(target).exists() else None
    plan: dict[str, _Change] = {}
    for spec in specs:
        now = int(versions.get(spec.qualified, 0))
        was = published.get(spec.qualified)
        if state is None or was is None or was[1] != state or was[0] > now:
            plan[spec.name] = _Change(now, "whole")
        elif was[0] == now:
            plan[spec.name] = _Change(now, "kept")
        else:
            writes = con.execute(
                f"SELECT key_column, rewritten_keys FROM {MART_WRITES.qualified} "
                "WHERE table_name = ? AND version > ? ORDER BY version",
                [spec.qualified, was[0]],
            ).fetchall()
            columns = {k for k, _ in writes}
            if (
                len(writes) != now - was[0]
                or any(keys is None for _, keys in writes)
                or len(columns) != 1
            ):
                plan[spec.name] = _Change(now, "whole")
            else:
                keys = sorted({k for _, ks in writes for k in ks})
                plan[spec.name] = _Change(now, "keys", columns.pop(), tuple(keys))
    return plan


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _record_published(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    plan: dict[str, _Change],
    specs: Sequence[TableSpec],
) -> None:
    """The versions now in `target` and its state; the writes they include are forgotten."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {PUBLISHED_VERSIONS.schema}")
    con.execute(PUBLISHED_VERSIONS.ddl(if_not_exists=True))
    con.execute(MART_WRITES.ddl(if_not_exists=True))
    state = file_state(target)
    with transaction(con):
        con.execute(f"DELETE FROM {PUBLISHED_VERSIONS.qualified}")
        con.executemany(
            f"INSERT INTO {PUBLISHED_VERSIONS.qualified} VALUES (?, ?, ?)",
            [[spec.qualified, plan[spec.name].version, state] for spec in specs],
        )
        # the latest write of each table stays: it holds the table's current version
        con.execute(
            f"DELETE FROM {MART_WRITES.qualified} w USING {PUBLISHED_VERSIONS.qualified} p "
            "WHERE w.table_name = p.table_name AND w.version < p.version"
        )


def publish_marts(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    specs: Sequence[TableSpec] = PUBLISHED_MARTS,
    export_dir: Path | None = None,
) -> dict[str, int]:
    """Write `specs` from the build database (`con`) to `target` atomically; row counts.

    With `export_dir`, also replace that folder with Parquet/CSV copies of the published tables.
    """
    return publish_marts_by_difference(con, target, specs, export_dir)[0]


def publish_marts_by_difference(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    specs: Sequence[TableSpec] = PUBLISHED_MARTS,
    export_dir: Path | None = None,
) -> tuple[dict[str, int], dict[str, str]]:
    """publish_marts, and how each mart got into the file: "whole" (copied), "kept" (as it
    was in the previous file) or "N keys" (rows of N keys rewritten in a copy of it).

    When the published file is the one last published (its recorded state), the new file
    starts as a copy of it: a mart not written since is kept, a mart refreshed key by key
    since gets those keys' rows again, any other is copied whole. Otherwise every mart is
    copied into an empty file. Either way the file is swapped in atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    tmp_export = None
    if export_dir is not None:
        tmp_export = export_dir.with_name(f".{export_dir.name}.{os.getpid()}.{time.time_ns()}.tmp")
    counts = {s.name: scalar_int(con, f"SELECT count(*) FROM {s.qualified}") for s in specs}
    plan = _plan(con, target, specs)
    exports: _Exports | None = None
    try:
        if tmp_export is not None and export_dir is not None:
            exports = _Exports(con, specs, counts, tmp_export, export_dir)
        try:
            if all(c.how == "whole" for c in plan.values()):
                _copy(con, tmp, specs, counts)
            else:
                try:
                    shutil.copyfile(target, tmp)
                    _update(con, tmp, specs, counts, plan)
                except _StaleCopy:
                    for leftover in (tmp, _wal(tmp)):
                        leftover.unlink(missing_ok=True)
                    plan = {name: _Change(c.version, "whole") for name, c in plan.items()}
                    _copy(con, tmp, specs, counts)
        finally:
            if exports is not None:
                exports.wait()  # before any clean-up below, also when the copy failed
        os.replace(tmp, target)
        if tmp_export is not None and export_dir is not None:
            _swap_dir(tmp_export, export_dir)
    finally:
        for leftover in (tmp, _wal(tmp)):
            leftover.unlink(missing_ok=True)
        if tmp_export is not None:
            shutil.rmtree(tmp_export, ignore_errors=True)
    _record_published(con, target, plan, specs)
    how = {name: f"{len(c.keys)} keys" if c.how == "keys" else c.how for name, c in plan.items()}
    return counts, how


@contextlib.contextmanager
def _in_file(con: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """`path` attached as `published` for one transaction: committed, checkpointed and
    detached when the block ends, rolled back when it fails."""
    con.execute(f"ATTACH {sql_literal(str(path))} AS {_ALIAS} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
    try:
        with transaction(con):
            yield
        con.execute(f"CHECKPOINT {_ALIAS}")
    finally:
        con.execute(f"DETACH {_ALIAS}")


def _copy(
    con: duckdb.DuckDBPyConnection, tmp: Path, specs: Sequence[TableSpec], counts: dict[str, int]
) -> None:
    """The marts of `specs` copied into the new file `tmp`, with their COMMENTs, in one
    transaction; fails when a table's rows are not `counts` (what the exports were cut from)."""
    with _in_file(con, tmp):
        con.execute(f"CREATE SCHEMA {_ALIAS}.marts")
        for spec in specs:
            _copy_table(con, spec, counts)


def _copy_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, counts: dict[str, int]) -> None:
    """`spec`'s build table copied whole into the attached file, with its COMMENTs; fails
    when its rows are not `counts` (what the exports were cut from)."""
    # no ORDER BY: the build table is already in order (module doc)
    created = con.execute(
        f"CREATE TABLE {_ALIAS}.{spec.qualified} AS "
        f"SELECT {spec.select_list()} FROM {spec.qualified}"
    ).fetchall()
    if int(created[0][0]) != counts[spec.name]:
        raise RuntimeError(
            f"{spec.qualified} changed while it was published: "
            f"{created[0][0]} rows copied, {counts[spec.name]} exported"
        )
    for stmt in spec.comment_statements(catalog=_ALIAS):
        con.execute(stmt)


def _update(
    con: duckdb.DuckDBPyConnection,
    tmp: Path,
    specs: Sequence[TableSpec],
    counts: dict[str, int],
    plan: dict[str, _Change],
) -> None:
    """Bring `tmp`, a copy of the previous published file, to the marts of `specs` as `plan`
    says, in one transaction; _StaleCopy when a table there is not what the plan assumes
    (other columns, another row count afterwards)."""
    with _in_file(con, tmp):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ALIAS}.marts")
        found: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            f"WHERE database_name = '{_ALIAS}' AND schema_name = 'marts' "
            "ORDER BY table_name, column_index"
        ).fetchall():
            found.setdefault(table, []).append((column, kind))
        names = {spec.name for spec in specs}
        for table in sorted(set(found) - names):  # a mart no longer published
            con.execute(f"DROP TABLE {_ALIAS}.marts.{table}")
        for spec in specs:
            change = plan[spec.name]
            expected = [(c.name, c.type) for c in spec.columns]
            target = f"{_ALIAS}.{spec.qualified}"
            if change.how != "whole" and found.get(spec.name) != expected:
                raise _StaleCopy(f"{target} has other columns than {spec.qualified}")
            if change.how == "whole":
                con.execute(f"DROP TABLE IF EXISTS {target}")
                _copy_table(con, spec, counts)
                continue
            if change.how == "keys":
                key_type = next(c.type for c in spec.columns if c.name == change.key)
                keys = f"(SELECT CAST(unnest(?::VARCHAR[]) AS {key_type}))"
                con.execute(f"DELETE FROM {target} WHERE {change.key} IN {keys}", [change.keys])
                con.execute(
                    f"INSERT INTO {target} ({spec.select_list()}) "
                    f"SELECT {spec.select_list()} FROM {spec.qualified} "
                    f"WHERE {change.key} IN {keys}",
                    [change.keys],
                )
            # read here, not through scalar_int: the count the exports were cut from
            rows = con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
            if rows != counts[spec.name]:
                raise _StaleCopy(f"{target} does not hold the rows of {spec.qualified}")
            for stmt in spec.comment_statements(catalog=_ALIAS):
                con.execute(stmt)


class _Exports:
    """`_write_exports` on a cursor of `con` in a thread of its own (module doc)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        specs: Sequence[TableSpec],
        counts: dict[str, int],
        out: Path,
        previous: Path,
    ):
        self._cursor = database_cursor(con)
        self._args = (specs, counts, _builds(con, specs), out, previous)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fundtrace-exports")
        self._thread.start()

    def _run(self) -> None:
        try:
            _write_exports(self._cursor, *self._args)
        except BaseException as exc:  # re-raised in the step's thread by wait()
            self._error = exc
        finally:
            self._cursor.close()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


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
        counts, how = publish_marts_by_difference(con, target, export_dir=export_dir)
        context.log.info(f"published {target} and exports in {export_dir}: {counts}; marts {how}")
        exports = sorted(p.name for p in export_dir.iterdir() if p.name != MANIFEST_NAME)
        metadata = {
            "path": dg.MetadataValue.path(str(target)),
            "bytes": target.stat().st_size,
            "export_dir": dg.MetadataValue.path(str(export_dir)),
            "export_files": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in exports)),
            "csv_max_rows": CSV_MAX_ROWS,
            **{f"rows/{name}": n for name, n in counts.items()},
            **{f"published/{name}": h for name, h in how.items()},
        }
        remember_file_output(con, key, fingerprint, [target, export_dir], metadata)
    return dg.MaterializeResult(metadata=metadata)
