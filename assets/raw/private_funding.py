"""Private funding: Fundtrace's own template, CSV or XLSX.

One row per investment, loan, sponsorship, in-kind contribution or private grant, with the
columns `funder_id, funder_name, recipient_id, recipient_name, project_id, instrument, amount,
currency, date, source_url` (documented in data/raw/README.md). Titles are matched ignoring
case, spaces and underscores, in any order; other columns (an analyst's `notes`...) are kept
out of the raw table and named in the file's message. A file without instrument, amount,
currency, date, a funder (id or name) and a recipient (id or name) is not this template and
fails alone, naming the file and the columns it could not map.

- CSV: any encoding `detect_encoding` recognises, RFC 4180 quoting, delimiter sniffed (comma,
  semicolon or tab, as spreadsheets save them); a row with a different number of fields than
  the header (one trailing empty field tolerated) is quarantined.
- XLSX: the first sheet whose header row maps to the template (python-calamine).
Values are copied as text; typing is the staging layer's job.
"""

import csv
import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileContext,
    FileRejected,
    ParseResult,
    Reject,
    RowWriter,
    single_table_raw_asset,
)

SOURCE_SYSTEM = "private"
FOLDER = "private"
SUFFIXES = (".csv", ".xlsx")
PARSER_VERSION = "private-1"
DELIMITERS = (",", ";", "\t")

FIELDS: dict[str, str] = {
    "funder_id": "Org-id of the investor, sponsor, lender or donor.",
    "funder_name": "Name of the funder.",
    "recipient_id": "Org-id of the recipient.",
    "recipient_name": "Name of the recipient.",
    "project_id": "Project id from governance/projects.csv.",
    "instrument": "equity | loan | sponsorship | in_kind | grant.",
    "amount": "Amount in `currency`.",
    "currency": "ISO 4217 code.",
    "date": "Date of the investment, loan, sponsorship or contribution.",
    "source_url": "Where the information was published.",
}
FIELD_NAMES = list(FIELDS)
# each group needs one of its columns
REQUIRED = (
    ("instrument",),
    ("amount",),
    ("currency",),
    ("date",),
    ("funder_id", "funder_name"),
    ("recipient_id", "recipient_name"),
)

RAW_PRIVATE = TableSpec(
    schema="raw",
    name="raw_private_funding",
    grain="one row of a private funding template file (CSV row or sheet row)",
    description="Private funding (equity, loans, sponsorship, in-kind, private grants) copied as "
    "text from $FUNDTRACE_RAW_DIR/private/, one column per template column.",
    columns=(
        *(Column(name, "VARCHAR", f"Template column {name}: {doc}") for name, doc in FIELDS.items()),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip


def title_key(title: str) -> str:
    return re.sub(r"[^0-9a-z]", "", title.lstrip("\ufeff").strip().lower())


_KEY_TO_FIELD = {title_key(name): name for name in FIELD_NAMES}


def map_titles(titles: list[str]) -> dict[int, str]:
    """Column position -> template column (the first of two equal titles wins)."""
    mapping: dict[int, str] = {}
    for i, title in enumerate(titles):
        name = _KEY_TO_FIELD.get(title_key(title))
        if name and name not in mapping.values():
            mapping[i] = name
    return mapping


def check_template(titles: list[str], mapping: dict[int, str], source_file: str) -> list[str]:
    """Raise FileRejected unless the header is the template; return the ignored titles."""
    present = set(mapping.values())
    unmapped = [t.strip() for i, t in enumerate(titles) if i not in mapping and t.strip()]
    missing = [" or ".join(g) for g in REQUIRED if not present.intersection(g)]
    if missing:
        raise FileRejected(
            f"{source_file}: not the private funding template: no column {'; '.join(missing)}; "
            f"could not map column(s): {', '.join(unmapped) or '(none)'}",
            locator="header row",
        )
    return unmapped


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()[:10]
    text = str(value).strip()
    return text or None


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def parse_csv(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        with readable.open(encoding="utf-8-sig", newline="") as fh:
            delim = _sniff(fh.readline())
            fh.seek(0)
            reader = csv.reader(fh, delimiter=delim)
            titles = next(reader, None)
            if not titles:
                raise FileRejected(f"{ctx.source_file}: no header row", locator="line 1")
            while titles and not titles[-1].strip():
                titles.pop()
            mapping = map_titles(titles)
            ignored = check_template(titles, mapping, ctx.source_file)
            writer = RowWriter(con, ctx, RAW_PRIVATE.qualified, FIELD_NAMES)
            rejects: list[Reject] = []
            n = 0
            for rec in _records(reader):
                lineno, values = rec
                if not any(v.strip() for v in values):
                    continue
                n += 1
                locator = f"data row {n} (line {lineno})"
                fields = (
                    values[:-1]
                    if len(values) == len(titles) + 1 and not values[-1].strip()
                    else values
                )
                if len(fields) != len(titles):
                    rejects.append(
                        Reject(
                            n,
                            locator,
                            f"{len(values)} fields where the header has {len(titles)}: "
                            "shifted or unquoted column",
                            delim.join(values),
                        )
                    )
                    continue
                writer.add({name: (fields[i].strip() or None) for i, name in mapping.items()}, n, locator)  # fmt: skip
            writer.flush()
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)
    notes = [f"delimiter {delim!r}"]
    if ignored:
        notes.append(f"columns ignored: {', '.join(ignored)}")
    if encoding != "utf-8":
        notes.append(f"transcoded from {encoding}")
    return ParseResult(writer.written, "csv", encoding, rejects, "; ".join(notes))


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for each record after the header."""
    start = reader.line_num + 1
    for values in reader:
        yield start, values
        start = reader.line_num + 1


def parse_xlsx(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise FileRejected(f"{ctx.source_file}: not a readable XLSX workbook: {exc}") from exc
    first_titles: list[str] | None = None
    for sheet_name in book.sheet_names:
        rows = book.get_sheet_by_name(sheet_name).to_python(skip_empty_area=False)
        if not rows:
            continue
        titles = [_text(v) or "" for v in rows[0]]
        first_titles = first_titles or titles
        mapping = map_titles(titles)
        if "instrument" not in mapping.values() or "amount" not in mapping.values():
            continue
        ignored = check_template(titles, mapping, ctx.source_file)
        writer = RowWriter(con, ctx, RAW_PRIVATE.qualified, FIELD_NAMES)
        n = 0
        for sheet_row, rec in enumerate(rows[1:], start=2):
            values = [_text(v) for v in rec]
            if not any(values):
                continue
            n += 1
            row = {name: (values[i] if i < len(values) else None) for i, name in mapping.items()}
            writer.add(row, n, f"sheet '{sheet_name}' row {sheet_row}")
        writer.flush()
        notes = [f"read sheet '{sheet_name}'"]
        if ignored:
            notes.append(f"columns ignored: {', '.join(t for t in ignored if t)}")
        return ParseResult(writer.written, "xlsx", None, [], "; ".join(notes))
    check_template(first_titles or [], map_titles(first_titles or []), ctx.source_file)
    raise FileRejected(f"{ctx.source_file}: no sheet has the private funding template header")


def parse_file(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return parse_csv(con, path, ctx)
    if suffix == ".xlsx":
        return parse_xlsx(con, path, ctx)
    raise FileRejected(f"unsupported file type {suffix}")


raw_private_funding = single_table_raw_asset(
    RAW_PRIVATE,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "csv", "python"},
    parser=parse_file,
)
