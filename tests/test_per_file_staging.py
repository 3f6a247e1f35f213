"""Per-file staging (assets/staging/per_file.py): only changed raw files are re-derived, and the
result always equals a from-scratch build of the same input."""

from pathlib import Path

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from assets.staging.per_file import FILE_STATE, refresh_file_cache
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_360giving_grants import (
    GRANT_ROWS,
    STG_GRANTS,
    build_stg_360giving_grants,
)
from tests.test_360giving_parsing import STAGING_HEADER, ingest, write_csv

RAW = "raw.toy"
CACHE = "staging.toy_rows"
CONTEXT = "raw.toy_suffix"


def _toy_rows(source: str) -> str:
    # per-row work that reads a context table, so a context change must redo every file
    return (
        f"SELECT r.source_file, r.source_row, upper(r.name) || s.suffix AS derived "
        f"FROM {source} r CROSS JOIN {CONTEXT} s"
    )


def _toy_con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    con.execute(
        f"CREATE TABLE {RAW} (name VARCHAR, source_file VARCHAR, source_row BIGINT, "
        "file_sha256 VARCHAR, loaded_at TIMESTAMP)"
    )
    con.execute(f"CREATE TABLE {CONTEXT} AS SELECT '!' AS suffix")
    for f in ("a.csv", "b.csv"):
        _load(con, f, ["x", "y"], sha=f"sha-{f}")
    return con


def _load(con: duckdb.DuckDBPyConnection, file: str, names: list[str], sha: str) -> None:
    """What raw ingest does for a new or changed file: replace its rows."""
    con.execute(f"DELETE FROM {RAW} WHERE source_file = ?", [file])
    for i, n in enumerate(names, 1):
        con.execute(f"INSERT INTO {RAW} VALUES (?, ?, ?, ?, now())", [n, file, i, sha])


def _refresh(con: duckdb.DuckDBPyConnection):
    return refresh_file_cache(
        con, cache=CACHE, raw=RAW, rows_sql=_toy_rows, context_inputs=(CONTEXT,)
    )


def _cached(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(f"SELECT * FROM {CACHE} ORDER BY ALL").fetchall()


def _expected(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(f"SELECT * FROM ({_toy_rows(RAW)}) ORDER BY ALL").fetchall()


def test_only_new_changed_and_removed_files_are_touched() -> None:
    con = _toy_con()
    first = _refresh(con)
    assert first.full and first.derived == ["a.csv", "b.csv"]
    assert _cached(con) == _expected(con)

    again = _refresh(con)
    assert (again.full, again.derived, again.removed, again.kept) == (False, [], [], 2)

    _load(con, "c.csv", ["z"], sha="sha-c")  # new
    _load(con, "a.csv", ["x2"], sha="sha-a2")  # changed
    con.execute(f"DELETE FROM {RAW} WHERE source_file = 'b.csv'")  # removed
    step = _refresh(con)
    assert (step.derived, step.removed, step.kept) == (["a.csv", "c.csv"], ["b.csv"], 0)
    assert _cached(con) == _expected(con)
    assert [r[2] for r in _cached(con)] == ["X2!", "Z!"]


def test_rows_lost_from_the_cache_behind_the_pipeline_are_derived_again() -> None:
    con = _toy_con()
    _refresh(con)
    con.execute(f"DELETE FROM {CACHE} WHERE source_file = 'b.csv' AND source_row = 2")
    step = _refresh(con)
    assert step.derived == ["b.csv"] and step.kept == 1
    assert _cached(con) == _expected(con)


def test_a_changed_context_table_or_new_code_redoes_every_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = _toy_con()
    _refresh(con)
    con.execute(f"UPDATE {CONTEXT} SET suffix = '?'")
    step = _refresh(con)
    assert step.full
    assert _cached(con) == _expected(con)
    assert {r[2][-1] for r in _cached(con)} == {"?"}

    monkeypatch.setattr(fingerprint, "code_version", lambda: "other code")
    assert _refresh(con).full


def test_a_failed_refresh_keeps_the_cache_and_its_state() -> None:
    con = _toy_con()
    _refresh(con)
    before = _cached(con)
    state = con.execute(f"SELECT * FROM {FILE_STATE} ORDER BY ALL").fetchall()
    _load(con, "c.csv", ["z"], sha="sha-c")
    with pytest.raises(duckdb.Error):
        refresh_file_cache(
            con,
            cache=CACHE,
            raw=RAW,
            rows_sql=lambda s: f"SELECT no_such_column FROM {s}",
            context_inputs=(CONTEXT,),
        )
    assert _cached(con) == before
    assert con.execute(f"SELECT * FROM {FILE_STATE} ORDER BY ALL").fetchall() == state
    assert _refresh(con).derived == ["c.csv"]
    assert _cached(con) == _expected(con)


# --------------------------------------------------------------------------- 360Giving


def _references(con: duckdb.DuckDBPyConnection) -> None:
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)


def _grant(gid: str, title: str, amount: str = "100", currency: str = "GBP") -> list[str]:
    return [gid, title, currency, amount, "2024-05-17", "GB-COH-01234567", "Tidewater Digital Ltd",
            "GB-LAE-HBT", "Harbourton", ""]  # fmt: skip


def _staged(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple], list[tuple]]:
    grants = con.execute(f"SELECT * EXCLUDE (loaded_at) FROM {STG_GRANTS.qualified}").fetchall()
    quarantine = con.execute(
        f"SELECT source_file, source_row, record_id, reason FROM {STG_QUARANTINE.qualified} "
        "WHERE source_system = '360giving' ORDER BY ALL"
    ).fetchall()
    return grants, quarantine


def test_a_new_360giving_file_is_staged_alone_and_matches_a_full_build(
    tmp_path: Path,
) -> None:
    raw_dir = tmp_path / "raw"
    (raw_dir / "360giving").mkdir(parents=True)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(con)
    _references(con)
    write_csv(
        raw_dir / "360giving/b.csv",
        STAGING_HEADER,
        [_grant("G-1", "B one"), _grant("G-2", "B two")],
    )
    write_csv(raw_dir / "360giving/c.csv", STAGING_HEADER, [_grant("G-3", "C three", "tbc")])
    ingest(con, raw_dir)
    assert build_stg_360giving_grants(con)[:2] == (2, 1)

    # a new file that sorts first: its copy of G-1 now wins, b.csv's becomes the duplicate
    write_csv(raw_dir / "360giving/a.csv", STAGING_HEADER, [_grant("G-1", "A one"), _grant("G-4", "A four", "5", "XXX")])  # fmt: skip
    ingest(con, raw_dir)
    staged, quarantined, refresh = build_stg_360giving_grants(con)
    assert (refresh.full, refresh.derived, refresh.kept) == (False, ["360giving/a.csv"], 2)
    assert (staged, quarantined) == (2, 3)
    titles = dict(con.execute(f"SELECT grant_id, title FROM {STG_GRANTS.qualified}").fetchall())
    assert titles == {"G-1": "A one", "G-2": "B two"}
    reasons = {r[0]: r[3] for r in _staged(con)[1]}
    assert "duplicate Identifier G-1" in reasons["360giving/b.csv"]
    assert "360giving/a.csv" in reasons["360giving/b.csv"]
    incremental = _staged(con)

    con.execute(f"DROP TABLE {GRANT_ROWS}")  # from scratch: same rows, same quarantine
    assert build_stg_360giving_grants(con)[2].full
    assert sorted(_staged(con)[0]) == sorted(incremental[0])
    assert _staged(con)[1] == incremental[1]
    con.close()
