"""Parquet/CSV exports written by the publish step next to the marts file."""

import subprocess
from pathlib import Path

import duckdb
import pytest

from assets.common.tables import Column, TableSpec, create_table
from assets.marts import publish
from assets.marts.publish import (
    CSV_MAX_ROWS,
    MANIFEST_NAME,
    PUBLISHED_MARTS,
    export_dir_for,
    publish_marts,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

TINY = TableSpec(
    schema="marts",
    name="tiny",
    grain="one test row",
    description="A table for export tests.",
    columns=(Column("id", "INTEGER", "Row id.", False), Column("tags", "VARCHAR[]", "Tags.")),
    order_by=("id",),
)


def _build(path: Path, rows: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    create_table(con, TINY, replace=True)
    con.execute(f"INSERT INTO {TINY.qualified} SELECT i, ['a', 'b'] FROM range({rows}) t(i)")
    return con


@pytest.mark.e2e
def test_every_mart_is_exported_with_its_rows(demo_build: dict[str, Path]) -> None:
    export = demo_build["export"]
    assert export == export_dir_for(demo_build["marts"])
    con = duckdb.connect(str(demo_build["marts"]), read_only=True)
    for spec in PUBLISHED_MARTS:
        rows = con.execute(f"SELECT count(*) FROM {spec.qualified}").fetchall()[0][0]
        parquet = export / f"{spec.name}.parquet"
        assert parquet.is_file(), f"{parquet.name} missing"
        got = con.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchall()[0][0]
        assert got == rows, spec.name
        columns = [d[0] for d in con.execute(f"SELECT * FROM '{parquet}' LIMIT 0").description]
        assert columns == spec.column_names
        # same rows in the same order as the published table
        same = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM {spec.qualified} EXCEPT ALL "
            f"SELECT * FROM read_parquet('{parquet}'))"
        ).fetchall()[0][0]
        assert same == 0, spec.name
        csv = export / f"{spec.name}.csv"
        assert rows <= CSV_MAX_ROWS and csv.is_file(), f"{csv.name} missing for a small mart"
        got = con.execute(f"SELECT count(*) FROM read_csv('{csv}', header = true)").fetchall()
        assert got[0][0] == rows, spec.name
    con.close()
    assert not [p.name for p in export.parent.iterdir() if p.name.startswith(".export")]


def test_data_marts_is_git_ignored() -> None:
    for path in ("data/marts/export/money_flows.parquet", "data/marts/fundtrace.duckdb"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False
        ).returncode
        assert ignored == 0, f"{path} is not git-ignored"


def test_csv_only_up_to_the_row_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publish, "CSV_MAX_ROWS", 3)
    target = tmp_path / "out" / "fundtrace.duckdb"
    for rows, csv_expected in ((3, True), (4, False)):
        con = _build(tmp_path / f"build{rows}.duckdb", rows)
        publish_marts(con, target, [TINY], export_dir=export_dir_for(target))
        con.close()
        files = sorted(p.name for p in export_dir_for(target).iterdir())
        expected = ["tiny.csv", "tiny.parquet"] if csv_expected else ["tiny.parquet"]
        assert files == [MANIFEST_NAME, *expected]


def test_failed_publish_keeps_the_previous_export(tmp_path: Path) -> None:
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    con = _build(tmp_path / "build.duckdb", 5)
    publish_marts(con, target, [TINY], export_dir=export)
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    con.execute(f"DROP TABLE {TINY.qualified}")  # the next publish cannot read its source
    with pytest.raises(duckdb.Error):
        publish_marts(con, target, [TINY], export_dir=export)
    con.close()
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["export", "fundtrace.duckdb"]


def test_a_mart_that_changes_while_it_is_published_fails_the_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exports (a thread of their own) and the copy read the build table separately: a
    copy whose row count is not the one the exports were cut from is refused."""
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    con = _build(tmp_path / "build.duckdb", 5)
    publish_marts(con, target, [TINY], export_dir=export)
    before = {p.name: p.read_bytes() for p in export.iterdir()}, target.read_bytes()
    monkeypatch.setattr(publish, "scalar_int", lambda *_: 6)  # as if a row came in between
    with pytest.raises(RuntimeError, match="changed while it was published: 5 rows copied, 6"):
        publish_marts(con, target, [TINY], export_dir=export)
    con.close()
    assert ({p.name: p.read_bytes() for p in export.iterdir()}, target.read_bytes()) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["export", "fundtrace.duckdb"]


def test_republish_replaces_the_export(tmp_path: Path) -> None:
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    for rows in (2, 7):
        con = _build(tmp_path / f"build{rows}.duckdb", rows)
        publish_marts(con, target, [TINY], export_dir=export)
        con.close()
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{export / 'tiny.parquet'}'").fetchall() == [(7,)]
    assert sorted(p.name for p in target.parent.iterdir()) == ["export", "fundtrace.duckdb"]
