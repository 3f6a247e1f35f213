"""Tests of the Great Expectations -> Dagster asset-check bridge (pipelines/quality.py).

Every test builds its own tiny DuckDB file in tmp_path; GX runs on it through the bridge.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from pipelines import quality
from pipelines.quality import (
    UNEXPECTED_ROW_COUNT,
    GXValidationError,
    SuiteOutcome,
    UnsupportedExpectationError,
    asset_key_for_suite,
    build_gx_asset_checks,
    ensure_gx_duckdb_patch,
    load_suite,
    result_for_outcome,
    run_suite,
    suite_files,
    translate_for_duckdb,
    write_gx_results,
)
from tests.fresh import run_fresh

# --------------------------------------------------------------------------- helpers


def make_db(path: Path, *statements: str) -> str:
    conn = duckdb.connect(str(path))
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
    return str(path)


def exp(exp_type: str, severity: str | None = None, **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": exp_type, "kwargs": kwargs}
    if severity:
        out["severity"] = severity
    return out


def suite_of(*expectations: dict[str, Any], name: str = "staging__t") -> dict[str, Any]:
    return {"name": name, "expectations": list(expectations), "meta": {"description": "test"}}


GRANTS = """
CREATE SCHEMA staging;
CREATE TABLE staging.t AS SELECT * FROM (VALUES
    (1, 'GBP', 100.50::DECIMAL(18,2), 'a'),
    (2, 'EUR', 20.00::DECIMAL(18,2), NULL),
    (3, 'USD', 3.25::DECIMAL(18,2), 'b'),
    (4, 'GBP', 7.00::DECIMAL(18,2), NULL),
    (5, 'EUR', 1.00::DECIMAL(18,2), 'c')
) v(grant_id, currency, amount, note);
"""


@pytest.fixture
def grants_db(tmp_path: Path) -> str:
    return make_db(tmp_path / "build.duckdb", GRANTS)


# --------------------------------------------------------------------------- GX patch


def test_patch_is_idempotent_and_makes_duckdb_persisted() -> None:
    ensure_gx_duckdb_patch()
    ensure_gx_duckdb_patch()
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine_module

    dialects = engine_module._PERSISTED_CONNECTION_DIALECTS
    assert [str(getattr(d, "value", d)) for d in dialects].count("duckdb") == 1
    assert "duckdb" in dialects  # GX's `dialect_name in tuple` test
    assert engine_module._dialect_requires_persisted_connection(connection_string="duckdb:///x")


def test_patch_fails_clearly_when_gx_private_name_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine_module

    monkeypatch.delattr(engine_module, "_PERSISTED_CONNECTION_DIALECTS")
    with pytest.raises(RuntimeError, match="pinned"):
        ensure_gx_duckdb_patch()


# --------------------------------------------------------------------------- run_suite


def test_green_suite_passes(grants_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="grant_id"),
        exp("expect_column_values_to_be_unique", column="grant_id"),
        exp("expect_table_row_count_to_be_between", min_value=1, max_value=10),
        exp("expect_column_values_to_match_regex", column="currency", regex="^[A-Z]{3}$"),
        exp("expect_column_values_to_be_of_type", column="amount", type_="DECIMAL"),
        exp(
            "unexpected_rows_expectation",
            unexpected_rows_query="SELECT * FROM {batch} WHERE amount < 0",
        ),
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.errors == []
    assert outcome.passed
    assert [e.success for e in outcome.expectations] == [True] * 6
    assert [e.expectation for e in outcome.expectations] == [
        e["type"] for e in suite["expectations"]
    ]
    result = result_for_outcome(outcome)
    assert result.passed


def test_one_validation_a_suite_and_complete_rows_only_for_failed_row_queries(
    grants_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from great_expectations.datasource.fluent.interfaces import Batch

    calls: list[tuple[str, list[str]]] = []
    validate = Batch.validate

    def counted(self: Any, expect: Any, **kwargs: Any) -> Any:
        kinds = [e.expectation_type for e in expect.expectations]
        calls.append((kwargs["result_format"]["result_format"], kinds))
        return validate(self, expect, **kwargs)

    monkeypatch.setattr(Batch, "validate", counted)
    passing = suite_of(
        exp("expect_column_values_to_not_be_null", column="grant_id"),
        exp("unexpected_rows_expectation", unexpected_rows_query="SELECT * FROM {batch} WHERE amount < 0"),
    )  # fmt: skip
    assert run_suite(grants_db, "staging", "t", passing).passed
    rows, count_only = "unexpected_rows_expectation", UNEXPECTED_ROW_COUNT
    # the row query counted only in the first validation
    assert calls == [("SUMMARY", ["expect_column_values_to_not_be_null", count_only])]

    calls.clear()
    failing = suite_of(
        exp("expect_column_values_to_not_be_null", column="note"),
        exp(rows, unexpected_rows_query="SELECT currency FROM {batch} WHERE amount > 10"),
        exp(rows, unexpected_rows_query="SELECT * FROM {batch} WHERE amount < 0"),
    )
    not_null, big, negative = run_suite(grants_db, "staging", "t", failing).expectations
    # the failed row query alone validated again, for its rows
    assert calls == [("SUMMARY", ["expect_column_values_to_not_be_null", count_only, count_only]),
                     ("COMPLETE", [rows])]  # fmt: skip
    assert (big.success, big.unexpected_count, sorted(big.unexpected_sample)) == (
        False, 2, ["EUR", "GBP"],
    )  # fmt: skip
    assert (negative.success, negative.unexpected_sample) == (True, [])
    assert (not_null.success, not_null.unexpected_sample) == (False, ["null", "null"])


def test_a_passing_row_query_runs_once(grants_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GX's unexpected_rows_expectation fetches the rows and counts them, two runs of the query
    # to the end of the table when nothing matches; the first validation only counts them
    import duckdb_engine

    statements: list[str] = []
    execute = duckdb_engine.CursorWrapper.execute

    def recorded(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(statement))
        return execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(duckdb_engine.CursorWrapper, "execute", recorded)
    query = "SELECT * FROM {batch} WHERE amount < -12345"
    suite = suite_of(exp("unexpected_rows_expectation", unexpected_rows_query=query))
    (outcome,) = run_suite(grants_db, "staging", "t", suite).expectations
    assert (outcome.success, outcome.unexpected_count, outcome.errored) == (True, 0, False)
    assert sum("-12345" in s for s in statements) == 1

    statements.clear()
    failing = suite_of(
        exp(
            "unexpected_rows_expectation",
            unexpected_rows_query="SELECT currency FROM {batch} WHERE amount > 10",
        )
    )
    (outcome,) = run_suite(grants_db, "staging", "t", failing).expectations
    assert (outcome.success, outcome.unexpected_count) == (False, 2)
    assert sorted(outcome.unexpected_sample) == ["EUR", "GBP"]
    # counted, then its rows and count fetched as GX's expectation does
    assert sum("amount > 10" in s for s in statements) == 3


def test_critical_failure_has_counts_and_sample(grants_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="note"),
        exp("expect_column_values_to_be_unique", column="currency", severity="critical"),
        exp("expect_table_row_count_to_be_between", min_value=10),
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.errors == []
    not_null, unique, row_count = outcome.expectations
    assert (not_null.success, not_null.unexpected_count, not_null.unexpected_percent) == (
        False,
        2,
        40.0,
    )
    assert not_null.unexpected_sample == ["null", "null"]
    assert unique.unexpected_count == 4  # GBP x2 and EUR x2
    assert sorted(unique.unexpected_sample) == ["EUR", "EUR", "GBP", "GBP"]
    assert (row_count.success, row_count.observed_value) == (False, 5)
    assert outcome.critical_failures == [not_null, unique, row_count]
    assert not outcome.passed
    result = result_for_outcome(outcome)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.ERROR)
    metadata = result.metadata
    assert metadata["failed_critical"].value == 3
    assert "| expect_column_values_to_not_be_null(column=note) |" in str(metadata["failures"].value)
    assert not any(key.startswith("dagster/") for key in metadata)
    json.dumps(metadata["expectations"].value)  # JSON-serialisable


def test_warning_only_failure_is_not_critical(grants_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="grant_id"),
        exp("expect_column_values_to_not_be_null", severity="warning", column="note"),
        exp("expect_column_values_to_not_be_null", severity="info", column="note"),
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.errors == [] and outcome.critical_failures == []
    assert [e.index for e in outcome.warning_failures] == [1]
    assert [e.index for e in outcome.info_failures] == [2]
    assert not outcome.passed
    result = result_for_outcome(outcome)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_info_only_failure_does_not_fail_the_check(grants_db: str) -> None:
    suite = suite_of(exp("expect_column_values_to_not_be_null", severity="info", column="note"))
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.passed and len(outcome.info_failures) == 1
    assert result_for_outcome(outcome).passed


def test_nonexistent_column_is_an_error_never_a_pass_or_failure(grants_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="no_such_column"),
        # a failing SQL query first: later queries on the shared connection must still work
        exp("expect_column_values_to_be_of_type", column="also_missing", type_="VARCHAR"),
        exp("unexpected_rows_expectation", unexpected_rows_query="SELECT * FROM {batch} WHERE x"),
        exp("expect_column_values_to_not_be_null", column="note"),
        exp("expect_column_values_to_not_be_null", column="grant_id"),
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert [e.index for e in outcome.errors] == [0, 1, 2]
    assert all(not e.success for e in outcome.errors)
    assert "no_such_column" in (outcome.errors[0].exception_message or "")
    assert "also_missing" in (outcome.errors[1].exception_message or "")
    assert [e.index for e in outcome.critical_failures] == [3]  # errors are not failures
    assert outcome.expectations[4].success
    assert not outcome.passed
    with pytest.raises(GXValidationError) as raised:
        result_for_outcome(outcome)
    message = str(raised.value)
    assert "staging__t" in message
    assert "expect_column_values_to_not_be_null(column=no_such_column)" in message
    assert 'The column "no_such_column" in BatchData does not exist' in message
    assert "\n  expect_column_values_to_be_of_type(column=also_missing" in message


def test_missing_table_errors_every_expectation(tmp_path: Path) -> None:
    db = make_db(tmp_path / "empty.duckdb", "CREATE SCHEMA staging")
    suite = suite_of(exp("expect_column_values_to_not_be_null", column="a"))
    outcome = run_suite(db, "staging", "t", suite)
    assert [e.errored for e in outcome.expectations] == [True]
    assert outcome.exception is not None
    assert "staging.t" in (outcome.errors[0].exception_message or "")
    with pytest.raises(GXValidationError):
        result_for_outcome(outcome)


def test_untranslatable_expectation_is_an_error(grants_db: str) -> None:
    suite = suite_of(
        exp(
            "expect_column_values_to_match_regex",
            column="currency",
            regex="x",
            row_condition="note IS NULL",
        )
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.errors and "row_condition" in (outcome.errors[0].exception_message or "")


# --------------------------------------------------------------------------- translation


def test_translate_regex_keeps_meta_severity_and_original() -> None:
    original = {
        "type": "expect_column_values_to_match_regex",
        "kwargs": {"column": "code", "regex": "^it's {x}:(?:y)$"},
        "severity": "warning",
        "meta": {"owner": "data"},
    }
    suite = {"name": "staging__t", "expectations": [original], "meta": {"description": "d"}}
    out = translate_for_duckdb(suite, "staging", "t")
    (translated,) = out["expectations"]
    assert translated["type"] == "unexpected_rows_expectation"
    assert translated["severity"] == "warning"
    assert translated["meta"] == {
        "owner": "data",
        "translated_from": {"type": original["type"], "kwargs": original["kwargs"]},
    }
    query = translated["kwargs"]["unexpected_rows_query"]
    assert "FROM {batch}" in query
    assert "regexp_matches" in query and "regexp_full_match" not in query
    assert "'^it''s {{x}}\\:(?\\:y)$'" in query  # quote doubled, braces doubled, colon escaped
    assert '"code" IS NOT NULL' in query
    assert out["meta"] == suite["meta"]
    assert suite["expectations"][0] is original and "translated_from" not in original["meta"]


def test_translate_passes_others_through_with_explicit_severity() -> None:
    plain = exp("expect_column_values_to_not_be_null", column="a")
    out = translate_for_duckdb(suite_of(plain), "staging", "t")
    assert out["expectations"] == [{**plain, "severity": "critical"}]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (exp("expect_column_values_to_match_regex", column="a"), "missing regex"),
        (exp("expect_column_values_to_match_regex", column="a", regex="x", mostly=2), "mostly"),
        (exp("expect_column_values_to_be_of_type", column="a", type_="X", foo=1), "foo"),
        (exp("expect_column_values_to_be_in_type_list", column="a", type_list=[]), "type_list"),
        (exp("expect_column_values_to_not_be_null", severity="fatal", column="a"), "fatal"),
        ({"kwargs": {}}, "type"),
    ],
)
def test_translate_rejects_what_it_cannot_run_faithfully(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(UnsupportedExpectationError, match=needle):
        translate_for_duckdb(suite_of(bad), "staging", "t")


CODES = ["GBP", "EUR", "eur", "GB", "XGBPX", None, "it's {x}", "{y}", "a:b", "GB-COH-1"]


@pytest.fixture
def codes_db(tmp_path: Path) -> str:
    conn = duckdb.connect(str(tmp_path / "codes.duckdb"))
    conn.execute("CREATE SCHEMA staging; CREATE TABLE staging.codes (code VARCHAR)")
    conn.executemany("INSERT INTO staging.codes VALUES (?)", [[c] for c in CODES])
    conn.close()
    return str(tmp_path / "codes.duckdb")


@pytest.mark.parametrize(
    "regex",
    ["^[A-Z]{3}$", "GB", "^GB", "'s \\{x\\}", "\\{[a-z]\\}$", "(?:GB)-", ":b$", "[a-z]"],
)
def test_regex_translation_counts_like_gx_search(codes_db: str, regex: str) -> None:
    values = [c for c in CODES if c is not None]
    expected_bad = [c for c in values if not re.search(regex, c)]
    expected_good = [c for c in values if re.search(regex, c)]
    suite = suite_of(
        exp("expect_column_values_to_match_regex", column="code", regex=regex),
        exp("expect_column_values_to_not_match_regex", column="code", regex=regex),
        name="staging__codes",
    )
    outcome = run_suite(codes_db, "staging", "codes", suite)
    assert outcome.errors == []
    match, not_match = outcome.expectations
    assert match.unexpected_count == len(expected_bad)
    assert match.success == (not expected_bad)
    assert sorted(match.unexpected_sample) == sorted(expected_bad)
    assert not_match.unexpected_count == len(expected_good)
    assert sorted(not_match.unexpected_sample) == sorted(expected_good)
    assert match.expectation == "expect_column_values_to_match_regex"  # named as written


@pytest.mark.parametrize(("mostly", "success"), [(0.5, True), (0.9, False)])
def test_regex_mostly_follows_gx_rule(codes_db: str, mostly: float, success: bool) -> None:
    # 5 of the 9 non-null codes contain an upper-case letter
    suite = suite_of(
        exp("expect_column_values_to_match_regex", column="code", regex="[A-Z]", mostly=mostly),
        name="staging__codes",
    )
    (result,) = run_suite(codes_db, "staging", "codes", suite).expectations
    assert (result.errored, result.success) == (False, success)
    assert result.unexpected_count == (0 if success else 4)


def test_regex_rejected_by_re2_is_an_error(codes_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_match_regex", column="code", regex="(?=GB)"),
        name="staging__codes",
    )
    outcome = run_suite(codes_db, "staging", "codes", suite)
    assert len(outcome.errors) == 1


def test_type_translation(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "types.duckdb",
        "CREATE SCHEMA staging",
        "CREATE TABLE staging.typed (id INTEGER, name VARCHAR, amount DECIMAL(18,2), d DATE)",
    )
    checks = [
        ("expect_column_values_to_be_of_type", {"column": "id", "type_": "INTEGER"}, True),
        ("expect_column_values_to_be_of_type", {"column": "id", "type_": "int"}, True),
        ("expect_column_values_to_be_of_type", {"column": "id", "type_": "BIGINT"}, False),
        ("expect_column_values_to_be_of_type", {"column": "name", "type_": "STRING"}, True),
        ("expect_column_values_to_be_of_type", {"column": "amount", "type_": "DECIMAL"}, True),
        ("expect_column_values_to_be_of_type", {"column": "amount", "type_": "DOUBLE"}, False),
        ("expect_column_values_to_be_of_type", {"column": "d", "type_": "TIMESTAMP"}, False),
        (
            "expect_column_values_to_be_in_type_list",
            {"column": "d", "type_list": ["TIMESTAMP", "DATE"]},
            True,
        ),
    ]
    suite = suite_of(*[exp(t, **kw) for t, kw, _ in checks], name="staging__typed")
    outcome = run_suite(db, "staging", "typed", suite)  # the table is empty: types still checked
    assert outcome.errors == []
    assert [e.success for e in outcome.expectations] == [ok for _, _, ok in checks]
    wrong = outcome.expectations[5]
    assert (wrong.unexpected_count, wrong.unexpected_sample) == (1, ["DECIMAL(18,2)"])
    assert wrong.kwargs == {"column": "amount", "type_": "DOUBLE"}


# --------------------------------------------------------------------------- file handles


def test_database_file_is_released_after_run_suite(grants_db: str) -> None:
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="grant_id"),
        exp("expect_column_values_to_match_regex", column="currency", regex="^[A-Z]{3}$"),
    )
    assert run_suite(grants_db, "staging", "t", suite).passed
    conn = duckdb.connect(grants_db)  # default config: differs from duckdb-engine's
    conn.execute("CREATE TABLE staging.after_gx AS SELECT 1 AS x")
    conn.close()
    code = (
        "import duckdb, sys\n"
        "c = duckdb.connect(sys.argv[1])\n"
        "c.execute('INSERT INTO staging.after_gx VALUES (2)')\n"
        "print(c.execute('SELECT count(*) FROM staging.after_gx').fetchone()[0])\n"
        "c.close()\n"
    )
    assert run_fresh(code, grants_db, timeout=60).strip() == "2"


def test_run_suite_shares_an_open_connection_with_another_config(grants_db: str) -> None:
    # DuckDBResource opens with custom_user_agent="dagster"; a second open of the file with
    # another configuration is refused, so the bridge must work on the caller's connection.
    conn = duckdb.connect(grants_db, config={"custom_user_agent": "dagster"})
    try:
        outcome = run_suite(
            conn,
            "staging",
            "t",
            suite_of(exp("expect_column_values_to_not_be_null", column="grant_id")),
        )
        assert outcome.passed
        conn.execute("CREATE TABLE staging.still_usable AS SELECT 1 AS x")
    finally:
        conn.close()
    reopened = duckdb.connect(grants_db)
    assert reopened.execute("SELECT x FROM staging.still_usable").fetchone() == (1,)
    reopened.close()


# --------------------------------------------------------------------------- persistence


def _outcome(suite: str, success: bool) -> SuiteOutcome:
    return SuiteOutcome(
        suite=suite,
        schema="staging",
        table=suite.split("__")[1],
        expectations=[
            quality.ExpectationOutcome(
                index=0,
                expectation="expect_column_values_to_not_be_null",
                kwargs={"column": "a"},
                severity="critical",
                success=success,
                unexpected_count=0 if success else 2,
                unexpected_sample=[] if success else ["null", "null"],
            )
        ],
    )


def test_write_gx_results_replaces_rows_per_suite(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "q.duckdb"))
    write_gx_results(conn, _outcome("staging__a", False))
    write_gx_results(conn, _outcome("staging__b", True))
    write_gx_results(conn, _outcome("staging__a", True))
    rows = conn.execute(
        "SELECT asset_key, suite, success, errored, unexpected_count, unexpected_sample, message "
        "FROM quality.gx_results ORDER BY suite"
    ).fetchall()
    assert rows == [
        ("staging/a", "staging__a", True, False, 0, "[]", None),
        ("staging/b", "staging__b", True, False, 0, "[]", None),
    ]
    comment = conn.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'quality' AND table_name = "
        "'gx_results'"
    ).fetchone()
    assert comment is not None and "Grain: one expectation of one suite" in comment[0]
    conn.close()


# --------------------------------------------------------------------------- suite files


def test_asset_key_for_suite() -> None:
    assert asset_key_for_suite(Path("x/staging__stg_360giving_grants.json")) == dg.AssetKey(
        ["staging", "stg_360giving_grants"]
    )
    assert asset_key_for_suite("marts__a__b.json") == dg.AssetKey(["marts", "a__b"])
    for bad in ["stg_x.json", "bronze__x.json", "staging__.json", "staging__x.yaml"]:
        with pytest.raises(ValueError, match=re.escape(bad)):
            asset_key_for_suite(bad)


def test_suite_files_and_load_suite(tmp_path: Path) -> None:
    (tmp_path / "staging__b.json").write_text(json.dumps(suite_of(name="staging__b")))
    (tmp_path / "raw__a.json").write_text(json.dumps({"expectations": []}))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in suite_files(tmp_path)] == ["raw__a.json", "staging__b.json"]
    assert load_suite(tmp_path / "raw__a.json")["name"] == "raw__a"
    (tmp_path / "staging__c.json").write_text(json.dumps(suite_of(name="staging__other")))
    with pytest.raises(ValueError, match="staging__c"):
        load_suite(tmp_path / "staging__c.json")
    (tmp_path / "staging__d.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"staging__d\.json"):
        load_suite(tmp_path / "staging__d.json")
    with pytest.raises(FileNotFoundError):
        suite_files(tmp_path / "missing")


def test_suite_dependencies_come_from_meta_only() -> None:
    query = "SELECT * FROM {batch} WHERE a NOT IN (SELECT id FROM marts.organisations)"
    suite = suite_of(exp("unexpected_rows_expectation", unexpected_rows_query=query))
    assert quality.suite_dependencies(suite, MARTS_M) == []
    suite["meta"]["depends_on"] = ["marts/organisations", "intermediate.int_x", "marts/m"]
    assert quality.suite_dependencies(suite, MARTS_M) == [
        dg.AssetKey(["intermediate", "int_x"]),
        dg.AssetKey(["marts", "organisations"]),
    ]


def test_module_import_does_not_import_gx() -> None:
    code = "import sys, pipelines.quality; print('great_expectations' in sys.modules)"
    assert run_fresh(code, timeout=60).strip() == "False"


def test_default_expectations_dir_is_repo_expectations() -> None:
    assert Path(__file__).resolve().parents[1] / "expectations" == quality.EXPECTATIONS_DIR


# --------------------------------------------------------------------------- Dagster


STAGING_T = dg.AssetKey(["staging", "t"])
MARTS_M = dg.AssetKey(["marts", "m"])


@dg.asset(key=STAGING_T)
def staging_t(duckdb: DuckDBResource) -> None:
    with duckdb.get_connection() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS staging")
        conn.execute(
            "CREATE OR REPLACE TABLE staging.t AS SELECT * FROM (VALUES "
            "(1, 'GBP', 'a'), (2, 'EUR', NULL), (3, 'usd', 'b')) v(id, currency, note)"
        )


@dg.asset(key=MARTS_M, deps=[STAGING_T])
def marts_m(duckdb: DuckDBResource) -> None:
    with duckdb.get_connection() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("CREATE OR REPLACE TABLE marts.m AS SELECT count(*) AS n FROM staging.t")


def run_graph(tmp_path: Path, *expectations: dict[str, Any]) -> tuple[Any, str]:
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "staging__t.json").write_text(json.dumps(suite_of(*expectations)))
    db = str(tmp_path / "build.duckdb")
    checks = build_gx_asset_checks(suites)
    result = dg.materialize(
        [staging_t, marts_m, *checks],
        resources={"duckdb": DuckDBResource(database=db)},
        raise_on_error=False,
    )
    return result, db


def materialized(result: Any) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def gx_rows(db: str) -> list[tuple[Any, ...]]:
    conn = duckdb.connect(db, read_only=True)
    try:
        return conn.execute(
            "SELECT asset_key, expectation, severity, success, errored, unexpected_count "
            "FROM quality.gx_results ORDER BY expectation, severity, errored DESC"
        ).fetchall()
    finally:
        conn.close()


def test_check_definitions(tmp_path: Path) -> None:
    (tmp_path / "staging__t.json").write_text(json.dumps(suite_of(exp("x", column="a"))))
    reads_t = "SELECT * FROM {batch} WHERE n > (SELECT count(*) FROM staging.t)"
    no_description = {
        "name": "marts__m",
        "expectations": [
            exp("expect_y", column="a"),
            exp("unexpected_rows_expectation", unexpected_rows_query=reads_t),
        ],
        "meta": {"depends_on": ["staging/t"]},
    }
    (tmp_path / "marts__m.json").write_text(json.dumps(no_description))
    checks = build_gx_asset_checks(tmp_path)
    specs = {spec.key: spec for check in checks for spec in check.check_specs}
    assert set(specs) == {
        dg.AssetCheckKey(MARTS_M, "gx_m"),
        dg.AssetCheckKey(STAGING_T, "gx_t"),
    }
    assert all(spec.blocking for spec in specs.values())
    assert specs[dg.AssetCheckKey(STAGING_T, "gx_t")].description == "test"
    assert "expect_y" in (specs[dg.AssetCheckKey(MARTS_M, "gx_m")].description or "")
    assert specs[dg.AssetCheckKey(STAGING_T, "gx_t")].additional_deps == []
    assert [d.asset_key for d in specs[dg.AssetCheckKey(MARTS_M, "gx_m")].additional_deps] == [
        STAGING_T
    ]
    assert specs[dg.AssetCheckKey(STAGING_T, "gx_t")].metadata["suite_file"] == str(
        tmp_path / "staging__t.json"
    )


def test_dagster_green_run_materializes_downstream_and_persists(tmp_path: Path) -> None:
    result, db = run_graph(
        tmp_path,
        exp("expect_column_values_to_not_be_null", column="id"),
        exp("expect_column_values_to_match_regex", column="currency", regex="^[A-Za-z]{3}$"),
    )
    assert result.success
    assert materialized(result) == {STAGING_T, MARTS_M}
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.check_name == "gx_t"
    assert evaluation.metadata["evaluated"].value == 2
    assert gx_rows(db) == [
        ("staging/t", "expect_column_values_to_match_regex", "critical", True, False, 0),
        ("staging/t", "expect_column_values_to_not_be_null", "critical", True, False, 0),
    ]


def test_dagster_critical_failure_blocks_downstream(tmp_path: Path) -> None:
    result, db = run_graph(
        tmp_path,
        exp("expect_column_values_to_match_regex", column="currency", regex="^[A-Z]{3}$"),
    )
    assert not result.success
    assert materialized(result) == {STAGING_T}
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "usd" in str(evaluation.metadata["failures"].value)
    assert gx_rows(db) == [
        ("staging/t", "expect_column_values_to_match_regex", "critical", False, False, 1)
    ]
    conn = duckdb.connect(db, read_only=True)
    assert conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts'"
    ).fetchone() == (0,)
    conn.close()


def test_dagster_warning_failure_does_not_block(tmp_path: Path) -> None:
    result, db = run_graph(
        tmp_path,
        exp("expect_column_values_to_not_be_null", column="id"),
        exp("expect_column_values_to_not_be_null", severity="warning", column="note"),
    )
    assert result.success
    assert materialized(result) == {STAGING_T, MARTS_M}
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert [row[3] for row in gx_rows(db)] == [True, False]


def test_dagster_errored_suite_fails_the_check_step_and_blocks(tmp_path: Path) -> None:
    result, db = run_graph(
        tmp_path,
        exp("expect_column_values_to_not_be_null", column="no_such_column"),
        exp("expect_column_values_to_not_be_null", column="id"),
    )
    assert not result.success
    assert materialized(result) == {STAGING_T}
    assert result.get_asset_check_evaluations() == []  # neither passed nor failed
    failures = result.get_step_failure_events()
    assert len(failures) == 1
    error = failures[0].step_failure_data.error
    assert error is not None
    assert "GXValidationError" in error.to_string()
    assert "no_such_column" in error.to_string()
    assert gx_rows(db) == [
        ("staging/t", "expect_column_values_to_not_be_null", "critical", False, True, None),
        ("staging/t", "expect_column_values_to_not_be_null", "critical", True, False, 0),
    ]


def test_data_change_callbacks_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from assets.common import fingerprint

    monkeypatch.setattr(fingerprint, "_data_changed", False)
    monkeypatch.setattr(fingerprint, "_on_data_change", [])
    calls: list[str] = []

    def early() -> None:
        calls.append("early")

    fingerprint.when_data_changes(early)
    fingerprint.when_data_changes(early)
    assert calls == []
    fingerprint.data_changed()
    fingerprint.data_changed()
    assert calls == ["early"]
    fingerprint.when_data_changes(lambda: calls.append("late"))  # after the change: at once
    assert calls == ["early", "late"]


def test_gx_is_imported_ahead_only_once_data_changes() -> None:
    """Fresh interpreter: loading the checks neither imports GX nor starts a thread; the first
    rebuild below raw imports it in the background, with no warning escaping the thread."""
    script = textwrap.dedent(
        """
        import sys, threading, warnings
        warnings.simplefilter("error")
        from assets.common import fingerprint
        from pipelines import quality
        quality.build_gx_asset_checks()
        quality.build_gx_asset_checks()  # loaded twice: still one warm-up
        assert "great_expectations" not in sys.modules, "imported before any change"
        assert quality._warm_up is None, "a thread started before any change"
        assert "gx-warm-up" not in [t.name for t in threading.enumerate()]
        fingerprint.data_changed()
        warm_up = quality._warm_up
        assert warm_up is not None
        fingerprint.data_changed()  # only the first change starts it
        quality.build_gx_asset_checks()
        assert quality._warm_up is warm_up
        assert quality._import_gx().__name__ == "great_expectations"  # waits for the thread
        assert not warm_up.is_alive()
        quality.ensure_gx_duckdb_patch()
        print("ok")
        """
    )
    assert run_fresh(script, timeout=180).strip().endswith("ok")


def test_gx_warm_up_imports_with_a_short_switch_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the warm-up thread imports GX, the interpreter switches threads every
    WARM_UP_SWITCH_INTERVAL (the steps beside it get the GIL back sooner); afterwards the
    interval is what it was, also when the import fails."""
    seen: list[float] = []

    def fake_import() -> None:
        seen.append(sys.getswitchinterval())
        raise ImportError("broken install")  # the check reports it; the thread swallows it

    before = sys.getswitchinterval()
    assert before > quality.WARM_UP_SWITCH_INTERVAL
    monkeypatch.setattr(quality, "_import_gx_modules", fake_import)
    monkeypatch.setattr(quality, "_warm_up", None)
    monkeypatch.delitem(sys.modules, "great_expectations", raising=False)
    quality._start_warm_up()
    thread = quality._warm_up
    assert thread is not None
    thread.join(timeout=30)
    assert seen == [quality.WARM_UP_SWITCH_INTERVAL]
    assert sys.getswitchinterval() == before


def test_gx_import_defers_scipy_stats_until_used() -> None:
    # 0.6 s of GX's import; a suite that uses scipy.stats must still get the real module
    code = (
        "import sys; from pipelines import quality; quality._import_gx(); "
        "print('scipy.stats._stats_py' in sys.modules); "
        "from great_expectations.expectations.core import "
        "expect_column_kl_divergence_to_be_less_than as kl; "
        "print(round(float(kl.stats.entropy([0.5, 0.5], base=2)), 3)); "
        "import scipy.stats; print(scipy.stats.norm.cdf(0.0))"
    )
    assert run_fresh(code).split() == ["False", "1.0", "0.5"]


@pytest.mark.parametrize(
    "values",
    [
        ["GBP", "EUR", "GBP", None, None, "USD", "EUR", "GBP"],  # duplicates, and NULLs ignored
        ["a", "b", None, "c"],  # all distinct
        [None, None],
    ],
)
def test_unique_translation_counts_like_gx(tmp_path: Path, values: list[str | None]) -> None:
    # `mostly` keeps GX's own implementation: the translated query must agree with it
    conn = duckdb.connect(str(tmp_path / "u.duckdb"))
    conn.execute("CREATE SCHEMA staging; CREATE TABLE staging.u (code VARCHAR)")
    conn.executemany("INSERT INTO staging.u VALUES (?)", [[v] for v in values])
    conn.close()
    suite = suite_of(
        exp("expect_column_values_to_be_unique", column="code"),
        exp("expect_column_values_to_be_unique", column="code", mostly=1.0),
        name="staging__u",
    )
    types = [e["type"] for e in translate_for_duckdb(suite, "staging", "u")["expectations"]]
    assert types == ["unexpected_rows_expectation", "expect_column_values_to_be_unique"]
    outcome = run_suite(str(tmp_path / "u.duckdb"), "staging", "u", suite)
    assert outcome.errors == []
    ours, gx = outcome.expectations
    held = [v for v in values if v is not None and values.count(v) > 1]
    assert (ours.success, ours.unexpected_count) == (not held, len(held))
    assert (ours.success, ours.unexpected_count) == (gx.success, gx.unexpected_count)
    assert sorted(ours.unexpected_sample) == sorted(gx.unexpected_sample) == sorted(held)
    assert ours.expectation == "expect_column_values_to_be_unique"  # named as written
    assert ours.translated_query is not None and "GROUP BY" in ours.translated_query


def test_the_ephemeral_context_is_not_serialised(
    grants_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GX wrote the ephemeral context's configuration as YAML on every add_* (~20 ms a suite,
    # a third of a small suite's time) into a store nothing reads back
    from great_expectations.data_context.types import base

    def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise AssertionError("the context's configuration was serialised")

    monkeypatch.setattr(base.BaseYamlConfig, "to_yaml_str", refuse)
    suite = suite_of(
        exp("expect_column_values_to_not_be_null", column="grant_id"),
        exp("expect_column_values_to_be_unique", column="grant_id"),
    )
    outcome = run_suite(grants_db, "staging", "t", suite)
    assert outcome.errors == [] and outcome.passed
