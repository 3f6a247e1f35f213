"""A suite that says so (`meta.sample`) validates its row-wise expectations on a seeded Bernoulli
sample; everything else, and every suite that says nothing, sees the whole table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from pipelines import quality
from pipelines.quality import SamplePlan, load_suite, run_suite, write_gx_results

# 20,000 rows; every 100th has no name, every 50th a negative amount, ids are unique
ROWS = 20_000
TABLE = f"""
CREATE SCHEMA staging;
CREATE TABLE staging.t AS
SELECT i AS id,
       CASE WHEN i % 100 = 0 THEN NULL ELSE 'org ' || i END AS name,
       CASE WHEN i % 50 = 0 THEN -1 ELSE i END AS amount
FROM range({ROWS}) r(i);
"""
PLAN = {"percent": 10, "seed": 7}


def _exp(exp_type: str, meta: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": exp_type, "kwargs": kwargs}
    if meta is not None:
        out["meta"] = meta
    return out


def _suite(*expectations: dict[str, Any], sample: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"description": "test"}
    if sample is not None:
        meta["sample"] = sample
    return {"name": "staging__t", "expectations": list(expectations), "meta": meta}


NOT_NULL = _exp("expect_column_values_to_not_be_null", column="name")
UNIQUE = _exp("expect_column_values_to_be_unique", column="id")
ROW_COUNT = _exp("expect_table_row_count_to_be_between", min_value=ROWS, max_value=ROWS)
NEGATIVE = "SELECT * FROM {batch} WHERE amount < 0"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path_factory.mktemp("sample") / "build.duckdb"))
    con.execute(TABLE)
    yield con
    con.close()


def _sample_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    sql = SamplePlan(percent=10, seed=7).select_sql("staging", "t")
    got = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE name IS NULL), "
        f"count(*) FILTER (WHERE amount < 0) FROM ({sql})"
    ).fetchone()
    assert got is not None
    return got


def test_without_meta_sample_every_expectation_sees_the_whole_table(db) -> None:
    outcome = run_suite(db, "staging", "t", _suite(NOT_NULL, UNIQUE, ROW_COUNT))
    assert outcome.errors == []
    nulls, unique, count = outcome.expectations
    assert nulls.unexpected_count == ROWS // 100 and not nulls.success
    assert unique.success and count.success
    assert [e.sample for e in outcome.expectations] == [None, None, None]
    assert nulls.message == f"{ROWS // 100} unexpected (1%)"


def test_row_wise_expectations_run_on_the_sample_and_say_so(db) -> None:
    rows, nulls_in_sample, negative_in_sample = _sample_counts(db)
    assert 0.08 * ROWS < rows < 0.12 * ROWS and 0 < nulls_in_sample < ROWS // 100
    suite = _suite(
        NOT_NULL,
        UNIQUE,
        ROW_COUNT,
        _exp("unexpected_rows_expectation", {"sample": True}, unexpected_rows_query=NEGATIVE),
        _exp("unexpected_rows_expectation", unexpected_rows_query=NEGATIVE),
        _exp("expect_column_values_to_not_be_null", {"sample": False}, column="name"),
        sample=PLAN,
    )
    outcome = run_suite(db, "staging", "t", suite)
    assert outcome.errors == []
    nulls, unique, count, rows_sampled, rows_whole, nulls_whole = outcome.expectations
    label = "10% Bernoulli sample, seed 7"
    # the sample: the same rows DuckDB's USING SAMPLE gives, for every expectation on it
    assert nulls.sample == label and nulls.unexpected_count == nulls_in_sample
    assert nulls.unexpected_percent == pytest.approx(100 * nulls_in_sample / rows)
    assert nulls.message is not None and nulls.message.endswith(f"in a {label}")
    assert rows_sampled.sample == label and rows_sampled.unexpected_count == negative_in_sample
    # whole table: uniqueness and row counts always, custom SQL unless it opts in, opt-outs
    assert (unique.sample, count.sample, rows_whole.sample, nulls_whole.sample) == (None,) * 4
    assert count.success and unique.success
    assert rows_whole.unexpected_count == ROWS // 50
    assert nulls_whole.unexpected_count == ROWS // 100


def test_the_same_seed_gives_the_same_result_and_another_seed_another(db) -> None:
    def nulls(seed: int) -> int | None:
        outcome = run_suite(
            db, "staging", "t", _suite(NOT_NULL, sample={"percent": 10, "seed": seed})
        )
        assert outcome.errors == []
        return outcome.expectations[0].unexpected_count

    first = nulls(7)
    assert first == nulls(7) == _sample_counts(db)[1]
    assert {nulls(s) for s in (1, 2, 3)} != {first}


def test_results_table_records_the_sample_and_gains_the_column(tmp_path: Path, db) -> None:
    con = duckdb.connect(str(tmp_path / "q.duckdb"))
    # a results table written before the column existed
    con.execute("CREATE SCHEMA quality")
    old = [c for c in quality._RESULTS_COLUMNS if c != "sample"]
    con.execute(
        "CREATE TABLE quality.gx_results ("
        + ", ".join(f"{c} {quality._RESULTS_COLUMNS[c][0]}" for c in old)
        + ")"
    )
    outcome = run_suite(db, "staging", "t", _suite(NOT_NULL, UNIQUE, sample=PLAN))
    write_gx_results(con, outcome)
    got = con.execute(
        "SELECT expectation, sample FROM quality.gx_results ORDER BY expectation"
    ).fetchall()
    assert got == [
        ("expect_column_values_to_be_unique", None),
        ("expect_column_values_to_not_be_null", "10% Bernoulli sample, seed 7"),
    ]
    con.close()


@pytest.mark.parametrize(
    ("sample", "expectations", "needle"),
    [
        ({"percent": 0}, [NOT_NULL], "percent must be a number above 0 and below 100"),
        ({"percent": 100}, [NOT_NULL], "percent must be a number above 0 and below 100"),
        ({"percent": "10"}, [NOT_NULL], "percent must be"),
        ({"percent": 5, "seed": -1}, [NOT_NULL], "seed must be a whole number"),
        ({"percent": 5, "method": "system"}, [NOT_NULL], "unknown key(s) method"),
        (10, [NOT_NULL], "meta.sample must be an object"),
        ({"percent": 5}, [{**UNIQUE, "meta": {"sample": True}}], "cannot be evaluated on a sample"),
        (None, [{**NOT_NULL, "meta": {"sample": True}}], "the suite has no meta.sample"),
        ({"percent": 5}, [{**NOT_NULL, "meta": {"sample": "yes"}}], "must be true or false"),
    ],
)
def test_a_wrong_sample_setting_fails_loading_naming_the_file(
    tmp_path: Path, db, sample: Any, expectations: list[dict[str, Any]], needle: str
) -> None:
    suite = _suite(*expectations, sample=sample)
    path = tmp_path / "staging__t.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"staging__t\.json") as raised:
        load_suite(path)
    assert needle in str(raised.value)
    # run directly (not loaded from a file), the suite is an error of the check, not a pass
    outcome = run_suite(db, "staging", "t", suite)
    assert outcome.errors and not outcome.passed
    assert needle in (outcome.errors[0].exception_message or "")


def test_shipped_suites_validate_whole_tables() -> None:
    # sampling is each suite's explicit choice; none of ours makes it (docs/scaling.md)
    for path in quality.suite_files():
        suite = load_suite(path)
        assert quality.sample_plan(suite) is None, path.name
        assert quality.sampled_expectations(suite) == set(), path.name


def test_the_example_suite_of_the_expectations_readme_loads_and_runs(
    tmp_path: Path, db: duckdb.DuckDBPyConnection
) -> None:
    text = (quality.EXPECTATIONS_DIR / "README.md").read_text(encoding="utf-8")
    example = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    path = tmp_path / f"{example['name']}.json"
    path.write_text(json.dumps(example))
    suite = load_suite(path)
    assert quality.sampled_expectations(suite) == {0, 2}
    assert quality.suite_dependencies(suite, quality.asset_key_for_suite(path)) == [
        dg.AssetKey(["marts", "organisations"])
    ]
    # run on this module's table: the example's columns are id and amount
    outcome = run_suite(db, "staging", "t", suite)
    assert outcome.errors == []
    assert [e.sample is not None for e in outcome.expectations] == [True, False, True]
