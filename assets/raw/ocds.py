"""Open Contracting Data Standard (OCDS 1.0 / 1.1) releases, in every packaging publishers use.

One row per release, copied as published into `raw.raw_ocds_releases`. Merging releases into
compiled releases and typing them is the staging layer's job (`assets/staging/stg_ocds.py`).

Accepted (`.json`, `.jsonl`/`.jl`/`.ndjson`, each optionally gzipped `.gz`):
- release packages `{"releases": [...]}` and record packages `{"records": [...]}`; a record's
  embedded `releases` are its releases; its `compiledRelease` is kept only when the record has no
  embedded release (only linked releases `{"url": ...}`, or none) — see the staging module for
  how the merge then treats it; `versionedRelease` is skipped;
- bare release objects, bare record objects, bare arrays of any of these;
- JSON Lines: one release, record or package per line (`.jsonl`, or a `.json` file whose first
  line is a complete JSON value followed by more lines);
- UTF-8 (BOM or not); other encodings (Latin-1 / Windows-1252, UTF-16) are detected over the
  whole (decompressed) file and transcoded to a temporary UTF-8 copy first.

Streaming: a package's `releases`/`records` array is read item by item by ijson's C backend
(its Python backend for a file with integers beyond 64 bits: `json_stream`), so
a file of any size never sits in memory; only one release (or record) at a time does, and rows
go to DuckDB in Arrow batches of bounded size. JSON Lines are read one line at a time.
With $FUNDTRACE_WORKERS > 1 (the default on two cores) the asset parses a few files ahead in
worker processes, which spool each file's rows to an Arrow stream file; the parent inserts them
in file order, one transaction per file as before, so the table and the quarantine are the same.

Package metadata (`version`, `uri`, `publishedDate`, `publisher.name`) is taken from the keys
written before the `releases`/`records` array (where publishers and the standard's examples put
them) or from a release's legacy `packageInfo`; keys written after a large array are not read,
which would need a second pass over the file.

Per release: `tag` is normalised to a JSON array (a string `"award"` becomes `["award"]`); a
release without `ocid` inside a record takes the record's `ocid`; `content_hash` is the MD5 of
the release's canonical JSON (sorted keys, legacy `packageInfo` left out) so staging can tell an
identical copy from a different release published under the same id.

File-level failures (the whole file is quarantined, the other files load): invalid JSON, a
`releases`/`records` member that is not an array, a JSON value that is no release, record or
package, a 0-byte file (reported by the shared ingest). Record-level rejects: an element of
`releases` that is not a JSON object.
"""

import codecs
import gzip
import hashlib
import json
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import duckdb
import ijson

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.json_text import canonical_json, loads
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileRejected,
    IngestReport,
    ParseResult,
    Reject,
    single_table_raw_asset,
)
from assets.raw.json_stream import backend, read_exactly, refuse_wide_integer
from assets.raw.parallel_parse import RowSink, SpoolParser, ingest_in_parallel

SOURCE_SYSTEM = "ocds"
FOLDER = "ocds"
SUFFIXES = (
    ".json", ".jsonl", ".jl", ".ndjson",
    ".json.gz", ".jsonl.gz", ".jl.gz", ".ndjson.gz",
)  # fmt: skip
JSON_LINES_SUFFIXES = (".jsonl", ".jl", ".ndjson")
PARSER_VERSION = "ocds-2"
BATCH_ROWS = 5_000
SNIFF_BYTES = 1 << 20  # a JSON Lines file shows a newline within its first MiB
_CHUNK = 1 << 20

RELEASE_FIELDS = (
    "ocid",
    "release_id",
    "release_date",
    "release_tag",
    "ocds_version",
    "release_origin",
    "packaging",
    "record_ocid",
    "package_uri",
    "package_published_date",
    "publisher_name",
    "content_hash",
    "release_json",
)

RAW_RELEASES = TableSpec(
    schema="raw",
    name="raw_ocds_releases",
    grain="one OCDS release as published in one file (a package's, a record's or a bare release)",
    description="OCDS releases copied from $FUNDTRACE_RAW_DIR/ocds/ (release and record "
    "packages, JSON Lines, bare releases, records and arrays, gzipped or not). The release "
    "object itself is kept as JSON text; a few fields are copied out for merging and review. "
    "A record contributes its embedded releases, or its compiledRelease when it embeds none.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID (`ocid`) of the release; a release inside a record without its own ocid takes the record's."),
        Column("release_id", "VARCHAR", "Release `id` as published."),
        Column("release_date", "VARCHAR", "Release `date` as published (ISO 8601 text)."),
        Column("release_tag", "VARCHAR", "Release `tag` as a JSON array of strings (a tag published as a string is wrapped in an array)."),
        Column("ocds_version", "VARCHAR", "OCDS version: the release's `version`, else its legacy `packageInfo.version`, else the package `version` (absent means 1.0)."),
        Column("release_origin", "VARCHAR", "Where the object was found: release | record.releases | record.compiledRelease."),
        Column("packaging", "VARCHAR", "Container of the object: release_package | record_package | release | record | array (a bare top-level array), prefixed `jsonl:` for JSON Lines."),
        Column("record_ocid", "VARCHAR", "`ocid` of the enclosing record, for releases read from a record."),
        Column("package_uri", "VARCHAR", "Package `uri` (or legacy `packageInfo.uri`)."),
        Column("package_published_date", "VARCHAR", "Package `publishedDate` (or legacy `packageInfo.publishedDate`)."),
        Column("publisher_name", "VARCHAR", "Package or record `publisher.name` (or legacy `packageInfo.publisher`)."),
        Column("content_hash", "VARCHAR", "MD5 of the release's canonical JSON (sorted keys, without legacy `packageInfo`): equal hashes = identical copies."),
        Column("release_json", "VARCHAR", "The release object as canonical JSON text (sorted keys; numbers as read)."),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def normalise_tag(tag: Any) -> str | None:
    """`tag` as a JSON array text: `"award"` -> `["award"]`; missing -> NULL."""
    if tag is None:
        return None
    # a few tag lists repeat over every release: cache those made of strings only (a cache
    # keyed on mixed values would confuse 1, 1.0 and True, which hash alike)
    if isinstance(tag, str):
        return _string_tags((tag,))
    if type(tag) is list and all(type(t) is str for t in tag):
        return _string_tags(tuple(tag))
    items = tag if isinstance(tag, list) else [tag]
    return json.dumps([_text(t) for t in items if t is not None], ensure_ascii=False)


@lru_cache(maxsize=1024)
def _string_tags(tags: tuple[str, ...]) -> str:
    return json.dumps(list(tags), ensure_ascii=False)


def content_hash(release: dict[str, Any], text: str | None = None) -> str:
    """`text`: the release's canonical JSON when already made (used unless packageInfo is in)."""
    if text is None or "packageInfo" in release:
        text = canonical_json({k: v for k, v in release.items() if k != "packageInfo"})
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _publisher_name(publisher: Any) -> str | None:
    if isinstance(publisher, dict):
        return _text(publisher.get("name"))
    return _text(publisher)


def _is_linked_release(obj: Any) -> bool:
    """A record's linked release: `{"url": ..., "date": ..., "tag": ...}`, no release id."""
    return isinstance(obj, dict) and "url" in obj and "id" not in obj and "ocid" not in obj


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a scalar")


@dataclass
class PackageMeta:
    packaging: str
    version: str | None = None
    uri: str | None = None
    published_date: str | None = None
    publisher: str | None = None

    @classmethod
    def from_object(cls, packaging: str, obj: dict[str, Any]) -> "PackageMeta":
        return cls(
            packaging,
            _text(obj.get("version")),
            _text(obj.get("uri")),
            _text(obj.get("publishedDate")),
            _publisher_name(obj.get("publisher")),
        )


@dataclass
class FileStats:
    linked_releases: int = 0
    compiled_used: int = 0
    compiled_ignored: int = 0
    values: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- writer


class _Writer:
    """Buffers release rows and appends them to the raw table through Arrow batches."""

    def __init__(self, out: RowSink):
        self.out = out
        self.seen = 0  # releases and rejects: the next source_row is seen + 1
        self.rejects: list[Reject] = []

    def next_row(self) -> int:
        self.seen += 1
        return self.seen

    def reject(self, locator: str, reason: str, record: Any) -> None:
        self.rejects.append(Reject(self.next_row(), locator, reason, _text(record)))

    def release(
        self,
        release: Any,
        locator: str,
        meta: PackageMeta,
        origin: str = "release",
        record_ocid: str | None = None,
    ) -> None:
        if not isinstance(release, dict):
            self.reject(locator, f"release is {_kind(release)}, not a JSON object", release)
            return
        info = release.get("packageInfo")
        info = info if isinstance(info, dict) else {}
        text = canonical_json(release)
        row = {
            "ocid": _text(release.get("ocid")) or record_ocid,
            "release_id": _text(release.get("id")),
            "release_date": _text(release.get("date")),
            "release_tag": normalise_tag(release.get("tag")),
            "ocds_version": _text(release.get("version"))
            or _text(info.get("version"))
            or meta.version,
            "release_origin": origin,
            "packaging": meta.packaging,
            "record_ocid": record_ocid,
            "package_uri": _text(info.get("uri")) or meta.uri,
            "package_published_date": _text(info.get("publishedDate")) or meta.published_date,
            "publisher_name": _publisher_name(info.get("publisher")) or meta.publisher,
            "content_hash": content_hash(release, text),
            "release_json": text,
        }
        self.out.add(row, self.next_row(), locator, size=len(text))

    def flush(self) -> None:
        self.out.flush()

    @property
    def written(self) -> int:
        return self.out.written


# --------------------------------------------------------------------------- in-memory values


def dispatch_value(
    w: _Writer, value: Any, locator: str, stats: FileStats, jsonl: bool = False
) -> None:
    """Any JSON value already in memory (a JSON Lines line, an array item, a bare object)."""
    prefix = "jsonl:" if jsonl else ""

    def at(suffix: str) -> str:
        return locator + suffix

    if isinstance(value, list):
        for i, item in enumerate(value):
            _array_item(w, item, at(f"[{i}]"), stats, jsonl)
        return
    if not isinstance(value, dict):
        if jsonl:
            w.reject(locator, f"{_kind(value)}, not an OCDS release, record or package", value)
            return
        raise FileRejected(
            f"{locator} is {_kind(value)}, not an OCDS release, record or package",
            locator=locator,
        )
    if "records" in value:
        records = value["records"]
        if not isinstance(records, list):
            raise FileRejected(
                f"`records` at {at('.records')} is {_kind(records)}, not an array: "
                "not a valid record package",
                locator=at(".records"),
            )
        meta = PackageMeta.from_object(prefix + "record_package", value)
        for i, rec in enumerate(records):
            if isinstance(rec, dict):
                _record(w, rec, at(f".records[{i}]"), meta, stats)
            else:
                w.reject(at(f".records[{i}]"), f"record is {_kind(rec)}, not a JSON object", rec)
        return
    if _is_record(value):
        meta = PackageMeta.from_object(prefix + "record", value)
        _record(w, value, at(""), meta, stats)
        return
    if "releases" in value:
        releases = value["releases"]
        if not isinstance(releases, list):
            raise FileRejected(
                f"`releases` at {at('.releases')} is {_kind(releases)}, not an array: "
                "not a valid release package",
                locator=at(".releases"),
            )
        meta = PackageMeta.from_object(prefix + "release_package", value)
        for i, rel in enumerate(releases):
            w.release(rel, at(f".releases[{i}]"), meta)
        return
    if "ocid" in value or ("id" in value and "date" in value):
        w.release(value, at(""), PackageMeta(prefix + "release"))
        return
    keys = ", ".join(list(value)[:12])
    if jsonl:
        w.reject(locator, f"not an OCDS release, record or package (keys: {keys})", value)
        return
    raise FileRejected(
        f"the top-level object is not an OCDS release, record or package (keys: {keys})",
        locator="$",
    )


def _is_record(obj: dict[str, Any]) -> bool:
    return (
        "compiledRelease" in obj
        or "versionedRelease" in obj
        or ("releases" in obj and "ocid" in obj)
    )


def _record(
    w: _Writer, rec: dict[str, Any], locator: str, meta: PackageMeta, stats: FileStats
) -> None:
    record_ocid = _text(rec.get("ocid"))
    if "publisher" in rec:  # bare records carry their own publisher
        meta = PackageMeta(meta.packaging, meta.version, meta.uri, meta.published_date)
        meta.publisher = _publisher_name(rec.get("publisher"))
    releases = rec.get("releases")
    if releases is not None and not isinstance(releases, list):
        raise FileRejected(
            f"`releases` at {locator}.releases is {_kind(releases)}, not an array: "
            "not a valid record",
            locator=f"{locator}.releases",
        )
    embedded = 0
    for j, rel in enumerate(releases or []):
        if _is_linked_release(rel):
            stats.linked_releases += 1
            continue
        embedded += 1
        w.release(rel, f"{locator}.releases[{j}]", meta, "record.releases", record_ocid)
    compiled = rec.get("compiledRelease")
    if embedded == 0 and isinstance(compiled, dict):
        stats.compiled_used += 1
        w.release(
            compiled, f"{locator}.compiledRelease", meta, "record.compiledRelease", record_ocid
        )
    elif compiled is not None:
        stats.compiled_ignored += 1


# --------------------------------------------------------------------------- streaming


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _skip_bom(fh: IO[bytes]) -> IO[bytes]:
    head = fh.read(3)
    if head != codecs.BOM_UTF8:
        fh.close()
        raise _Reopen
    return fh


class _Reopen(Exception):
    pass


def _open_json(path: Path) -> IO[bytes]:
    """The file positioned after a UTF-8 BOM, if any."""
    fh = _open(path)
    try:
        return _skip_bom(fh)
    except _Reopen:
        return _open(path)


def _detect_gz_encoding(path: Path) -> str:
    with gzip.open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            with gzip.open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"  # decodes any byte sequence


def _transcode_gz(path: Path, encoding: str) -> Path:

    out = Path(tempfile.mkstemp(suffix=".json")[1])
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with gzip.open(path, "rb") as src, out.open("w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(decoder.decode(chunk))
        dst.write(decoder.decode(b"", final=True))
    return out


def _readable(path: Path) -> tuple[Path, str, Path | None]:
    """(path to parse, detected encoding, temporary UTF-8 copy to delete or None)."""
    gz = path.name.lower().endswith(".gz")
    try:
        encoding = _detect_gz_encoding(path) if gz else detect_encoding(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FileRejected(f"not a readable gzip file: {exc}") from exc
    if encoding in ("utf-8", "utf-8-sig", "ascii"):
        return path, "utf-8", None
    tmp = _transcode_gz(path, encoding) if gz else transcode_to_utf8(path, encoding)
    return tmp, encoding, tmp


def _looks_like_json_lines(path: Path) -> bool:
    """A complete JSON value on the first line and more content after it."""
    with _open_json(path) as fh:
        head = fh.read(SNIFF_BYTES)
    first, sep, rest = head.partition(b"\n")
    if not sep or not rest.strip() or not first.strip():
        return False
    try:
        loads(first)
    except ValueError:
        return False
    return True


def _iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with _open_json(path) as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                yield n, line


def parse_json_lines(w: _Writer, path: Path, stats: FileStats) -> None:
    for n, line in _iter_lines(path):
        try:
            value = loads(line)
        except ValueError as exc:
            raise FileRejected(
                f"invalid JSON on line {n}: {exc}; the whole file is quarantined so no partial "
                "file is counted",
                locator=f"line {n}",
                rows_seen=w.seen,
            ) from exc
        stats.values += 1
        dispatch_value(w, value, f"line {n}: $", stats, jsonl=True)


@dataclass
class _Head:
    """What precedes a top-level `releases`/`records` array (or the whole bare object)."""

    kind: str  # "array" | "object" | "stream"
    values: dict[str, Any] = field(default_factory=dict)
    array_key: str | None = None
    skipped: list[str] = field(default_factory=list)


def _sniff(path: Path) -> _Head:
    """Read the top level until a `releases`/`records` array starts (or the value ends).

    Values before the array are built (package metadata, or a bare release in full);
    `versionedRelease` is skipped without building it.
    """
    with _open_json(path) as fh:
        events = backend().parse(fh, use_float=True)
        try:
            _, event, _ = next(events)
        except StopIteration:
            raise FileRejected("no JSON value in the file (only whitespace)", locator="$") from None
        if event == "start_array":
            return _Head("array")
        if event != "start_map":
            raise FileRejected(
                "the file holds a single JSON scalar, not an OCDS release, record or package",
                locator="$",
            )
        head = _Head("object")
        for prefix, event, value in events:
            if prefix == "" and event == "end_map":
                return head
            if prefix == "" and event == "map_key":
                key = value
                _, event, first = next(events)
                if key in ("releases", "records"):
                    if event == "start_array":
                        head.kind, head.array_key = "stream", key
                        return head
                    kind = {"start_map": "an object", "string": "a string"}.get(event, "a scalar")
                    raise FileRejected(
                        f"`{key}` at $.{key} is {kind}, not an array: not a valid "
                        f"{'record' if key == 'records' else 'release'} package",
                        locator=f"$.{key}",
                    )
                if key == "versionedRelease":
                    head.skipped.append(key)
                    _skip_value(event, events)
                    continue
                head.values[key] = _build_value(event, first, events)
    raise FileRejected("the top-level object is not closed", locator="$")


def _skip_value(event: str, events: Iterator[tuple[str, str, Any]]) -> None:
    if event not in ("start_map", "start_array"):
        return
    depth = 1
    for _, ev, _ in events:
        if ev in ("start_map", "start_array"):
            depth += 1
        elif ev in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return


def _build_value(event: str, value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    if event not in ("start_map", "start_array"):
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for _, ev, val in events:
        builder.event(ev, val)
        if ev in ("start_map", "start_array"):
            depth += 1
        elif ev in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                break
    return builder.value


def _stream_items(path: Path, prefix: str) -> Iterator[Any]:
    with _open_json(path) as fh:
        yield from backend().items(fh, prefix, use_float=True)


def parse_json_document(w: _Writer, path: Path, stats: FileStats) -> None:
    head = _sniff(path)
    stats.values = 1
    if head.kind == "object":
        # the whole (small) bare release or record was built by the sniff
        if head.skipped:  # only records carry a versionedRelease
            _record(w, head.values, "$", PackageMeta.from_object("record", head.values), stats)
        else:
            dispatch_value(w, head.values, "$", stats)
        return
    if head.kind == "array":
        for i, item in enumerate(_stream_items(path, "item")):
            _array_item(w, item, f"$[{i}]", stats)
        return
    key = head.array_key
    is_record = key == "releases" and (
        "ocid" in head.values or "compiledRelease" in head.values or bool(head.skipped)
    )
    if key == "records":
        meta = PackageMeta.from_object("record_package", head.values)
        for i, rec in enumerate(_stream_items(path, "records.item")):
            if isinstance(rec, dict):
                _record(w, rec, f"$.records[{i}]", meta, stats)
            else:
                w.reject(f"$.records[{i}]", f"record is {_kind(rec)}, not a JSON object", rec)
        return
    _stream_releases(w, path, head, stats, "record" if is_record else "release_package")


def _array_item(w: _Writer, item: Any, loc: str, stats: FileStats, jsonl: bool = False) -> None:
    """An element of a bare array: a release, or a record or package inside the array."""
    packaging = ("jsonl:" if jsonl else "") + "array"
    if isinstance(item, dict) and "records" not in item and _is_record(item):
        _record(w, item, loc, PackageMeta(packaging), stats)
    elif isinstance(item, dict) and ("records" in item or "releases" in item):
        dispatch_value(w, item, loc, stats, jsonl)
    else:
        w.release(item, loc, PackageMeta(packaging))


def _stream_releases(w: _Writer, path: Path, head: _Head, stats: FileStats, packaging: str) -> None:
    """A top-level `releases` array, streamed: a release package's, or a bare record's. Linked
    releases (url only) are counted, not loaded; when nothing else is there, a `compiledRelease`
    (written before or after the array) is used."""
    meta = PackageMeta.from_object(packaging, head.values)
    is_record = packaging == "record"
    record_ocid = _text(head.values.get("ocid")) if is_record else None
    origin = "record.releases" if is_record else "release"
    embedded = 0
    for j, rel in enumerate(_stream_items(path, "releases.item")):
        if _is_linked_release(rel):
            stats.linked_releases += 1
            continue
        embedded += 1
        w.release(rel, f"$.releases[{j}]", meta, origin, record_ocid)
    if embedded:
        stats.compiled_ignored += int("compiledRelease" in head.values)
        return
    compiled = head.values.get("compiledRelease")
    if compiled is None:  # written after the releases array: one more (C-speed) pass
        compiled = next(iter(_stream_items(path, "compiledRelease")), None)
    if isinstance(compiled, dict):
        stats.compiled_used += 1
        w.release(compiled, "$.compiledRelease", meta, "record.compiledRelease", record_ocid)


def parse_to(out: RowSink, path: Path) -> ParseResult:
    """One file's releases to `out` (the raw table, or a worker's spool)."""
    return read_exactly(out, lambda: _parse(_Writer(out), path))


PARSER = SpoolParser(parse_to, RAW_RELEASES, RELEASE_FIELDS, batch_rows=BATCH_ROWS)


# one file into the raw table, in this process (the tests' and real-data checks' entry)
parse_file = PARSER.parse_file


def _parse(w: _Writer, path: Path) -> ParseResult:
    readable, encoding, tmp = _readable(path)
    stats = FileStats()
    lower = path.name.lower().removesuffix(".gz")
    try:
        jsonl = lower.endswith(JSON_LINES_SUFFIXES) or _looks_like_json_lines(readable)
        try:
            if jsonl:
                parse_json_lines(w, readable, stats)
            else:
                parse_json_document(w, readable, stats)
        except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
            refuse_wide_integer(exc)
            detail = " ".join(str(exc).split())
            raise FileRejected(
                f"invalid JSON after {w.seen} release(s): {detail}; the whole file is "
                "quarantined so no partial file is counted",
                locator=f"release {w.seen + 1}",
                rows_seen=w.seen,
            ) from exc
        except (EOFError, gzip.BadGzipFile) as exc:
            raise FileRejected(f"truncated or corrupt gzip data: {exc}", rows_seen=w.seen) from exc
        w.flush()
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if w.written == 0 and not w.rejects:
        raise FileRejected("no OCDS release in the file (empty `releases`/`records` array)")
    notes = []
    if encoding != "utf-8":
        notes.append(f"transcoded from {encoding}")
    if jsonl:
        notes.append(f"JSON Lines: {stats.values} line(s)")
    if stats.linked_releases:
        notes.append(f"{stats.linked_releases} linked release(s) (url only) not counted")
    if stats.compiled_used:
        notes.append(f"compiledRelease used for {stats.compiled_used} record(s) without releases")
    if stats.compiled_ignored:
        notes.append(
            f"compiledRelease of {stats.compiled_ignored} record(s) ignored: their releases "
            "are merged instead"
        )
    fmt = ("jsonl" if jsonl else "json") + (".gz" if path.name.lower().endswith(".gz") else "")
    return ParseResult(w.written, fmt, encoding, w.rejects, "; ".join(notes) or None)


def ingest_releases(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    log: Callable[[str], None],
    workers: int,
    files: Collection[str] | None = None,
) -> IngestReport:
    """The OCDS folder into raw_ocds_releases, parsed in `workers` processes (1: in-process):
    the tests' entry; the asset takes $FUNDTRACE_WORKERS through `PARSER.ingest`."""
    return ingest_in_parallel(
        con,
        PARSER,
        workers,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=FOLDER,
        suffixes=SUFFIXES,
        parser_version=PARSER_VERSION,
        log=log,
        files=files,
    )


raw_ocds_releases = single_table_raw_asset(
    RAW_RELEASES,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "json", "python"},
    ingest=PARSER.ingest,
)
