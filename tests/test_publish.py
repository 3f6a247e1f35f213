"""The publish step keeps the build order without sorting and reuses unchanged exports."""

import os
import re
from pathlib import Path

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.tables import ROW_GROUP_SIZE, Column, TableSpec, create_table, sql_literal
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


# kept key by key or slice by slice (rows rewritten by a later run follow the others), see
# publish's module doc
REFRESHED = {
    "organisations": "refresh_by_feeds",
    "funding_streams": "refresh_by_feeds",
    "money_flows": "refresh_by_feeds",
    "procurement_contracts": "refresh_table",
    "project_control": "refresh_table",
    "ultimate_controllers": "refresh_table",
    "red_flags": "refresh_slices",
}


def test_publish_does_not_sort_so_every_mart_is_built_in_order_or_refreshed() -> None:
    """The published copy keeps the build table's row order; that order is `order_by` because
    every published mart is written by `rebuild_table` and by nothing else, except the marts
    kept by `refresh_table`, `refresh_by_feeds` or `refresh_slices` (REFRESHED)."""
    sources = {
        path: path.read_text() for path in (REPO_ROOT / "assets").rglob("*.py") if path.is_file()
    }
    for spec in PUBLISHED_MARTS:
        names = [
            name
            for path, text in sources.items()
            if path.parent.name == "marts"
            for name in re.findall(
                rf"^(\w+) = TableSpec\(\s*schema=\"marts\",\s*name=\"{spec.name}\"", text, re.M
            )
        ]
        assert len(names) == 1, spec.name
        constant = names[0]
        builder = REFRESHED.get(spec.name, "rebuild_table")
        call = f"{builder}(con, {constant},"
        builders = [p for p, t in sources.items() if call in t]
        assert len(builders) == 1, f"{spec.name} is not built by {builder}"
        writes = re.compile(
            rf"(INSERT INTO|UPDATE|DELETE FROM|ALTER TABLE|CREATE (OR REPLACE )?TABLE)\s+"
            rf"(\{{{constant}\.qualified\}}|marts\.{spec.name}\b)"
        )
        for path, text in sources.items():
            assert not writes.search(text), f"{path} writes {spec.qualified} itself"


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


def test_a_mart_rebuilt_with_its_rows_kept_keeps_its_export(tmp_path: Path) -> None:
    """A rebuild that wrote no row keeps the table's version (fingerprint.VERSION_SUFFIX):
    its export is the one written before, however often the build entry changed."""
    target = tmp_path / "out" / "fundtrace.duckdb"
    export = export_dir_for(target)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    _rebuild(con, STABLE, 5, "fp-stable")
    _rebuild(con, CHANGING, 3, "fp-1")
    version = CHANGING.qualified + fingerprint.VERSION_SUFFIX
    fingerprint.remember(con, version, "fp-1", None)
    publish_marts(con, target, SPECS, export_dir=export)
    first = _inodes(export)

    fingerprint.remember(con, CHANGING.qualified, "fp-2", 3)  # rebuilt, rows kept
    publish_marts(con, target, SPECS, export_dir=export)
    assert _inodes(export)["changing.parquet"] == first["changing.parquet"]

    fingerprint.remember(con, version, "fp-3", None)  # rows written again
    publish_marts(con, target, SPECS, export_dir=export)
    assert _inodes(export)["changing.parquet"] != first["changing.parquet"]
    con.close()


# --------------------------------------------------------------------------- by difference

KEYED = TableSpec(
    schema="marts",
    name="keyed",
    grain="one test row per id",
    description="A mart refreshed key by key.",
    columns=(Column("id", "VARCHAR", "Key.", False), Column("amount", "INTEGER", "A value.")),
    order_by=("id",),
)
BY_DIFFERENCE = [KEYED, STABLE]


def _keyed_rows(changed: dict[int, int], dropped: range = range(0), extra: int = 0) -> str:
    """SELECT of 100 keyed rows (amount = i), some amounts changed, some keys dropped,
    `extra` keys added."""
    cases = " ".join(f"WHEN {i} THEN {v}" for i, v in changed.items()) or "WHEN -1 THEN -1"
    return (
        f"SELECT 'k' || lpad(i::VARCHAR, 4, '0') AS id, CASE i {cases} ELSE i END AS amount "
        f"FROM range({100 + extra}) t(i) WHERE i NOT IN (SELECT unnest({list(dropped)}::INT[]))"
    )


def _published(path: Path, spec: TableSpec) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {spec.qualified}").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize(
    "history",
    ["refreshed", "refreshed twice", "rebuilt after a refresh", "file touched", "log lost"],
)
def test_publish_by_difference_writes_what_a_whole_copy_writes(
    tmp_path: Path, history: str
) -> None:
    """A publish that starts from the previous published file rewrites only the keys a
    refresh changed, and only when that file and the log of writes allow it; the file then
    holds exactly the build tables' rows, comments included."""
    from assets.common.tables import MART_WRITES, rebuild_table, refresh_table
    from assets.marts.publish import publish_marts_by_difference

    target = tmp_path / "out" / "fundtrace.duckdb"
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    con.execute("CREATE SCHEMA marts")
    rebuild_table(con, KEYED, _keyed_rows({}))
    rebuild_table(con, STABLE, "SELECT i AS id, 'row ' || i AS label FROM range(7) t(i)")
    _, how = publish_marts_by_difference(con, target, BY_DIFFERENCE)
    assert how == {"keyed": "whole", "stable": "whole"}

    refresh_table(con, KEYED, _keyed_rows({3: 30, 50: 500}, range(10, 12), extra=2), "id")
    expected = {"keyed": "6 keys", "stable": "kept"}  # 2 changed, 2 dropped, 2 added
    if history == "refreshed twice":
        refresh_table(con, KEYED, _keyed_rows({3: 31, 60: 600}, range(10, 12), extra=2), "id")
        expected = {"keyed": "7 keys", "stable": "kept"}  # and 60 changed
    elif history == "rebuilt after a refresh":
        rebuild_table(con, KEYED, _keyed_rows({7: 70}))
        expected = {"keyed": "whole", "stable": "kept"}
    elif history == "file touched":  # written by someone else since it was published
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        expected = {"keyed": "whole", "stable": "whole"}
    elif history == "log lost":
        con.execute(f"DROP TABLE {MART_WRITES.qualified}")
        expected = {"keyed": "whole", "stable": "whole"}
    con.execute(f"COMMENT ON TABLE {STABLE.qualified} IS 'a newer description'")
    counts, how = publish_marts_by_difference(con, target, BY_DIFFERENCE)
    assert how == expected
    fresh = tmp_path / "fresh" / "fundtrace.duckdb"
    publish_marts_by_difference(con, fresh, BY_DIFFERENCE)
    for spec in BY_DIFFERENCE:
        build = sorted(con.execute(f"SELECT * FROM {spec.qualified}").fetchall())
        assert _published(target, spec) == build == _published(fresh, spec), spec.name
        assert counts[spec.name] == len(build)
    con.close()
    check = duckdb.connect(str(target), read_only=True)
    comments = check.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts'"
    ).fetchall()
    check.close()
    assert dict(comments)["stable"] == STABLE.doc  # the spec's comments, not the build's edit
    assert sorted(p.name for p in target.parent.iterdir()) == ["fundtrace.duckdb"]


def test_a_published_file_that_lost_rows_is_copied_whole(tmp_path: Path) -> None:
    """A kept mart is checked: a published file whose table does not hold the build's rows
    (here: rows deleted behind the pipeline, state record rewritten to match) is not patched
    but copied again."""
    from assets.common.tables import rebuild_table
    from assets.marts.publish import PUBLISHED_VERSIONS, publish_marts_by_difference

    target = tmp_path / "out" / "fundtrace.duckdb"
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    con.execute("CREATE SCHEMA marts")
    rebuild_table(con, KEYED, _keyed_rows({}))
    rebuild_table(con, STABLE, "SELECT i AS id, 'row ' || i AS label FROM range(7) t(i)")
    publish_marts_by_difference(con, target, BY_DIFFERENCE)
    other = duckdb.connect(str(target))
    other.execute(f"DELETE FROM {STABLE.qualified} WHERE id < 3")
    other.close()
    con.execute(
        f"UPDATE {PUBLISHED_VERSIONS.qualified} SET file_state = ?",
        [fingerprint.file_state(target)],
    )
    _, how = publish_marts_by_difference(con, target, BY_DIFFERENCE)
    assert how == {"keyed": "whole", "stable": "whole"}
    assert len(_published(target, STABLE)) == 7
    con.close()


def test_published_file_is_written_in_row_groups_of_the_build_size(tmp_path: Path) -> None:
    """The published file is attached with ROW_GROUP_SIZE like the build database: a mart of
    a few of them spans as many row groups (one at DuckDB's default of 122,880 rows)."""
    target = tmp_path / "out" / "fundtrace.duckdb"
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    rows = 3 * ROW_GROUP_SIZE + 5
    _rebuild(con, STABLE, rows, "fp-big")
    _rebuild(con, CHANGING, 3, "fp-1")
    publish_marts(con, target, SPECS)
    con.close()
    with duckdb.connect(str(target), read_only=True) as published:
        groups = published.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('marts.stable')"
        ).fetchall()
        assert groups == [(4,)]
        assert published.execute("SELECT count(*), max(id) FROM marts.stable").fetchall() == [
            (rows, rows - 1)
        ]
