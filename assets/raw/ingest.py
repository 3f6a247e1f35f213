"""Per-file, incremental, failure-isolated ingest shared by every raw source.

A source module supplies a parser `parse(con, path, ctx) -> ParseResult` that inserts its
good records into the source's raw table (with the provenance columns from `ctx`) and returns
the records it rejected. This module does the rest:

- files are tracked by content hash in `raw.raw_file_manifest`; an unchanged file is not
  parsed again, a changed file replaces exactly its own rows, a deleted file's rows go;
- each file is loaded in its own transaction: a file that fails to parse leaves no partial
  rows, is recorded with the reason, and never stops the other files;
- rejected records and failed files land in `raw.raw_quarantine` naming file, record and
  problem, so `rows_in = rows_loaded + rows_quarantined` holds for every file.
"""

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from assets.common.files import list_source_files, list_unsupported_files
from assets.common.fingerprint import data_changed
from assets.common.tables import (
    Column,
    TableSpec,
    create_table,
    database_cursor,
    materialize_result,
    scalar_int,
    transaction,
)
from assets.raw.file_hashes import file_hashes, rehash_from_env
from pipelines.resources import FundtraceSettings

PROVENANCE_COLUMNS = (
    Column("source_system", "VARCHAR", "Source system the record came from, e.g. 360giving.", False),
    Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
    Column("source_row", "BIGINT", "1-based position of the record in its file (data row or array index).", False),
    Column("source_locator", "VARCHAR", "Where to find the record by hand: line/row number or JSON path.", False),
    Column("file_sha256", "VARCHAR", "SHA-256 of the file content the record was read from.", False),
    Column("loaded_at", "TIMESTAMP", "When the file was ingested (UTC).", False),
)  # fmt: skip

FILE_MANIFEST = TableSpec(
    schema="raw",
    name="raw_file_manifest",
    grain="one source file of one source system, as last ingested",
    description="Every file seen in FUNDTRACE_RAW_DIR with its hash, parse status and counts; "
    "unchanged files (same hash and parser version) are not parsed again.",
    columns=(
        Column("source_system", "VARCHAR", "Source system (raw folder).", False),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of the file content.", False),
        Column("file_bytes", "BIGINT", "File size in bytes.", False),
        Column("file_format", "VARCHAR", "Format the parser read the file as (json, csv, xlsx...)."),
        Column("encoding", "VARCHAR", "Text encoding detected (text formats only)."),
        Column("parser_version", "VARCHAR", "Version of the parser that read the file.", False),
        Column("status", "VARCHAR", "loaded | partial (some records quarantined) | failed (file quarantined) | empty.", False),
        Column("rows_in", "BIGINT", "Records found in the file (loaded + quarantined).", False),
        Column("rows_loaded", "BIGINT", "Records written to the raw table.", False),
        Column("rows_quarantined", "BIGINT", "Records (or the whole file) sent to raw.raw_quarantine.", False),
        Column("message", "VARCHAR", "Why the file failed or what was noticed while reading it."),
        Column("parse_seconds", "DOUBLE", "Wall time spent parsing the file."),
        Column("ingested_at", "TIMESTAMP", "When the file was last parsed (UTC).", False),
    ),
    order_by=("source_system", "source_file"),
)  # fmt: skip

QUARANTINE = TableSpec(
    schema="raw",
    name="raw_quarantine",
    grain="one rejected record, or one rejected file (source_row NULL), at ingest",
    description="Records and files the raw parsers could not read, with the reason. Nothing is "
    "dropped silently: every rejected record of a file is here until the file changes.",
    columns=(
        Column("source_system", "VARCHAR", "Source system (raw folder).", False),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of the file content.", False),
        Column("source_row", "BIGINT", "1-based record position, NULL when the whole file was rejected."),
        Column("source_locator", "VARCHAR", "Line, sheet row or JSON path of the problem.", False),
        Column("reason", "VARCHAR", "What is wrong, in words an analyst can act on.", False),
        Column("record", "VARCHAR", "The offending record or line as text (truncated to 2,000 chars)."),
        Column("quarantined_at", "TIMESTAMP", "When it was quarantined (UTC).", False),
    ),
    order_by=("source_system", "source_file", "source_row"),
)  # fmt: skip


@dataclass(frozen=True)
class FileContext:
    source_system: str
    path: Path
    source_file: str
    file_sha256: str
    loaded_at: dt.datetime

    def provenance_sql(self) -> str:
        """Constant provenance columns (source_row/locator are per record) as SQL literals."""
        from assets.common.tables import sql_literal

        return (
            f"{sql_literal(self.source_system)} AS source_system, "
            f"{sql_literal(self.source_file)} AS source_file, "
            f"{sql_literal(self.file_sha256)} AS file_sha256, "
            f"TIMESTAMP '{self.loaded_at.isoformat(sep=' ')}' AS loaded_at"
        )


@dataclass
class Reject:
    source_row: int | None
    locator: str
    reason: str
    record: str | None = None


@dataclass
class ParseResult:
    rows_loaded: int
    file_format: str
    encoding: str | None = None
    rejects: list[Reject] = field(default_factory=list)
    message: str | None = None


class FileRejected(Exception):
    """The whole file cannot be read; the message names the problem (and record, if any)."""

    def __init__(self, reason: str, locator: str = "file", rows_seen: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.locator = locator
        self.rows_seen = rows_seen


Parser = Callable[[duckdb.DuckDBPyConnection, Path, FileContext], ParseResult]


@dataclass
class IngestReport:
    source_system: str
    files: frozenset[str] | None = None  # a partitioned run's files (ingest_folder(files=...))
    files_seen: int = 0
    files_parsed: int = 0
    files_unchanged: int = 0
    files_read_to_check: int = 0  # hashed because their stat moved (assets/raw/file_hashes.py)
    files_removed: int = 0
    files_failed: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    messages: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, object]:
        return {
            "files_seen": self.files_seen,
            "files_parsed": self.files_parsed,
            "files_unchanged": self.files_unchanged,
            "files_read_to_check": self.files_read_to_check,
            "files_removed": self.files_removed,
            "files_failed": self.files_failed,
            "rows_quarantined_in_parsed_files": self.rows_quarantined,
        }

    def summary(self) -> str:
        """One progress line for the run log."""
        return (
            f"{self.source_system}: {self.files_seen} files, {self.files_parsed} parsed, "
            f"{self.files_unchanged} unchanged, {self.files_read_to_check} read to check, "
            f"{self.files_removed} removed, {self.files_failed} failed"
        )


def ensure_ingest_tables(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, FILE_MANIFEST, replace=False)
    create_table(con, QUARANTINE, replace=False)


def _truncate(text: str | None, limit: int = 2000) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + "…"


def ingest_folder(
    con: duckdb.DuckDBPyConnection,
    *,
    source_system: str,
    raw_dir: Path,
    folder: str,
    suffixes: Sequence[str],
    raw_table: TableSpec,
    parser: Parser,
    parser_version: str,
    log: Callable[[str], None] = print,
    force: bool = False,
    also_tables: Sequence[TableSpec] = (),
    prefetch: Callable[[Sequence[tuple[str, Path]]], None] | None = None,
    files: Collection[str] | None = None,
) -> IngestReport:
    """Bring `raw_table` in line with the files under `raw_dir/folder` (see module doc).

    `also_tables`: further raw tables the parser writes (e.g. notices beside awards); a file's
    rows are replaced, rolled back and forgotten in all of them together.
    `prefetch`: told the files the parser will be called for, in order, as (source_file,
    path), before the first call (a parser working ahead in other processes); the files
    still load one by one.
    `files`: only these files (paths relative to `raw_dir`) are checked and parsed, e.g. the
    partitions of a partitioned run (pipelines/partitions.py); other files' rows stay as they
    are, except that a file gone from the folder is always forgotten. None: every file."""
    ensure_ingest_tables(con)
    tables = (raw_table, *also_tables)
    for spec in tables:
        create_table(con, spec, replace=False)
    report = IngestReport(source_system, None if files is None else frozenset(files))
    src_dir = raw_dir / folder
    on_disk = {p.relative_to(raw_dir).as_posix(): p for p in list_source_files(src_dir, suffixes)}
    present = on_disk if files is None else {r: p for r, p in on_disk.items() if r in files}
    report.files_seen = len(present)

    known = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            f"SELECT source_file, file_sha256, parser_version FROM {FILE_MANIFEST.qualified} "
            "WHERE source_system = ?",
            [source_system],
        ).fetchall()
    }
    for gone in sorted(set(known) - set(on_disk)):
        _forget_file(con, tables, source_system, gone)
        report.files_removed += 1
        log(f"{source_system}: {gone} is gone from the raw folder; its rows were removed")

    hashes = file_hashes(
        con, source_system, present, rehash=force or rehash_from_env(), keep=on_disk.keys()
    )
    report.files_read_to_check = hashes.read
    todo: list[tuple[str, Path, str]] = []
    for rel, path in present.items():
        sha = hashes.sha256[rel]
        if not force and known.get(rel) == (sha, parser_version):
            report.files_unchanged += 1
            continue
        todo.append((rel, path, sha))
    if todo:
        data_changed()  # work a changing run needs can start (Great Expectations' import)
    if prefetch is not None:
        prefetch([(rel, path) for rel, path, _ in todo])
    with fewer_checkpoints(con) if todo else contextlib.nullcontext():
        for rel, path, sha in todo:
            ctx = FileContext(
                source_system, path, rel, sha, dt.datetime.now(dt.UTC).replace(tzinfo=None)
            )
            _ingest_one(con, tables, parser, parser_version, ctx, report, log)

    for extra in list_unsupported_files(src_dir, suffixes):
        msg = (
            f"{source_system}: {extra.relative_to(raw_dir).as_posix()} ignored: "
            f"not one of {', '.join(suffixes)}"
        )
        report.messages.append(msg)
        log(msg)
    return report


# DuckDB checkpoints a commit's WAL beyond 16 MiB by default; each file commits on its own, so
# every large file rewrote the table's growing last row group (OCDS: ~7 s of 27 at scale 1)
CHECKPOINT_THRESHOLD = "256MB"


@contextlib.contextmanager
def fewer_checkpoints(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A higher checkpoint_threshold while a folder's files load, then one checkpoint."""
    old = con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()
    con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    try:
        yield
        con.execute("CHECKPOINT")
    finally:
        if old:
            con.execute(f"SET checkpoint_threshold = '{old[0][0]}'")


def _forget_file(
    con: duckdb.DuckDBPyConnection, tables: Sequence[TableSpec], source_system: str, rel: str
) -> None:
    for spec in tables:
        con.execute(f"DELETE FROM {spec.qualified} WHERE source_file = ?", [rel])
    for spec in (QUARANTINE, FILE_MANIFEST):
        con.execute(
            f"DELETE FROM {spec.qualified} WHERE source_system = ? AND source_file = ?",
            [source_system, rel],
        )


def _ingest_one(
    con: duckdb.DuckDBPyConnection,
    tables: Sequence[TableSpec],
    parser: Parser,
    parser_version: str,
    ctx: FileContext,
    report: IngestReport,
    log: Callable[[str], None],
) -> None:
    started = time.perf_counter()
    size = ctx.path.stat().st_size
    seen = 0
    try:
        with transaction(con):
            _forget_file(con, tables, ctx.source_system, ctx.source_file)
            if size == 0:
                raise FileRejected("file is empty (0 bytes)")
            result = parser(con, ctx.path, ctx)
            rejects = result.rejects
            status = "partial" if rejects else ("loaded" if result.rows_loaded else "empty")
            loaded, fmt, enc, message = (
                result.rows_loaded,
                result.file_format,
                result.encoding,
                result.message,
            )
    except Exception as exc:  # any parser failure isolates the file, never the run
        # the rollback restored the previous version's rows: they no longer match the file
        _forget_file(con, tables, ctx.source_system, ctx.source_file)
        if isinstance(exc, FileRejected):
            reason, locator, seen = exc.reason, exc.locator, exc.rows_seen
        else:
            reason, locator, seen = f"{type(exc).__name__}: {exc}", "file", 0
        rejects = [Reject(None, locator, reason)]
        status, loaded, fmt, enc, message = "failed", 0, ctx.path.suffix.lstrip("."), None, reason
        report.files_failed += 1
        log(f"{ctx.source_system}: FAILED {ctx.source_file} at {locator}: {reason}")
    elapsed = time.perf_counter() - started

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if rejects:
        con.executemany(
            f"INSERT INTO {QUARANTINE.qualified} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    ctx.source_system,
                    ctx.source_file,
                    ctx.file_sha256,
                    r.source_row,
                    r.locator,
                    r.reason,
                    _truncate(r.record),
                    now,
                ]
                for r in rejects
            ],
        )
    record_rejects = sum(1 for r in rejects if r.source_row is not None)
    # a failed file counts the records read before the failure, and at least one unit
    quarantined = record_rejects if status != "failed" else max(1, seen)
    con.execute(
        f"INSERT INTO {FILE_MANIFEST.qualified} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ctx.source_system,
            ctx.source_file,
            ctx.file_sha256,
            size,
            fmt,
            enc,
            parser_version,
            status,
            loaded + quarantined,
            loaded,
            quarantined,
            message,
            round(elapsed, 4),
            now,
        ],
    )
    report.files_parsed += 1
    report.rows_loaded += loaded
    report.rows_quarantined += quarantined
    if status != "failed":
        log(
            f"{ctx.source_system}: {ctx.source_file}: {loaded} rows loaded, "
            f"{quarantined} quarantined ({fmt}, {elapsed:.2f}s)"
        )


def partition_files(context: dg.AssetExecutionContext) -> frozenset[str] | None:
    """The raw files a run of a raw asset ingests: its partition keys (file paths relative to
    FUNDTRACE_RAW_DIR, see pipelines/partitions.py), or None (every file) when the asset or the
    run is not partitioned."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    return frozenset(context.partition_keys)


def record_json(record: object) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def ingest_single_table(
    con: duckdb.DuckDBPyConnection,
    *,
    raw_table: TableSpec,
    log: Callable[[str], None],
    ingest: Callable[..., IngestReport] = ingest_folder,
    **ingest_args: Any,
) -> dg.MaterializeResult:
    """The body of a one-table raw asset: ingest the folder, log the summary, report the table.
    `ingest`: ingest_folder, or a variant with its arguments (parallel_parse.ingest_in_parallel)."""
    report = ingest(con, raw_table=raw_table, log=log, **ingest_args)
    log(report.summary())
    return raw_result(con, raw_table, report)


def single_table_raw_asset(
    raw_table: TableSpec,
    *,
    source_system: str,
    folder: str,
    suffixes: Sequence[str],
    parser_version: str,
    kinds: set[str],
    parser: Parser | None = None,
    ingest: Callable[..., IngestReport] | None = None,
) -> dg.AssetsDefinition:
    """The raw asset of a source with one raw table: its folder's files (or the run's
    partitions) ingested by `parser` in this process, or by `ingest` (a SpoolParser's,
    assets/raw/parallel_parse.py: files parsed ahead in worker processes)."""
    if (parser is None) == (ingest is None):
        raise ValueError(f"{raw_table.qualified}: give a parser or an ingest, not both or neither")
    how: dict[str, Any] = {"parser": parser} if ingest is None else {"ingest": ingest}

    @dg.asset(
        key=raw_table.asset_key,
        group_name="raw",
        kinds=kinds,
        description=raw_table.doc,
        tags={"source_system": source_system},
    )
    def raw_asset(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
    ) -> dg.MaterializeResult:
        with duckdb.get_connection() as con:
            return ingest_single_table(
                con,
                source_system=source_system,
                raw_dir=fundtrace.raw_path,
                folder=folder,
                suffixes=suffixes,
                raw_table=raw_table,
                parser_version=parser_version,
                log=context.log.info,
                files=partition_files(context),
                **how,
            )

    return raw_asset


def raw_result(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, report: IngestReport
) -> dg.MaterializeResult:
    """What a raw asset reports for `spec` after `report`'s ingest: the table's metadata and the
    ingest's counts. In a partitioned run every partition of the run gets this metadata, so
    `dagster/row_count` is the rows of the run's file when it is one (its partition's own
    count; 0 for the folder's partition) and absent for a range of files (each partition
    would show the range's total); the whole table's rows are `table_row_count`."""
    result = materialize_result(con, spec, report.as_metadata())
    if report.files is None:
        return result
    metadata = dict(result.metadata or {})
    metadata["table_row_count"] = metadata.pop("dagster/row_count")
    metadata["partitions_in_run"] = len(report.files)
    if len(report.files) == 1:
        (only,) = report.files
        metadata["dagster/row_count"] = scalar_int(
            con, f"SELECT count(*) FROM {spec.qualified} WHERE source_file = ?", [only]
        )
    return dg.MaterializeResult(metadata=metadata)


BATCH_ROWS = 50_000
BATCH_BYTES = 16 << 20  # flush at ~16 MB of text so memory stays flat on large JSON records


class RowBuffer:
    """Text rows of one file with their `_row` (source_row) and `_loc` (locator), handed on in
    Arrow batches of `batch_rows` rows or ~`batch_bytes` of text (`add(size=...)`), so memory
    stays flat on large files. Subclasses say where a batch goes (`flush`)."""

    def __init__(
        self,
        columns: Iterable[str],
        *,
        batch_rows: int = BATCH_ROWS,
        batch_bytes: int = BATCH_BYTES,
        source_file: str = "",
    ):
        self.source_file = source_file  # the rows' file, relative to the raw folder (messages)
        self.columns = list(dict.fromkeys(columns))
        self.schema = pa.schema(
            [*((c, pa.string()) for c in self.columns), ("_row", pa.int64()), ("_loc", pa.string())]
        )
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.buffer: dict[str, list[Any]] = {c: [] for c in self.schema.names}
        self.bytes = 0
        self.written = 0

    def add(self, row: Mapping[str, Any], source_row: int, locator: str, *, size: int = 0) -> None:
        for c in self.columns:
            self.buffer[c].append(row.get(c))
        self.buffer["_row"].append(source_row)
        self.buffer["_loc"].append(locator)
        self.bytes += size
        if len(self.buffer["_row"]) >= self.batch_rows or self.bytes >= self.batch_bytes:
            self.flush()

    def add_arrow(self, rows: pa.Table) -> None:
        """Rows already in Arrow form (this buffer's columns in order, `_row`, `_loc`), e.g.
        a file DuckDB read: written as they are, after the rows buffered so far."""
        self.flush()
        self.write_arrow(rows.cast(self.schema))

    def write_arrow(self, rows: pa.Table) -> None:
        raise NotImplementedError

    def take(self) -> pa.Table:
        """The buffered rows as one Arrow table (possibly empty); the buffer starts afresh."""
        batch = pa.table(self.buffer, schema=self.schema)
        self.buffer = {c: [] for c in self.buffer}
        self.bytes = 0
        return batch

    def flush(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Forget every row of the file so far, buffered or written: its parser starts the
        file again (assets/raw/json_stream.py)."""
        self.take()
        self.written = 0


class RowWriter(RowBuffer):
    """Buffers text rows and appends them to a raw table, with provenance, in Arrow batches.

    The one writer every parser uses. `constants` are file-level values bound as parameters
    (e.g. a layout name); `add(size=...)` lets parsers of large JSON records flush by bytes.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        ctx: FileContext,
        table: str,
        columns: Iterable[str],
        *,
        constants: Mapping[str, object] | None = None,
        batch_rows: int = BATCH_ROWS,
        batch_bytes: int = BATCH_BYTES,
    ):
        super().__init__(
            columns, batch_rows=batch_rows, batch_bytes=batch_bytes, source_file=ctx.source_file
        )
        self.con, self.ctx, self.table = con, ctx, table
        self.constants = dict(constants or {})

    def flush(self) -> None:
        if not self.buffer["_row"]:
            return
        _raw_batch = self.take()
        self.insert_arrow(_raw_batch)
        del _raw_batch

    def write_arrow(self, rows: pa.Table) -> None:
        self.insert_arrow(rows)

    def discard(self) -> None:
        # inside the file's transaction: its rows are those of this file's load
        self.con.execute(
            f"DELETE FROM {self.table} WHERE source_file = ? AND file_sha256 = ? "
            f"AND loaded_at = CAST(? AS TIMESTAMP)",
            [self.ctx.source_file, self.ctx.file_sha256, self.ctx.loaded_at.isoformat(sep=" ")],
        )
        super().discard()

    def insert_arrow(self, _raw_batch: pa.Table | pa.RecordBatchReader) -> int:
        """Append rows already in Arrow form (the writer's columns, `_row`, `_loc`): e.g. a
        stream a parser wrote in another process. Returns the rows written."""
        names = ", ".join([*self.constants, *self.columns])
        values = ", ".join(["?" for _ in self.constants] + self.columns)
        # a replacement scan of the local variable, not con.register(): inside the ingest
        # transaction every registered Arrow table stays alive until COMMIT (measured on OCDS:
        # memory grew with the file, 1.2 GB for a 310 MB package; flat this way)
        result = self.con.execute(
            f"INSERT INTO {self.table} ({names}, source_system, source_file, file_sha256, "
            f"loaded_at, source_row, source_locator) "
            f"SELECT {values}, {self.ctx.provenance_sql()}, _row, _loc FROM _raw_batch",
            list(self.constants.values()),
        ).fetchone()
        n = int(result[0]) if result else 0
        self.written += n
        return n


_LOCAL: dict[str, duckdb.DuckDBPyConnection] = {}


def local_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB of this process for parsers that read a file with DuckDB into Arrow
    rows: in a worker process and in the build process alike (never the build database, where a
    failed read would abort the file's ingest transaction). Made on first use, never at import:
    the fork server imports the parser modules (assets/common/worker_processes.py)."""
    if "con" not in _LOCAL:
        _LOCAL["con"] = duckdb.connect()
    return _LOCAL["con"]


def read_csv_exactly(path: Path, width: int, dialect: str) -> bool:
    """`path` read by this process's in-memory DuckDB (`local_duckdb`) into the TEMP table
    _csv_file: every field as text in columns c0..c<width-1>, read as `dialect` says (which
    includes how the header is skipped: `header = true`, or `header = false, skip = n`). False,
    and no table, when DuckDB rejects any line: the caller's Python reader takes over. One
    read: outside the build database no failed statement can abort an ingest transaction, so
    no separate probe is needed. A file DuckDB cannot read at all raises duckdb.Error."""
    con = local_duckdb()
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
    con.execute("DROP TABLE IF EXISTS _csv_rejects; DROP TABLE IF EXISTS _csv_scans")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _csv_file AS SELECT * FROM read_csv(?, {dialect}, "
        f"columns = {columns}, ignore_errors = true, store_rejects = true, "
        "rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')",
        [str(path)],
    )
    if scalar_int(con, "SELECT count(*) FROM _csv_rejects"):
        con.execute("DROP TABLE _csv_file")
        return False
    return True


@contextlib.contextmanager
def exact_csv_rows(
    width: int, fields: Sequence[tuple[str, int | None]], *, number_blank_records: bool
) -> Iterator[pa.RecordBatchReader]:
    """The rows `read_csv_exactly` left in _csv_file, as raw columns: each (name, field index,
    or None for a column the file lacks) trimmed, empty text as NULL, records whose fields are
    all blank left out, with `_row` (the record's number: counting the blank records or not,
    as the source's Python reader numbers them) and `_loc` ('data row n'). _csv_file is
    dropped when the block ends."""
    con = local_duckdb()
    select = ", ".join(
        f"nullif(trim(c{i}), '') AS {name}" if i is not None else f"NULL::VARCHAR AS {name}"
        for name, i in fields
    )
    blank = " AND ".join(f"nullif(trim(c{i}), '') IS NULL" for i in range(width))
    if number_blank_records:
        numbered = "SELECT *, rowid - min(rowid) OVER () + 1 AS _n FROM _csv_file"
        where = f"WHERE NOT ({blank})"
    else:
        numbered = (
            f"SELECT *, row_number() OVER (ORDER BY rowid) AS _n FROM _csv_file WHERE NOT ({blank})"
        )
        where = ""
    try:
        yield con.sql(
            f"SELECT {select}, _n AS _row, 'data row ' || _n AS _loc FROM ({numbered}) {where} "
            "ORDER BY _n"
        ).to_arrow_reader(BATCH_ROWS)
    finally:
        con.execute("DROP TABLE IF EXISTS _csv_file")


def reads_cleanly(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Sequence[object] = (),
    rejects_table: str | None = None,
) -> bool:
    """Whether DuckDB runs `query` without an error (and, given `rejects_table`, rejects no
    line): the test a parser makes before its DuckDB fast path. It runs on a separate cursor
    because the caller is inside the file's ingest transaction, where any DuckDB error would
    abort the transaction and leave no way to fall back to the Python reader."""
    cur = database_cursor(con)
    try:
        cur.execute(query, list(params)).fetchall()
        return not (rejects_table and scalar_int(cur, f"SELECT count(*) FROM {rejects_table}"))
    except duckdb.Error:
        return False
    finally:
        cur.close()
