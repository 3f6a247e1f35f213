"""Macro scripts installed once per database (assets/common/macros.py)."""

from pathlib import Path

import duckdb
import pytest

from assets.common.macros import install_macro_script

V1 = "CREATE OR REPLACE TEMP MACRO ft_test_step(x) AS x + 1;"
V2 = "CREATE OR REPLACE TEMP MACRO ft_test_step(x) AS x + 2;"


def _step(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT ft_test_step(1)").fetchall()[0][0]


def _persistent(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bool]]:
    return con.execute(
        "SELECT database_name, internal FROM duckdb_functions() "
        "WHERE function_name = 'ft_test_step' AND database_name = current_database()"
    ).fetchall()


def test_a_later_connection_finds_the_macros_in_the_database(tmp_path: Path) -> None:
    db = duckdb.connect(str(tmp_path / "build.duckdb"))
    first = db.cursor()
    install_macro_script(first, "tests.step", V1)
    assert _step(first) == 2
    # a connection that installs nothing sees them: they are the database's, not a temp's
    assert _step(db.cursor()) == 2
    assert _persistent(db) == [("build", False)]
    db.close()
    # and so does the next process
    again = duckdb.connect(str(tmp_path / "build.duckdb"))
    assert _step(again) == 2


def test_another_version_of_the_script_replaces_them_and_back(tmp_path: Path) -> None:
    db = duckdb.connect(str(tmp_path / "build.duckdb"))
    install_macro_script(db.cursor(), "tests.step", V1)
    install_macro_script(db.cursor(), "tests.step", V2)
    assert _step(db.cursor()) == 3
    # the marker holds the installed script's digest, not a list of digests seen
    install_macro_script(db.cursor(), "tests.step", V1)
    assert _step(db.cursor()) == 2


def test_read_only_database_and_an_older_transaction_get_temporary_macros(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "build.duckdb")
    duckdb.connect(path).close()
    read_only = duckdb.connect(path, read_only=True)
    install_macro_script(read_only, "tests.step", V1)
    assert _step(read_only) == 2
    read_only.close()

    db = duckdb.connect(path)
    con = db.cursor()
    con.execute("BEGIN")
    con.execute("SELECT 1")  # its snapshot predates the install
    install_macro_script(con, "tests.step", V1)
    assert _step(con) == 2
    con.execute("COMMIT")
    assert _step(db.cursor()) == 2  # installed in the database all the same


def test_only_macro_scripts_are_taken() -> None:
    with pytest.raises(ValueError, match="only CREATE OR REPLACE TEMP MACRO"):
        install_macro_script(
            duckdb.connect(), "tests.table", V1 + " CREATE TEMP TABLE t AS SELECT 1;"
        )
