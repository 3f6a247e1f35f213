"""Header-mapped tables (CSV with any delimiter, XLSX/XLS) copied as text into a raw table.

For sources whose column titles drift between publishers and years (EU CORDIS, EU FTS...):

- titles are compared by `title_key`: case, whitespace (double spaces), typographic vs straight
  apostrophes, punctuation and a BOM do not matter, so `Beneficiary's contracted amount (EUR)`
  with a typographic apostrophe (U+2019) and `beneficiary's contracted amount (eur)` are one
  title;
- the header row is searched in the first rows, so title rows above it are skipped;
- CSV is read by DuckDB (all text); when DuckDB rejects lines the file is re-read with Python's
  csv module so every rejected record gets its data-row and line number (same numbering);
- XLSX/XLS sheets are streamed row by row with python-calamine.

Callers supply the title synonyms and decide what a usable header is; the mapped fields are
written as text with the provenance columns of `assets.raw.ingest`.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from assets.common.tables import sql_literal
from assets.raw.ingest import (
    FileContext,
    Reject,
    RowWriter,
    exact_csv_rows,
    read_csv_exactly,
)

HEADER_SCAN_ROWS = 30
CSV_DELIMITERS = (";", ",", "\t", "|")
# CORDIS objectives run to several thousand characters; the csv default (128 KiB) is too tight
# for a field that swallowed a stray quote, and such a record must become a reject, not a crash.
csv.field_size_limit(2**31 - 1)


def title_key(title: object) -> str:
    """Comparable form of a column title: letters and digits only, lower case."""
    text = unicodedata.normalize("NFKC", "" if title is None else str(title))
    return re.sub(r"[\W_]+", "", text.lower())


def synonym_index(synonyms: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """{field: [titles]} -> {title_key: field}; a title may belong to one field only."""
    index: dict[str, str] = {}
    for name, titles in synonyms.items():
        for title in titles:
            key = title_key(title)
            if index.get(key, name) != name:
                raise ValueError(f"title {title!r} is a synonym of {index[key]} and {name}")
            index[key] = name
    return index


def map_titles(titles: Sequence[str], index: Mapping[str, str]) -> dict[int, str]:
    """Column position -> field. The first column carrying a field wins."""
    mapping: dict[int, str] = {}
    for i, title in enumerate(titles):
        name = index.get(title_key(title))
        if name and name not in mapping.values():
            mapping[i] = name
    return mapping


def cell_text(value: Any) -> str | None:
    """A CSV/XLSX cell as the text a publisher meant (integral floats lose their `.0`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Header:
    """The header row found in a file: its titles, where it is and what it maps to."""

    titles: list[str]
    mapping: dict[int, str]
    index: int  # 0-based record (CSV) or row (sheet) position of the header
    lines_through_header: int = 0  # CSV: physical lines up to and including the header
    delimiter: str = ","
    sheet: str | None = None

    @property
    def fields(self) -> set[str]:
        return set(self.mapping.values())


Accept = Callable[[dict[int, str]], bool]


# ------------------------------------------------------------------------------------- CSV


def find_csv_header(
    path: Path,
    index: Mapping[str, str] | Callable[[Sequence[str]], dict[int, str]],
    accept: Accept,
    *,
    delimiters: Sequence[str] = CSV_DELIMITERS,
    scan: int = HEADER_SCAN_ROWS,
) -> tuple[Header | None, Header | None]:
    """(accepted header, best guess). The accepted header is the earliest record, over all
    `delimiters`, whose mapping `accept` takes (ties: more mapped fields). The best guess is
    the record with the most mapped fields, for an error message when nothing is accepted.
    `path` must be UTF-8 (a BOM is fine)."""
    mapper = index if callable(index) else (lambda titles: map_titles(titles, index))
    accepted: Header | None = None
    best: Header | None = None
    for delim in delimiters:
        for header in _csv_records_head(path, delim, scan, mapper):
            if best is None or (len(header.mapping), len(header.titles)) > (
                len(best.mapping),
                len(best.titles),
            ):
                best = header
            if accept(header.mapping):
                if (
                    accepted is None
                    or header.index < accepted.index
                    or (
                        header.index == accepted.index
                        and len(header.mapping) > len(accepted.mapping)
                    )
                ):
                    accepted = header
                break
    return accepted, best


def _csv_records_head(
    path: Path, delim: str, scan: int, mapper: Callable[[Sequence[str]], dict[int, str]]
) -> Iterator[Header]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delim)
        try:
            for i, rec in enumerate(reader):
                if i >= scan:
                    return
                titles = [t.strip() for t in rec]
                yield Header(titles, mapper(titles), i, reader.line_num, delim)
        except csv.Error:
            return


def load_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    ctx: FileContext,
    *,
    table: str,
    header: Header,
    constants: Mapping[str, str | None] | None = None,
) -> tuple[int, list[Reject]]:
    """Append the mapped columns of a UTF-8 CSV to `table`. Returns (rows loaded, rejects)."""
    constants = dict(constants or {})
    # DuckDB (ignore_errors) silently drops a record whose quote is never closed; an odd
    # number of quote characters betrays one, and the Python reader then reports it.
    loaded = (
        None if _odd_quotes(path) else _csv_with_duckdb(con, path, ctx, table, header, constants)
    )
    if loaded is not None:
        return loaded, []
    return _csv_with_python(con, path, ctx, table, header, constants)


def _odd_quotes(path: Path) -> bool:
    count = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            count += chunk.count(b'"')
    return count % 2 == 1


def _csv_with_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    ctx: FileContext,
    table: str,
    header: Header,
    constants: Mapping[str, str | None],
) -> int | None:
    """Fast path: the file read once by this process's in-memory DuckDB (`read_csv_exactly`:
    a failed read there cannot abort the caller's ingest transaction, so no probe read first)
    and streamed into `table`. None when DuckDB rejected lines (exact numbering needs the
    Python reader) or cannot read the file (e.g. the dialect sniffer giving up)."""
    width = len(header.titles)
    dialect = (
        f"header = false, skip = {header.lines_through_header}, "
        f"delim = {sql_literal(header.delimiter)}, quote = '\"', escape = '\"', comment = '', "
        "parallel = false"
    )
    try:
        if not read_csv_exactly(path, width, dialect):
            return None
    except duckdb.Error:
        return None
    fields = [(header.mapping[i], i) for i in sorted(header.mapping)]
    with exact_csv_rows(width, fields, number_blank_records=True) as rows:
        writer = RowWriter(con, ctx, table, [name for name, _ in fields], constants=constants)
        return writer.insert_arrow(rows)


def _csv_with_python(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    ctx: FileContext,
    table: str,
    header: Header,
    constants: Mapping[str, str | None],
) -> tuple[int, list[Reject]]:
    writer = RowWriter(con, ctx, table, [*header.mapping.values(), *constants])
    rejects: list[Reject] = []
    width = len(header.titles)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=header.delimiter)
        for _ in range(header.index + 1):
            next(reader, None)
        n = 0
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                n += 1
                rejects.append(
                    Reject(
                        n, f"data row {n} (line {reader.line_num})", f"unreadable CSV record: {exc}"
                    )
                )
                continue
            if not rec:  # a blank line is no record (DuckDB skips it too)
                continue
            n += 1
            locator = f"data row {n} (line {reader.line_num})"
            if len(rec) > width and not any(v.strip() for v in rec[width:]):
                rec = rec[:width]  # trailing empty fields only
            if len(rec) != width:
                rejects.append(
                    Reject(
                        n,
                        locator,
                        f"{len(rec)} fields where the header has {width}: "
                        "shifted, unquoted or broken quoting",
                        header.delimiter.join(rec),
                    )
                )
                continue
            if not any(v.strip() for v in rec):
                continue
            row: dict[str, str | None] = {
                name: (rec[i].strip() or None) for i, name in header.mapping.items()
            }
            row.update(constants)
            writer.add(row, n, locator)
    writer.flush()
    return writer.written, rejects


# ------------------------------------------------------------------------------------ XLSX


@dataclass
class SheetScan:
    """The header found in a workbook sheet and an iterator over the rows after it."""

    header: Header
    rows: Iterator[list[Any]] = field(repr=False)


def find_xlsx_header(
    path: Path,
    index: Mapping[str, str] | Callable[[Sequence[str]], dict[int, str]],
    accept: Accept,
    *,
    scan: int = HEADER_SCAN_ROWS,
) -> tuple[SheetScan | None, Header | None, list[str]]:
    """(first sheet with an accepted header row, best guess, sheet names)."""
    from python_calamine import CalamineWorkbook

    mapper = index if callable(index) else (lambda titles: map_titles(titles, index))
    book = CalamineWorkbook.from_path(str(path))
    best: Header | None = None
    for name in book.sheet_names:
        rows = iter(book.get_sheet_by_name(name).iter_rows())
        head: list[list[Any]] = []
        for i, rec in enumerate(rows):
            head.append(rec)
            titles = [cell_text(v) or "" for v in rec]
            header = Header(titles, mapper(titles), i, sheet=name)
            if best is None or len(header.mapping) > len(best.mapping):
                best = header
            if accept(header.mapping):
                return SheetScan(header, rows), best, list(book.sheet_names)
            if i + 1 >= scan:
                break
    return None, best, list(book.sheet_names)


def load_sheet(
    con: duckdb.DuckDBPyConnection,
    ctx: FileContext,
    scan: SheetScan,
    *,
    table: str,
    constants: Mapping[str, str | None] | None = None,
) -> int:
    """Append the mapped columns of the rows below the header. Returns rows loaded.

    source_row is the data-row number below the header; the locator names the Excel row
    (python-calamine's `iter_rows` starts at sheet row 1)."""
    constants = dict(constants or {})
    header = scan.header
    writer = RowWriter(con, ctx, table, [*header.mapping.values(), *constants])
    for n, rec in enumerate(scan.rows, start=1):
        values = [cell_text(v) for v in rec]
        if not any(values):
            continue
        row: dict[str, str | None] = {
            name: (values[i] if i < len(values) else None) for i, name in header.mapping.items()
        }
        row.update(constants)
        writer.add(row, n, f"sheet '{header.sheet}' row {header.index + 1 + n}")
    writer.flush()
    return writer.written


def describe_titles(titles: Sequence[str], limit: int = 40) -> str:
    shown = [t for t in titles if t][:limit]
    more = len([t for t in titles if t]) - len(shown)
    return ", ".join(shown) + (f" … (+{more})" if more > 0 else "") if shown else "(none)"
