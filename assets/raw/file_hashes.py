"""SHA-256 of the raw files, reused while a file's stat is unchanged.

Every raw step compares each file's SHA-256 with the manifest's to find what changed. Hashing
reads every byte: 780 MB at benchmark scale 1 (0.24 s on two cores from the page cache, and a
read of every file from disk when the cache is cold), on every run, for files that rarely
change. So a file's hash is kept with its stat, and reused while size, mtime, ctime, inode and
device are all unchanged: how git's index and rsync decide that a file is unchanged.

- ctime cannot be set by a program (copying with `cp -p`, `rsync -t` or `tar` restores mtime,
  not ctime), and any write or rename moves it.
- A hash is trusted only for a file whose mtime and ctime were at least `RACY_SECONDS` older
  than the moment it was hashed (git's "racy" entries): a write in the same clock tick as the
  stat would leave both unchanged, and a file written that recently is hashed again next run.
- `FUNDTRACE_REHASH_FILES=1` hashes every file on every run (a filesystem whose ctime cannot be
  trusted, e.g. a network share with a skewed clock).

The cache is an accelerator only: losing `raw.raw_file_hashes` costs one run of hashing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from assets.common.files import sha256_files
from assets.common.tables import Column, TableSpec, create_table, transaction

RACY_SECONDS = 2
REHASH_ENV = "FUNDTRACE_REHASH_FILES"

RAW_FILE_HASHES = TableSpec(
    schema="raw",
    name="raw_file_hashes",
    grain="one file under FUNDTRACE_RAW_DIR of one source system, as last hashed",
    description="Each raw file's SHA-256 with the stat it was read at; a file whose stat is "
    "unchanged is not read again to find that it is unchanged (assets/raw/file_hashes.py).",
    columns=(
        Column("source_system", "VARCHAR", "Source system (raw folder).", False),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of the file content.", False),
        Column("file_bytes", "BIGINT", "Size in bytes when hashed.", False),
        Column("mtime_ns", "BIGINT", "Modification time (ns since the epoch) when hashed.", False),
        Column("ctime_ns", "BIGINT", "Status change time (ns since the epoch) when hashed.", False),
        Column("inode", "BIGINT", "Inode number when hashed.", False),
        Column("device", "BIGINT", "Device number when hashed.", False),
        Column("hashed_at_ns", "BIGINT", "When hashing began (ns since the epoch), before the stat.", False),
    ),
    order_by=("source_system", "source_file"),
)  # fmt: skip


@dataclass(frozen=True)
class FileStat:
    """What a file's hash is kept with; the fields are columns of raw.raw_file_hashes."""

    file_bytes: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: Path) -> FileStat:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def settled_before(self, hashed_at_ns: int) -> bool:
        """Last written at least RACY_SECONDS before hashing began."""
        limit = hashed_at_ns - RACY_SECONDS * 1_000_000_000
        return self.mtime_ns < limit and self.ctime_ns < limit


def rehash_from_env() -> bool:
    """FUNDTRACE_REHASH_FILES: 1/true/yes hashes every file on every run."""
    value = os.environ.get(REHASH_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{REHASH_ENV} must be 1 or 0, not {value!r}")


@dataclass
class HashedFiles:
    """The hashes of one folder's files, and how many had to be read."""

    sha256: dict[str, str]
    read: int

    @property
    def reused(self) -> int:
        return len(self.sha256) - self.read


def file_hashes(
    con: duckdb.DuckDBPyConnection,
    source_system: str,
    files: Mapping[str, Path],
    *,
    rehash: bool = False,
    keep: Collection[str] = (),
) -> HashedFiles:
    """SHA-256 of each file (relative path -> path), read only where the stat moved since the
    hash kept in raw.raw_file_hashes (all of them with `rehash`). The folder's entries are then
    those of `files`: read files are stored, vanished ones dropped, except those in `keep`
    (files still there that this call did not look at, e.g. other partitions')."""
    create_table(con, RAW_FILE_HASHES, replace=False)
    table = RAW_FILE_HASHES.qualified
    stat_columns = ", ".join(f.name for f in dataclasses.fields(FileStat))
    kept = {
        rel: (sha, FileStat(*stat), hashed_at)
        for rel, sha, hashed_at, *stat in con.execute(
            f"SELECT source_file, file_sha256, hashed_at_ns, {stat_columns} "
            f"FROM {table} WHERE source_system = ?",
            [source_system],
        ).fetchall()
    }
    hashed_at = time.time_ns()  # before the stats: see FileStat.settled_before
    stats = {rel: FileStat.of(path) for rel, path in files.items()}
    sha256: dict[str, str] = {}
    for rel, stat in stats.items():
        entry = kept.get(rel)
        if entry is not None and not rehash:
            sha, kept_stat, kept_at = entry
            if stat == kept_stat and kept_stat.settled_before(kept_at):
                sha256[rel] = sha
    todo = [rel for rel in files if rel not in sha256]
    for rel, sha in zip(todo, sha256_files([files[rel] for rel in todo]), strict=True):
        sha256[rel] = sha
    gone = sorted(set(kept) - set(files) - set(keep))
    if todo or gone:
        with transaction(con):
            stale = [*todo, *gone]
            con.execute(
                f"DELETE FROM {table} WHERE source_system = ? AND list_contains(?, source_file)",
                [source_system, stale],
            )
            if todo:
                rows = [
                    {
                        "source_system": source_system,
                        "source_file": rel,
                        "file_sha256": sha256[rel],
                        **dataclasses.asdict(stats[rel]),
                        "hashed_at_ns": hashed_at,
                    }
                    for rel in todo
                ]
                # one list per column, typed from the spec: no Arrow conversion here (pyarrow's
                # first one imports pandas, ~0.3 s in a run that parses nothing)
                columns = RAW_FILE_HASHES.columns
                con.execute(
                    f"INSERT INTO {table} ({', '.join(c.name for c in columns)}) SELECT "
                    + ", ".join(f"unnest(?::{c.type}[])" for c in columns),
                    [[row[c.name] for row in rows] for c in columns],
                )
    return HashedFiles(sha256={rel: sha256[rel] for rel in files}, read=len(todo))
