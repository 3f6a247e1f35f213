"""Build settings and skipping of unchanged work below raw (no timing assertions)."""

from pathlib import Path

import pytest

from pipelines.resources import DEFAULT_DUCKDB_MEMORY_LIMIT, duckdb_config_from_env


def test_build_connections_have_a_memory_limit_and_spill_next_to_the_build_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_db = tmp_path / "out" / ".build" / "fundtrace.duckdb"
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(tmp_path / "out" / "fundtrace.duckdb"))
    monkeypatch.delenv("FUNDTRACE_BUILD_DB", raising=False)
    monkeypatch.delenv("FUNDTRACE_DUCKDB_MEMORY_LIMIT", raising=False)
    from pipelines.definitions import build_definitions

    resource = build_definitions().resources["duckdb"]
    config = dict(resource.connection_config)  # type: ignore[attr-defined]
    assert config["memory_limit"] == DEFAULT_DUCKDB_MEMORY_LIMIT == "1GB"
    assert Path(config["temp_directory"]) == build_db.with_name("fundtrace.duckdb.tmp")
    with resource.get_connection() as con:  # type: ignore[attr-defined]
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in {"953.6MiB", "1.0GB", "1GB"}

    monkeypatch.setenv("FUNDTRACE_DUCKDB_MEMORY_LIMIT", "3GB")
    assert duckdb_config_from_env(build_db)["memory_limit"] == "3GB"
