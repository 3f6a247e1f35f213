"""Skip unchanged work below raw: an asset whose inputs did not change is not rebuilt.

An asset's *fingerprint* is a SHA-256 over the code of the `assets` package, the asset's
keys, the fingerprints of the tables it depends on (its Dagster deps, plus any `extra_tables`
it reads without declaring) and any `extra` input (a file outside the database). It is stored
with the asset's tables in `quality.build_fingerprints` after a successful build. When the
next run computes the same fingerprint, every table of the asset still exists and holds the
row count stored with it, the asset returns the metadata of its last build marked
`fundtrace/skipped` instead of rebuilding. Every asset still materializes, so lineage, row
counts and checks in the Dagster UI stay complete.

The fingerprint of an input table is the one stored by the asset that built it. A table whose
builder does not take part (the raw layer, which skips unchanged files itself, or an asset not
decorated yet) is fingerprinted by content: per source file (`source_file`, `file_sha256`,
`loaded_at`, rows) when it has the provenance columns, else by a hash of every row. Either way
equal fingerprints mean equal inputs, so a skipped table is what a rebuild would write (builds
are deterministic: same input, same rows).

A rebuild that writes exactly the rows the table held (an asset says so with the metadata
flag `OUTPUT_UNCHANGED`, e.g. when `refresh_table` rewrote no key) does not change what its
dependents read: the table keeps its *version*, an entry `<table>#version` holding the
fingerprint of the build that last changed its rows, and dependents (and checks) fingerprint
the version instead of the build. The version is kept only when the table was as last built
when the rebuild started (entry present, row count equal); otherwise it is the new build's
fingerprint.

The code version is the whole `assets` package: SQL is shared across modules (macros, AWARDS_SQL
of each source), so any code change rebuilds everything below raw once, deliberately.
"""

import contextlib
import contextvars
import datetime as dt
import functools
import hashlib
import inspect
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.tables import (
    OUTPUT_UNCHANGED,
    Column,
    TableSpec,
    create_table,
    scalar_int,
    table_columns,
    transaction,
)

ASSETS_DIR = Path(__file__).resolve().parents[1]
SKIPPED = "fundtrace/skipped"
VERSION_SUFFIX = "#version"
_PROVENANCE = {"source_file", "file_sha256", "loaded_at"}
# Run once, in this process, when data first changes (a raw file is parsed, or an asset below
# raw rebuilds): work only a changing run needs can start early (pipelines/quality.py imports
# Great Expectations ahead, ~2 s of CPU). Until session 8 a parsed raw file did not count: the
# import competed for the GIL with the raw parsers, which now run in worker processes.
_on_data_change: list[Callable[[], None]] = []
_data_changed = False
_data_change_lock = threading.Lock()


def when_data_changes(callback: Callable[[], None]) -> None:
    """Call `callback` once, at the first data change in this process (a raw file parsed, an
    asset below raw rebuilt; now if one happened already). A callback already waiting is not
    added twice."""
    with _data_change_lock:
        if _data_changed:
            pending = True
        else:
            pending = False
            if callback not in _on_data_change:
                _on_data_change.append(callback)
    if pending:
        callback()


def data_changed() -> None:
    """Data is about to change (a raw file parsed, an asset below raw rebuilt): run the
    callbacks, the first time only."""
    global _data_changed
    with _data_change_lock:
        if _data_changed:
            return
        _data_changed = True
        callbacks = list(_on_data_change)
        _on_data_change.clear()
    for callback in callbacks:
        callback()


# when a check last ran, not what it found: a re-validation that finds the same must not
# look like new input (data_quality reads GX results, and its own check rewrites them)
_VOLATILE = {"checked_at"}


@functools.cache
def code_version() -> str:
    """SHA-256 of every Python file of the `assets` package (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(ASSETS_DIR.rglob("*.py")):
        digest.update(path.relative_to(ASSETS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def table_name(key: dg.AssetKey) -> str:
    return ".".join(key.path)


BUILD_FINGERPRINTS = TableSpec(
    schema="quality",
    name="build_fingerprints",
    grain="one asset (or asset check) as last built",
    description="The fingerprint of its inputs and code when it was built; an equal "
    "fingerprint on the next run skips the rebuild (assets/common/fingerprint.py).",
    columns=(
        Column("asset_key", "VARCHAR", "Table (`layer.table`) or check the entry is for.", False),
        Column("fingerprint", "VARCHAR", "SHA-256 of its inputs and the code.", False),
        Column("row_count", "BIGINT", "Rows the table held after the build."),
        Column("metadata", "VARCHAR", "Dagster metadata of that build (serialized)."),
        Column("built_at", "TIMESTAMP", "When it was built (UTC).", False),
    ),
)  # fmt: skip


FINGERPRINTS = BUILD_FINGERPRINTS.qualified


def ensure_fingerprint_table(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, BUILD_FINGERPRINTS, replace=False)


_TABLES: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "fundtrace_tables", default=None
)
# a table's columns, looked up once per snapshot (a table fingerprinted by content for several
# slices: `table WHERE condition` per slice)
_COLUMNS: contextvars.ContextVar[dict[str, list[str] | None] | None] = contextvars.ContextVar(
    "fundtrace_columns", default=None
)


@contextlib.contextmanager
def catalog_snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Inside the block, whether a table exists is answered from one listing of the
    database's tables and views: a skip decision asks 4-6 times (the fingerprint table, each
    input, each own table; ~2 ms a catalog query), so ~7 ms of every skipped step. Only for
    blocks that create and drop no table. A table's columns are looked up once in it."""
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() "
        "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() "
        "WHERE database_name = current_database()"
    ).fetchall()
    token = _TABLES.set(frozenset(r[0] for r in rows))
    columns = _COLUMNS.set({})
    try:
        yield
    finally:
        _COLUMNS.reset(columns)
        _TABLES.reset(token)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    """table_columns, once per table inside a catalog snapshot."""
    known = _COLUMNS.get()
    if known is None:
        return table_columns(con, table)
    if table not in known:
        known[table] = table_columns(con, table) if _exists(con, table) else None
    return known[table]


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    known = _TABLES.get()
    if known is not None:
        return table in known
    return table_columns(con, table) is not None


def split_input(name: str) -> tuple[str, list[str] | None, str]:
    """(table, columns or None, condition) of an input name: `layer.table`, optionally
    `[col, ...]` (only those columns are read) and ` WHERE condition` (only those rows)."""
    head, _, condition = name.partition(" WHERE ")
    table, _, projection = head.partition("[")
    columns = [c.strip() for c in projection.rstrip("]").split(",")] if projection else None
    return table.strip(), columns, condition


def content_fingerprint(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """Fingerprint of a table nobody stored one for: per source file when it has provenance
    columns (cheap: raw tables change a whole file at a time), else every row. `name` may
    be `"layer.table WHERE condition"` for an asset that reads only those rows, and
    `"layer.table[col, ...]"` for one that reads only those columns (the canonical ids of
    identity: a file that changes names and evidence leaves them as they were)."""
    table, projection, condition = split_input(name)
    where = f" WHERE {condition}" if condition else ""
    columns = _columns(con, table)
    if columns is None:
        return "absent"
    if projection is not None:
        rows = con.execute(
            f"SELECT count(*), sum(hash({', '.join(projection)})) FROM {table}{where}"
        ).fetchall()
        payload = json.dumps([projection, *rows], default=str)
    elif set(columns) >= _PROVENANCE:
        rows = con.execute(
            f"SELECT source_file, file_sha256, CAST(max(loaded_at) AS VARCHAR), count(*) "
            f"FROM {table}{where} GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        payload = json.dumps(rows, default=str)
    else:
        kept = ", ".join(f'"{c}"' for c in columns if c not in _VOLATILE)
        rows = con.execute(f"SELECT count(*), sum(hash({kept})) FROM {table}{where}").fetchall()
        payload = json.dumps([columns, *rows], default=str)
    return "content:" + hashlib.sha256(payload.encode()).hexdigest()


def _stored(
    con: duckdb.DuckDBPyConnection, keys: Iterable[str]
) -> dict[str, tuple[str, int | None, str | None]]:
    keys = list(keys)
    if not keys or not _exists(con, FINGERPRINTS):
        return {}
    rows = con.execute(
        f"SELECT asset_key, fingerprint, row_count, metadata FROM {FINGERPRINTS} "
        "WHERE list_contains(?, asset_key)",
        [keys],
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def stored_entry(
    con: duckdb.DuckDBPyConnection, key: str
) -> tuple[str, int | None, str | None] | None:
    """(fingerprint, row_count, metadata) stored under `key`, or None."""
    return _stored(con, [key]).get(key)


def input_fingerprint(
    con: duckdb.DuckDBPyConnection,
    own_keys: Sequence[str],
    inputs: Iterable[str],
    extra: str = "",
    contents: dict[str, str] | None = None,
) -> str:
    """Fingerprint of what `own_keys` would be built from (see module doc). `contents`: a
    cache of content fingerprints, for several fingerprints taken at one moment (slices)."""
    inputs = sorted(set(inputs))
    stored = _versioned(con, inputs)
    parts: dict[str, Any] = {"code": code_version(), "assets": sorted(own_keys), "extra": extra}
    for name in inputs:
        hit = stored.get(name)
        exists = _exists(con, split_input(name)[0])
        if hit and exists:
            parts[name] = hit[0]
        elif contents is None:
            parts[name] = content_fingerprint(con, name)
        else:
            if name not in contents:
                contents[name] = content_fingerprint(con, name)
            parts[name] = contents[name]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _row_count(con: duckdb.DuckDBPyConnection, table: str) -> int | None:
    if not _exists(con, table):
        return None
    return scalar_int(con, f"SELECT count(*) FROM {table}")


def unchanged(
    con: duckdb.DuckDBPyConnection, keys: Sequence[str], fingerprint: str
) -> dict[str, tuple[int, str | None]] | None:
    """{key: (row_count, stored metadata)} when every table of `keys` was built from
    `fingerprint` and still holds its rows; None when anything must be rebuilt."""
    stored = _stored(con, keys)
    found: dict[str, tuple[int, str | None]] = {}
    for key in keys:
        hit = stored.get(key)
        if hit is None or hit[0] != fingerprint:
            return None
        rows = _row_count(con, key)
        if rows is None or rows != hit[1]:
            return None
        found[key] = (rows, hit[2])
    return found


def unchanged_payload(con: duckdb.DuckDBPyConnection, key: str, fingerprint: str) -> str | None:
    """The stored metadata of `key` (an entry without a table, e.g. a check) when it was
    recorded with `fingerprint`; else None, and the stale entry is dropped."""
    hit = _stored(con, [key]).get(key)
    if hit is not None and hit[0] == fingerprint and hit[2] is not None:
        return hit[2]
    if hit is not None:
        forget(con, [key])
    return None


def versioned_entries(
    con: duckdb.DuckDBPyConnection, names: Sequence[str]
) -> dict[str, tuple[str, str, int | None, str | None]]:
    """{name: (fingerprint, written at, row count, metadata)} of the stored entries of
    `names`, with the table's version entry (its fingerprint and when it was written) in place
    of the build's where it has one; a version without a current entry counts for nothing."""
    if not names or not _exists(con, FINGERPRINTS):
        return {}
    # both entries in one scan, paired here: the self-join cost ~1.8 ms a call, this ~1.2 ms
    wanted = [*names, *(f"{n}{VERSION_SUFFIX}" for n in names)]
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            f"SELECT asset_key, fingerprint, CAST(built_at AS VARCHAR), row_count, metadata "
            f"FROM {FINGERPRINTS} WHERE list_contains(?, asset_key)",
            [wanted],
        ).fetchall()
    }
    entries: dict[str, tuple[str, str, int | None, str | None]] = {}
    for name in names:
        if (build := rows.get(name)) is not None:
            version = rows.get(f"{name}{VERSION_SUFFIX}")
            fingerprint, built_at = version[:2] if version is not None else build[:2]
            entries[name] = (fingerprint, built_at, build[2], build[3])
    return entries


def _versioned(
    con: duckdb.DuckDBPyConnection, names: Sequence[str]
) -> dict[str, tuple[str, int | None, str | None]]:
    """The stored entries of `names` as `_stored` gives them, versions applied."""
    return {
        name: (fingerprint, rows, metadata)
        for name, (fingerprint, _, rows, metadata) in versioned_entries(con, names).items()
    }


def current_versions(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> dict[str, str]:
    """{table: version} for the tables of `names` that are as last built (entry present, row
    count equal): the version a rebuild that keeps the rows keeps (see module doc)."""
    return {
        name: hit[0]
        for name, hit in _versioned(con, names).items()
        if hit[1] is not None and _row_count(con, name) == hit[1]
    }


def forget(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> None:
    """Drop stored fingerprints before a rebuild, so a failed build is never taken as current."""
    ensure_fingerprint_table(con)
    con.execute(f"DELETE FROM {FINGERPRINTS} WHERE list_contains(?, asset_key)", [list(keys)])


def record_in_transaction(
    con: duckdb.DuckDBPyConnection,
    key: str,
    fingerprint: str,
    row_count: int | None,
    metadata: str | None = None,
) -> None:
    """Store the entry of `key` inside the caller's transaction, so that it is committed or
    rolled back with what the caller writes (the table must exist: ensure_fingerprint_table,
    called before BEGIN)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(f"DELETE FROM {FINGERPRINTS} WHERE asset_key = ?", [key])
    con.execute(
        f"INSERT INTO {FINGERPRINTS} VALUES (?, ?, ?, ?, ?)",
        [key, fingerprint, row_count, metadata, now],
    )


def remember(
    con: duckdb.DuckDBPyConnection,
    key: str,
    fingerprint: str,
    row_count: int | None,
    metadata: str | None = None,
) -> None:
    """Store the entry of `key` in a transaction of its own."""
    ensure_fingerprint_table(con)
    with transaction(con):
        record_in_transaction(con, key, fingerprint, row_count, metadata)


def file_state(path: Path) -> str:
    """Name, size and modification time of a file (or 'absent'): cheap, and changes whenever
    the file is rewritten or replaced."""
    if not path.exists():
        return f"{path.name}:absent"
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def skipped_file_output(
    con: duckdb.DuckDBPyConnection, key: str, fingerprint: str, outputs: Sequence[Path]
) -> dict[str, Any] | None:
    """For an asset that writes files outside the database: the metadata of its last build when
    it was built from `fingerprint` and its `outputs` are still as it left them; else None (and
    the stale entry is dropped, so a failed rebuild is never taken as current)."""
    stored = unchanged_payload(con, key, fingerprint)
    if stored is not None:
        metadata = dict(dg.deserialize_value(stored, dict))
        if metadata.get("fundtrace/outputs") == [file_state(p) for p in outputs]:
            metadata[SKIPPED] = "inputs unchanged since the last build: not rebuilt"
            return metadata
        forget(con, [key])
    return None


def remember_file_output(
    con: duckdb.DuckDBPyConnection,
    key: str,
    fingerprint: str,
    outputs: Sequence[Path],
    metadata: Mapping[str, Any],
) -> None:
    """Store the fingerprint of a file-writing asset with the state of the files it wrote."""
    stored = {**metadata, "fundtrace/outputs": [file_state(p) for p in outputs]}
    remember(con, key, fingerprint, None, dg.serialize_value(stored))


# --------------------------------------------------------------------------- Dagster wiring


def _upstream(assets_def: dg.AssetsDefinition, keys: Sequence[dg.AssetKey]) -> set[str]:
    own = set(assets_def.keys)
    deps = {dep.asset_key for spec in assets_def.specs if spec.key in keys for dep in spec.deps}
    return {table_name(k) for k in deps - own}


def _skipped_results(
    found: Mapping[str, tuple[int, str | None]], keys: Sequence[dg.AssetKey], fingerprint: str
) -> list[dg.MaterializeResult]:
    results = []
    for key in keys:
        rows, stored = found[table_name(key)]
        metadata: dict[str, Any] = dict(dg.deserialize_value(stored, dict)) if stored else {}
        metadata["dagster/row_count"] = rows
        metadata[SKIPPED] = "inputs unchanged since the last build: not rebuilt"
        results.append(
            dg.MaterializeResult(
                asset_key=key, metadata=metadata, data_version=dg.DataVersion(fingerprint[:16])
            )
        )
    return results


def _resource(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> DuckDBResource:
    for value in (*args, *kwargs.values()):
        if isinstance(value, DuckDBResource):
            return value
    raise TypeError("skip_unchanged needs an asset with a DuckDBResource parameter")


def skip_unchanged(
    fn: Callable[..., Any] | None = None,
    *,
    extra_tables: Sequence[str] = (),
    extra: Callable[..., str] | None = None,
    reads: Mapping[str, str] | None = None,
) -> Any:
    """Decorate an asset function (under `@dg.asset` / `@dg.multi_asset`) whose tables are
    `layer.table` of its asset keys so that it is skipped when its inputs are unchanged.

    `extra_tables`: tables the asset reads without a Dagster dep (shared tables such as
    `staging.stg_quarantine`). `extra(**resources)`: a string for inputs outside the database,
    e.g. a file's hash. `reads`: {input table: what the asset reads of it, as an input name
    `layer.table[col, ...] WHERE condition` (see `split_input`)}; that part is fingerprinted
    by content, so a rebuild of the input that leaves it as it was (the names and evidence
    of known organisations, say) does not rebuild the asset.
    """
    if fn is None:
        return functools.partial(
            skip_unchanged, extra_tables=extra_tables, extra=extra, reads=reads
        )
    func = fn
    for table, part in (reads or {}).items():
        if split_input(part)[0] != table:
            raise ValueError(f"skip_unchanged: {part!r} is not a part of {table}")

    def plan(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        context = dg.AssetExecutionContext.get()
        keys = sorted(context.selected_asset_keys, key=lambda k: k.to_user_string())
        names = [table_name(k) for k in keys]
        inputs = {
            (reads or {}).get(t, t) for t in _upstream(context.assets_def, keys) | set(extra_tables)
        }
        resource = _resource(args, kwargs)
        extra_value = extra(**kwargs) if extra else ""
        with resource.get_connection() as con:
            with catalog_snapshot(con):
                fingerprint = input_fingerprint(con, names, inputs, extra_value)
                found = unchanged(con, names, fingerprint)
            versions: dict[str, str] = {}
            if found is None and any(k.path[0] != "raw" for k in keys):
                data_changed()  # below raw only: a raw asset (councils.csv) rebuilds early
                versions = current_versions(con, names)
                forget(con, names)
        if found is not None:
            context.log.info(f"{', '.join(names)}: inputs unchanged, not rebuilt")
            skipped = _skipped_results(found, keys, fingerprint)
            return keys, names, fingerprint, resource, skipped, versions
        return keys, names, fingerprint, resource, None, versions

    def record(
        resource: DuckDBResource,
        keys: Sequence[dg.AssetKey],
        fingerprint: str,
        results: Sequence[Any],
        versions: Mapping[str, str],
    ) -> list[Any]:
        by_key = {}
        out = []
        for result in results:
            if isinstance(result, dg.MaterializeResult):
                key = result.asset_key or keys[0]
                by_key[key] = result
                if result.data_version is None:  # equal inputs, equal data version
                    result = dg.MaterializeResult(
                        asset_key=result.asset_key,
                        metadata=result.metadata,
                        check_results=result.check_results,
                        data_version=dg.DataVersion(fingerprint[:16]),
                        tags=result.tags,
                    )
            out.append(result)
        with resource.get_connection() as con:
            for key in keys:
                result = by_key.get(key)
                metadata = dict(result.metadata or {}) if result else {}
                metadata.pop("dagster/row_count", None)
                name = table_name(key)
                kept = metadata.get(OUTPUT_UNCHANGED) is True and name in versions
                version = versions[name] if kept else fingerprint
                # rewritten unless kept: its built_at says when the rows were last written
                stored = stored_entry(con, name + VERSION_SUFFIX)
                if not kept or stored is None or stored[0] != version:
                    remember(con, name + VERSION_SUFFIX, version, None)
                remember(
                    con, name, fingerprint, _row_count(con, name), dg.serialize_value(metadata)
                )
        return out

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            keys, _, fingerprint, resource, skipped, versions = plan(args, kwargs)
            if skipped is not None:
                yield from skipped
                return
            results = list(func(*args, **kwargs))
            yield from record(resource, keys, fingerprint, results, versions)

        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        keys, _, fingerprint, resource, skipped, versions = plan(args, kwargs)
        if skipped is not None:
            return skipped[0] if len(skipped) == 1 else tuple(skipped)
        result = func(*args, **kwargs)
        return record(resource, keys, fingerprint, [result], versions)[0]

    return wrapper
