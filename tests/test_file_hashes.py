"""Raw files' SHA-256 reused while their stat is unchanged (assets/raw/file_hashes.py)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import duckdb
import pytest

from assets.common.tables import ensure_schemas
from assets.raw import file_hashes as fh
from assets.raw import private_funding
from assets.raw.ingest import ingest_folder

DEMO_PRIVATE = Path(__file__).resolve().parents[1] / "data" / "raw" / "private"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Later:
    """time.time_ns a minute ahead: every file already written counts as settled."""

    @staticmethod
    def time_ns() -> int:
        return time.time_ns() + 60 * 1_000_000_000


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    return con


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("a.csv", "x\n1\n"), ("b.csv", "x\n2\n"), ("c.csv", "x\n3\n")):
        (tmp_path / name).write_text(text)
        out[f"src/{name}"] = tmp_path / name
    return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many files each call of sha256_files read, in order."""
    counted: list[int] = []
    real = fh.sha256_files
    monkeypatch.setattr(fh, "sha256_files", lambda paths: counted.append(len(paths)) or real(paths))
    return counted


def _wait_for_clock_tick() -> None:
    # file times come from a coarse clock (a few ms); a write in the next tick gets a new ctime
    time.sleep(0.05)


def test_settled_files_are_not_read_again(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, Path],
    reads: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fh, "time", _Later)
    first = fh.file_hashes(con, "src", files)
    assert first.sha256 == {rel: _sha(p) for rel, p in files.items()}
    assert (first.read, first.reused) == (3, 0)

    second = fh.file_hashes(con, "src", files)
    assert second.sha256 == first.sha256
    assert (second.read, second.reused) == (0, 3) and reads == [3, 0]


def test_recently_written_files_are_read_every_time(
    con: duckdb.DuckDBPyConnection, files: dict[str, Path]
) -> None:
    # written just now: a write in the same clock tick as the stat would not show in it
    assert fh.file_hashes(con, "src", files).read == 3
    assert fh.file_hashes(con, "src", files).read == 3


def test_same_size_and_restored_mtime_is_still_read(
    con: duckdb.DuckDBPyConnection, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fh, "time", _Later)
    before = fh.file_hashes(con, "src", files).sha256
    path = files["src/b.csv"]
    st = path.stat()
    _wait_for_clock_tick()
    path.write_text("x\n9\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `tar` would leave it
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size

    after = fh.file_hashes(con, "src", files)
    assert after.read == 1 and after.sha256["src/b.csv"] == _sha(path)
    assert after.sha256["src/b.csv"] != before["src/b.csv"]
    assert {k: v for k, v in after.sha256.items() if k != "src/b.csv"} == {
        k: v for k, v in before.items() if k != "src/b.csv"
    }


def test_a_file_replaced_by_rename_is_read(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fh, "time", _Later)
    fh.file_hashes(con, "src", files)
    path = files["src/a.csv"]
    st = path.stat()
    new = tmp_path / "new.tmp"
    new.write_text("x\n7\n")
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    new.replace(path)  # another inode, same size and mtime

    after = fh.file_hashes(con, "src", files)
    assert after.read == 1 and after.sha256["src/a.csv"] == _sha(path)


def test_rehash_reads_everything_and_vanished_files_are_dropped(
    con: duckdb.DuckDBPyConnection, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fh, "time", _Later)
    fh.file_hashes(con, "src", files)
    fh.file_hashes(con, "other", {"other/a.csv": files["src/a.csv"]})
    assert fh.file_hashes(con, "src", files, rehash=True).read == 3

    del files["src/c.csv"]
    assert fh.file_hashes(con, "src", files).reused == 2
    kept = con.execute(
        f"SELECT source_system, source_file FROM {fh.RAW_FILE_HASHES.qualified} ORDER BY ALL"
    ).fetchall()
    assert kept == [("other", "other/a.csv"), ("src", "src/a.csv"), ("src", "src/b.csv")]


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("0", False), ("no", False), ("1", True), ("TRUE", True)]
)
def test_rehash_from_env(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(fh.REHASH_ENV, value)
    assert fh.rehash_from_env() is expected


def test_rehash_from_env_rejects_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fh.REHASH_ENV, "sometimes")
    with pytest.raises(ValueError, match="FUNDTRACE_REHASH_FILES must be 1 or 0"):
        fh.rehash_from_env()


def test_ingest_reads_an_unchanged_folder_without_hashing_it(
    tmp_path: Path, reads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    folder = raw / private_funding.FOLDER
    folder.mkdir(parents=True)
    lines = (DEMO_PRIVATE / "harbourton_private_funding.csv").read_text().splitlines(True)
    (folder / "one.csv").write_text("".join(lines))
    (folder / "two.csv").write_text("".join(lines))
    con = duckdb.connect()
    ensure_schemas(con)
    monkeypatch.setattr(fh, "time", _Later)

    def ingest() -> tuple[int, int, int]:
        report = ingest_folder(
            con,
            source_system=private_funding.SOURCE_SYSTEM,
            raw_dir=raw,
            folder=private_funding.FOLDER,
            suffixes=private_funding.SUFFIXES,
            raw_table=private_funding.RAW_PRIVATE,
            parser=private_funding.parse_file,
            parser_version=private_funding.PARSER_VERSION,
            log=lambda _m: None,
        )
        assert f"{report.files_read_to_check} read to check" in report.summary()
        return report.files_parsed, report.files_unchanged, report.files_read_to_check

    assert ingest() == (2, 0, 2)
    assert ingest() == (0, 2, 0)
    _wait_for_clock_tick()
    (folder / "two.csv").write_text("".join(lines[:-1]))  # one row fewer
    assert ingest() == (1, 1, 1)
    assert reads == [2, 0, 1]
    manifest = dict(
        con.execute("SELECT source_file, file_sha256 FROM raw.raw_file_manifest").fetchall()
    )
    assert manifest == {
        "private/one.csv": _sha(folder / "one.csv"),
        "private/two.csv": _sha(folder / "two.csv"),
    }
    rows = con.execute(
        f"SELECT source_file, count(*) FROM {private_funding.RAW_PRIVATE.qualified} GROUP BY 1"
    ).fetchall()
    assert dict(rows)["private/two.csv"] == dict(rows)["private/one.csv"] - 1
