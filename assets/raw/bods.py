"""Beneficial Ownership Data Standard (BODS 0.1-0.4) statements, one raw row per statement.

Accepted files (`.json`, `.jsonl`/`.jl`/`.ndjson`, each optionally gzipped `.gz`):
- a JSON array of statements (the standard's package form, every BODS version), streamed item
  by item with ijson: a file of any size never sits in memory, only one statement does;
- JSON Lines: one statement per line (a line holding an array contributes each of its items);
  `.json` files whose first line is a complete JSON value are read as JSON Lines too;
- a bare statement object (or several concatenated objects).
UTF-8 with or without BOM; anything else fails the file with the position of the bad byte.

Versions (`bods_version`, how the statement is shaped, not what the folder says):
- `0.4`: record form (`statementId`, `recordId`, `recordType`, `recordDetails`);
- `0.2` / `0.3`: `statementID` + `statementType`, version from `publicationDetails.bodsVersion`
  (a legacy-shaped statement without a bodsVersion but with publicationDetails is read as 0.2);
- `0.1`: `statementID` + `statementType` and no `publicationDetails` at all (required since
  0.2), as in the Open Ownership Register exports.

Privacy, applied BEFORE anything is stored (raw table, quarantine, logs): from every statement
that is not an entity statement (persons, and statements whose type is missing or unknown, which
might be persons) the fields `birthDate`, `deathDate`, `addresses`, `placeOfBirth`,
`placeOfResidence`, `residentialAddress`, `taxResidencies` and identifiers of personal-document
schemes (`*-PASSPORT`, `*-TAXID`, `*-IDCARD`) are removed; `private_fields_removed` names what
went (field names only). Rejected records never carry their content into the quarantine
(JSON errors keep only the first line of the parser's message, which does not echo the text).

File-level failures (whole file quarantined, other files load): invalid JSON in an array or a
bare object, a top-level scalar, a single top-level object that is not a statement. Record-level
rejects: array items / lines that are not JSON objects, invalid JSON on one JSON Lines line.
"""

import codecs
import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import ijson

from assets.common.json_text import canonical_json, loads
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileRejected,
    ParseResult,
    Reject,
    single_table_raw_asset,
)
from assets.raw.json_stream import backend, read_exactly, refuse_wide_integer
from assets.raw.parallel_parse import RowSink, SpoolParser

SOURCE_SYSTEM = "bods"
FOLDER = "bods"
SUFFIXES = (
    ".json", ".jsonl", ".jl", ".ndjson",
    ".json.gz", ".jsonl.gz", ".jl.gz", ".ndjson.gz",
)  # fmt: skip
JSON_LINES_SUFFIXES = (".jsonl", ".jl", ".ndjson")
PARSER_VERSION = "bods-2"
BATCH_ROWS = 5_000

# Dropped from person (and untyped) statements before storage: the marts keep names and roles.
PERSON_PRIVATE_FIELDS = (
    "birthDate",
    "deathDate",
    "addresses",
    "placeOfBirth",
    "placeOfResidence",
    "residentialAddress",
    "taxResidencies",
)
PERSONAL_ID_SCHEME = re.compile(r"-(PASSPORT|TAXID|IDCARD)\s*$", re.IGNORECASE)
ENTITY_TYPES = ("entityStatement", "entity")
STATEMENT_MARKERS = ("statementID", "statementId", "statementType", "recordId", "recordType")

RAW_FIELDS = (
    "statement_id",
    "bods_version",
    "bods_version_published",
    "statement_type",
    "record_id",
    "record_status",
    "statement_date",
    "publisher_name",
    "content_hash",
    "private_fields_removed",
    "statement_json",
)

RAW_BODS = TableSpec(
    schema="raw",
    name="raw_bods_statements",
    grain="one BODS statement as published in one file (array item, JSON Lines line or bare object)",
    description="BODS 0.1-0.4 statements copied from $FUNDTRACE_RAW_DIR/bods/ (JSON arrays, JSON "
    "Lines, gzipped or not) with a few fields copied out for staging. Birth dates, addresses, "
    "residences and personal-document identifiers of persons are removed before storage and "
    "never reach the database. Typing, superseding and resolution are the staging layer's job.",
    columns=(
        Column("statement_id", "VARCHAR", "`statementId` (0.4) or `statementID` (0.1-0.3) when it is a non-empty string (or a number); NULL otherwise."),
        Column("bods_version", "VARCHAR", "BODS version detected from the statement's shape: 0.1 | 0.2 | 0.3 | 0.4.", False),
        Column("bods_version_published", "VARCHAR", "`publicationDetails.bodsVersion` as published."),
        Column("statement_type", "VARCHAR", "`statementType` (0.1-0.3: entityStatement, personStatement, ownershipOrControlStatement) or `recordType` (0.4: entity, person, relationship), as published."),
        Column("record_id", "VARCHAR", "`recordId` (0.4 only)."),
        Column("record_status", "VARCHAR", "`recordStatus` (0.4 only): new | updated | closed."),
        Column("statement_date", "VARCHAR", "`statementDate` as published."),
        Column("publisher_name", "VARCHAR", "`publicationDetails.publisher.name`."),
        Column("content_hash", "VARCHAR", "MD5 of statement_json: equal hashes = identical copies of one statement.", False),
        Column("private_fields_removed", "VARCHAR", "Names of the personal fields removed before storage (e.g. 'birthDate, addresses'); NULL when none."),
        Column("statement_json", "VARCHAR", "The statement as canonical JSON (sorted keys) WITHOUT the removed personal fields.", False),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip


# --------------------------------------------------------------------------- statements


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a number")


def is_v04(stmt: dict[str, Any]) -> bool:
    """0.4 record form: `statementId`/`recordId`/`recordType`/`recordDetails`, no `statementID`."""
    return "statementID" not in stmt and any(
        k in stmt for k in ("statementId", "recordId", "recordType", "recordDetails")
    )


def detect_version(stmt: dict[str, Any]) -> str:
    """0.4 by shape; 0.2/0.3 from bodsVersion; 0.1 when publicationDetails is absent."""
    if is_v04(stmt):
        return "0.4"
    pub = stmt.get("publicationDetails")
    published = _text(pub.get("bodsVersion")) if isinstance(pub, dict) else None
    match = re.match(r"0\.([123])\b", published or "")
    if match:
        return f"0.{match.group(1)}"
    return "0.1" if pub is None else "0.2"


def _statement_type(stmt: dict[str, Any], v04: bool) -> Any:
    if v04:
        return stmt.get("recordType", stmt.get("statementType"))
    return stmt.get("statementType", stmt.get("recordType"))


def sanitise_statement(stmt: dict[str, Any]) -> list[str]:
    """Remove personal fields in place (see module doc); returns the paths removed."""
    v04 = is_v04(stmt)
    if _text(_statement_type(stmt, v04)) in ENTITY_TYPES:
        return []
    details = stmt.get("recordDetails")
    targets: list[tuple[str, dict[str, Any]]] = [("", stmt)]
    if isinstance(details, dict):
        targets.append(("recordDetails.", details))
    removed: list[str] = []
    for prefix, obj in targets:
        for name in PERSON_PRIVATE_FIELDS:
            if name in obj:
                del obj[name]
                removed.append(prefix + name)
        ids = obj.get("identifiers")
        if isinstance(ids, list):
            kept = [
                i
                for i in ids
                if not (isinstance(i, dict) and PERSONAL_ID_SCHEME.search(str(i.get("scheme", ""))))
            ]
            if len(kept) != len(ids):
                obj["identifiers"] = kept
                removed.append(f"{prefix}identifiers (personal-document schemes)")
    return removed


def statement_row(stmt: dict[str, Any]) -> dict[str, str | None]:
    """Raw columns for one statement object; sanitises it first (mutates `stmt`)."""
    removed = sanitise_statement(stmt)
    v04 = is_v04(stmt)
    sid = stmt.get("statementId") if v04 else stmt.get("statementID", stmt.get("statementId"))
    pub = stmt.get("publicationDetails")
    pub = pub if isinstance(pub, dict) else {}
    publisher = pub.get("publisher")
    text = canonical_json(stmt)
    return {
        "statement_id": _text(sid) if isinstance(sid, (str, int)) else None,
        "bods_version": detect_version(stmt),
        "bods_version_published": _text(pub.get("bodsVersion")),
        "statement_type": _text(_statement_type(stmt, v04)),
        "record_id": _text(stmt.get("recordId")) if v04 else None,
        "record_status": _text(stmt.get("recordStatus")) if v04 else None,
        "statement_date": _text(stmt.get("statementDate")),
        "publisher_name": _text(publisher.get("name")) if isinstance(publisher, dict) else None,
        "content_hash": hashlib.md5(text.encode("utf-8")).hexdigest(),
        "private_fields_removed": ", ".join(removed) or None,
        "statement_json": text,
    }


# --------------------------------------------------------------------------- writer


class _Writer:
    """Buffers statement rows and appends them to the raw table through Arrow batches."""

    def __init__(self, out: RowSink):
        self.out = out
        self.seen = 0  # statements and rejects: the next source_row is seen + 1
        self.rejects: list[Reject] = []
        self.private = 0  # statements written with personal fields removed

    def next_row(self) -> int:
        self.seen += 1
        return self.seen

    def reject(self, locator: str, reason: str, record: str | None = None) -> None:
        self.rejects.append(Reject(self.next_row(), locator, reason, record))

    def item(self, value: Any, locator: str) -> None:
        if not isinstance(value, dict):
            # never echo arrays/objects: they may hold personal data
            shown = _text(value) if not isinstance(value, list) else f"array of {len(value)}"
            self.reject(
                locator, f"statement is {_kind(value)}, not a JSON object", (shown or "")[:200]
            )
            return
        row = statement_row(value)
        self.private += row["private_fields_removed"] is not None
        self.out.add(row, self.next_row(), locator, size=len(row["statement_json"] or ""))

    def flush(self) -> None:
        self.out.flush()

    @property
    def written(self) -> int:
        return self.out.written


# --------------------------------------------------------------------------- reading


def _open(path: Path) -> IO[bytes]:
    """Binary stream of the (decompressed) content, positioned after a UTF-8 BOM.
    The caller closes it (`with _open(path) as fh`)."""
    if path.name.lower().endswith(".gz"):
        fh: IO[bytes] = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
    else:
        fh = path.open("rb")
    if fh.read(3) != codecs.BOM_UTF8:
        fh.seek(0)
    return fh


def _first_char(path: Path) -> str:
    with _open(path) as fh:
        while chunk := fh.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return chr(stripped[0])
    return ""


def _first_line_is_json(path: Path) -> bool:
    with _open(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    loads(line)
                except (ValueError, UnicodeDecodeError):
                    return False
                return True
    return False


def _json_error(exc: Exception) -> str:
    """First line of a parser error: yajl's next lines echo the file's text."""
    first = str(exc).strip().splitlines()
    return " ".join(first[0].split()) if first else type(exc).__name__


def _read_lines(w: _Writer, path: Path) -> None:
    with _open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            locator = f"line {lineno}"
            try:
                value = loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                w.reject(locator, f"invalid JSON on line {lineno}: {_json_error(exc)}")
                continue
            if isinstance(value, list):
                for i, item in enumerate(value):
                    w.item(item, f"{locator}[{i}]")
            else:
                w.item(value, locator)


def _iter_array(path: Path) -> Iterator[Any]:
    with _open(path) as fh:
        yield from backend().items(fh, "item", use_float=True)


def _read_array(w: _Writer, path: Path) -> None:
    index = -1
    try:
        for index, value in enumerate(_iter_array(path)):
            w.item(value, f"$[{index}]")
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
        refuse_wide_integer(exc)
        raise FileRejected(
            f"invalid JSON in $[{index + 1}] (after {index + 1} complete statements): "
            f"{_json_error(exc)}; the whole file is quarantined so no partial file is counted",
            locator=f"$[{index + 1}]",
            rows_seen=index + 1,
        ) from exc


def _read_documents(w: _Writer, path: Path) -> None:
    """One or more concatenated top-level values (a pretty-printed bare statement)."""
    k = 0
    try:
        with _open(path) as fh:
            for k, value in enumerate(
                backend().items(fh, "", multiple_values=True, use_float=True), start=1
            ):
                locator = "$" if k == 1 else f"document {k}"
                if isinstance(value, dict) and not any(m in value for m in STATEMENT_MARKERS):
                    keys = ", ".join(list(value)[:12])
                    raise FileRejected(
                        f"the top-level object at {locator} is not a BODS statement (no "
                        f"statementID/statementId/recordType; keys: {keys})",
                        locator=locator,
                        rows_seen=k - 1,
                    )
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        w.item(item, f"{locator}[{i}]")
                else:
                    w.item(value, locator)
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
        refuse_wide_integer(exc)
        raise FileRejected(
            f"invalid JSON after {k} complete top-level values: {_json_error(exc)}; the whole "
            "file is quarantined",
            locator=f"document {k + 1}",
            rows_seen=k,
        ) from exc


def parse_to(out: RowSink, path: Path) -> ParseResult:
    """One file's statements to `out` (the raw table, or a worker's spool)."""
    return read_exactly(out, lambda: _parse(_Writer(out), path))


def _parse(w: _Writer, path: Path) -> ParseResult:
    name = path.name.lower().removesuffix(".gz")
    first = _first_char(path)
    if name.endswith(JSON_LINES_SUFFIXES):
        fmt = "jsonl"
        _read_lines(w, path)
    elif first == "[":
        fmt = "json"
        _read_array(w, path)
    elif first == "{":
        if _first_line_is_json(path):
            fmt = "jsonl"
            _read_lines(w, path)
        else:
            fmt = "json"
            _read_documents(w, path)
    elif first == "":
        raise FileRejected("file holds only whitespace: no BODS statements")
    else:
        raise FileRejected(
            f"not BODS JSON: the content starts with {first!r}, expected '[' (a statement "
            "array) or '{' (a statement or JSON Lines)",
            locator="$",
        )
    w.flush()
    if path.name.lower().endswith(".gz"):
        fmt += ".gz"
    note = (
        f"personal fields removed from {w.private} statements before storage" if w.private else None
    )
    return ParseResult(w.written, fmt, "utf-8", w.rejects, note)


PARSER = SpoolParser(parse_to, RAW_BODS, RAW_FIELDS, batch_rows=BATCH_ROWS)


# one file into the raw table, in this process (the tests' and real-data checks' entry)
parse_file = PARSER.parse_file


raw_bods_statements = single_table_raw_asset(
    RAW_BODS,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "json", "python"},
    ingest=PARSER.ingest,
)
