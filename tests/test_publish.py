"""The publish step writes every mart in its order and reuses unchanged exports."""

from pathlib import Path

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.tables import Column, TableSpec, create_table, sql_literal
from assets.marts.publish import MANIFEST_NAME, PUBLISHED_MARTS, export_dir_for, publish_marts

REPO_ROOT = Path(__file__).resolve().parent.parent


def _spec(name: str) -> TableSpec:
    return TableSpec(
        schema="marts",
        name=name,
        grain="one test row",
        description="A table for publish tests.",
        columns=(Column("id", "INTEGER", "Row id.", False), Column("label", "VARCHAR", "Text.")),
        order_by=("id",),
    )


STABLE, CHANGING = _spec("stable"), _spec("changing")
SPECS = [STABLE, CHANGING]


def _rebuild(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: int, fp: str) -> None:
    """What a mart asset does: rebuild the table in order, then store its fingerprint."""
    create_table(con, spec, replace=True)
    con.execute(f"INSERT INTO {spec.qualified} SELECT i, 'row ' || i FROM range({rows}) t(i)")
    fingerprint.remember(con, spec.qualified, fp, rows)


def _inodes(export: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in export.iterdir() if p.name != MANIFEST_NAME}


def _same_exports(con: duckdb.DuckDBPyConnection, a: Path, b: Path) -> None:
    """Both folders hold the same files with the same rows in the same order."""
    names = sorted(p.name for p in a.iterdir() if p.name != MANIFEST_NAME)
    assert names == sorted(p.name for p in b.iterdir() if p.name != MANIFEST_NAME)
    for name in names:
        if name.endswith(".csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
            continue
        rows = [
            con.execute(f"SELECT * FROM read_parquet({sql_literal(str(folder / name))})").fetchall()
            for folder in (a, b)
        ]
        assert rows[0] == rows[1], name


def test_unchanged_mart_export_is_reused_and_a_changed_one_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    _rebuild(con, STABLE, 5, "fp-stable")
    _rebuild(con, CHANGING, 3, "fp-1")
    publish_marts(con, target, SPECS, export_dir=export)
    first = _inodes(export)

    _rebuild(con, CHANGING, 4, "fp-2")
    counts = publish_marts(con, target, SPECS, export_dir=export)
    assert counts == {"stable": 5, "changing": 4}
    second = _inodes(export)
    # hard links to the files of the previous export: the same inodes
    assert second["stable.parquet"] == first["stable.parquet"]
    assert second["stable.csv"] == first["stable.csv"]
    assert second["changing.parquet"] != first["changing.parquet"]
    assert con.execute(f"SELECT count(*) FROM '{export / 'changing.parquet'}'").fetchall() == [(4,)]

    # the same as a publish from scratch
    fresh = tmp_path / "fresh" / "fundtrace.duckdb"
    publish_marts(con, fresh, SPECS, export_dir=export_dir_for(fresh))
    _same_exports(con, export, export_dir_for(fresh))
    con.close()
    assert sorted(p.name for p in target.parent.iterdir()) == ["export", "fundtrace.duckdb"]


@pytest.mark.parametrize(
    "tamper",
    ["no fingerprint", "rebuilt", "rows changed", "file changed", "no manifest"],
)
def test_export_is_rewritten_unless_the_build_is_the_one_exported(
    tmp_path: Path, tamper: str
) -> None:
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    _rebuild(con, STABLE, 5, "fp-stable")
    publish_marts(con, target, [STABLE], export_dir=export)
    parquet = export / "stable.parquet"
    before = parquet.stat().st_ino
    if tamper == "no fingerprint":
        fingerprint.forget(con, [STABLE.qualified])
    elif tamper == "rebuilt":  # same inputs, built again: its rows may be ordered otherwise
        _rebuild(con, STABLE, 5, "fp-stable")
    elif tamper == "rows changed":  # written behind the pipeline, fingerprint left as it was
        con.execute(f"INSERT INTO {STABLE.qualified} VALUES (99, 'late')")
    elif tamper == "file changed":
        parquet.write_bytes(b"not parquet")
    else:
        (export / MANIFEST_NAME).unlink()
    publish_marts(con, target, [STABLE], export_dir=export)
    assert parquet.stat().st_ino != before
    rows = 6 if tamper == "rows changed" else 5
    assert con.execute(f"SELECT count(*) FROM '{parquet}'").fetchall() == [(rows,)]
    con.close()


def test_published_tables_and_exports_are_in_order_whatever_the_build_order(
    tmp_path: Path,
) -> None:
    """A mart maintained key by key holds its rewritten rows at the end of the build table;
    the published copy and its exports are in `order_by` order all the same."""
    target = tmp_path / "out" / "fundtrace.duckdb"
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    for spec, rows in ((STABLE, 5), (CHANGING, 150_000)):  # the second gets no CSV
        create_table(con, spec, replace=True)
        con.execute(
            f"INSERT INTO {spec.qualified} SELECT i, 'row ' || i FROM range({rows}) t(i) "
            "ORDER BY (i * 7919) % 1000, i DESC"
        )
        fingerprint.remember(con, spec.qualified, f"fp-{spec.name}", rows)
    publish_marts(con, target, SPECS, export_dir=export_dir_for(target))
    con.execute(f"ATTACH {sql_literal(str(target))} AS pub (READ_ONLY)")
    for spec in SPECS:
        published = con.execute(f"SELECT id FROM pub.{spec.qualified} ORDER BY rowid").fetchall()
        assert published == sorted(published), spec.name
        parquet = sql_literal(str(export_dir_for(target) / f"{spec.name}.parquet"))
        assert con.execute(f"SELECT id FROM read_parquet({parquet})").fetchall() == published
    csv = (export_dir_for(target) / "stable.csv").read_text().splitlines()
    assert csv == ["id,label", *(f"{i},row {i}" for i in range(5))]
    con.close()


@pytest.mark.e2e
def test_published_marts_and_exports_are_in_order(demo_build: dict[str, Path]) -> None:
    con = duckdb.connect(str(demo_build["marts"]), read_only=True)
    for spec in PUBLISHED_MARTS:
        key = ", ".join(spec.order_by)
        # a row after its successor in `order_by` order: none
        late = con.execute(
            f"SELECT count(*) FROM (SELECT ({key}) AS k, lead(({key})) OVER (ORDER BY rowid) AS n "
            f"FROM {spec.qualified}) WHERE k > n"
        ).fetchall()
        assert late == [(0,)], spec.name
        parquet = sql_literal(str(demo_build["export"] / f"{spec.name}.parquet"))
        published = con.execute(f"SELECT * FROM {spec.qualified} ORDER BY rowid").fetchall()
        assert con.execute(f"SELECT * FROM read_parquet({parquet})").fetchall() == published
    con.close()
