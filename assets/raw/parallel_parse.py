"""Raw files parsed ahead in worker processes; the build process only inserts their rows.

Parsing is Python for most of a file's time: ijson building each OCDS release, BODS statement
or 360Giving grant, the csv reader of files DuckDB rejects lines of, calamine for XLSX. One
core did that while the other idled, so a folder of several files is parsed a few files ahead
in `workers` processes (OCDS, BODS, 360Giving, council spend, Kohesio). Files DuckDB can read
are read by the worker's own in-memory DuckDB (`ingest.local_duckdb`) into Arrow. Each worker
writes a file's rows to an Arrow stream file (`SpoolWriter`, the same rows `RowWriter` would
insert); the parent inserts them in the ingest's file order and transactions, so the tables,
manifest and quarantine equal those of an in-process ingest (tested per source). Workers are
forked from a fork server that imported the parser modules once
(assets/common/worker_processes.py).

A source supplies `parse_to(out, path) -> ParseResult`, a module-level function (workers
receive it pickled) that writes its rows to `out`, a `RowWriter` or a `SpoolWriter`; `out`
knows the file's name relative to the raw folder (`source_file`) for messages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from assets.common.tables import TableSpec
from assets.common.worker_processes import worker_context
from assets.raw.ingest import (
    BATCH_BYTES,
    BATCH_ROWS,
    FileContext,
    FileRejected,
    IngestReport,
    ParseResult,
    RowBuffer,
    RowWriter,
    ingest_folder,
)
from pipelines.resources import workers_from_env

# below this many bytes to parse, the files are parsed in the build process (the first pool
# of a run starts the fork server, ~1 s: assets/common/worker_processes.py; Kohesio's 30 MB
# at scale 1 gain ~0.7 s from workers)
PARALLEL_MIN_BYTES = 16 * 2**20


class SpoolWriter(RowBuffer):
    """RowWriter's rows, batch by batch, to an Arrow IPC stream file instead of DuckDB."""

    def __init__(
        self,
        path: Path,
        columns: Iterable[str],
        *,
        batch_rows: int = BATCH_ROWS,
        batch_bytes: int = BATCH_BYTES,
        source_file: str = "",
    ):
        super().__init__(
            columns, batch_rows=batch_rows, batch_bytes=batch_bytes, source_file=source_file
        )
        self.path = path
        self.sink: pa.ipc.RecordBatchStreamWriter | None = None

    def flush(self) -> None:
        self.write_arrow(self.take())

    def write_arrow(self, rows: pa.Table) -> None:
        if self.sink is None:  # the file exists even when no row was written
            self.sink = pa.ipc.new_stream(str(self.path), self.schema)
        if rows.num_rows:
            self.sink.write_table(rows)
        self.written += rows.num_rows

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()

    def discard(self) -> None:
        self.close()
        self.sink = pa.ipc.new_stream(str(self.path), self.schema)  # the file emptied
        super().discard()


RowSink = RowBuffer  # a RowWriter (the raw table) or a SpoolWriter (a worker's file)
ParseTo = Callable[[RowSink, Path], ParseResult]


@dataclass
class Spooled:
    """A file parsed in a worker: its result and rows (in `spool`), or why it failed."""

    spool: Path
    result: ParseResult | None = None
    rejected: tuple[str, str, int] | None = None  # FileRejected's reason, locator, rows_seen


def parse_to_spool(
    parse_to: ParseTo,
    columns: Sequence[str],
    batch_rows: int,
    path: Path,
    spool: Path,
    source_file: str = "",
) -> Spooled:
    """`parse_to` in a worker process, its rows to `spool`."""
    out = SpoolWriter(spool, columns, batch_rows=batch_rows, source_file=source_file)
    try:
        return Spooled(spool, result=parse_to(out, path))
    except FileRejected as exc:
        return Spooled(spool, rejected=(exc.reason, exc.locator, exc.rows_seen))
    except Exception as exc:  # reported as the in-process ingest reports any parser failure
        return Spooled(spool, rejected=(f"{type(exc).__name__}: {exc}", "file", 0))
    finally:
        out.close()


@dataclass(frozen=True)
class SpoolParser:
    """What ParallelParser needs to know of a source's parser."""

    parse_to: ParseTo  # module-level: pickled to the workers
    table: TableSpec
    columns: Sequence[str]
    batch_rows: int = BATCH_ROWS

    def parse_file(
        self, con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext
    ) -> ParseResult:
        """The in-process parse: the same rows straight into the raw table."""
        out = RowWriter(con, ctx, self.table.qualified, self.columns, batch_rows=self.batch_rows)
        return self.parse_to(out, path)

    def ingest(self, con: duckdb.DuckDBPyConnection, **ingest_args: Any) -> IngestReport:
        """ingest_in_parallel with $FUNDTRACE_WORKERS processes: what a raw asset passes to
        ingest_single_table as `ingest`."""
        return ingest_in_parallel(con, self, workers_from_env(), **ingest_args)


class ParallelParser:
    """An ingest parser whose files are parsed ahead in worker processes, a few at a time.

    Use as a context manager around ingest_folder(parser=self, prefetch=self.prefetch)."""

    def __init__(self, spec: SpoolParser, workers: int):
        self.spec, self.workers = spec, workers
        self.pool: ProcessPoolExecutor | None = None
        self.queue: list[tuple[str, Path]] = []  # (source_file, path) of the files to come
        self.running: dict[Path, Future[Spooled]] = {}
        self.spooled = 0
        self.spool_dir = Path(tempfile.mkdtemp(prefix=f"fundtrace-{spec.table.name}-"))

    def __enter__(self) -> ParallelParser:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.spool_dir, ignore_errors=True)

    def prefetch(self, files: Sequence[tuple[str, Path]]) -> None:
        self.queue = list(files)
        # one file, or a few MB, gains nothing from workers that take ~1 s each to start
        size = sum(p.stat().st_size for _, p in self.queue if p.is_file())
        if len(self.queue) > 1 and size >= PARALLEL_MIN_BYTES:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=worker_context())
        self._top_up()

    def _top_up(self) -> None:
        # a bounded number of files ahead, so spooled rows on disk stay a few files' worth
        while self.pool is not None and self.queue and len(self.running) < self.workers + 1:
            source_file, path = self.queue.pop(0)
            self.spooled += 1
            spool = self.spool_dir / f"{self.spooled:06d}.arrows"
            self.running[path] = self.pool.submit(
                parse_to_spool,
                self.spec.parse_to,
                list(self.spec.columns),
                self.spec.batch_rows,
                path,
                spool,
                source_file,
            )

    def __call__(self, con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
        future = self.running.pop(path, None)
        if future is None:  # not prefetched: parse here
            return self.spec.parse_file(con, path, ctx)
        self._top_up()
        done = future.result()
        try:
            if done.rejected is not None:
                reason, locator, rows_seen = done.rejected
                raise FileRejected(reason, locator=locator, rows_seen=rows_seen)
            assert done.result is not None
            out = RowWriter(con, ctx, self.spec.table.qualified, self.spec.columns)
            if done.spool.exists():
                with pa.ipc.open_stream(str(done.spool)) as reader:
                    out.insert_arrow(reader)
            if out.written != done.result.rows_loaded:
                raise RuntimeError(
                    f"{ctx.source_file}: {out.written} rows inserted of "
                    f"{done.result.rows_loaded} parsed"
                )
            return done.result
        finally:
            done.spool.unlink(missing_ok=True)


def ingest_in_parallel(
    con: duckdb.DuckDBPyConnection,
    spec: SpoolParser,
    workers: int,
    **ingest_args: Any,
) -> IngestReport:
    """ingest_folder into `spec.table`, the files parsed in `workers` processes (1: in-process)."""
    args = {"raw_table": spec.table, **ingest_args}
    if workers <= 1:
        return ingest_folder(con, parser=spec.parse_file, **args)
    with ParallelParser(spec, workers) as parallel:
        return ingest_folder(con, parser=parallel, prefetch=parallel.prefetch, **args)
